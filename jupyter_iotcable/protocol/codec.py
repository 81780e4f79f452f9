"""The JSON codec the connection machines encode and decode with.

The core must stay standard-library only, so it ships a stdlib codec; the server layer
injects a faster one (orjson) through the same two-method interface.
"""

from __future__ import annotations

import json
import math
import re
from typing import Protocol

__all__ = ["JSON_CODEC", "Codec", "JsonCodec", "NumberOutOfRange", "explain_decode_error"]


class Codec(Protocol):
    """Compact JSON text in and out.

    ``dumps`` raises ``TypeError`` or ``ValueError`` for values JSON cannot carry
    (NaN included); ``loads`` raises ``ValueError`` (``json.JSONDecodeError`` and
    ``UnicodeError`` are subclasses) for text that is not strict JSON in UTF-8, lone
    surrogates included (``"\\ud800"``: text holding one cannot be written back as UTF-8,
    and orjson refuses them too, so every codec must).
    ``loads`` also refuses a number a 64-bit float cannot hold (``1e400``, a 400-digit
    integer), as orjson does: the machines and every client (JavaScript's ``Number``
    included) must be able to use each number as a float.
    Both may raise ``RecursionError`` on absurdly deep nesting. The machines catch exactly
    these.
    """

    def dumps(self, obj: object) -> str: ...

    def loads(self, text: str | bytes) -> object: ...


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


class NumberOutOfRange(ValueError):
    """A JSON number that a 64-bit float cannot hold (orjson refuses it too)."""

    def __init__(self, token: str) -> None:
        super().__init__(f"the number {_shorten(token)} does not fit a 64-bit float")


def _shorten(token: str) -> str:
    return token if len(token) <= 20 else token[:17] + "..."


# An integer literal this short is below 1e308 in magnitude, so it fits a float; only
# longer ones pay for the conversion check.
_SURELY_FLOAT_SIZED = 308


def _parse_int(token: str) -> int:
    if len(token) <= _SURELY_FLOAT_SIZED:
        return int(token)
    if len(token) > _SURELY_FLOAT_SIZED + 2:  # a sign and 310 digits: 1e309 or more
        raise NumberOutOfRange(token)
    value = int(token)
    try:
        float(value)
    except OverflowError:
        raise NumberOutOfRange(token) from None
    return value


def _parse_float(token: str) -> float:
    value = float(token)
    if math.isinf(value):  # the literal overflowed (NaN cannot come from a literal)
        raise NumberOutOfRange(token)
    return value


# A \uD800-\uDFFF escape; only text containing one needs the slower surrogate check.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


# One decoder for the module: json.loads(..., **hooks) would build a new one per call.
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
)


class JsonCodec:
    """Standard-library codec: compact separators, strict (no NaN/Infinity, no number
    beyond a 64-bit float), UTF-8.

    ``ensure_ascii`` is off so that frames look like the ones orjson and the browser's
    ``JSON.stringify`` produce: the same text whichever peer wrote it.
    """

    def dumps(self, obj: object) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def loads(self, text: str | bytes) -> object:
        # json.loads would guess UTF-16/32 for bytes; the websocket protocol says UTF-8.
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        else:
            text.encode("utf-8")  # UnicodeEncodeError for a lone surrogate character
        value = _DECODER.decode(text)
        if _SURROGATE_ESCAPE.search(text):
            # The escape may pair up into a valid character; re-encoding tells.
            self.dumps(value).encode("utf-8")
        return value


JSON_CODEC: Codec = JsonCodec()


def explain_decode_error(exc: ValueError | RecursionError) -> str:
    """Say in a few words why ``Codec.loads`` refused a text (for error messages)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8: {exc.reason} at byte {exc.start}"
    if isinstance(exc, UnicodeError):
        return "not valid UTF-8: it holds a lone surrogate"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, NumberOutOfRange):
        return f"not usable JSON: {exc}"
    return f"not JSON: {exc}"
