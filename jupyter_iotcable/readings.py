"""One reading (topic, time, payload) and the decoders that turn MQTT payloads into readings.

A channel names its payload format (``json``, ``number``, ``text``, ``csv``, ``influx`` or
``bytes``); ``make_decoder`` checks the options once, and ``Decoder.decode`` then runs once
per MQTT message on the server's hot path. Two promises hold for every input:

- ``decode`` never raises, whatever the bytes: a payload that does not fit its format gives a
  ``Reading`` whose ``error`` says what failed and what was expected, and whose ``payload`` is
  the raw bytes as text (UTF-8, undecodable bytes replaced), so nothing is silently dropped;
- ``Reading.payload`` is always strict-JSON-safe (``json.dumps(payload, allow_nan=False)``
  succeeds and the result encodes as UTF-8): no NaN or infinity, no lone surrogates.

Timestamps. ``json`` and ``csv`` may name a ``time_field``; ``influx`` lines may end with a
nanosecond timestamp. A timestamp is unix seconds, unix milliseconds (any number above 1e11)
or an ISO-8601 string (naive means UTC), and must fall between 1970-01-01 and 9999-12-31 UTC.
When it is missing or unusable the reading keeps its decoded payload, takes ``received_at``
as its time, and says why in ``error``: a bad clock on a device should be visible, not hidden
behind a plausible time nor turned into a lost reading.

Standard library only; no clock (``received_at`` is an argument). A faster JSON decoder
can be injected (``make_decoder(..., json_loads=...)``; orjson's is in
``readings_orjson.py``): it decodes the payloads it is sure of, to exactly the value the
standard library's path gives, and leaves every other payload to that path, so that every
error reads as it always did.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from .protocol.limits import MAX_DEPTH, depth_problem, number_problem

__all__ = [
    "Decoder",
    "DecoderConfigError",
    "JsonLoads",
    "PayloadFormat",
    "Reading",
    "make_decoder",
]

JsonLoads = Callable[[bytes], object]
"""A JSON decoder of payload bytes (``Decoder.json_loads``)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One MQTT message, decoded.

    ``time`` is unix seconds UTC: the payload's own timestamp when the format carries one and
    it is valid, else ``received_at``. ``error`` is None, or one line saying what failed and
    what was expected; with an error the payload is either the raw text (the payload did not
    decode) or the decoded value (only its timestamp was unusable).
    """

    topic: str
    time: float
    payload: object
    received_at: float
    error: str | None = None


class PayloadFormat(StrEnum):
    """How a channel's MQTT payloads are decoded."""

    JSON = "json"
    NUMBER = "number"
    TEXT = "text"
    CSV = "csv"
    INFLUX = "influx"
    BYTES = "bytes"


class DecoderConfigError(ValueError):
    """Decoder options that cannot work; the message names the option."""


_VALID_FORMATS = ", ".join(member.value for member in PayloadFormat)
_SHOW_CHARS = 60


def _shorten(text: str) -> str:
    """Text cut for an error message, so that a message stays a readable line."""
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def _show(value: object) -> str:
    """A value quoted (repr) for an error message: one line, shortened."""
    return _shorten(repr(value))


def _raw_text(payload: bytes) -> str:
    return payload.decode("utf-8", errors="replace")


def _utf8_error(exc: UnicodeDecodeError, fmt: PayloadFormat) -> str:
    return (
        f"payload is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
        f"format {fmt.value!r} expects UTF-8 text"
    )


def _failed(topic: str, payload: bytes, received_at: float, error: str) -> Reading:
    """The reading of a payload that did not decode: its raw text, the time it arrived."""
    return Reading(topic, received_at, _raw_text(payload), received_at, error)


# -- timestamps ------------------------------------------------------------------------------

_MS_THRESHOLD = 1e11  # 1e11 seconds is the year 5138; 1e11 milliseconds is 1973.
_MAX_SECONDS = 253_402_300_800.0  # 10000-01-01T00:00:00Z
_TIME_EXPECTED = (
    "expected unix seconds, unix milliseconds or an ISO-8601 string between 1970 and 9999 UTC"
)


def _seconds(value: object) -> float | None:
    """Unix seconds from a timestamp value, or None if it is not a usable timestamp."""
    seconds: float
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = value / 1000 if value > _MS_THRESHOLD else float(value)
        except OverflowError:  # an integer too large for a float
            return None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    else:
        return None
    # Written so that NaN fails too.
    return seconds if 0.0 <= seconds < _MAX_SECONDS else None


