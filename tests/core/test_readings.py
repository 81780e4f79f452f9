"""Readings and payload decoders: every format's happy path, every malformed case with the
exact error a user sees, and the two promises (never raises, strict-JSON-safe payload)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_iotcable.readings import (
    Decoder,
    DecoderConfigError,
    PayloadFormat,
    Reading,
    make_decoder,
)

TOPIC = "plant/lyon/pump3/env"
RECEIVED = 1_700_000_100.5
TIME_EXPECTED = (
    "expected unix seconds, unix milliseconds or an ISO-8601 string between 1970 and 9999 UTC"
)
LP_SYNTAX = "measurement[,tag=value...] field=value[,field=value...] [timestamp]"
FIELD_TYPES = 'a float (1.5), integer (3i), unsigned (3u), boolean (true) or string ("on")'


def decode(fmt: str, payload: bytes, **options: object) -> Reading:
    decoder = make_decoder(fmt, **options)  # type: ignore[arg-type]
    return decoder.decode(TOPIC, payload, RECEIVED)


def ok(payload: object, time: float = RECEIVED) -> Reading:
    return Reading(TOPIC, time, payload, RECEIVED)


def failed(raw: str, error: str) -> Reading:
    """A payload that did not decode: its raw text, the time it arrived, the error."""
    return Reading(TOPIC, RECEIVED, raw, RECEIVED, error)


def test_reading_is_frozen_and_error_defaults_to_none() -> None:
    reading = Reading(TOPIC, 1.0, 2.0, 3.0)
    assert reading.error is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.payload = 5.0  # type: ignore[misc]


# -- json ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (
            b'{"t": 21.5, "ok": true, "tags": ["a", null]}',
            {"t": 21.5, "ok": True, "tags": ["a", None]},
        ),
        (b"[1, 2.5, -3e2]", [1, 2.5, -300.0]),
        (b'"caf\xc3\xa9"', "café"),
        (b"  42 \n", 42),
        (b"null", None),
        (b'"\\ud83d\\ude00 \\u00b0C"', "😀 °C"),
        (b'\xef\xbb\xbf{"t": 1}', {"t": 1}),
        (b"123456789012345678901234567890", 123456789012345678901234567890),
    ],
)
def test_json_decodes_any_value(payload: bytes, value: object) -> None:
    assert decode("json", payload) == ok(value)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (
            b'{"t": 21.5',
            "payload is not valid JSON (Expecting ',' delimiter at line 1 column 11); "
            "format 'json' expects one JSON value",
        ),
        (
            b"",
            "payload is not valid JSON (Expecting value at line 1 column 1); "
            "format 'json' expects one JSON value",
        ),
        (
            b"1 2",
            "payload is not valid JSON (Extra data at line 1 column 3); "
            "format 'json' expects one JSON value",
        ),
        (
            b"{'t': 1}",
            "payload is not valid JSON (Expecting property name enclosed in double quotes at "
            "line 1 column 2); format 'json' expects one JSON value",
        ),
        (
            b'{"t": NaN}',
            "payload is not strict JSON (NaN is not a JSON number); format 'json' expects "
            "finite numbers, without NaN or Infinity",
        ),
        (
            b"[Infinity]",
            "payload is not strict JSON (Infinity is not a JSON number); format 'json' expects "
            "finite numbers, without NaN or Infinity",
        ),
        (
            b"-Infinity",
            "payload is not strict JSON (-Infinity is not a JSON number); format 'json' "
            "expects finite numbers, without NaN or Infinity",
        ),
        (
            b'{"t": 1e400}',
            "payload is not strict JSON (number '1e400' is too large for a 64-bit float); "
            "format 'json' expects finite numbers, without NaN or Infinity",
        ),
        (
            b'{"t": "\\ud800"}',
            "payload has a string with a lone surrogate escape (\\ud800-\\udfff), which is not "
            "Unicode text; format 'json' expects valid JSON strings",
        ),
        (
            b'["\\uDFFF"]',
            "payload has a string with a lone surrogate escape (\\ud800-\\udfff), which is not "
            "Unicode text; format 'json' expects valid JSON strings",
        ),
        (
            b"[" * 100_000,
            "payload is not usable JSON (it nests arrays or objects more than 100 deep); "
            "format 'json' expects one JSON value nested at most 100 deep",
        ),
        (
            b"[" * 101 + b"]" * 101,
            "payload is not usable JSON (it nests arrays or objects more than 100 deep); "
            "format 'json' expects one JSON value nested at most 100 deep",
        ),
        (
            b"9" * 5_000,
            "payload is not strict JSON (an integer of 5000 digits is too large for a 64-bit "
            "float); format 'json' expects finite numbers, without NaN or Infinity",
        ),
        (
            b"[-" + b"9" * 309 + b"]",
            "payload is not strict JSON (an integer of 309 digits does not fit a 64-bit "
            "float); format 'json' expects finite numbers, without NaN or Infinity",
        ),
    ],
)
def test_json_errors(payload: bytes, error: str) -> None:
    assert decode("json", payload) == failed(payload.decode(), error)


def test_json_invalid_utf8_keeps_the_payload_as_replaced_text() -> None:
    assert decode("json", b'{"t": "\xff"}') == failed(
        '{"t": "\ufffd"}',
        "payload is not valid UTF-8 (invalid start byte at byte 7); "
        "format 'json' expects UTF-8 text",
    )


@pytest.mark.parametrize(
    ("stamp", "seconds"),
    [
        (b"1700000000", 1_700_000_000.0),
        (b"1700000000.25", 1_700_000_000.25),
        (b"1700000000250", 1_700_000_000.25),  # milliseconds: above 1e11
        (b"0", 0.0),
        (b'"2023-11-14T22:13:20Z"', 1_700_000_000.0),
        (b'"2023-11-14T23:13:20+01:00"', 1_700_000_000.0),
        (b'"2023-11-14T22:13:20"', 1_700_000_000.0),  # naive means UTC
        (b'"2023-11-14 22:13:20.5"', 1_700_000_000.5),
    ],
)
def test_json_time_field_sets_the_reading_time(stamp: bytes, seconds: float) -> None:
    payload = b'{"t": 21.5, "ts": ' + stamp + b"}"
    expected = json.loads(payload)
    assert decode("json", payload, time_field="ts") == ok(expected, time=seconds)


@pytest.mark.parametrize(
    "stamp",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "10000-01-01", "2023-02-30"],
)
def test_json_iso_timestamps_outside_the_range_or_calendar(stamp: str) -> None:
    payload = json.dumps({"ts": stamp}).encode()
    assert decode("json", payload, time_field="ts") == Reading(
        TOPIC,
        RECEIVED,
        {"ts": stamp},
        RECEIVED,
        f"time_field 'ts' holds {stamp!r}, not a timestamp; {TIME_EXPECTED}",
    )


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b'{"t": 21.5}', f"time_field 'ts' is missing from the payload; {TIME_EXPECTED}"),
        (
            b'{"ts": "yesterday"}',
            f"time_field 'ts' holds 'yesterday', not a timestamp; {TIME_EXPECTED}",
        ),
        (b'{"ts": true}', f"time_field 'ts' holds True, not a timestamp; {TIME_EXPECTED}"),
        (b'{"ts": null}', f"time_field 'ts' holds None, not a timestamp; {TIME_EXPECTED}"),
        (b'{"ts": [1]}', f"time_field 'ts' holds [1], not a timestamp; {TIME_EXPECTED}"),
        (b'{"ts": -1}', f"time_field 'ts' holds -1, not a timestamp; {TIME_EXPECTED}"),
        (
            b'{"ts": "1969-12-31T23:59:59Z"}',
            f"time_field 'ts' holds '1969-12-31T23:59:59Z', not a timestamp; {TIME_EXPECTED}",
        ),
        (
            b'{"ts": 1700000000000000000}',  # nanoseconds: still too large as milliseconds
            f"time_field 'ts' holds 1700000000000000000, not a timestamp; {TIME_EXPECTED}",
        ),
        (
            b'{"ts": 1' + b"0" * 300 + b"}",
            f"time_field 'ts' holds 1{'0' * 56}..., not a timestamp; {TIME_EXPECTED}",
        ),
        (b"[1, 2]", "time_field 'ts' cannot be read: the payload is a JSON array, not an object"),
        (b"21.5", "time_field 'ts' cannot be read: the payload is a JSON number, not an object"),
        (b'"x"', "time_field 'ts' cannot be read: the payload is a JSON string, not an object"),
        (b"null", "time_field 'ts' cannot be read: the payload is a JSON null, not an object"),
    ],
)
def test_json_bad_timestamps_are_visible_and_keep_the_payload(payload: bytes, error: str) -> None:
    expected = Reading(TOPIC, RECEIVED, json.loads(payload), RECEIVED, error)
    assert decode("json", payload, time_field="ts") == expected


# -- number, text, bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b"21.5", 21.5),
        (b" -3\r\n", -3.0),
        (b"1e3", 1000.0),
        (b"0", 0.0),
        (b"+.5", 0.5),
        (b"7.", 7.0),
        (b"\t-2.5E-3 ", -0.0025),
    ],
)
def test_number(payload: bytes, value: float) -> None:
    reading = decode("number", payload)
    assert reading == ok(value)
    assert type(reading.payload) is float


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"abc", "payload 'abc' is not a number; format 'number' expects one such as 21.5"),
        (b"", "payload '' is not a number; format 'number' expects one such as 21.5"),
        (
            b'{"t": 1}',
            "payload '{\"t\": 1}' is not a number; format 'number' expects one such as 21.5",
        ),
        (b"nan", "payload 'nan' is not a finite number; format 'number' expects one such as 21.5"),
        (b"inf", "payload 'inf' is not a finite number; format 'number' expects one such as 21.5"),
        (
            b"-Infinity",
            "payload '-Infinity' is not a finite number; format 'number' expects one such as 21.5",
        ),
        (
            b"1e400",
            "payload '1e400' is not a finite number; format 'number' expects one such as 21.5",
        ),
        # Python's float() takes these; a device never sends them.
        (b"1_000", "payload '1_000' is not a number; format 'number' expects one such as 21.5"),
        (
            b"\x0c21.5\x0b",
            "payload '\\x0c21.5\\x0b' is not a number; format 'number' expects one such as 21.5",
        ),
        (
            "١٢".encode(),
            "payload '١٢' is not a number; format 'number' expects one such as 21.5",
        ),
    ],
)
def test_number_errors(payload: bytes, error: str) -> None:
    assert decode("number", payload) == failed(payload.decode(), error)


def test_number_long_garbage_is_shortened_in_the_error() -> None:
    payload = b"x" * 200
    assert decode("number", payload) == failed(
        "x" * 200,
        "payload '" + "x" * 56 + "... is not a number; format 'number' expects one such as 21.5",
    )


def test_number_invalid_utf8() -> None:
    assert decode("number", b"2\xe9") == failed(
        "2\ufffd",
        "payload is not valid UTF-8 (unexpected end of data at byte 1); "
        "format 'number' expects UTF-8 text",
    )


def test_text() -> None:
    assert decode("text", "Stopped: °C ✓\n".encode()) == ok("Stopped: °C ✓\n")
    assert decode("text", b"") == ok("")


def test_text_invalid_utf8_gives_the_replaced_text() -> None:
    assert decode("text", b"ab\x80cd") == failed(
        "ab\ufffdcd",
        "payload is not valid UTF-8 (invalid start byte at byte 2); "
        "format 'text' expects UTF-8 text",
    )


@pytest.mark.parametrize(
    ("payload", "encoded"),
    [(b"", ""), (b"\x00\xff", "AP8="), (b"hello", "aGVsbG8="), (b"\xfb\xff", "+/8=")],
)
def test_bytes_are_standard_base64(payload: bytes, encoded: str) -> None:
    assert decode("bytes", payload) == ok(encoded)


# -- csv -------------------------------------------------------------------------------------

COLUMNS = ["ts", "temp", "state"]
CSV_EXPECTED = "format 'csv' expects one line of 3 fields (ts, temp, state)"


@pytest.mark.parametrize(
    ("payload", "record"),
    [
        (b"1,21.5,on", {"ts": 1, "temp": 21.5, "state": "on"}),
        (b"-7,1e3,", {"ts": -7, "temp": 1000.0, "state": None}),
        (b' 12 ,nan,"a, b"', {"ts": 12, "temp": None, "state": "a, b"}),
        (b'1,-inf,"say ""hi"""', {"ts": 1, "temp": None, "state": 'say "hi"'}),
        (b"1,2,3\n", {"ts": 1, "temp": 2, "state": 3}),
        (b"1,2,3\r\n", {"ts": 1, "temp": 2, "state": 3}),
        (b'1,2,"two\nlines"', {"ts": 1, "temp": 2, "state": "two\nlines"}),
        (b",,", {"ts": None, "temp": None, "state": None}),
        # Only decimal numbers as devices write them: Python's '1_000', non-ASCII digits
        # and hexadecimal stay text; an integer too long for any float is missing.
        (
            b"0x10,1_000,12345678901234567890",
            {"ts": "0x10", "temp": "1_000", "state": 12345678901234567890},
        ),
        ("١٢,1_0.5,1.".encode(), {"ts": "١٢", "temp": "1_0.5", "state": 1.0}),
        (b"9" * 5000 + b",+.5,-0", {"ts": None, "temp": 0.5, "state": 0}),
    ],
)
def test_csv_converts_numbers_and_keeps_text(payload: bytes, record: dict[str, object]) -> None:
    reading = decode("csv", payload, csv_columns=COLUMNS)
    assert reading == ok(record)
    assert isinstance(reading.payload, dict)
    assert [type(v) for v in reading.payload.values()] == [type(v) for v in record.values()]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"1,2", f"payload has 2 fields; {CSV_EXPECTED}"),
        (b"1,2,3,4", f"payload has 4 fields; {CSV_EXPECTED}"),
        (b"", f"payload is empty; {CSV_EXPECTED}"),
        (b"\r\n", f"payload is empty; {CSV_EXPECTED}"),
        (b"1,2,3\n4,5,6", f"payload holds more than one line; {CSV_EXPECTED}"),
        (b'1,2,"on"x', f"payload is not valid CSV (',' expected after '\"'); {CSV_EXPECTED}"),
        (b'1,2,"on', f"payload is not valid CSV (unexpected end of data); {CSV_EXPECTED}"),
    ],
)
def test_csv_errors(payload: bytes, error: str) -> None:
    assert decode("csv", payload, csv_columns=COLUMNS) == failed(payload.decode(), error)


