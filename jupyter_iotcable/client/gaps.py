"""``Gap``: readings a subscription is known to have missed, in words a person reads.

The server is the source of gaps (DESIGN §6): it rejects a history request for what it
no longer keeps, a new epoch shows that it restarted (or, within one server run, that its
broker lost the readings of an outage), and a ``dropped`` count says that it conflated
readings away while this client read too slowly. The one gap of the client's own making
is a frame it cannot decode (an older or foreign server): its readings are asked again
from history once, and are a gap if that fails too. An offset that jumps is never a gap
(a narrower topic filter skips offsets).

The protocol reports a gap in offsets; a person wants times. A gap starts at the newest
reading held before it (or at the time history was asked from) and ends at the oldest
reading received after it: readings of the history answer arrive before its
``reject_history``, so that end is usually known when the gap is reported; otherwise the
gap stays open (``end`` None) until the next reading arrives and closes it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Gap", "GapCause"]


class GapCause(StrEnum):
    """Why readings are missing."""

    NOT_KEPT = "not_kept"
    """The server's history no longer held them (it started later, or evicted them)."""
    SERVER_RESTARTED = "server_restarted"
    """The server restarted: what it received in between may be lost."""
    TOO_SLOW = "too_slow"
    """This client read too slowly; the server kept only the latest reading per topic."""
    CONTINUITY_LOST = "continuity_lost"
    """The server's link to the MQTT broker came back without its session (the broker
    restarted without persistence, or the session expired): what devices published
    meanwhile never reached the server."""
    UNDECODABLE = "undecodable"
    """A frame holding them could not be decoded by this client (an older or foreign
    server, or a frame over the client's size cap), even when asked again from history."""


@dataclass(frozen=True)
class Gap:
    """Readings this subscription missed, as the server reported them.

    ``start`` is the newest reading held before the gap (or the time history was asked
    from), ``end`` the oldest reading received after it (``None`` while nothing has
    arrived since), both aware UTC datetimes; ``readings`` is how many readings are
    missing when the server said so (``None``: unknown); ``reason`` says it in words,
    ``detail`` in the server's own terms (for a bug report). ``str(gap)`` is ``reason``.
    """

    start: datetime | None
    end: datetime | None
    cause: GapCause
    readings: int | None
    reason: str
    detail: str
    reported: datetime

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        span = f"{_when(self.start)} to {_when(self.end)}"
        count = "" if self.readings is None else f", {self.readings:,} readings"
        return f"<Gap {span}{count}: {self.cause}>"


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _datetime(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def describe_time(seconds: float, now: float) -> str:
    """``14:02:11 UTC`` for a time of today (UTC), else ``2026-12-05 14:02:11 UTC``."""
    moment = datetime.fromtimestamp(seconds, UTC)
    today = datetime.fromtimestamp(now, UTC).date()
    if moment.date() == today:
        return moment.strftime("%H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_span(start: float | None, end: float | None, now: float) -> str:
    """``from 13:57:11 to 14:02:11 UTC``, dropping the zone of the first time."""
    if start is None and end is None:
        return "at an unknown time"
    if end is None:
        assert start is not None
        return f"after {describe_time(start, now)}"
    if start is None:
        return f"before {describe_time(end, now)}"
    first, last = describe_time(start, now), describe_time(end, now)
    if first.endswith(" UTC") and last.endswith(" UTC") and len(first) == len(last):
        first = first.removesuffix(" UTC")
    return f"from {first} to {last}"


def gap_reason(
    cause: GapCause, start: float | None, end: float | None, readings: int | None, now: float
) -> str:
    """What a gap means, in one sentence with times as times."""
    span = describe_span(start, end, now)
    one = readings == 1
    count = "readings" if readings is None else f"{readings:,} reading{'' if one else 's'}"
    if cause is GapCause.TOO_SLOW:
        return (
            f"{count} {span} {'was' if one else 'were'} dropped by the server because this "
            "client read too slowly (it kept the latest reading of each topic)"
        )
    if cause is GapCause.SERVER_RESTARTED:
        return f"the server restarted: {count} {span} may be missing"
    if cause is GapCause.CONTINUITY_LOST:
        return (
            f"the server lost its MQTT broker session (a broker restart or outage): {count} "
            f"{span} never reached it"
        )
    if cause is GapCause.UNDECODABLE:
        return (
            f"{count} {span} could not be decoded by this client (a frame from an older or "
            "foreign server, or over its size cap): they are missing"
        )
    return f"{count} {span} {'is' if one else 'are'} unknown: the server did not keep them"


@dataclass
class _Record:
    """A gap while it may still be open; becomes a ``Gap`` when read."""

    cause: GapCause
    start: float | None
    end: float | None
    readings: int | None
    detail: str
    reported: float


_SLOW_STRETCH = 5.0
"""Seconds between two ``too_slow`` reports that make them one stretch (one gap)."""


class GapLog:
    """The gaps of one subscription: written on the cable's thread, read from any thread.

    Bounded: a client that is too slow for hours reports a conflation gap per batch, so
    consecutive ``too_slow`` gaps merge, and only the newest ``limit`` gaps are kept.
    """

    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._records: list[_Record] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def report(
        self,
        cause: GapCause,
        *,
        start: float | None,
        end: float | None,
        readings: int | None,
        detail: str,
        now: float | None = None,
    ) -> None:
        """Record a gap; ``end`` None leaves it open until ``close_open`` sees a reading."""
        reported = time.time() if now is None else now
        with self._lock:
            last = self._records[-1] if self._records else None
            if (
                cause is GapCause.TOO_SLOW
                and last is not None
                and last.cause is GapCause.TOO_SLOW
                and reported - last.reported <= _SLOW_STRETCH
            ):
                # One stretch of slowness, reported batch by batch: one gap.
                if end is not None:
                    last.end = end if last.end is None else max(end, last.end)
                last.readings = (last.readings or 0) + (readings or 0)
                last.reported = reported
                return
            self._records.append(_Record(cause, start, end, readings, detail, reported))
            del self._records[: -self._limit]

    def close_open(self, times: Iterable[float]) -> None:
        """Readings arrived: an open gap ends at the oldest of them after its start."""
        with self._lock:
            open_gaps = [r for r in self._records if r.end is None]
            if not open_gaps:
                return
            arrived = list(times)
            for record in open_gaps:
                after = [t for t in arrived if record.start is None or t >= record.start]
                if after:
                    record.end = min(after)

    @property
    def has_open(self) -> bool:
        with self._lock:
            return any(r.end is None for r in self._records)

    def gaps(self, now: float | None = None) -> list[Gap]:
        """The gaps, oldest first, as public ``Gap`` values."""
        moment = time.time() if now is None else now
        with self._lock:
            records = list(self._records)
        return [
            Gap(
                start=_datetime(r.start),
                end=_datetime(r.end),
                cause=r.cause,
                readings=r.readings,
                reason=gap_reason(r.cause, r.start, r.end, r.readings, moment),
                detail=r.detail,
                reported=datetime.fromtimestamp(r.reported, UTC),
            )
            for r in records
        ]
