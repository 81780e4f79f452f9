"""The json format's orjson fast path (readings_orjson.py) against the standard library's path
it sits in front of: for every payload, generated JSON and hostile bytes alike, the same
reading (value, types all the way down, -0.0's sign, key order, the error's exact words).

The standard library's path is readings.py's own, unchanged: a decoder built without
``json_loads`` takes only that path, one built with it takes the fast path first.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jupyter_iotcable import readings_orjson
from jupyter_iotcable.protocol.limits import MAX_DEPTH
from jupyter_iotcable.readings import Decoder, DecoderConfigError, PayloadFormat, make_decoder
from tests.core.hostile import EDGE, POISON, nested, nested_objects, random_payloads

TOPIC = "plant/lyon/pump3/env"
RECEIVED = 1_700_000_100.5
FAST = readings_orjson.loads

# (the standard library's path alone, the fast path in front of it)
PAIRS = [
    (make_decoder("json"), make_decoder("json", json_loads=FAST)),
    (make_decoder("json", time_field="ts"), make_decoder("json", time_field="ts", json_loads=FAST)),
]


def same(a: object, b: object) -> bool:
    """Equal, and alike all the way down: the same types (1 is not 1.0, True is not 1), the
    same float bits (-0.0 is not 0.0) and the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same_readings(payload: bytes) -> None:
    for slow, fast in PAIRS:
        expected = slow.decode(TOPIC, payload, RECEIVED)
        got = fast.decode(TOPIC, payload, RECEIVED)
        assert got.error == expected.error, payload[:200]
        assert same(got.time, expected.time), payload[:200]
        assert same(got.payload, expected.payload), payload[:200]
        assert got == expected


def takes_the_fast_path(payload: bytes) -> bool:
    try:
        FAST(payload)
    except ValueError:
        return False
    return True


# -- hostile bytes, one by one ---------------------------------------------------------------

BOM = b"\xef\xbb\xbf"
HOSTILE = [
    b"NaN",
    b"-NaN",
    b"Infinity",
    b"-Infinity",
    b'{"v": NaN}',
    b"[1, Infinity]",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"-1e-400",
    b"[1e400]",
    b'{"v": -1E+400}',
    b"1e0400",
    b"1.7976931348623157e308",
    b"1.7976931348623158e308",
    b"1.7976931348623159e308",
    b"-1.8e308",
    b"2.4703282292062327e-324",
    b"2.4703282292062328e-324",
    b"5e-324",
    b"0." + b"0" * 400 + b"1",
    b"1" + b"0" * 309 + b".0",
    b"9" * 200 + b".5e99",
    b"0",
    b"-0",
    b"-0.0",
    b"0.0",
    b"-0e0",
    b"-0E-0",
    b"[-0, -0.0, 0, 0.0]",
    b"1E2",
    b"9007199254740993",
    b"9007199254740993.0",
    b"9223372036854775807",
    b"9223372036854775808",
    b"9999999999999999999",
    b"10000000000000000000",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"-999999999999999999",
    b"-18446744073709551615",
    b'{"ts": 1733468789123456789, "v": 1}',
    b'{"ts": -1733468789123456789, "v": 1}',
    b"123456789012345678901234567890",
    b"[" + b"9" * 308 + b"]",
    b"[-" + b"9" * 308 + b"]",
    b"[-" + b"9" * 309 + b"]",
    b"9" * 309,
    b"1" + b"0" * 309,
    b"9" * 5_000,
    b'"\\ud800"',
    b'"\\udc00"',
    b'"\\uDFFF"',
    b'"\\ud800\\u0041"',
    b'"\\ud800\\ud800"',
    b'"\\udc00\\ud800"',
    b'"\\ud83d\\ude00"',
    b'{"\\ud800": 1}',
    b'"\xed\xa0\x80"',
    b'"\xc0\x80"',
    b'"\xe2\x82"',
    b"\xff",
    b'{"t": "\xff"}',
    b"\x80",
    BOM + b'{"t": 1}',
    BOM + BOM + b'{"t": 1}',
    BOM + b"NaN",
    BOM + b'"\xff"',
    BOM + b"18446744073709551616",
    BOM,
    b"\xef\xbb",
    b" " + BOM + b"1",
    b"\xfe\xff\x00\x31",
    b'\x00{"t": 1}',
    b"",
    b" ",
    b" \t\n\r1 \r\n\t",
    b"\x0c1",
    b"1\x0c",
    b"\xc2\xa01",
    b"1 2",
    b"{} x",
    b"[1]]",
    b"[1,]",
    b'{"a": 1,}',
    b"01",
    b"1.",
    b".5",
    b"+1",
    b"-",
    b"1e",
    b"0x10",
    b"'a'",
    b'"a\tb"',
    b'"\x00"',
    b'"\x7f"',
    b'"\\u0000"',
    b'"\\/\\b\\f\\n\\r\\t\\"\\\\"',
    b'"\\x"',
    b'"\\u12"',
    '\u2028"\u2028"'.encode(),
    b"true",
    b"True",
    b"null",
    b'{"a": 1, "a": 2}',
    b'{"a": 1, "b": 2, "a": 3}',
    b'{"ts": 1, "ts": "2024-01-01T00:00:00"}',
    b'{"ts": 1700000000}',
    b'{"ts": 1700000000000}',
    b'{"ts": -0.0}',
    b'{"ts": 1e400}',
    b'{"ts": "x"}',
    b"[1, 2]",
    nested(MAX_DEPTH),
    nested(MAX_DEPTH + 1),
    nested_objects(MAX_DEPTH),
    nested_objects(MAX_DEPTH + 1),
    nested(500),
    nested(950),
    nested(1000),
    nested(1023),
    nested(1024),
    nested(1025),
    nested(5_000),
    b"[" * 100_000,
    nested(1024)[:-1],
    nested(200) + b"x",
    b"[" * 200 + b"NaN" + b"]" * 200,
    b"[" * 200 + b'"\\ud800"' + b"]" * 200,
    b"[" * 1100 + b"1e400" + b"]" * 1100,
]


