"""``Subscription``: one channel (optionally narrowed to a topic filter) streaming into pandas.

Readings arrive on the cable's background thread into the subscription's ``Inbox`` (a
bounded columnar buffer, the latest reading per topic, gaps, the arrival rate); ``frame``
builds a DataFrame from it on read. The same readings are handed to callbacks (``on``),
blocking iterators (``readings()``) and ``async for`` loops. Everything a user calls here
is safe from any thread.
"""

from __future__ import annotations

import asyncio
import html
from typing import TYPE_CHECKING, Any, Protocol

from .buffer import ReadingBuffer
from .errors import IoTCableError
from .feeds import AsyncFeed, SyncFeed
from .inbox import Inbox, Reading, State
from .names import UnknownName

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from datetime import datetime, timedelta
    from types import TracebackType

    from ..frames import Frame
    from .gaps import Gap

__all__ = ["QUIET_AFTER", "Reading", "Subscription", "SubscriptionControl"]

USER_ERRORS = (IoTCableError, ValueError, TypeError)
"""What a public method re-raises from itself, without our frames (as the cable does)."""

QUIET_AFTER = 10.0
"""Seconds without a new reading after which ``status`` says the subscription is quiet."""


class SubscriptionControl(Protocol):
    """What a subscription asks of its cable (``Cable`` gives one to each subscription)."""

    @property
    def url(self) -> str: ...

    @property
    def cable_state(self) -> str: ...

    def unsubscribe(self, inbox: Inbox) -> None: ...

    def history(
        self, inbox: Inbox, since: str | timedelta | datetime | float, timeout: float
    ) -> None: ...


