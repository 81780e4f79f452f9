"""Streams, offsets, history rings, fan-out and the slow-consumer policy (pure).

The hub sits between the bridge (MQTT messages in) and the websocket connections
(frames out) and does no I/O itself:

- every channel is one :class:`Stream` with an ``epoch`` (new per server start) and a
  monotonic ``offset``; a bounded ring keeps recent entries for ``history`` requests;
- :meth:`Hub.ingest` decodes a message once per channel format, appends it to every
  stream whose filters match, and pushes the entry into the :class:`Outbox` of every
  subscription that wants it, in stream order;
- an :class:`Outbox` is the bounded outgoing queue of one connection. The I/O layer
  drains it with :meth:`Outbox.take` and reports bytes handed to the socket with
  :meth:`Outbox.sent` / :meth:`Outbox.flushed`. When queued plus unflushed bytes pass
  the bound, the subscription's policy applies: ``conflate`` keeps the latest reading
  per topic and counts what it dropped, ``disconnect`` marks the outbox overflowed so
  that the I/O layer closes the connection with ``too_slow``. Memory per connection
  stays bounded whatever the client does.

Time is always an argument (``now``), so tests drive the clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .protocol import HistoryRequest, Row, StreamPosition
from .readings import Decoder, Reading
from .topics import TopicIndex, matches

#: Bytes counted per entry on top of topic and payload: the frame's fixed overhead.
ENTRY_OVERHEAD = 48


class Policy(StrEnum):
    """What happens to a subscription whose connection cannot keep up."""

    CONFLATE = "conflate"
    DISCONNECT = "disconnect"


@dataclass(frozen=True)
class ChannelSpec:
    """What the hub needs to know about a configured channel."""

    name: str
    filters: tuple[str, ...]
    decoder: Decoder
    history_limit: int = 1000
    history_ttl: float = 3600.0
    policy: Policy = Policy.CONFLATE


@dataclass(slots=True)
class Entry:
    """One reading in one stream, at its offset. ``size`` approximates its wire bytes."""

    offset: int
    reading: Reading
    size: int

    def row(self) -> Row:
        r = self.reading
        return (self.offset, r.time, r.topic, r.payload, r.error)


@dataclass(frozen=True)
class HistoryGap:
    """The asked range is (partly) gone: what the server answers with ``reject_history``."""

    reason: str
    available_from: int | None


class RateMeter:
    """Events per second over a sliding window of whole seconds (cheap, pure)."""

    def __init__(self, window: int = 10) -> None:
        self.window = window
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first

    def record(self, now: float, count: int = 1) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        self._expire(second)

    def rate(self, now: float) -> float:
        self._expire(int(now))
        return sum(c for _, c in self._buckets) / self.window

    def _expire(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self.window:
            self._buckets.popleft()


class Stream:
    """One channel's ordered readings: epoch, offsets, history ring, subscribers."""

    def __init__(self, spec: ChannelSpec, epoch: str, started_at: float = float("-inf")) -> None:
        self.spec = spec
        # Readings older than the epoch's start were never seen by this epoch: a `since`
        # before it cannot be fully answered (they may have gone with the old epoch).
        self.started_at = started_at
        self.name = spec.name
        self.epoch = epoch
        self.offset = 0  # the last offset handed out; the first entry gets 1
        self.ring: deque[Entry] = deque()
        self.ring_bytes = 0
        self.messages_in = 0
        self.evicted = 0
        # Newest reading time among evicted entries: a `since` request older than this
        # cannot be fully answered any more.
        self._evicted_until = float("-inf")
        self.meter = RateMeter()
        self._whole: set[Subscription] = set()
        self._narrow: TopicIndex[Subscription] = TopicIndex()

    # -- appending and trimming -------------------------------------------------------

    def append(self, reading: Reading, size: int, now: float) -> Entry:
        self.offset += 1
        entry = Entry(self.offset, reading, size)
        self.ring.append(entry)
        self.ring_bytes += size
        self.messages_in += 1
        self.meter.record(now)
        self.trim(now)
        return entry

    def trim(self, now: float) -> None:
        """Evict by count (``history_limit``) and by age (``history_ttl``)."""
        limit = self.spec.history_limit
        horizon = now - self.spec.history_ttl
        ring = self.ring
        while ring and (len(ring) > limit or ring[0].reading.received_at < horizon):
            old = ring.popleft()
            self.ring_bytes -= old.size
            self.evicted += 1
            self._evicted_until = max(self._evicted_until, old.reading.time)

    @property
    def oldest(self) -> int | None:
        return self.ring[0].offset if self.ring else None

    # -- history ----------------------------------------------------------------------

    def history(
        self, request: HistoryRequest, now: float, topic_filter: str | None = None
    ) -> list[Entry] | HistoryGap:
        """Entries after the client's position (or since a time), or the gap that stops us.

        Offsets mean "I have everything up to and including this offset". When part of
        the asked range was evicted, the whole request is rejected (AnyCable semantics):
        the client records the gap and asks again from ``available_from``.
        """
        self.trim(now)
        position = request.streams.get(self.name)
        if position is not None:
            entries = self._after_position(position)
        elif request.since is not None:
            entries = self._since(request.since)
        else:
            return HistoryGap("history needs `since` or a position for this stream", self.oldest)
        if isinstance(entries, HistoryGap) or topic_filter is None:
            return entries
        return [e for e in entries if matches(topic_filter, e.reading.topic)]

    def _after_position(self, position: StreamPosition) -> list[Entry] | HistoryGap:
        if position.epoch != self.epoch:
            return HistoryGap(
                f"epoch {position.epoch!r} of stream {self.name!r} is gone (the server "
                f"restarted); the stream continues in epoch {self.epoch!r}",
                self.oldest,
            )
        if position.offset > self.offset or position.offset < 0:
            return HistoryGap(
                f"offset {position.offset} is not in stream {self.name!r} "
                f"(last offset is {self.offset})",
                self.oldest,
            )
        if position.offset == self.offset:
            return []
        oldest = self.oldest
        if oldest is None or position.offset + 1 < oldest:
            return HistoryGap(
                f"readings {position.offset + 1}..{(oldest or self.offset + 1) - 1} of stream "
                f"{self.name!r} are no longer kept (history_limit {self.spec.history_limit}, "
                f"history_ttl {self.spec.history_ttl:g}s)",
                oldest,
            )
        # Offsets in the ring are contiguous, so the start index is arithmetic.
        start = position.offset + 1 - oldest
        return [self.ring[i] for i in range(start, len(self.ring))]

    def _since(self, since: float) -> list[Entry] | HistoryGap:
        if since < self.started_at:
            return HistoryGap(
                f"readings of stream {self.name!r} before {self.started_at:.3f}, when this "
                f"server started epoch {self.epoch!r}, are not kept",
                self.oldest,
            )
        if since <= self._evicted_until:
            return HistoryGap(
                f"readings of stream {self.name!r} since {since:.3f} are partly no longer "
                f"kept (history_limit {self.spec.history_limit}, "
                f"history_ttl {self.spec.history_ttl:g}s)",
                self.oldest,
            )
        return [e for e in self.ring if e.reading.time >= since]

    # -- subscribers ------------------------------------------------------------------

    def attach(self, sub: Subscription) -> None:
        if sub.topic_filter is None:
            self._whole.add(sub)
        else:
            self._narrow.add(sub.topic_filter, sub)

    def detach(self, sub: Subscription) -> None:
        if sub.topic_filter is None:
            self._whole.discard(sub)
        else:
            self._narrow.remove(sub.topic_filter, sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._whole) + len(self._narrow)

    def subscribers_for(self, topic: str) -> Iterable[Subscription]:
        if self._whole:
            yield from self._whole
        if len(self._narrow):
            yield from self._narrow.match(topic)


