"""Parse the durations and points in time users type: ``"15min"``, ``"1h30min"``, ``timedelta``...

Kept here (not pandas' ``Timedelta``) so the client parses without importing pandas and
every malformed value gets a message naming the accepted forms.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}
_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)", re.IGNORECASE)
_FORMS = "a string like '30s', '15min', '2h' or '1h30min' (units: ms, s, min, h, d, w)"


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``"15min"`` -> 900.0); raise ``ValueError`` naming the forms."""
    position, total, parts = 0, 0.0, 0
    stripped = text.strip()
    while position < len(stripped):
        match = _PART.match(stripped, position)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"cannot read the duration {text!r}: expected {_FORMS}")
        total += float(match.group(1)) * _UNITS[match.group(2).lower()]
        position, parts = match.end(), parts + 1
    if parts == 0:
        raise ValueError(f"cannot read the duration {text!r}: expected {_FORMS}")
    if total <= 0:
        raise ValueError(f"the duration {text!r} is not positive")
    return total


def window_bounds(window: str | timedelta | int | None, max_rows: int) -> tuple[int, float | None]:
    """``(row bound, seconds or None)`` for a subscription's ``window`` and ``max_rows``.

    An int window is a row count (capped by ``max_rows``); a string or timedelta is a
    span of time, measured back from the newest reading.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive int, got {max_rows!r}")
    if window is None:
        return max_rows, None
    if isinstance(window, bool):
        raise TypeError(_window_type_message(window))
    if isinstance(window, int):
        if window < 1:
            raise ValueError(f"window as a row count must be at least 1, got {window}")
        return min(window, max_rows), None
    if isinstance(window, timedelta):
        seconds = window.total_seconds()
        if seconds <= 0:
            raise ValueError(f"window must be a positive duration, got {window!r}")
        return max_rows, seconds
    if isinstance(window, str):
        return max_rows, parse_duration(window)
    raise TypeError(_window_type_message(window))


def _window_type_message(window: object) -> str:
    return (
        f"window must be {_FORMS}, a timedelta, a row count (int) or None; "
        f"got {type(window).__name__} {window!r}"
    )


def since_timestamp(since: str | timedelta | datetime | float, now: float) -> float:
    """Unix seconds for a history start: ``"1h"`` or a timedelta mean that long before ``now``.

    A datetime must carry a timezone (a naive one is ambiguous: local time or UTC?); a
    number is unix seconds.
    """
    if isinstance(since, bool):
        raise TypeError(_since_type_message(since))
    if isinstance(since, str):
        return now - parse_duration(since)
    if isinstance(since, timedelta):
        if since.total_seconds() <= 0:
            raise ValueError(f"since must be a positive duration back in time, got {since!r}")
        return now - since.total_seconds()
    if isinstance(since, datetime):
        if since.tzinfo is None or since.utcoffset() is None:
            raise ValueError(
                f"since={since!r} has no timezone; pass an aware datetime, e.g. "
                "datetime(..., tzinfo=timezone.utc), or a duration like '1h'"
            )
        return since.timestamp()
    if isinstance(since, int | float):
        return float(since)
    raise TypeError(_since_type_message(since))


def _since_type_message(since: object) -> str:
    return (
        f"since must be {_FORMS}, a timedelta, an aware datetime or unix seconds; "
        f"got {type(since).__name__} {since!r}"
    )
