"""``Subscription``: one channel (optionally narrowed to a topic filter) streaming into pandas.

Readings arrive on the cable's background thread and land in a bounded columnar buffer;
``frame`` builds a DataFrame from it on read. The same readings are handed to callbacks
(``on``), blocking iterators (``readings()``) and ``async for`` loops. Everything a user
calls here is safe from any thread.
"""

from __future__ import annotations

import asyncio
import html
import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..topics import TopicTemplate
from .buffer import ReadingBuffer, Row
from .feeds import AsyncFeed, SyncFeed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from datetime import timedelta
    from types import TracebackType

    from ..frames import Frame
    from .cable import Cable

log = logging.getLogger("jupyter_iotcable.client")

State = Literal["pending", "live", "rejected", "unsubscribed", "closed"]

_RATE_SPAN = 5.0
"""Seconds of arrivals that ``rate`` averages over."""


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


class _RateMeter:
    """Readings per second over the last few seconds, updated once per batch."""

    def __init__(self, span: float = _RATE_SPAN) -> None:
        self._span = span
        self._started = time.monotonic()
        self._arrivals: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._arrivals.append((now, count))
            self._trim(now)

    def rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            total = sum(count for _, count in self._arrivals)
        elapsed = min(self._span, now - self._started)
        return total / elapsed if elapsed > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._arrivals and self._arrivals[0][0] < now - self._span:
            self._arrivals.popleft()