@dataclass(eq=False)
class Subscription:
    """One confirmed, readable subscription of one connection (hashed by identity)."""

    outbox: Outbox
    identifier: str
    stream: Stream
    topic_filter: str | None
    policy: Policy
    # A resumed subscription holds its live readings until the client's history request
    # arrives, so that missed readings are sent before newer ones (order is the contract).
    held: bool = False


@dataclass
class Pending:
    """What one subscription has queued: in order, or conflated by topic."""

    entries: list[Entry] = field(default_factory=list)
    latest: dict[str, Entry] | None = None  # set once conflation started
    dropped: int = 0

    def ordered(self) -> list[Entry]:
        if self.latest is None:
            return self.entries
        # dict order follows insertion, and a replaced topic is re-inserted: offset order.
        return list(self.latest.values())

    def __len__(self) -> int:
        return len(self.entries) if self.latest is None else len(self.latest)


@dataclass(frozen=True)
class Batch:
    """Entries for one subscription, ready to encode; ``dropped`` counts conflated ones."""

    sub: Subscription
    entries: list[Entry]
    dropped: int


class Outbox:
    """The bounded outgoing queue of one connection."""

    def __init__(self, max_bytes: int = 1 << 20, *, wake: Callable[[], None] | None = None) -> None:
        self.max_bytes = max_bytes
        self.wake = wake
        self.pending: dict[Subscription, Pending] = {}
        self.pending_bytes = 0
        self.pending_rows = 0
        self.in_flight = 0  # bytes written to the transport and not yet flushed
        self.overflowed = False  # a `disconnect`-policy subscription could not keep up
        self.dropped_total = 0

    @property
    def used(self) -> int:
        return self.pending_bytes + self.in_flight

    def push(self, sub: Subscription, entry: Entry) -> None:
        if self.overflowed:
            return
        was_empty = self.pending_rows == 0
        if self.used + entry.size > self.max_bytes:
            if sub.policy is Policy.DISCONNECT:
                self._overflow()
                return
            self._conflate(sub, entry)
        else:
            pending = self.pending.get(sub)
            if pending is None:
                pending = self.pending[sub] = Pending()
            if pending.latest is None:
                pending.entries.append(entry)
            else:
                self._replace(pending, entry)
            self.pending_bytes += entry.size
            self.pending_rows += 1
        if was_empty and self.wake is not None:
            self.wake()

    def _replace(self, pending: Pending, entry: Entry) -> None:
        assert pending.latest is not None
        old = pending.latest.pop(entry.reading.topic, None)
        if old is not None:
            pending.dropped += 1
            self.dropped_total += 1
            self.pending_bytes -= old.size
            self.pending_rows -= 1
        pending.latest[entry.reading.topic] = entry

    def _conflate(self, sub: Subscription, entry: Entry) -> None:
        pending = self.pending.get(sub)
        if pending is None:
            pending = self.pending[sub] = Pending()
        if pending.latest is None:
            # Switch to keeping the latest reading per topic; older ones count as dropped.
            latest: dict[str, Entry] = {}
            for e in pending.entries:
                if e.reading.topic in latest:
                    old = latest.pop(e.reading.topic)
                    pending.dropped += 1
                    self.dropped_total += 1
                    self.pending_bytes -= old.size
                    self.pending_rows -= 1
                latest[e.reading.topic] = e
            pending.entries = []
            pending.latest = latest
        self._replace(pending, entry)
        self.pending_bytes += entry.size
        self.pending_rows += 1
        # Many distinct topics can still exceed the bound: drop the oldest ones.
        while self.used > self.max_bytes and len(pending.latest) > 1:
            topic = next(iter(pending.latest))
            old = pending.latest.pop(topic)
            pending.dropped += 1
            self.dropped_total += 1
            self.pending_bytes -= old.size
            self.pending_rows -= 1

    def _overflow(self) -> None:
        self.overflowed = True
        self.pending.clear()
        self.pending_bytes = 0
        self.pending_rows = 0
        if self.wake is not None:
            self.wake()

    def take(self) -> list[Batch]:
        """Everything queued (but held subscriptions), per subscription in stream order."""
        batches = []
        for sub in [s for s in self.pending if not s.held]:
            pending = self.pending[sub]
            entries = self.remove(sub)
            if entries:
                batches.append(Batch(sub, entries, pending.dropped))
        return batches

    def remove(self, sub: Subscription) -> list[Entry]:
        """Take one subscription's queued entries out (in order) and return them."""
        pending = self.pending.pop(sub, None)
        if pending is None:
            return []
        entries = pending.ordered()
        self.pending_bytes -= sum(e.size for e in entries)
        self.pending_rows -= len(entries)
        return entries

    def sent(self, nbytes: int) -> None:
        self.in_flight += nbytes

    def flushed(self, nbytes: int) -> None:
        self.in_flight = max(0, self.in_flight - nbytes)


