"""The client's frame codec answers exactly as the protocol's standard codec does.

The standard codec (protocol/codec.py) is the contract every client shares, the
TypeScript mirror included; the client decodes frames with orjson for speed, so it must
accept the same texts with the same values (ints stay ints, exact) and refuse the same
texts with the same words.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_iotcable.client.codec import FRAME_CODEC
from jupyter_iotcable.protocol.codec import JSON_CODEC, explain_decode_error

EDGES = [
    "1e400",
    "-1e400",
    "1.8e308",
    "1.7976931348623157e308",
    "4.9e-325",
    "-0",
    "-0.0",
    "1.0",
    "1E5",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "-9999999999999999999",
    "1" + "0" * 308,
    "1" + "0" * 309,
    "[0.12345678901234567890123]",
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\udc00\\ud800"',
    '"\\u0000"',
    "NaN",
    "Infinity",
    "-Infinity",
    '{"a":1,"a":2}',
    "[1,2",
    "[1,]",
    "{",
    "",
    " 1 ",
    "\ufeff1",
    '"\x01"',
    "[" * 200 + "]" * 200,
    '{"batch":[[1,1700000000.25,"plant/a/b/env",{"seq":1,"t":21.5}]]}',
]


def answer(loads: Callable[[str | bytes], object], text: str | bytes) -> tuple[object, ...]:
    """The value (with every type, all the way down: ``1 == 1.0``), or the refusal."""
    try:
        return ("value", _typed(loads(text)))
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc), explain_decode_error(exc))


def same_answer(text: str | bytes) -> None:
    assert answer(FRAME_CODEC.loads, text) == answer(JSON_CODEC.loads, text)


def _typed(value: object) -> object:
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize("text", EDGES)
def test_edges(text: str) -> None:
    same_answer(text)
    same_answer(text.encode("utf-8", "surrogatepass"))


def test_invalid_utf8_and_lone_surrogates_are_refused_alike() -> None:
    for data in (b"\xff", b'"\xed\xa0\x80"', b'["\xc3"]'):
        same_answer(data)
    same_answer('"\ud800"')  # a str that holds a lone surrogate


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)

MUTATIONS = [*'[]{}",:0123456789eE.-+\\u', "1e400", "NaN", "\\ud800", "\\u12", " "]


@settings(max_examples=400, deadline=None)
@given(value=json_values, seed=st.integers(0, 2**32))
def test_values_and_their_mutations(value: object, seed: int) -> None:
    text = json.dumps(value)
    same_answer(text)
    rng = random.Random(seed)
    for _ in range(3):
        pos = rng.randint(0, len(text))
        choice = rng.random()
        if choice < 0.4 and text:
            text = text[:pos] + text[pos + 1 :]
        else:
            text = text[:pos] + rng.choice(MUTATIONS) + text[pos:]
        same_answer(text)