@pytest.mark.parametrize("payload", HOSTILE, ids=lambda payload: repr(payload[:40]))
def test_hostile_payloads_read_the_same(payload: bytes) -> None:
    assert_same_readings(payload)


@pytest.mark.parametrize(
    "payloads",
    [POISON, EDGE, random_payloads(random.Random(11), 400)],
    ids=["poison", "edge", "random"],
)
def test_the_hostile_payloads_of_the_end_to_end_tests_read_the_same(
    payloads: dict[str, bytes],
) -> None:
    for payload in payloads.values():
        assert_same_readings(payload)


# -- generated JSON and bytes ----------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00"])
strings = st.text(st.one_of(st.characters(), SURROGATES), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=12,
)
DIGITS = "0123456789"
digit_runs = st.one_of(
    st.text(DIGITS, min_size=1, max_size=8),
    st.text(DIGITS, min_size=17, max_size=22),
    st.integers(300, 320).flatmap(lambda n: st.text(DIGITS, min_size=n, max_size=n)),
    st.integers(300, 320).map(lambda n: "9" * n),
)
# Number literals near and beyond every limit, leading zeros (not JSON) included.
number_literals = st.builds(
    lambda sign, whole, fraction, exponent: sign + whole + fraction + exponent,
    st.sampled_from(["", "-", "+"]),
    digit_runs,
    st.one_of(st.just(""), st.text(DIGITS, min_size=0, max_size=30).map(lambda d: "." + d)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, sign, digits: e + sign + digits,
            st.sampled_from("eE"),
            st.sampled_from(["", "-", "+"]),
            st.text(DIGITS, min_size=1, max_size=5),
        ),
    ),
)


PIECES = [
    *'{}[],:" \t\n\r\x0c-+.eE019',
    '"ts":',
    "NaN",
    "Infinity",
    "true",
    "1e400",
    "9" * 19,
    "\\ud800",
    "\\udc00",
    "\ud800",
    "\\u00e9",
    "\u00e9",
    "\ufeff",
]


def dumped(value: object, ensure_ascii: bool, spaced: bool) -> bytes:
    separators = (", ", ": ") if spaced else (",", ":")
    text = json.dumps(value, ensure_ascii=ensure_ascii, separators=separators)
    # A raw lone surrogate becomes invalid UTF-8, as a broken device stack would send it.
    return text.encode("utf-8", errors="surrogatepass")


payloads = st.one_of(
    st.builds(dumped, json_values, st.booleans(), st.booleans()),
    st.builds(
        dumped,
        st.fixed_dictionaries({"ts": json_values, "v": json_values}),
        st.booleans(),
        st.booleans(),
    ),
    number_literals.map(str.encode),
    st.tuples(number_literals, number_literals).map(
        lambda pair: f'{{"ts": {pair[0]}, "v": {pair[1]}}}'.encode()
    ),
    st.lists(number_literals, max_size=4).map(lambda literals: f"[{', '.join(literals)}]".encode()),
    st.binary(max_size=80),
    # Text near JSON's syntax, so that both parsers go deep, not just fail at byte 0.
    st.lists(st.sampled_from(PIECES), max_size=30).map(
        lambda pieces: "".join(pieces).encode("utf-8", errors="surrogatepass")
    ),
    st.integers(0, 1100).map(nested),
    st.integers(0, 1100).map(nested_objects),
)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([b"", BOM]), payloads, st.sampled_from([b"", b" ", b"\n", b" x", b"]"]))
def test_generated_payloads_read_the_same(prefix: bytes, payload: bytes, suffix: bytes) -> None:
    assert_same_readings(prefix + payload + suffix)