def test_csv_invalid_utf8() -> None:
    assert decode("csv", b"1,2,\xc3", csv_columns=COLUMNS) == failed(
        "1,2,\ufffd",
        "payload is not valid UTF-8 (unexpected end of data at byte 4); "
        "format 'csv' expects UTF-8 text",
    )


def test_csv_time_field() -> None:
    record = {"ts": "2023-11-14T22:13:20Z", "temp": 21.5, "state": "on"}
    assert decode(
        "csv", b"2023-11-14T22:13:20Z,21.5,on", csv_columns=COLUMNS, time_field="ts"
    ) == ok(record, time=1_700_000_000.0)
    assert decode("csv", b"1700000000250,21.5,on", csv_columns=COLUMNS, time_field="ts") == ok(
        {"ts": 1700000000250, "temp": 21.5, "state": "on"}, time=1_700_000_000.25
    )
    assert decode("csv", b",21.5,on", csv_columns=COLUMNS, time_field="ts") == Reading(
        TOPIC,
        RECEIVED,
        {"ts": None, "temp": 21.5, "state": "on"},
        RECEIVED,
        f"time_field 'ts' holds None, not a timestamp; {TIME_EXPECTED}",
    )


# -- influx line protocol --------------------------------------------------------------------


def test_influx_full_line() -> None:
    payload = (
        b'env,site=lyon,device=pump\\ 3 temp=21.5,count=3i,total=4u,ok=t,note="hi \\"you\\"" '
        b"1700000000250000000"
    )
    record = {
        "measurement": "env",
        "site": "lyon",
        "device": "pump 3",
        "temp": 21.5,
        "count": 3,
        "total": 4,
        "ok": True,
        "note": 'hi "you"',
    }
    assert decode("influx", payload) == ok(record, time=1_700_000_000.25)


