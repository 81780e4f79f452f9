"""Turn what a user passes to ``publish`` into plain JSON values, or say why it cannot be.

Values taken from pandas are numpy scalars (``df["speed"].max()`` is ``numpy.int64``),
timestamps (``pd.Timestamp``) or NaN; the wire speaks JSON, which has none of them.
Numpy scalars become Python numbers, arrays lists, aware datetimes ISO 8601 strings in
UTC (``2024-05-01T12:00:00.250000Z``). NaN and infinity have no JSON form and a naive
datetime has no definite instant, so those are refused with ``InvalidPayload`` saying
what to do, before anything is sent.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from typing import Any

from ..protocol.limits import MAX_DEPTH
from .errors import InvalidPayload

_MAX_DEPTH = MAX_DEPTH
"""Nesting deeper than this is refused: the server would flag such a reading (the one
definition of a decodable payload, protocol/limits.py)."""

_MISSING = frozenset({"NaTType", "NAType"})
"""pandas' missing values (``pd.NaT``, ``pd.NA``), recognised without importing pandas."""


def publishable(payload: object) -> object:
    """``payload`` as plain JSON values (dict, list, str, int, float, bool, None)."""
    return _convert(payload, "payload", 0)


def _convert(value: object, where: str, depth: int) -> object:
    # ``depth`` containers hold ``value``: one more is too many when it is a container too.
    if depth >= _MAX_DEPTH and isinstance(value, dict | list | tuple):
        raise InvalidPayload(f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)  # numpy.str_ and other subclasses as plain text
    if isinstance(value, int):
        return int(value)  # an IntEnum or int subclass as the number it is
    if isinstance(value, float):
        return _finite(float(value), where)
    if isinstance(value, dict):
        return {
            _key(key, where): _convert(v, f"{where}[{key!r}]", depth + 1)
            for key, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_convert(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, datetime):
        return _instant(value, where)
    if isinstance(value, date):
        return value.isoformat()
    if type(value).__name__ in _MISSING:
        raise InvalidPayload(f"{where} is {value} (a missing value): publish None or leave it out")
    numpy = sys.modules.get("numpy")  # numpy values exist only once numpy is imported
    if numpy is not None and isinstance(value, numpy.generic | numpy.ndarray):
        return _convert(_from_numpy(numpy, value, where), where, depth)
    raise InvalidPayload(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which JSON cannot "
        "carry: publish numbers, strings, booleans, None, lists and dicts of them (convert "
        "it first, e.g. str(value) or value.tolist())"
    )


def _finite(value: float, where: str) -> float:
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidPayload(
            f"{where} is {value}, which JSON cannot carry: send a finite number, or None for "
            "a missing value (or leave the field out)"
        )
    return value


def _key(key: object, where: str) -> str:
    # JSON object keys are strings; an int key (a pandas index) reads as json.dumps writes it.
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise InvalidPayload(
        f"{where} has the key {key!r} ({type(key).__name__}); JSON object keys are strings"
    )


def _instant(value: datetime, where: str) -> str:
    if type(value).__name__ in _MISSING:
        raise InvalidPayload(f"{where} is {value} (a missing value): publish None or leave it out")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidPayload(
            f"{where} is a datetime without a time zone ({value}), so it names no definite "
            "instant: give it one, e.g. pd.Timestamp(...).tz_localize('UTC') or "
            "datetime.now(timezone.utc)"
        )
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _from_numpy(numpy: Any, value: Any, where: str) -> object:
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    if isinstance(value, numpy.datetime64):
        if numpy.isnat(value):
            raise InvalidPayload(f"{where} is NaT (a missing time): publish None or leave it out")
        # numpy datetimes carry no zone; pandas and numpy treat them as UTC.
        return str(numpy.datetime_as_string(value, timezone="UTC"))
    if isinstance(value, numpy.timedelta64):
        raise InvalidPayload(
            f"{where} is a numpy.timedelta64, which JSON cannot carry: publish a number of "
            "seconds, e.g. value / numpy.timedelta64(1, 's')"
        )
    return value.item()