class Subscription:
    """A live subscription; create it with ``Cable.subscribe``.

    ``window`` bounds the frame in time, measured back from the newest reading (not the
    wall clock: a sensor that went quiet keeps its last window of data); ``max_rows``
    bounds it in rows. The oldest readings are evicted as new ones arrive.
    """

    def __init__(
        self,
        cable: Cable,
        channel: str,
        topic: str | None,
        identifier: str,
        *,
        max_rows: int,
        window: float | None,
    ) -> None:
        self._cable = cable
        self.channel = channel
        self.topic = topic
        self.identifier = identifier
        self.max_rows = max_rows
        self.window = window
        self.meta: dict[str, Any] = {}
        self.state: State = "pending"
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._template: TopicTemplate | None = None
        self._buffer = ReadingBuffer(max_rows=max_rows, window=window)
        self._latest: dict[str, tuple[str, Row]] = {}
        self._gaps: list[dict[str, Any]] = []
        self._callbacks: list[Callable[[Reading], object]] = []
        # Weak: an iterator that is dropped unfinished must not keep receiving readings.
        self._feeds: weakref.WeakSet[SyncFeed[Reading] | AsyncFeed[Reading]] = weakref.WeakSet()
        self._rate = _RateMeter()
        self.received = 0
        self.dropped = 0

    # -- reading the data -------------------------------------------------------------------

    @property
    def frame(self) -> Frame:
        """The buffered readings as a time-indexed DataFrame (built now, from a snapshot).

        Columns: ``topic``, the topic levels of the channel's template, the payload's
        fields (objects flattened, nested keys as ``a.b``; other payloads in ``value``;
        a field named like a frame column, e.g. ``time``, as ``payload.time``), and
        ``error`` while a payload that failed to decode is in the frame. A column's dtype
        follows the rows in the frame, and a field no row in it has is not a column.
        ``frame.attrs["gaps"]`` lists the gaps the server reported (see ``gaps``).
        """
        from ..frames import build_frame

        return build_frame(self._buffer.snapshot(), attrs=self._attrs())

    @property
    def latest(self) -> Frame:
        """The last reading of each topic, one row per topic (index ``topic``, sorted).

        A DataFrame with the same columns as ``frame`` plus ``time``, so that
        ``sub.latest.loc["plant/lyon/pump3/env", "temperature"]`` works and it displays
        well in a notebook. It remembers up to ``max_rows`` topics, the most recent ones,
        even after their readings left the frame's window.
        """
        from ..frames import build_frame

        with self._lock:
            entries = list(self._latest.values())
        buffer = ReadingBuffer(max_rows=max(1, len(entries)), template=self._template)
        for epoch, row in entries:
            buffer.add(epoch, [row])
        frame = build_frame(buffer.snapshot(), attrs=self._attrs())
        return frame.reset_index().set_index("topic").sort_index()

    @property
    def gaps(self) -> list[dict[str, Any]]:
        """Readings the server said this subscription missed, oldest first.

        Each gap is a dict: ``time`` (unix seconds when it was reported), ``reason``,
        ``stream_id``, ``epoch_changed`` (the server restarted: offsets started again),
        ``after_offset`` (the last offset received before the gap), ``available_from``
        (the oldest offset the server still had) and ``dropped`` (how many readings the
        server conflated away when this client was too slow; 0 for history gaps).
        """
        with self._lock:
            return [dict(gap) for gap in self._gaps]

    @property
    def rate(self) -> float:
        """Readings received per second, averaged over the last five seconds."""
        return self._rate.rate()

    def __len__(self) -> int:
        return len(self._buffer)

    def history(
        self, since: str | timedelta | datetime | float, *, timeout: float = 30.0
    ) -> Subscription:
        """Backfill from the server's history: ``"1h"``, a timedelta, a datetime or unix seconds.

        Blocks until the server has answered. What the server no longer keeps is recorded
        in ``gaps`` (it is never silently missing); readings already here are not added
        twice. The frame's bounds still apply. Returns the subscription, so
        ``sub.history("1h").frame`` works.
        """
        self._cable._request_history(self, since, timeout)
        return self

    def readings(self, timeout: float | None = None) -> Iterator[Reading]:
        """Iterate over readings as they arrive, from now on (blocking).

        Stops when ``timeout`` seconds pass without a reading (``None``: wait forever),
        or when the subscription or cable ends.
        """
        feed: SyncFeed[Reading] = SyncFeed(self.max_rows)
        self._attach(feed)
        return self._drain(feed, timeout)

    def _drain(self, feed: SyncFeed[Reading], timeout: float | None) -> Iterator[Reading]:
        try:
            while (reading := feed.get(timeout)) is not None:
                yield reading
        finally:
            self._detach(feed)

    def __aiter__(self) -> AsyncIterator[Reading]:
        """``async for reading in sub``: readings from now on, on the caller's event loop."""
        feed: AsyncFeed[Reading] = AsyncFeed(asyncio.get_running_loop(), self.max_rows)
        self._attach(feed)
        return self._adrain(feed)

    async def _adrain(self, feed: AsyncFeed[Reading]) -> AsyncIterator[Reading]:
        try:
            while (reading := await feed.get()) is not None:
                yield reading
        finally:
            self._detach(feed)

    def on(self, callback: Callable[[Reading], object]) -> Callable[[Reading], object]:
        """Call ``callback(reading)`` for each new reading; usable as a decorator.

        Callbacks run on the cable's background thread, so they must be quick and
        thread-safe; an exception in one is logged and does not stop the stream.
        """
        with self._lock:
            self._callbacks.append(callback)
        return callback

    def off(self, callback: Callable[[Reading], object]) -> None:
        """Stop calling ``callback``."""
        with self._lock:
            self._callbacks.remove(callback)

    def live(self, **options: Any) -> Any:
        """A live chart and table of this subscription (a ``LiveChart`` anywidget).

        It draws the whole window (history included), then follows. ``y="temperature"``
        or a list of fields (one panel each; default: the first float measurement, never
        a counter such as ``seq``); ``by="device"`` names the series (default: the
        channel's topic levels that vary); ``max_shown`` (12), ``height`` (240 px),
        ``interval`` (0.1 s between updates), ``timezone`` ("local" or "UTC").
        ``widget.live_view.stop()`` stops following. See ``jupyter_iotcable.widgets``.
        """
        from ..widgets import live_view

        return live_view(self, **options)

    def unsubscribe(self) -> None:
        """Stop receiving; the frame keeps what it has. Idempotent."""
        self._cable._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unsubscribe()

    # -- display ----------------------------------------------------------------------------

    def _describe(self) -> dict[str, str]:
        facts = {
            "channel": self.channel,
            "topic": self.topic or "(whole channel)",
            "state": self.state if self.reason is None else f"{self.state}: {self.reason}",
            "rows": f"{len(self):,} (max {self.max_rows:,})",
            "window": "none" if self.window is None else f"{self.window:g} s",
            "rate": f"{self.rate:.1f} readings/s",
            "gaps": str(len(self._gaps)),
            "server": self._cable.url,
        }
        if self.dropped:
            facts["dropped"] = f"{self.dropped:,} (conflated by the server)"
        return facts

    def __repr__(self) -> str:
        facts = self._describe()
        return (
            f"<Subscription {facts['channel']!r} topic={self.topic!r} {facts['state']}, "
            f"rows={len(self)}, rate={self.rate:.1f}/s, gaps={facts['gaps']}>"
        )

    def _repr_html_(self) -> str:
        return _facts_table("Subscription", self._describe())

    # -- called by the cable on its thread --------------------------------------------------

    def _confirm(self, meta: dict[str, Any]) -> None:
        self.meta = dict(meta)
        columns = meta.get("columns")
        if self._template is None and isinstance(columns, str):
            # The buffer is still empty: rows only flow after the confirmation.
            self._template = TopicTemplate(columns)
            self._buffer = ReadingBuffer(
                max_rows=self.max_rows, window=self.window, template=self._template
            )
        self.state = "live"

    def _receive(self, epoch: str, rows: list[Row], dropped: int) -> None:
        accepted = self._buffer.add(epoch, rows)
        self.received += len(accepted)
        self._rate.add(len(accepted))
        with self._lock:
            latest = self._latest
            for row in accepted:
                latest.pop(row[2], None)
                latest[row[2]] = (epoch, row)
            while len(latest) > self.max_rows:
                del latest[next(iter(latest))]
            callbacks = list(self._callbacks)
            feeds = list(self._feeds)
        if dropped:
            self.dropped += dropped
            self._record_gap(reason="conflated", dropped=dropped)
        if accepted and (callbacks or feeds):
            self._deliver([self._reading(row) for row in accepted], callbacks, feeds)

    def _reading(self, row: Row) -> Reading:
        offset, when, topic, payload, error = row
        template = self._template
        columns = (template.extract(topic) or {}) if template is not None else {}
        return Reading(topic, when, payload, columns, offset, error)

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
                if self.state not in ("pending", "live"):
                    return  # a callback unsubscribed or closed the cable: stop here
                try:
                    callback(reading)
                except Exception:
                    log.exception("iotcable: callback %r failed on %s", callback, reading.topic)

    def _record_gap(
        self,
        *,
        reason: str,
        stream_id: str | None = None,
        epoch_changed: bool = False,
        after_offset: int | None = None,
        available_from: int | None = None,
        dropped: int = 0,
    ) -> None:
        gap = {
            "time": time.time(),
            "reason": reason,
            "stream_id": stream_id or self.meta.get("stream_id", self.channel),
            "epoch_changed": epoch_changed,
            "after_offset": after_offset,
            "available_from": available_from,
            "dropped": dropped,
        }
        with self._lock:
            self._gaps.append(gap)

    def _end(self, state: State, reason: str | None = None) -> None:
        """The subscription stopped (unsubscribed, rejected on resubscribe, cable closed)."""
        self.state = state
        self.reason = reason
        with self._lock:
            feeds = list(self._feeds)
            self._feeds.clear()
        for feed in feeds:
            feed.close()

    def _attach(self, feed: SyncFeed[Reading] | AsyncFeed[Reading]) -> None:
        with self._lock:
            if self.state in ("live", "pending"):
                self._feeds.add(feed)
                return
        feed.close()

    def _detach(self, feed: SyncFeed[Reading] | AsyncFeed[Reading]) -> None:
        with self._lock:
            self._feeds.discard(feed)

    def _attrs(self) -> dict[str, Any]:
        return {"gaps": self.gaps, "channel": self.channel, "topic": self.topic}


def _facts_table(title: str, facts: dict[str, str]) -> str:
    """A small HTML table for ``_repr_html_``; every value is escaped."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(key)}</th>"
        f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
        for key, value in facts.items()
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{rows}</table></div>"