class Subscription:
    """A live subscription; create it with ``Cable.subscribe``.

    ``window`` bounds the frame in time, measured back from the newest reading (not the
    wall clock: a sensor that went quiet keeps its last window of data); ``max_rows``
    bounds it in rows. The oldest readings are evicted as new ones arrive.
    """

    def __init__(self, inbox: Inbox, control: SubscriptionControl) -> None:
        self._inbox = inbox
        self._control = control

    # -- what it is --------------------------------------------------------------------------

    @property
    def channel(self) -> str:
        return self._inbox.channel

    @property
    def topic(self) -> str | None:
        """The MQTT filter narrowing the channel (``None``: the whole channel)."""
        return self._inbox.topic

    @property
    def identifier(self) -> str:
        """The identifier on the wire (empty until subscribed)."""
        return self._inbox.identifier

    @property
    def max_rows(self) -> int:
        return self._inbox.max_rows

    @property
    def window(self) -> float | None:
        """Seconds of readings the frame keeps (``None``: bounded by rows only)."""
        return self._inbox.window

    @property
    def meta(self) -> dict[str, Any]:
        """What the server said about the channel when it confirmed (columns, format, ...)."""
        return dict(self._inbox.meta)

    @property
    def state(self) -> State:
        """``pending``, ``live``, ``rejected``, ``unsubscribed`` or ``closed``."""
        return self._inbox.state

    @property
    def reason(self) -> str | None:
        """Why it was rejected or closed."""
        return self._inbox.reason

    @property
    def cable_state(self) -> str:
        """The cable's state: ``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        return self._control.cable_state

    @property
    def received(self) -> int:
        """Readings received so far (history backfills included)."""
        return self._inbox.received

    @property
    def dropped(self) -> int:
        """Readings the server conflated away because this client read too slowly."""
        return self._inbox.dropped

    # -- reading the data -------------------------------------------------------------------

    @property
    def frame(self) -> Frame:
        """The buffered readings as a time-indexed DataFrame (built now, from a snapshot).

        The index ``time`` is the reading's time (the payload's own when the channel names
        a ``time_field``; that field is then not repeated as a column). Columns: ``topic``,
        the topic levels of the channel's template, the payload's fields (objects
        flattened, nested keys as ``a.b``; other payloads in ``value``; a field named like
        a frame column, e.g. ``time``, as ``payload.time``), and ``error`` while a payload
        that failed to decode is in the frame. Integer fields are ``Int64``, other numbers
        ``float64``, text ``str``, booleans ``boolean``; a field no row in the frame has
        is not a column. ``frame.attrs["gaps"]`` lists the gaps (see ``gaps``).
        """
        from ..frames import build_frame

        inbox = self._inbox
        return build_frame(
            inbox.buffer.snapshot(),
            template=inbox.template,
            time_field=inbox.time_field,
            attrs=self._attrs(),
        )

    @property
    def latest(self) -> Frame:
        """The last reading of each topic, one row per topic (index ``topic``, sorted).

        A DataFrame with the same columns as ``frame`` plus ``time``, so that
        ``sub.latest.loc["plant/lyon/pump3/env", "temperature"]`` works and it displays
        well in a notebook. It remembers up to ``max_rows`` topics, the most recent ones,
        even after their readings left the frame's window.
        """
        from ..frames import build_frame

        inbox = self._inbox
        rows = sorted(inbox.latest_rows(), key=lambda row: row[1])
        buffer = ReadingBuffer(max_rows=max(1, len(rows)))
        buffer.extend(rows)
        frame = build_frame(
            buffer.snapshot(),
            template=inbox.template,
            time_field=inbox.time_field,
            attrs=self._attrs(),
        )
        return frame.reset_index().set_index("topic").sort_index()

    @property
    def gaps(self) -> list[Gap]:
        """Readings the server said this subscription missed, oldest first (``Gap``).

        Each says when (``start``, ``end``), why (``cause``, ``reason`` in words) and, when
        known, how many readings (``readings``); ``print(gap)`` prints its reason.
        """
        return self._inbox.gaps.gaps()

    @property
    def rate(self) -> float:
        """Readings that arrived per second over the last ten seconds.

        Live arrivals only: readings of a history backfill (or of the catch-up after a
        reconnect) are not arrivals, so they never inflate it.
        """
        return self._inbox.rate.rate()

    @property
    def status(self) -> str:
        """One line on how the subscription is doing, e.g. ``live, 4.0 readings/s``, or why
        nothing arrives (a filter that matches no topic the server has seen, a quiet
        device, a reconnecting cable)."""
        inbox = self._inbox
        state = inbox.state
        if state == "pending":
            return "subscribing: waiting for the server to confirm"
        if state == "rejected":
            return f"rejected: {inbox.reason}"
        if state == "unsubscribed":
            return "unsubscribed: the frame keeps the readings it has"
        if state == "closed":
            return "closed" + (f": {inbox.reason}" if inbox.reason else " (the cable is closed)")
        if self._control.cable_state == "reconnecting":
            return "reconnecting: readings missed meanwhile are fetched once the cable is back"
        now = inbox.clock()
        last = inbox.last_arrival
        since = inbox.live_since if last is None else last
        if since is not None and now - since >= QUIET_AFTER:
            return self._quiet(now - since, last is None)
        return f"live, {self.rate:,.1f} readings/s"

    def _quiet(self, seconds: float, never: bool) -> str:
        inbox = self._inbox
        quiet = f"no new reading for {_duration(seconds)}"
        if not never:
            return f"live, but {quiet}"
        topics = inbox.meta.get("topics")
        if isinstance(topics, dict) and topics.get("matching") == 0 and inbox.topic is not None:
            seen = topics.get("seen")
            examples = [e for e in topics.get("examples") or () if isinstance(e, str)]
            if isinstance(seen, int) and seen > 0:
                shown = f", e.g. {', '.join(examples[:3])}" if examples else ""
                topics = f"{seen:,} topic{'s' if seen != 1 else ''}"
                return (
                    f"live, but {quiet}: {inbox.topic!r} matches none of the {topics} "
                    f"the server has seen recently on {inbox.channel!r}{shown}"
                )
            return f"live, but {quiet}: the server has seen no topic on {inbox.channel!r} recently"
        return f"live, but {quiet} since subscribing"

    @property
    def fields(self) -> list[str]:
        """The payload fields in the frame now, as its column names (``temperature``, ...)."""
        frame = self.frame
        fixed = {"topic", "error", *(self._inbox.template.names if self._inbox.template else ())}
        return [str(column) for column in frame.columns if column not in fixed]

    def check_fields(self, *names: str, numeric: bool = False) -> None:
        """Raise ``UnknownName`` (with "did you mean" and the fields there are) for a name
        that is not a field of the frame; with ``numeric``, also for one that holds no
        numbers. For code that takes field names from a user (``sub.live(y=...)``)."""
        from ..frames import numeric_columns

        frame = self.frame
        fields = self.fields
        numbers = [name for name in numeric_columns(frame) if name in fields]
        choices = numbers if numeric else fields
        what, plural = ("numeric field", "numeric fields") if numeric else ("field", "fields")
        for name in names:
            if name not in choices:
                error = UnknownName(what, name, choices, f"{plural} of {self.channel!r} now")
                raise error from None

    def __len__(self) -> int:
        return len(self._inbox.buffer)

    def history(
        self, since: str | timedelta | datetime | float, *, timeout: float = 30.0
    ) -> Subscription:
        """Backfill from the server's history: ``"1h"``, a timedelta, a datetime or unix seconds.

        Blocks until the server has answered. What the server no longer keeps is recorded
        in ``gaps`` (it is never silently missing); readings already here are not added
        twice. The frame's bounds still apply. Returns the subscription, so
        ``sub.history("1h").frame`` works.
        """
        try:
            self._control.history(self._inbox, since, timeout)
        except USER_ERRORS as error:
            raise error.with_traceback(None) from None
        return self

    def readings(self, timeout: float | None = None) -> Iterator[Reading]:
        """Iterate over readings as they arrive, from now on (blocking).

        Stops when ``timeout`` seconds pass without a reading (``None``: wait forever),
        or when the subscription or cable ends.
        """
        feed: SyncFeed[Reading] = SyncFeed(self.max_rows)
        self._inbox.attach(feed)
        return self._drain(feed, timeout)

    def _drain(self, feed: SyncFeed[Reading], timeout: float | None) -> Iterator[Reading]:
        try:
            while (reading := feed.get(timeout)) is not None:
                yield reading
        finally:
            self._inbox.detach(feed)

    def __aiter__(self) -> AsyncIterator[Reading]:
        """``async for reading in sub``: readings from now on, on the caller's event loop."""
        feed: AsyncFeed[Reading] = AsyncFeed(asyncio.get_running_loop(), self.max_rows)
        self._inbox.attach(feed)
        return self._adrain(feed)

    async def _adrain(self, feed: AsyncFeed[Reading]) -> AsyncIterator[Reading]:
        try:
            while (reading := await feed.get()) is not None:
                yield reading
        finally:
            self._inbox.detach(feed)

    def on(self, callback: Callable[[Reading], object]) -> Callable[[Reading], object]:
        """Call ``callback(reading)`` for each new reading; usable as a decorator.

        Callbacks run on the cable's background thread, so they must be quick and
        thread-safe; an exception in one is logged and does not stop the stream.
        """
        self._inbox.add_callback(callback)
        return callback

    def off(self, callback: Callable[[Reading], object]) -> None:
        """Stop calling ``callback``."""
        self._inbox.remove_callback(callback)

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
        self._control.unsubscribe(self._inbox)

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
        gaps = len(self._inbox.gaps)
        facts = {
            "channel": self.channel,
            "topic": self.topic or "(whole channel)",
            "status": self.status,
            "rows": f"{len(self):,} (max {self.max_rows:,})",
            "window": "none" if self.window is None else _duration(self.window),
            "rate": f"{self.rate:,.1f} readings/s",
            "gaps": f"{gaps:,}",
            "server": self._control.url,
        }
        if self.dropped:
            facts["dropped"] = f"{self.dropped:,} (conflated by the server)"
        return facts

    def __repr__(self) -> str:
        gaps = len(self._inbox.gaps)
        plural = "s" if gaps != 1 else ""
        return (
            f"<Subscription {self.describe()}: {self.status}, {len(self):,} rows"
            + (f", {gaps:,} gap{plural}" if gaps else "")
            + ">"
        )

    def describe(self) -> str:
        """``'telemetry' plant/lyon/+/env``: the channel and its filter, to tell
        subscriptions apart."""
        return f"{self.channel!r} " + (self.topic if self.topic is not None else "(all topics)")

    def _repr_html_(self) -> str:
        return facts_table("Subscription", self._describe())

    def _attrs(self) -> dict[str, Any]:
        return {"gaps": self.gaps, "channel": self.channel, "topic": self.topic}


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 5 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def facts_table(title: str, facts: dict[str, str], extra: str = "") -> str:
    """A small HTML table for ``_repr_html_``; every value is escaped."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(key)}</th>"
        f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
        for key, value in facts.items()
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{rows}</table>{extra}</div>"