def _with_time_field(
    topic: str, record: dict[str, object], time_field: str, received_at: float
) -> Reading:
    """The reading of a decoded record whose time is in ``record[time_field]``."""
    if time_field not in record:
        error = f"time_field {time_field!r} is missing from the payload; {_TIME_EXPECTED}"
        return Reading(topic, received_at, record, received_at, error)
    stamp = record[time_field]
    seconds = _seconds(stamp)
    if seconds is None:
        error = f"time_field {time_field!r} holds {_show(stamp)}, not a timestamp; {_TIME_EXPECTED}"
        return Reading(topic, received_at, record, received_at, error)
    return Reading(topic, seconds, record, received_at)


# -- json ------------------------------------------------------------------------------------


class _NonFiniteNumber(ValueError):
    """Raised from inside the JSON scanner for NaN, Infinity and overflowing numbers."""


def _reject_constant(token: str) -> object:
    raise _NonFiniteNumber(f"{token} is not a JSON number")


def _finite_float(token: str) -> float:
    value = float(token)
    if math.isfinite(value):
        return value
    raise _NonFiniteNumber(f"number {_show(token)} is too large for a 64-bit float")


# An integer literal this short is below 1e308 in magnitude: it fits a float.
_SURELY_FLOAT_SIZED = 308


def _float_sized_int(token: str) -> int:
    """An integer literal that every client can read as a 64-bit float (protocol/limits.py)."""
    if len(token) <= _SURELY_FLOAT_SIZED:
        return int(token)
    digits = len(token.lstrip("-"))
    if digits > _SURELY_FLOAT_SIZED + 1:  # 310 digits: 1e309 or more
        raise _NonFiniteNumber(f"an integer of {digits} digits is too large for a 64-bit float")
    value = int(token)
    problem = number_problem(value)
    if problem is not None:
        raise _NonFiniteNumber(f"{problem}")
    return value


# One decoder for the module: json.loads(..., **options) would build a new one per call.
# NaN/Infinity and numbers beyond a 64-bit float are refused because the payload must stay
# strict JSON that every client decodes (protocol/limits.py).
_JSON = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# Integers are checked only in a payload holding a run of 309 digits or more (found at C
# speed: every digit mapped to "0", everything else to " "): a hook on every integer would
# cost each reading about a microsecond.
_JSON_LONG_INTEGERS = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_float_sized_int
)
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * (_SURELY_FLOAT_SIZED + 1)
# Only a \ud800-\udfff escape can put a lone surrogate into a decoded string (the UTF-8
# decoder refuses encoded ones); a quick look for it spares the full check on most payloads.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_KINDS: dict[type, str] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


_TOO_DEEP = (
    f"payload is not usable JSON (it nests arrays or objects more than {MAX_DEPTH} deep); "
    f"format 'json' expects one JSON value nested at most {MAX_DEPTH} deep"
)


