"""orjson's fast path for the ``json`` payload format (``readings.py`` stays stdlib-only).

``loads`` is for the server's channels: ``make_decoder(..., json_loads=loads)``. It returns
exactly the value that the standard library's path of ``readings._decode_json`` returns, or
raises, and the payload then takes that path, which decodes it or words its error as it
always did. The differences, measured on orjson 3.13 (tests/core/test_readings_orjson.py
compares both paths on generated and hostile payloads):

- orjson refuses what the standard library's path refuses: invalid UTF-8, NaN and
  Infinity, a number beyond a 64-bit float (``1e400``: orjson refuses it, it does not
  return inf), lone surrogate escapes (``"\\ud800"``), invalid JSON, trailing data;
- it also refuses a few payloads that path accepts: a byte order mark (``loads`` retries
  without it, as that path ignores one), nesting deeper than 1024 (too deep for a reading
  anyway: either path then finds it deeper than MAX_DEPTH, with the same words);
- it accepts one kind of payload with a different value: an integer beyond 64 bits
  (below -2**63 or above 2**64 - 1) becomes a float, where the standard library keeps an
  int. Such a literal has 20 digits, or a minus sign and 19; a payload holding such a
  run of digits (a C-speed look at its bytes) is left to the standard library.

Floats are correctly rounded by both (the differential test includes midpoints between
adjacent doubles), ``-0.0`` and ``-0`` (an int) come out alike, and duplicate keys keep
the first one's place and the last one's value in both. orjson 3.10.0, the oldest the
package allows, behaves the same. What this relies on is checked once on import against
the orjson installed: should a later one differ, every payload takes the standard
library's path (slower, never different), and the tests fail.
"""

from __future__ import annotations

import orjson

__all__ = ["ORJSON_AS_EXPECTED", "loads"]

_BOM = b"\xef\xbb\xbf"
# Digits and minus signs as "0", everything else as " ": an integer literal beyond 64 bits
# becomes a run of 20 zeros (20 digits, or a minus sign and 19).
_DIGITS_AND_MINUS_AS_ZEROS = bytes(
    0x30 if 0x30 <= byte <= 0x39 or byte == 0x2D else 0x20 for byte in range(256)
)
_RUN = 20
_LONG_RUN = b"0" * _RUN


class _MayHoldAWideInteger(ValueError):
    """The payload may hold an integer that orjson would turn into a float."""


class _OrjsonNotAsExpected(ValueError):
    """The orjson installed does not behave as this module relies on."""


_REFUSED = (
    b"NaN",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"1" + b"0" * 309 + b".0",
    b'"\\ud800"',
    b'"\\udc00"',
    b'"\\ud800\\u0041"',
    b'"\xed\xa0\x80"',
    b"\xff",
    b"[1,]",
    b"1 2",
)
_READ = (
    b'{"a": 1, "b": [-0.0, -0, 1e-400, 2.4703282292062328e-324, 1E2, 18446744073709551615], "a": 2}'
)
_READ_AS = "{'a': 2, 'b': [-0.0, 0, 0.0, 5e-324, 100.0, 18446744073709551615]}"


def _orjson_as_expected() -> bool:
    for payload in _REFUSED:
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        return False
    return repr(orjson.loads(_READ)) == _READ_AS


ORJSON_AS_EXPECTED = _orjson_as_expected()
"""Whether the orjson installed refuses and reads as this module relies on (3.10.0 and
3.13.0 do; a test asserts it of the one installed)."""


def loads(payload: bytes) -> object:
    """The payload's JSON value, as the standard library's path decodes it, or an exception.

    Costs a look at the bytes (about 0.15 us for a small reading) besides orjson's decode.
    """
    if not ORJSON_AS_EXPECTED:
        raise _OrjsonNotAsExpected
    # find(), not ``in``: bytes.__contains__ first tries its argument as an int and pays
    # for the TypeError (twice find()'s time on a small reading).
    if len(payload) >= _RUN and payload.translate(_DIGITS_AND_MINUS_AS_ZEROS).find(_LONG_RUN) >= 0:
        raise _MayHoldAWideInteger
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        if payload.startswith(_BOM):
            # RFC 8259 lets parsers ignore it and readings.py does; orjson refuses it.
            return orjson.loads(payload[len(_BOM) :])
        raise
