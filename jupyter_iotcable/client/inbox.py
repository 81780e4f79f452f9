"""What one subscription has received: its readings, gaps, rate and who waits for readings.

An ``Inbox`` is written by the cable's session on the cable's thread (``confirmed``,
``receive``, ``gap``, ``connection_lost``, ``ended``) and read by its ``Subscription``
from any thread. Keeping the receiving side here, apart from the public ``Subscription``,
is what lets the session deliver readings without calling a subscription's private
methods, and lets tests drive a subscription in memory.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..protocol.client import continuity_lost
from ..topics import TopicTemplate
from .buffer import ReadingBuffer
from .gaps import GapCause, GapLog
from .rates import RateMeter

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..protocol import GapReported, Row
    from .feeds import AsyncFeed, SyncFeed

log = logging.getLogger("jupyter_iotcable.client")

State = Literal["pending", "live", "rejected", "unsubscribed", "closed"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading as a subscription delivers it.

    ``time`` is unix seconds (UTC); ``columns`` holds the topic levels named by the
    channel's template (``{"site": "lyon", "device": "pump3"}``); ``offset`` is the
    reading's position in the channel's stream; ``error`` says why the payload did not
    decode (the payload is then the raw text).
    """

    topic: str
    time: float
    payload: object
    columns: dict[str, str]
    offset: int
    error: str | None = None

    @property
    def datetime(self) -> datetime:
        """``time`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time, UTC)


class Inbox:
    """The receiving side of one subscription (see the module doc)."""

    def __init__(
        self,
        channel: str,
        topic: str | None,
        *,
        max_rows: int,
        window: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.topic = topic
        self.max_rows = max_rows
        self.window = window
        self.identifier = ""
        """The identifier on the wire (chosen by the session when it subscribes)."""
        self.state: State = "pending"
        self.reason: str | None = None
        self.meta: Mapping[str, Any] = {}
        self.template: TopicTemplate | None = None
        self.buffer = ReadingBuffer(max_rows=max_rows, window=window)
        self.gaps = GapLog()
        self.rate = RateMeter(clock=clock)
        self.received = 0
        """Readings received (history answers included)."""
        self.dropped = 0
        """Readings the server conflated away because this client read too slowly."""
        self.live_since: float | None = None
        """When (``clock``) the subscription went live; ``None`` while pending."""
        self.last_arrival: float | None = None
        """When (``clock``) the last live reading arrived."""
        self.clock = clock
        """The monotonic clock that times arrivals (tests pass their own)."""
        self._lock = threading.Lock()
        self._latest: dict[str, Row] = {}
        self._held_until: float | None = None
        self._callbacks: list[Callable[[Reading], object]] = []
        # Weak: an iterator that is dropped unfinished must not keep receiving readings.
        self._feeds: weakref.WeakSet[SyncFeed[Reading] | AsyncFeed[Reading]] = weakref.WeakSet()

    @property
    def active(self) -> bool:
        return self.state in ("pending", "live")

    @property
    def time_field(self) -> str | None:
        field = self.meta.get("time_field")
        return field if isinstance(field, str) else None

    # -- written by the session, on the cable's thread ----------------------------------------

    def confirmed(self, meta: Mapping[str, Any]) -> None:
        """The server confirmed (again, after a reconnect): rows may flow."""
        self.meta = dict(meta)
        columns = meta.get("columns")
        if self.template is None and isinstance(columns, str):
            try:
                self.template = TopicTemplate(columns)
            except ValueError:
                log.warning("iotcable: channel %s has an unusable columns template", self.channel)
        if self.live_since is None:
            self.live_since = self.clock()
            self.rate.restart()
        self.state = "live"

    def receive(self, rows: Sequence[Row], dropped: int, *, backfill: bool) -> None:
        """New rows (none held already); ``backfill``: they answer a history request.

        Only live rows count as arrivals (``rate``); a drop count is a gap between the
        newest reading held and the first of these rows.
        """
        buffer = self.buffer
        if dropped:
            self.dropped += dropped
            self.gaps.report(
                GapCause.TOO_SLOW,
                start=buffer.newest,
                end=rows[0][1] if rows else None,
                readings=dropped,
                detail=f"the server dropped {dropped} readings (conflated: too slow)",
            )
        if not rows:
            return
        buffer.extend(rows)
        self.received += len(rows)
        if not backfill:
            self.rate.arrived(len(rows))
            self.last_arrival = self.clock()
        if self.gaps.has_open:
            self.gaps.close_open(row[1] for row in rows)
        with self._lock:
            latest = self._latest
            if backfill:
                for row in rows:
                    held = latest.get(row[2])
                    if held is None or row[1] >= held[1]:
                        latest[row[2]] = row
            else:
                for row in rows:
                    latest[row[2]] = row
            if len(latest) > self.max_rows:
                newest = sorted(latest.values(), key=lambda row: row[1])[-self.max_rows :]
                self._latest = {row[2]: row for row in newest}
            callbacks = list(self._callbacks)
            feeds = list(self._feeds)
        if callbacks or feeds:
            self._deliver([self.reading(row) for row in rows], callbacks, feeds)

    def gap(self, event: GapReported) -> None:
        """The server reported readings this subscription will not get."""
        if event.undecodable:
            cause = GapCause.UNDECODABLE
        elif continuity_lost(event):
            cause = GapCause.CONTINUITY_LOST
        elif event.epoch_changed:
            cause = GapCause.SERVER_RESTARTED
        else:
            cause = GapCause.NOT_KEPT
        if event.since is not None:
            start: float | None = event.since
            after = self.buffer.oldest_from(event.since, inclusive=True)
        else:
            start = (
                self.buffer.time_of(event.after_offset) if event.after_offset is not None else None
            )
            if start is None:
                start = self._held_until
            after = self.buffer.oldest_from(start, inclusive=False) if start is not None else None
        readings = None
        if (
            not event.epoch_changed
            and self.topic is None
            and event.after_offset is not None
            and event.available_from is not None
        ):
            # The whole channel: every offset in between is a reading we miss.
            readings = max(0, event.available_from - event.after_offset - 1)
        self.gaps.report(cause, start=start, end=after, readings=readings, detail=event.reason)

    def connection_lost(self) -> None:
        """The socket went: a gap the server reports later starts at the newest reading held."""
        self._held_until = self.buffer.newest

    def ended(self, state: State, reason: str | None = None) -> None:
        """The subscription stopped (unsubscribed, rejected, cable closed): iterators end."""
        self.state = state
        self.reason = reason
        with self._lock:
            feeds = list(self._feeds)
            self._feeds.clear()
        for feed in feeds:
            feed.close()

    # -- read by the subscription, on any thread ----------------------------------------------

    def latest_rows(self) -> list[Row]:
        with self._lock:
            return list(self._latest.values())

    def reading(self, row: Row) -> Reading:
        offset, when, topic, payload, error = row
        template = self.template
        columns = (template.extract(topic) or {}) if template is not None else {}
        return Reading(topic, when, payload, columns, offset, error)

    def add_callback(self, callback: Callable[[Reading], object]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[Reading], object]) -> None:
        with self._lock:
            self._callbacks.remove(callback)

    @property
    def callback_count(self) -> int:
        """How many callbacks follow the readings (a widget that stopped has removed its)."""
        with self._lock:
            return len(self._callbacks)

    def attach(self, feed: SyncFeed[Reading] | AsyncFeed[Reading]) -> None:
        with self._lock:
            if self.active:
                self._feeds.add(feed)
                return
        feed.close()

    def detach(self, feed: SyncFeed[Reading] | AsyncFeed[Reading]) -> None:
        with self._lock:
            self._feeds.discard(feed)

    def _deliver(
        self,
        readings: list[Reading],
        callbacks: list[Callable[[Reading], object]],
        feeds: list[SyncFeed[Reading] | AsyncFeed[Reading]],
    ) -> None:
        for feed in feeds:
            feed.put(readings)
        for reading in readings:
            for callback in callbacks:
                if not self.active:
                    return  # a callback unsubscribed or closed the cable: stop here
                try:
                    callback(reading)
                except Exception:
                    log.exception("iotcable: callback %r failed on %s", callback, reading.topic)