def _has_lone_surrogate(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _decode_json(decoder: Decoder, topic: str, payload: bytes, received_at: float) -> Reading:
    loads = decoder.json_loads
    if loads is not None:
        try:
            value = loads(payload)
        except Exception:
            pass  # refused or not sure: the standard library's path below decides, in its words
        else:
            return _json_reading(decoder, topic, payload, received_at, value)
    fmt = PayloadFormat.JSON
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _failed(topic, payload, received_at, _utf8_error(exc, fmt))
    if text.startswith("\ufeff"):
        # RFC 8259 lets parsers ignore a byte order mark; some device stacks still send one.
        text = text[1:]
    try:
        long_run = len(payload) > _SURELY_FLOAT_SIZED and (
            _LONG_RUN in payload.translate(_DIGITS_AS_ZEROS)
        )
        value = (_JSON_LONG_INTEGERS if long_run else _JSON).decode(text)
        if "\\u" in text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
            error = (
                "payload has a string with a lone surrogate escape (\\ud800-\\udfff), which is "
                "not Unicode text; format 'json' expects valid JSON strings"
            )
            return _failed(topic, payload, received_at, error)
    except json.JSONDecodeError as exc:
        error = (
            f"payload is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "format 'json' expects one JSON value"
        )
        return _failed(topic, payload, received_at, error)
    except _NonFiniteNumber as exc:
        error = (
            f"payload is not strict JSON ({exc}); format 'json' expects finite numbers, "
            "without NaN or Infinity"
        )
        return _failed(topic, payload, received_at, error)
    except RecursionError:
        # Deeper than the interpreter's stack allows, so far deeper than MAX_DEPTH: the
        # same words as a payload that decoded and was then found too deep.
        return _failed(topic, payload, received_at, _TOO_DEEP)
    except ValueError as exc:
        # An integer literal longer than Python converts; the message's first clause says so,
        # the rest is advice for Python programmers, not for whoever reads this error.
        reason = str(exc).partition(":")[0]
        error = f"payload is not usable JSON ({reason}); format 'json' expects one JSON value"
        return _failed(topic, payload, received_at, error)
    return _json_reading(decoder, topic, payload, received_at, value)


def _json_reading(
    decoder: Decoder, topic: str, payload: bytes, received_at: float, value: object
) -> Reading:
    """The reading of a payload that decoded to ``value``: its depth and time still checked."""
    if depth_problem(value, payload) is not None:
        return _failed(topic, payload, received_at, _TOO_DEEP)
    time_field = decoder.time_field
    if time_field is None:
        return Reading(topic, received_at, value, received_at)
    if not isinstance(value, dict):
        kind = _JSON_KINDS[type(value)]
        error = (
            f"time_field {time_field!r} cannot be read: the payload is a JSON {kind}, not an object"
        )
        return Reading(topic, received_at, value, received_at, error)
    return _with_time_field(topic, value, time_field, received_at)


# -- number, text, bytes ---------------------------------------------------------------------

# A decimal number as devices write it (and as line protocol and JSON do, give or take a
# sign or a dot). float() alone would also take Python's '1_000', non-ASCII digits and
# form feeds around the number, which no device sends: such a payload is a mistake.
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_DECIMAL_INTEGER = re.compile(r"[-+]?[0-9]+")
_NOT_FINITE = re.compile(r"[-+]?(?:nan|inf|infinity)", re.IGNORECASE)
_SPACE = " \t\r\n"


def _decode_number(decoder: Decoder, topic: str, payload: bytes, received_at: float) -> Reading:
    fmt = PayloadFormat.NUMBER
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _failed(topic, payload, received_at, _utf8_error(exc, fmt))
    token = text.strip(_SPACE)
    if _FLOAT.fullmatch(token):
        value = float(token)
        if math.isfinite(value):
            return Reading(topic, received_at, value, received_at)
    elif not _NOT_FINITE.fullmatch(token):
        error = f"payload {_show(text)} is not a number; format 'number' expects one such as 21.5"
        return _failed(topic, payload, received_at, error)
    error = (
        f"payload {_show(text)} is not a finite number; format 'number' expects one such as 21.5"
    )
    return _failed(topic, payload, received_at, error)


def _decode_text(decoder: Decoder, topic: str, payload: bytes, received_at: float) -> Reading:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _failed(topic, payload, received_at, _utf8_error(exc, PayloadFormat.TEXT))
    return Reading(topic, received_at, text, received_at)


def _decode_bytes(decoder: Decoder, topic: str, payload: bytes, received_at: float) -> Reading:
    encoded = base64.b64encode(payload).decode("ascii")
    return Reading(topic, received_at, encoded, received_at)


# -- csv -------------------------------------------------------------------------------------


def _csv_value(field: str) -> object:
    """An int or a float when the field is a decimal number (spaces around it allowed),
    None when empty or not finite, else the text as it is (``1_000``, ``0x10``, ``on``).

    NaN, infinities and integers too long for a 64-bit float become None (missing): the
    payload must stay strict JSON that every client decodes (protocol/limits.py), and pandas
    turns None into NaN anyway.
    """
    token = field.strip(_SPACE)
    if not token:
        return None
    if _DECIMAL_INTEGER.fullmatch(token):
        if len(token) > _SURELY_FLOAT_SIZED + 2:  # no 64-bit float holds it (nor int() past 4300)
            return None
        integer = int(token)
        return integer if number_problem(integer) is None else None
    if _FLOAT.fullmatch(token):
        number = float(token)
        return number if math.isfinite(number) else None
    return None if _NOT_FINITE.fullmatch(token) else field


def _decode_csv(decoder: Decoder, topic: str, payload: bytes, received_at: float) -> Reading:
    fmt = PayloadFormat.CSV
    columns = decoder.csv_columns
    assert columns is not None  # Decoder.__post_init__ requires them for csv
    expected = f"format 'csv' expects one line of {len(columns)} fields ({', '.join(columns)})"
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _failed(topic, payload, received_at, _utf8_error(exc, fmt))
    try:
        # One input line gives at most one row; a second, unquoted line is a csv.Error.
        fields = next(csv.reader((text,), strict=True), [])
    except csv.Error as exc:
        if "new-line" in str(exc):
            error = f"payload holds more than one line; {expected}"
        else:
            error = f"payload is not valid CSV ({exc}); {expected}"
        return _failed(topic, payload, received_at, error)
    if not fields:
        return _failed(topic, payload, received_at, f"payload is empty; {expected}")
    if len(fields) != len(columns):
        error = f"payload has {len(fields)} fields; {expected}"
        return _failed(topic, payload, received_at, error)
    record = {column: _csv_value(value) for column, value in zip(columns, fields, strict=True)}
    time_field = decoder.time_field
    if time_field is None:
        return Reading(topic, received_at, record, received_at)
    return _with_time_field(topic, record, time_field, received_at)


# -- influx line protocol --------------------------------------------------------------------

_LP_SYNTAX = "measurement[,tag=value...] field=value[,field=value...] [timestamp]"
# Names (measurement, tag keys and values, field keys) escape ',', ' ', '=' and '\' with a
# backslash; a backslash before anything else is itself. The alternatives cannot overlap, so
# matching is linear. A trailing lone backslash matches nothing and is reported where it is.
_MEASUREMENT = re.compile(r"(?:[^\\, ]|\\.)+")
_TAG = re.compile(r",((?:[^\\,= ]|\\.)+)=((?:[^\\,= ]|\\.)+)")
_FIELD = re.compile(r'((?:[^\\,= ]|\\.)+)=("(?:[^"\\]|\\.)*"|[^,= "]+)')
_OPEN_STRING_FIELD = re.compile(r'(?:[^\\,= ]|\\.)+="')
_NAME_ESCAPE = re.compile(r"\\([,= \\])")
_STRING_ESCAPE = re.compile(r'\\(["\\])')
_INTEGER = re.compile(r"[-+]?[0-9]+i")
_UNSIGNED = re.compile(r"[0-9]+u")
_TIMESTAMP = re.compile(r"-?[0-9]+")
_BOOLEANS = {
    **dict.fromkeys(("t", "T", "true", "True", "TRUE"), True),
    **dict.fromkeys(("f", "F", "false", "False", "FALSE"), False),
}
_SUFFIXED_INTEGERS = (
    (_INTEGER, "integer", range(-(2**63), 2**63)),
    (_UNSIGNED, "unsigned", range(2**64)),
)
_MAX_INT_CHARS = 21  # a sign and the 20 digits of 2**64 - 1
_MAX_NANOSECONDS = int(_MAX_SECONDS) * 1_000_000_000
_FIELD_TYPES = 'a float (1.5), integer (3i), unsigned (3u), boolean (true) or string ("on")'


class _LineError(Exception):
    """A line that is not line protocol; the message (columns count from 1) is the error."""


def _name(token: str) -> str:
    return _NAME_ESCAPE.sub(r"\1", token) if "\\" in token else token


def _bounded_int(digits: str) -> int | None:
    """The integer, or None when it has too many digits to be any 64-bit value (int() would
    also refuse strings past 4300 digits)."""
    return int(digits) if len(digits) <= _MAX_INT_CHARS else None


def _field_value(key: str, token: str) -> object:
    if token[0] == '"':
        body = token[1:-1]
        return _STRING_ESCAPE.sub(r"\1", body) if "\\" in body else body
    boolean = _BOOLEANS.get(token)
    if boolean is not None:
        return boolean
    if _FLOAT.fullmatch(token):
        number = float(token)
        if math.isfinite(number):
            return number
        raise _LineError(
            f"field {_show(key)} has {_shorten(token)}, which is too large for a 64-bit float"
        )
    for pattern, kind, bounds in _SUFFIXED_INTEGERS:
        if pattern.fullmatch(token):
            integer = _bounded_int(token[:-1])
            if integer is None or integer not in bounds:
                raise _LineError(
                    f"field {_show(key)} has {_shorten(token)}, outside the 64-bit {kind} range"
                )
            return integer
    raise _LineError(f"field {_show(key)} has the value {_show(token)}; expected {_FIELD_TYPES}")


def _add(record: dict[str, object], key: str, value: object) -> None:
    if key in record:
        raise _LineError(
            f"key {key!r} appears twice; tags and fields share the payload's keys with "
            "'measurement', so each must be unique"
        )
    record[key] = value


def _parse_line(line: str) -> tuple[dict[str, object], str | None]:
    """The payload dict of one line and its timestamp's digits (None if absent)."""
    match = _MEASUREMENT.match(line)
    if match is None:
        raise _LineError(f"line does not start with a measurement name; expected {_LP_SYNTAX}")
    record: dict[str, object] = {"measurement": _name(match.group())}
    position = match.end()
    end = len(line)
    while position < end and line[position] == ",":
        match = _TAG.match(line, position)
        if match is None:
            raise _LineError(
                f"tag at column {position + 2} is not key=value; expected {_LP_SYNTAX}"
            )
        _add(record, _name(match.group(1)), _name(match.group(2)))
        position = match.end()
    if position == end:
        raise _LineError(f"line has no fields; expected {_LP_SYNTAX}")
    if line[position] != " ":
        raise _LineError(
            f"unexpected {line[position]!r} at column {position + 1} after the measurement "
            f"and tags; expected {_LP_SYNTAX}"
        )
    position += 1
    while True:
        match = _FIELD.match(line, position)
        if match is None:
            if _OPEN_STRING_FIELD.match(line, position):
                raise _LineError(
                    f"string value of the field at column {position + 1} has no closing "
                    f"quote; expected {_FIELD_TYPES}"
                )
            raise _LineError(
                f"field at column {position + 1} is not key=value; expected {_LP_SYNTAX}"
            )
        key = _name(match.group(1))
        _add(record, key, _field_value(key, match.group(2)))
        position = match.end()
        if position < end and line[position] == ",":
            position += 1
            continue
        break
    if position == end:
        return record, None
    stamp = line[position + 1 :]
    if line[position] != " " or not _TIMESTAMP.fullmatch(stamp):
        raise _LineError(
            f"{_show(line[position:])} after the fields is not a timestamp (an integer "
            f"of nanoseconds); expected {_LP_SYNTAX}"
        )
    return record, stamp


def _data_lines(text: str) -> list[str]:
    """The lines that carry a point: blank lines and '#' comments are not data."""
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _decode_influx(decoder: Decoder, topic: str, payload: bytes, received_at: float) -> Reading:
    fmt = PayloadFormat.INFLUX
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _failed(topic, payload, received_at, _utf8_error(exc, fmt))
    if "\n" in text or text.lstrip().startswith("#"):
        lines = _data_lines(text)
    else:
        line = text.strip()
        lines = [line] if line else []
    if len(lines) != 1:
        count = "no line" if not lines else f"{len(lines)} lines"
        error = f"payload holds {count} of line protocol; format 'influx' expects one point"
        return _failed(topic, payload, received_at, error)
    try:
        record, stamp = _parse_line(lines[0])
    except _LineError as exc:
        return _failed(topic, payload, received_at, f"invalid line protocol: {exc}")
    if stamp is None:
        return Reading(topic, received_at, record, received_at)
    nanoseconds = _bounded_int(stamp)
    if nanoseconds is None or not 0 <= nanoseconds < _MAX_NANOSECONDS:
        error = (
            f"timestamp {_shorten(stamp)} ns is outside 1970-01-01..9999-12-31 UTC; "
            "expected unix nanoseconds"
        )
        return Reading(topic, received_at, record, received_at, error)
    return Reading(topic, nanoseconds / 1_000_000_000, record, received_at)


# -- the decoder -----------------------------------------------------------------------------

_DecodeFunction = Callable[["Decoder", str, bytes, float], Reading]
_DECODE: dict[PayloadFormat, _DecodeFunction] = {
    PayloadFormat.JSON: _decode_json,
    PayloadFormat.NUMBER: _decode_number,
    PayloadFormat.TEXT: _decode_text,
    PayloadFormat.CSV: _decode_csv,
    PayloadFormat.INFLUX: _decode_influx,
    PayloadFormat.BYTES: _decode_bytes,
}
_TIME_FIELD_FORMATS = (PayloadFormat.JSON, PayloadFormat.CSV)


def _check_csv_columns(columns: object) -> tuple[str, ...]:
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        raise DecoderConfigError(
            f"csv_columns must be a list of column names, not {_show(columns)}"
        )
    seen: set[str] = set()
    for column in columns:
        if not isinstance(column, str) or not column:
            raise DecoderConfigError(
                f"csv_columns holds {_show(column)}; each column name must be a non-empty string"
            )
        if column in seen:
            raise DecoderConfigError(
                f"csv_columns names {column!r} twice; each column name must be unique"
            )
        seen.add(column)
    if not seen:
        raise DecoderConfigError("csv_columns is empty; format 'csv' needs at least one column")
    return tuple(columns)


@dataclass(frozen=True, slots=True)
class Decoder:
    """Decodes one channel's payloads; build it with ``make_decoder`` or directly.

    The options are checked on construction (``DecoderConfigError``), so that ``decode`` has
    nothing left to refuse.

    ``json_loads`` (format ``json`` only; ignored by the others) is a faster decoder of the
    payload bytes: for each payload it returns exactly the value the standard library's
    path returns (types, ``-0.0``, key order included), or raises, and the payload then takes
    that path, which refuses it or decodes it and words any error as it always did. It
    does not take part in equality or the hash: decoders equal but for it decode alike.
    """

    format: PayloadFormat
    csv_columns: tuple[str, ...] | None = None
    time_field: str | None = None
    json_loads: JsonLoads | None = field(default=None, repr=False, compare=False)
    _decode: _DecodeFunction = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fmt = self.format
        if not isinstance(fmt, PayloadFormat):
            raise DecoderConfigError(
                f"format must be a PayloadFormat, not {_show(fmt)}; use make_decoder() to "
                "build a decoder from a format name"
            )
        if fmt is PayloadFormat.CSV:
            if self.csv_columns is None:
                raise DecoderConfigError(
                    "format 'csv' needs csv_columns, the names of the comma-separated fields"
                )
            object.__setattr__(self, "csv_columns", _check_csv_columns(self.csv_columns))
        elif self.csv_columns is not None:
            raise DecoderConfigError(f"csv_columns only applies to format 'csv', not {fmt.value!r}")
        time_field = self.time_field
        if time_field is not None:
            if fmt not in _TIME_FIELD_FORMATS:
                if fmt is PayloadFormat.INFLUX:
                    raise DecoderConfigError(
                        "time_field does not apply to format 'influx': each line carries its "
                        "own nanosecond timestamp"
                    )
                raise DecoderConfigError(
                    f"time_field only applies to formats 'json' and 'csv'; format "
                    f"{fmt.value!r} payloads have no named fields"
                )
            if not isinstance(time_field, str) or not time_field:
                raise DecoderConfigError(
                    f"time_field must be a non-empty field name, not {_show(time_field)}"
                )
            if self.csv_columns is not None and time_field not in self.csv_columns:
                raise DecoderConfigError(
                    f"time_field {time_field!r} is not one of csv_columns "
                    f"({', '.join(self.csv_columns)})"
                )
        if self.json_loads is not None and not callable(self.json_loads):
            raise DecoderConfigError(
                f"json_loads must be a function of the payload bytes, not {_show(self.json_loads)}"
            )
        object.__setattr__(self, "_decode", _DECODE[fmt])

    def decode(self, topic: str, payload: bytes, received_at: float) -> Reading:
        """The reading of one MQTT message; never raises (failures are ``Reading.error``)."""
        return self._decode(self, topic, payload, received_at)


def make_decoder(
    format: str,
    *,
    csv_columns: Sequence[str] | None = None,
    time_field: str | None = None,
    json_loads: JsonLoads | None = None,
) -> Decoder:
    """A decoder for a channel's ``format`` name and options; ``DecoderConfigError`` if invalid.

    ``json_loads``: a faster JSON decoder, as ``Decoder`` says (``readings_orjson.loads``).
    """
    try:
        fmt = PayloadFormat(format)
    except ValueError:
        raise DecoderConfigError(
            f"unknown payload format {_show(format)}; valid formats: {_VALID_FORMATS}"
        ) from None
    columns = None if csv_columns is None else _check_csv_columns(csv_columns)
    return Decoder(fmt, csv_columns=columns, time_field=time_field, json_loads=json_loads)