class Hub:
    """All streams of one server run, and the routing of readings to subscriptions."""

    def __init__(
        self, channels: Sequence[ChannelSpec], epoch: str, started_at: float = float("-inf")
    ) -> None:
        self.epoch = epoch
        self.streams: dict[str, Stream] = {c.name: Stream(c, epoch, started_at) for c in channels}
        self._routes: TopicIndex[Stream] = TopicIndex()
        for stream in self.streams.values():
            for f in stream.spec.filters:
                self._routes.add(f, stream)
        self.messages_in = 0
        self.unrouted = 0

    @property
    def filters(self) -> list[str]:
        """Every filter the bridge must subscribe to (deduplicated, in config order)."""
        seen: dict[str, None] = {}
        for stream in self.streams.values():
            for f in stream.spec.filters:
                seen.setdefault(f, None)
        return list(seen)

    def ingest(self, topic: str, payload: bytes, received_at: float, now: float) -> list[Stream]:
        """Route one MQTT message to its streams and subscribers; returns the streams."""
        self.messages_in += 1
        matched = self._routes.match(topic)
        if not matched:
            self.unrouted += 1
            return []
        # Name order, so that a topic in two channels is handled deterministically.
        streams = sorted(matched, key=lambda s: s.name)
        decoded: dict[Decoder, Reading] = {}
        size = len(topic) + len(payload) + ENTRY_OVERHEAD
        for stream in streams:
            decoder = stream.spec.decoder
            reading = decoded.get(decoder)
            if reading is None:
                reading = decoded[decoder] = decoder.decode(topic, payload, received_at)
            entry = stream.append(reading, size, now)
            for sub in stream.subscribers_for(topic):
                sub.outbox.push(sub, entry)
        return streams

    def subscribe(
        self,
        outbox: Outbox,
        identifier: str,
        channel: str,
        topic_filter: str | None,
        policy: Policy | None = None,
    ) -> Subscription:
        stream = self.streams[channel]
        sub = Subscription(outbox, identifier, stream, topic_filter, policy or stream.spec.policy)
        stream.attach(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.stream.detach(sub)
        sub.outbox.remove(sub)

    def trim(self, now: float) -> None:
        """Age out history even when a stream is quiet (called on a timer)."""
        for stream in self.streams.values():
            stream.trim(now)