# -- the fast path is taken ------------------------------------------------------------------

in_range = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**18) + 1, 10**19 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
TWENTY_DIGITS = bytes(0x30 if chr(byte) in "0123456789-" else 0x20 for byte in range(256))


@settings(max_examples=300, deadline=None)
@given(in_range, st.booleans())
def test_every_ordinary_payload_takes_the_fast_path(value: object, ensure_ascii: bool) -> None:
    """Unless it holds 20 digits in a row (or a minus sign and 19), which only the standard
    library reads right when they are an integer beyond 64 bits."""
    payload = json.dumps(value, ensure_ascii=ensure_ascii).encode()
    assume(b"0" * 20 not in payload.translate(TWENTY_DIGITS))
    assert same(FAST(payload), json.loads(payload))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"temperature": 21.5, "humidity": 40.0, "seq": 123}',
        json.dumps(
            {f"sensor_{i:02d}": [21.5 + i / 8, i, f"ok-{i}"][i % 3] for i in range(50)}
        ).encode(),
        b'{"ts": 1733468789123456789, "v": -922337203685477580}',
        b"[9223372036854775807, 9999999999999999999, -999999999999999999, -0, -0.0]",
        BOM + b'{"t": 1}',
        nested(1024),
    ],
)
def test_readings_take_the_fast_path(payload: bytes) -> None:
    assert takes_the_fast_path(payload)


def test_the_installed_orjson_behaves_as_the_fast_path_relies_on() -> None:
    assert readings_orjson.ORJSON_AS_EXPECTED


def test_an_orjson_that_behaves_otherwise_leaves_every_payload_to_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readings_orjson, "ORJSON_AS_EXPECTED", False)
    assert not takes_the_fast_path(b'{"t": 1}')
    assert_same_readings(b'{"t": 1}')


@pytest.mark.parametrize(
    "payload",
    [
        b"18446744073709551616",  # 2**64: orjson reads a float
        b"-9223372036854775809",  # -2**63 - 1: likewise
        b"[0.00012345678901234567]",  # 20 digits in a row, not an integer: left all the same
        b"1e400",
        b'"\\ud800"',
        BOM + BOM + b"1",
        b"\xff",
        nested(1025),
    ],
)
def test_payloads_left_to_the_standard_library(payload: bytes) -> None:
    assert not takes_the_fast_path(payload)


# -- the decoder's option --------------------------------------------------------------------


def test_json_loads_takes_no_part_in_equality() -> None:
    # The hub decodes once per equal decoder: equal decoders must decode alike, and do.
    assert make_decoder("json", json_loads=FAST) == make_decoder("json")
    assert hash(make_decoder("json", json_loads=FAST)) == hash(make_decoder("json"))
    assert "json_loads" not in repr(make_decoder("json", json_loads=FAST))


def test_a_fast_decoder_that_raises_anything_leaves_the_payload_to_the_standard_library() -> None:
    def broken(payload: bytes) -> object:
        raise RuntimeError("not sure")

    for payload in (b'{"t": 1}', b"NaN", b"\xff"):
        expected = make_decoder("json").decode(TOPIC, payload, RECEIVED)
        assert make_decoder("json", json_loads=broken).decode(TOPIC, payload, RECEIVED) == expected


def test_the_fast_decoders_value_is_the_readings_and_is_still_checked() -> None:
    def fixed(value: object) -> Callable[[bytes], object]:
        return lambda payload: value

    reading = make_decoder("json", json_loads=fixed({"t": 2})).decode(TOPIC, b"{}", RECEIVED)
    assert reading.payload == {"t": 2}
    deep: object = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    payload = nested(MAX_DEPTH + 1)
    reading = make_decoder("json", json_loads=fixed(deep)).decode(TOPIC, payload, RECEIVED)
    assert reading.error is not None and "more than 100 deep" in reading.error
    decoder = make_decoder("json", time_field="ts", json_loads=fixed({"ts": 1_700_000_000}))
    assert decoder.decode(TOPIC, b"{}", RECEIVED).time == 1_700_000_000


def test_other_formats_ignore_json_loads() -> None:
    decoder = make_decoder("text", json_loads=FAST)
    assert decoder.decode(TOPIC, b"[1]", RECEIVED).payload == "[1]"


def test_json_loads_must_be_a_function() -> None:
    with pytest.raises(DecoderConfigError) as info:
        Decoder(PayloadFormat.JSON, json_loads="orjson")  # type: ignore[arg-type]
    assert str(info.value) == "json_loads must be a function of the payload bytes, not 'orjson'"