@pytest.mark.parametrize(
    ("payload", "record"),
    [
        (b"cpu v=1", {"measurement": "cpu", "v": 1.0}),
        (b"cpu v=1\n", {"measurement": "cpu", "v": 1.0}),
        (b"# from device 7\n\ncpu v=-1.5e3\r\n", {"measurement": "cpu", "v": -1500.0}),
        (b"cpu v=.5,w=-2i,x=0u", {"measurement": "cpu", "v": 0.5, "w": -2, "x": 0}),
        (
            b"cpu\\,1\\ x,t\\=k=a\\,b f\\ k=1",
            {"measurement": "cpu,1 x", "t=k": "a,b", "f k": 1.0},
        ),
        (b"m=1 v=1", {"measurement": "m=1", "v": 1.0}),
        (b"c\\d v=1", {"measurement": "c\\d", "v": 1.0}),
        (b"c\\\\ v=1", {"measurement": "c\\", "v": 1.0}),
        (b'c s="a\\\\b\\n",e=""', {"measurement": "c", "s": "a\\b\\n", "e": ""}),
        (b'c s="x,y=z w"', {"measurement": "c", "s": "x,y=z w"}),
        (
            b"c a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE",
            {"measurement": "c", **dict.fromkeys("abcde", True), **dict.fromkeys("fghij", False)},
        ),
        (
            b"c i=9223372036854775807i,j=-9223372036854775808i,u=18446744073709551615u",
            {"measurement": "c", "i": 2**63 - 1, "j": -(2**63), "u": 2**64 - 1},
        ),
    ],
)
def test_influx_values_and_escapes(payload: bytes, record: dict[str, object]) -> None:
    assert decode("influx", payload) == ok(record)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", "payload holds no line of line protocol; format 'influx' expects one point"),
        (
            b"# comment\n",
            "payload holds no line of line protocol; format 'influx' expects one point",
        ),
        (
            b"cpu v=1\ncpu v=2",
            "payload holds 2 lines of line protocol; format 'influx' expects one point",
        ),
        (b"cpu", f"invalid line protocol: line has no fields; expected {LP_SYNTAX}"),
        (
            b",t=a v=1",
            "invalid line protocol: line does not start with a measurement name; "
            f"expected {LP_SYNTAX}",
        ),
        (
            b"cpu,host v=1",
            f"invalid line protocol: tag at column 5 is not key=value; expected {LP_SYNTAX}",
        ),
        (
            b"cpu,host= v=1",
            f"invalid line protocol: tag at column 5 is not key=value; expected {LP_SYNTAX}",
        ),
        (
            b"cpu,a=b=c v=1",
            f"invalid line protocol: unexpected '=' at column 8 after the measurement and tags; "
            f"expected {LP_SYNTAX}",
        ),
        (
            b"cpu  v=1",
            f"invalid line protocol: field at column 5 is not key=value; expected {LP_SYNTAX}",
        ),
        (
            b"cpu v=1,",
            f"invalid line protocol: field at column 9 is not key=value; expected {LP_SYNTAX}",
        ),
        (
            b"cpu v",
            f"invalid line protocol: field at column 5 is not key=value; expected {LP_SYNTAX}",
        ),
        (
            b'cpu v="open',
            "invalid line protocol: string value of the field at column 5 has no closing quote; "
            f"expected {FIELD_TYPES}",
        ),
        (
            b'cpu v="ends in backslash\\"',
            "invalid line protocol: string value of the field at column 5 has no closing quote; "
            f"expected {FIELD_TYPES}",
        ),
        (
            b"cpu v=abc",
            f"invalid line protocol: field 'v' has the value 'abc'; expected {FIELD_TYPES}",
        ),
        (
            b"cpu v=1.5i",
            f"invalid line protocol: field 'v' has the value '1.5i'; expected {FIELD_TYPES}",
        ),
        (
            b"cpu v=-1u",
            f"invalid line protocol: field 'v' has the value '-1u'; expected {FIELD_TYPES}",
        ),
        (
            b"cpu v=nan",
            f"invalid line protocol: field 'v' has the value 'nan'; expected {FIELD_TYPES}",
        ),
        (
            b"cpu v=yes",
            f"invalid line protocol: field 'v' has the value 'yes'; expected {FIELD_TYPES}",
        ),
        (
            b"cpu v=1e400",
            "invalid line protocol: field 'v' has 1e400, which is too large for a 64-bit float",
        ),
        (
            b"cpu v=9223372036854775808i",
            "invalid line protocol: field 'v' has 9223372036854775808i, outside the 64-bit "
            "integer range",
        ),
        (
            b"cpu v=18446744073709551616u",
            "invalid line protocol: field 'v' has 18446744073709551616u, outside the 64-bit "
            "unsigned range",
        ),
        (
            b"cpu v=" + b"9" * 5_000 + b"i",
            "invalid line protocol: field 'v' has " + "9" * 57 + "..., outside the 64-bit "
            "integer range",
        ),
        (
            b"cpu,v=a v=1",
            "invalid line protocol: key 'v' appears twice; tags and fields share the payload's "
            "keys with 'measurement', so each must be unique",
        ),
        (
            b"cpu v=1,v=2",
            "invalid line protocol: key 'v' appears twice; tags and fields share the payload's "
            "keys with 'measurement', so each must be unique",
        ),
        (
            b"cpu,measurement=x v=1",
            "invalid line protocol: key 'measurement' appears twice; tags and fields share the "
            "payload's keys with 'measurement', so each must be unique",
        ),
        (
            b"cpu v=1 12:00",
            "invalid line protocol: ' 12:00' after the fields is not a timestamp (an integer of "
            f"nanoseconds); expected {LP_SYNTAX}",
        ),
        (
            b"cpu v=1  1700000000000000000",
            "invalid line protocol: '  1700000000000000000' after the fields is not a timestamp "
            f"(an integer of nanoseconds); expected {LP_SYNTAX}",
        ),
        (
            b"cpu\\",
            "invalid line protocol: unexpected '\\\\' at column 4 after the measurement and "
            f"tags; expected {LP_SYNTAX}",
        ),
    ],
)
def test_influx_errors(payload: bytes, error: str) -> None:
    assert decode("influx", payload) == failed(payload.decode(), error)


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("-5", "-5"),
        ("253402300800000000000", "253402300800000000000"),
        ("9" * 5_000, "9" * 57 + "..."),
    ],
)
def test_influx_timestamp_out_of_range_keeps_the_point(stamp: str, shown: str) -> None:
    assert decode("influx", f"cpu v=1 {stamp}".encode()) == Reading(
        TOPIC,
        RECEIVED,
        {"measurement": "cpu", "v": 1.0},
        RECEIVED,
        f"timestamp {shown} ns is outside 1970-01-01..9999-12-31 UTC; expected unix nanoseconds",
    )


def test_influx_timestamp_at_the_range_ends() -> None:
    assert decode("influx", b"cpu v=1 0") == ok({"measurement": "cpu", "v": 1.0}, time=0.0)
    latest = 253402300799999999999
    assert decode("influx", f"cpu v=1 {latest}".encode()).time == latest / 1_000_000_000


def test_influx_invalid_utf8() -> None:
    assert decode("influx", b"cpu v=\xff") == failed(
        "cpu v=\ufffd",
        "payload is not valid UTF-8 (invalid start byte at byte 6); "
        "format 'influx' expects UTF-8 text",
    )


# -- configuration ---------------------------------------------------------------------------


def test_make_decoder_builds_equal_decoders() -> None:
    decoder = make_decoder("csv", csv_columns=["a", "b"], time_field="a")
    assert decoder == Decoder(PayloadFormat.CSV, csv_columns=("a", "b"), time_field="a")
    assert decoder.csv_columns == ("a", "b")
    assert make_decoder("json").format is PayloadFormat.JSON
    assert hash(make_decoder("json")) == hash(make_decoder("json"))
    assert [f.value for f in PayloadFormat] == ["json", "number", "text", "csv", "influx", "bytes"]


@pytest.mark.parametrize(
    ("fmt", "options", "message"),
    [
        (
            "xml",
            {},
            "unknown payload format 'xml'; valid formats: json, number, text, csv, influx, bytes",
        ),
        (
            "JSON",
            {},
            "unknown payload format 'JSON'; valid formats: json, number, text, csv, influx, bytes",
        ),
        ("csv", {}, "format 'csv' needs csv_columns, the names of the comma-separated fields"),
        ("csv", {"csv_columns": "a,b"}, "csv_columns must be a list of column names, not 'a,b'"),
        ("csv", {"csv_columns": 3}, "csv_columns must be a list of column names, not 3"),
        (
            "csv",
            {"csv_columns": []},
            "csv_columns is empty; format 'csv' needs at least one column",
        ),
        (
            "csv",
            {"csv_columns": ["a", ""]},
            "csv_columns holds ''; each column name must be a non-empty string",
        ),
        (
            "csv",
            {"csv_columns": ["a", 1]},
            "csv_columns holds 1; each column name must be a non-empty string",
        ),
        (
            "csv",
            {"csv_columns": ["a", "a"]},
            "csv_columns names 'a' twice; each column name must be unique",
        ),
        (
            "csv",
            {"csv_columns": ["a", "b"], "time_field": "ts"},
            "time_field 'ts' is not one of csv_columns (a, b)",
        ),
        ("json", {"csv_columns": ["a"]}, "csv_columns only applies to format 'csv', not 'json'"),
        ("json", {"time_field": ""}, "time_field must be a non-empty field name, not ''"),
        ("json", {"time_field": 5}, "time_field must be a non-empty field name, not 5"),
        (
            "number",
            {"time_field": "ts"},
            "time_field only applies to formats 'json' and 'csv'; format 'number' payloads have "
            "no named fields",
        ),
        (
            "bytes",
            {"time_field": "ts"},
            "time_field only applies to formats 'json' and 'csv'; format 'bytes' payloads have "
            "no named fields",
        ),
        (
            "influx",
            {"time_field": "ts"},
            "time_field does not apply to format 'influx': each line carries its own nanosecond "
            "timestamp",
        ),
    ],
)
def test_bad_decoder_options_name_the_option(
    fmt: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(DecoderConfigError) as info:
        make_decoder(fmt, **options)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_decoder_built_directly_is_checked_too() -> None:
    with pytest.raises(DecoderConfigError) as info:
        Decoder(PayloadFormat.CSV)
    assert str(info.value) == (
        "format 'csv' needs csv_columns, the names of the comma-separated fields"
    )
    with pytest.raises(DecoderConfigError) as info:
        Decoder("json")  # type: ignore[arg-type]
    assert str(info.value) == (
        "format must be a PayloadFormat, not 'json'; use make_decoder() to build a decoder "
        "from a format name"
    )


# -- the two promises ------------------------------------------------------------------------

DECODERS = [
    make_decoder("json"),
    make_decoder("json", time_field="ts"),
    make_decoder("number"),
    make_decoder("text"),
    make_decoder("bytes"),
    make_decoder("csv", csv_columns=["ts", "v"]),
    make_decoder("csv", csv_columns=["ts", "v"], time_field="ts"),
    make_decoder("influx"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Mostly well-formed names (escapes included), sometimes raw hostile characters.
names = st.one_of(
    st.sampled_from(["a", "b", "cpu", "k\\ 1", "x\\,y", "e\\=f", "q\\\\", "s\\d"]),
    st.text(st.sampled_from('ab,= \\"#'), min_size=1, max_size=4),
)
field_values = st.sampled_from(
    [
        "1",
        "-1.5e3",
        ".5",
        "2i",
        "-2i",
        "3u",
        "t",
        "FALSE",
        '"x y"',
        '"a\\"b"',
        '"\\\\"',
        '"',
        "1e400",
        "9" * 30 + "i",
        "9" * 30 + "u",
        "nan",
        "",
        "1.5.5",
        "+1",
    ]
)
influx_lines = st.builds(
    lambda measurement, tags, fields, stamp: (
        measurement
        + "".join(f",{key}={value}" for key, value in tags)
        + " "
        + ",".join(f"{key}={value}" for key, value in fields)
        + stamp
    ),
    names,
    st.lists(st.tuples(names, names), max_size=2),
    st.lists(st.tuples(names, field_values), min_size=1, max_size=3),
    st.sampled_from(["", " 0", " 1700000000000000000", " -1", " x", " " + "9" * 5_000, "  1"]),
)
payloads = st.one_of(
    influx_lines.map(str.encode),
    st.binary(max_size=200),
    # Text near each format's syntax, so that the parsers go deep, not just fail at byte 0.
    st.text(st.sampled_from('cpu,=" \\\n\r#tfi0189.e-+u{}[]:NaIy\ud800'), max_size=60).map(
        lambda text: text.encode("utf-8", errors="surrogatepass")
    ),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({"ts": json_values, "v": json_values}).map(
        lambda value: json.dumps(value).encode()
    ),
)


@settings(max_examples=400, deadline=None)
@given(payloads)
def test_decode_never_raises_and_payload_is_strict_json(payload: bytes) -> None:
    for decoder in DECODERS:
        reading = decoder.decode(TOPIC, payload, RECEIVED)
        assert reading.topic == TOPIC
        assert reading.received_at == RECEIVED
        assert math.isfinite(reading.time)
        # Strict JSON, and encodable as UTF-8 (no lone surrogates) for any client.
        json.dumps(reading.payload, allow_nan=False, ensure_ascii=False).encode("utf-8")
        if reading.error is not None:
            assert reading.error
            assert "\n" not in reading.error
