"""Streams, offsets, history rings, fan-out and the slow-consumer policy (pure).

The hub sits between the bridge (MQTT messages in) and the websocket connections
(frames out) and does no I/O itself:

- every channel is one :class:`Stream` with an ``epoch`` (new per server start) and a
  monotonic ``offset``; a bounded ring keeps recent entries for ``history`` requests;
- a stream whose continuity is lost (the bridge came back without its broker session:
  what was published meanwhile is gone) starts a new epoch, as AnyCable does, and its
  offsets go on: :meth:`Stream.lose_continuity`. Every frame holds rows of one epoch, so
  every client sees the change between the last reading before the outage and the first
  after, live and in history answers, and reports it as a gap;
- :meth:`Hub.ingest` decodes a message once per channel format and encodes its payload
  as JSON once (the :class:`Entry` keeps the JSON, not the decoded value), appends it to
  every stream whose filters match, and pushes the entry into the :class:`Outbox` of every
  subscriber that wants it, in stream order;
- :meth:`Stream.frames` assembles a subscriber's frames from the encoded entries and
  shares them: subscribers with the same identifier, frame shape and run of rows get the
  same bytes (encode once, write many);
- an :class:`Outbox` is the bounded outgoing queue of one connection. The I/O layer
  drains it with :meth:`Outbox.take` and reports bytes handed to the socket with
  :meth:`Outbox.sent` / :meth:`Outbox.flushed`. When queued plus unflushed bytes pass
  the bound, the subscription's policy applies: ``conflate`` keeps the latest reading
  per topic and counts what it dropped, ``disconnect`` marks the outbox overflowed so
  that the I/O layer closes the connection with ``too_slow``. Memory per connection
  stays bounded whatever the client does. A subscription's bytes are what its frames
  really carry: its identifier is repeated in every frame (UTF-8 bytes are counted);
- a history answer is a :class:`Replay`: a cursor over the ring that the I/O layer reads
  in chunks as the socket drains, so an answer costs no memory while the client does
  not read. A subscription is never sent a row twice: live rows go out in offset order,
  and a history answer skips what was sent (older rows it has are a backfill).

Time is always an argument (``now``), so tests drive the clock.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice

from .protocol import HistoryRequest, Row, StreamPosition
from .protocol.limits import DEFAULT_MAX_READING_BYTES, FRAME_RESERVE, MAX_FRAME_BYTES
from .protocol.rows import (
    JsonBytes,
    batch_frame,
    batch_row,
    data_body,
    data_frame,
    encode_payload,
    json_bytes,
    with_dropped,
)
from .readings import Decoder, Reading
from .topics import TopicIndex, TopicTemplate, matches

#: Bytes counted per entry on top of topic and payload: a row's offset, time, quotes,
#: brackets and commas in a batch frame.
ENTRY_OVERHEAD = 48

#: Bytes of a frame's own members besides the identifier, ``stream_id`` and ``epoch``
#: values: their keys and braces, ``dropped``, and the per-row keys of a data frame
#: (``message``, ``topic``, ``time``, ``payload``, ``columns``, ``offset``). Checked against
#: encoded frames in tests/core/test_hub.py.
FRAME_OVERHEAD = 160

#: Entries a history replay looks at per chunk, at most, for each row it may return: a
#: narrow topic filter over a long ring must not hold the event loop.
SCAN_FACTOR = 8

#: Frames a stream keeps for sharing among subscribers (cleared when full, by count or by
#: bytes); topics whose JSON the hub keeps (one copy per topic, shared by its entries;
#: cleared when full, by count or by bytes: a device may send long topics).
SHARED_FRAMES = 256
SHARED_FRAME_BYTES = 8 << 20
KNOWN_TOPICS = 10_000
KNOWN_TOPIC_BYTES = 8 << 20

#: Rows of one batch frame, in bytes (``Entry.size``), at most: with the frame's own
#: members it stays within the frame cap every client accepts. A frame holds one row at
#: least, and one row always fits (``max_reading_bytes`` <= ``MAX_READING_BYTES``).
FRAME_ROWS_BYTES = MAX_FRAME_BYTES - FRAME_RESERVE

#: Memory an entry of the history ring costs besides its payload's and error's bytes: the
#: Entry object, its floats and offset, the bytes object's header and the ring's slot
#: (topics are shared). Checked against tracemalloc in tests/core/test_history_bytes.py.
ENTRY_MEMORY = 256

#: History bytes per channel, and for the whole server, unless configured.
DEFAULT_HISTORY_BYTES = 64 << 20
DEFAULT_SERVER_HISTORY_BYTES = 256 << 20


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (cheap for ASCII, the common case)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _oversize(
    topic: str, received_at: float, size: int, limit: int, how: str, time: float | None = None
) -> tuple[Reading, bytes, str]:
    """A reading over ``max_reading_bytes``: kept flagged, with its size, without payload."""
    error = (
        f"payload of {size:,} bytes{how} is larger than the channel's max_reading_bytes "
        f"({limit:,}); the reading is kept without it"
    )
    at = received_at if time is None else time
    return Reading(topic, at, None, received_at, error), b"null", error


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
    # Topic levels -> the ``columns`` of data frames (batch frames leave them to clients).
    columns: TopicTemplate | None = None
    # A larger payload (raw, or as the JSON it would be sent as) is kept as a flagged
    # reading without it; the history ring keeps at most ``history_bytes`` of memory.
    max_reading_bytes: int = DEFAULT_MAX_READING_BYTES
    history_bytes: int = DEFAULT_HISTORY_BYTES

    def retention(self) -> str:
        """What bounds this channel's history, for gap messages."""
        return (
            f"history_limit {self.history_limit}, history_ttl {self.history_ttl:g}s, "
            f"history_bytes {self.history_bytes:,}"
        )


@dataclass(slots=True, eq=False)
class Entry:
    """One reading in one stream, at its offset, as it goes on the wire.

    The payload is kept as its JSON (``payload``), encoded once when the reading came:
    what history costs in memory is about what it sends, and every frame is assembled
    from these bytes. ``size`` approximates the reading's bytes in a frame, ``memory``
    what the entry costs in the history ring (``ENTRY_MEMORY`` besides its bytes).
    """

    offset: int
    topic: str
    topic_json: bytes
    time: float
    received_at: float
    payload: bytes
    error: str | None
    size: int
    memory: int = 0

    def batch_row(self) -> bytes:
        """This entry as a row of a ``batch`` frame."""
        error = None if self.error is None else json_bytes(self.error)
        return batch_row(self.offset, self.time, self.topic_json, self.payload, error)

    def row(self) -> Row:
        """The decoded row (for tests and tools; the server sends the bytes)."""
        return (self.offset, self.time, self.topic, json.loads(self.payload), self.error)


@dataclass(frozen=True)
class HistoryGap:
    """The asked range is (partly) gone: what the server answers with ``reject_history``."""

    reason: str
    available_from: int | None

    def and_then(self, later: HistoryGap) -> HistoryGap:
        """Both gaps in one report; the client may ask again from the later position."""
        starts = [a for a in (self.available_from, later.available_from) if a is not None]
        return HistoryGap(f"{self.reason}; {later.reason}", max(starts) if starts else None)


CONTINUITY_KEPT = 100
"""Continuity gaps a stream remembers for its status (the newest ones)."""


@dataclass(slots=True)
class ContinuityGap:
    """Readings a stream lost upstream: from ``start`` (its last reading before the outage,
    ``None`` when it had none) to ``end`` (its first reading after; ``None`` until one
    came). The stream went on in ``epoch`` after offset ``after_offset``."""

    epoch: str
    after_offset: int
    start: float | None
    end: float | None
    detail: str
    reported_at: float

    def public(self) -> dict[str, object]:
        return {
            "epoch": self.epoch,
            "after_offset": self.after_offset,
            "start": self.start,
            "end": self.end,
            "detail": self.detail,
            "reported_at": self.reported_at,
        }


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


class HistoryBudget:
    """The server-wide bound on history memory, shared by every stream of a hub."""

    def __init__(self, max_bytes: int = DEFAULT_SERVER_HISTORY_BYTES) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.evicted = 0  # entries evicted to keep the server within max_bytes

    @property
    def over(self) -> bool:
        return self.used > self.max_bytes


class Stream:
    """One channel's ordered readings: epoch, offsets, history ring, subscribers."""

    def __init__(
        self,
        spec: ChannelSpec,
        epoch: str,
        started_at: float = float("-inf"),
        budget: HistoryBudget | None = None,
    ) -> None:
        self.spec = spec
        self.budget = budget if budget is not None else HistoryBudget(1 << 62)
        # Readings older than the epoch's start were never seen by this epoch: a `since`
        # before it cannot be fully answered (they may have gone with the old epoch).
        self.started_at = started_at
        self.name = spec.name
        self.epoch = epoch
        self.offset = 0  # the last offset handed out; the first entry gets 1
        self.ring: deque[Entry] = deque()
        self.ring_bytes = 0  # what the kept entries would take in frames
        self.ring_memory = 0  # what they take in memory (Entry.memory)
        self.messages_in = 0
        self.evicted = 0
        self.oversize = 0  # readings kept without their payload: over max_reading_bytes
        self.flagged = 0  # readings with an error (oversize included)
        # Newest reading time among evicted entries: a `since` request older than this
        # cannot be fully answered any more.
        self._evicted_until = float("-inf")
        self.meter = RateMeter()
        self._whole: set[Subscriber] = set()
        self._narrow: TopicIndex[Subscriber] = TopicIndex()
        self.json = json_bytes(self.name)
        self.epoch_json = json_bytes(epoch)
        # The epochs whose rows the ring may hold, oldest first: (first offset, epoch, its
        # JSON). One until the stream loses continuity; older ones go once evicted.
        self.run = epoch
        self._epochs: list[tuple[int, str, bytes]] = [(1, epoch, self.epoch_json)]
        self.continuity: deque[ContinuityGap] = deque(maxlen=CONTINUITY_KEPT)
        self.continuity_gaps = 0
        self._open_gap: ContinuityGap | None = None
        self._epoch_count = 1
        self._frames: dict[tuple[bool, str, int, int, int], bytes] = {}
        self._frames_bytes = 0
        self.frames_built = 0
        self.frames_shared = 0

    # -- appending and trimming -------------------------------------------------------

    def append(
        self,
        reading: Reading,
        topic_json: bytes,
        payload: bytes,
        error: str | None,
        size: int,
        now: float,
    ) -> Entry:
        self.offset += 1
        memory = ENTRY_MEMORY + len(payload) + (0 if error is None else utf8_len(error))
        entry = Entry(
            self.offset,
            reading.topic,
            topic_json,
            reading.time,
            reading.received_at,
            payload,
            error,
            size,
            memory,
        )
        self.ring.append(entry)
        self.ring_bytes += size
        self.ring_memory += memory
        self.budget.used += memory
        self.messages_in += 1
        if error is not None:
            self.flagged += 1
        if self._open_gap is not None:
            self._open_gap.end = reading.time
            self._open_gap = None
        self.meter.record(now)
        self.trim(now)
        return entry

    # -- continuity -------------------------------------------------------------------

    def lose_continuity(self, detail: str, now: float) -> ContinuityGap | None:
        """Readings were lost upstream since the last one: go on in a new epoch.

        Offsets go on (the ring stays one sequence); the new epoch starts at the next
        offset. Returns the gap opened, or ``None`` when the one opened before has no
        reading after it yet (two outages in a row are one gap).
        """
        self._epoch_count += 1
        epoch = f"{self.run}.{self._epoch_count}"
        epoch_json = json_bytes(epoch)
        first = self.offset + 1
        if self._epochs[-1][0] == first and len(self._epochs) > 1:
            self._epochs[-1] = (first, epoch, epoch_json)  # the last one holds no row
        else:
            self._epochs.append((first, epoch, epoch_json))
        self.epoch, self.epoch_json = epoch, epoch_json
        gap = self._open_gap
        if gap is not None:
            gap.epoch = epoch
            gap.detail = detail
            return None
        start = self.ring[-1].time if self.ring else None
        gap = self._open_gap = ContinuityGap(epoch, self.offset, start, None, detail, now)
        self.continuity.append(gap)
        self.continuity_gaps += 1
        return gap

    def epoch_of(self, offset: int) -> tuple[str, bytes]:
        """The epoch of the row at ``offset`` (and its JSON)."""
        epochs = self._epochs
        if len(epochs) == 1 or offset >= epochs[-1][0]:
            return epochs[-1][1], epochs[-1][2]
        at = bisect_right(epochs, offset, key=lambda e: e[0]) - 1
        _, epoch, epoch_json = epochs[max(at, 0)]
        return epoch, epoch_json

    def _epoch_span(self, epoch: str) -> tuple[int, int] | None:
        """First and last offset of an epoch whose rows the ring may still hold."""
        epochs = self._epochs
        for i, (first, name, _) in enumerate(epochs):
            if name == epoch:
                last = epochs[i + 1][0] - 1 if i + 1 < len(epochs) else self.offset
                return first, last
        return None

    def _epoch_runs(self, entries: Sequence[Entry]) -> Iterable[tuple[bytes, Sequence[Entry]]]:
        """``entries`` (offsets increasing) in runs of one epoch each, with its JSON."""
        epochs = self._epochs
        if len(epochs) == 1 or entries[0].offset >= epochs[-1][0]:
            yield epochs[-1][2], entries
            return
        start = 0
        while start < len(entries):
            _, epoch_json = self.epoch_of(entries[start].offset)
            end = start + 1
            while end < len(entries) and self.epoch_of(entries[end].offset)[1] == epoch_json:
                end += 1
            yield epoch_json, entries[start:end]
            start = end

    def trim(self, now: float) -> None:
        """Evict by count (``history_limit``), age (``history_ttl``) and memory
        (``history_bytes``); the newest entry stays whatever its size."""
        spec = self.spec
        limit = spec.history_limit
        horizon = now - spec.history_ttl
        max_memory = spec.history_bytes
        ring = self.ring
        while ring and (
            len(ring) > limit
            or ring[0].received_at < horizon
            or (self.ring_memory > max_memory and len(ring) > 1)
        ):
            self.evict_oldest()
        epochs = self._epochs
        while len(epochs) > 1 and epochs[1][0] <= self.kept_from:
            del epochs[0]  # no row of it is kept any more

    def evict_oldest(self) -> None:
        """Drop the oldest entry kept (it becomes part of any gap reported later)."""
        old = self.ring.popleft()
        self.ring_bytes -= old.size
        self.ring_memory -= old.memory
        self.budget.used -= old.memory
        self.evicted += 1
        self._evicted_until = max(self._evicted_until, old.time)

    @property
    def oldest(self) -> int | None:
        return self.ring[0].offset if self.ring else None

    def recent_topics(self) -> list[str]:
        """The distinct topics of the readings the history ring holds, oldest first.

        Computed when asked (a subscribe), so the ingest path pays nothing for it.
        """
        return list(dict.fromkeys(entry.topic for entry in self.ring))

    # -- history ----------------------------------------------------------------------

    def history(
        self, request: HistoryRequest, now: float, topic_filter: str | None = None
    ) -> list[Entry] | HistoryGap:
        """Entries after the client's position (or since a time), or the gap that stops us.

        Offsets mean "I have everything up to and including this offset". When part of
        the asked range was evicted, the whole request is rejected (AnyCable semantics):
        the client records the gap and asks again from ``available_from``.
        """
        replay = self.plan(request, now, topic_filter)
        if replay.gap is not None:
            return replay.gap
        return replay.drain()

    def plan(self, request: HistoryRequest, now: float, topic_filter: str | None = None) -> Replay:
        """The answer to a history request: the rows to send, then the gap if any.

        The rows are what is still kept after the client's position: after its offset,
        from the oldest kept entry when part of the range is gone or the epoch differs,
        nothing when the position is ahead of the stream or the request names neither a
        position in this stream nor ``since``.
        """
        self.trim(now)
        position = request.streams.get(self.name)
        if position is not None:
            return self._plan_position(position, topic_filter)
        if request.since is not None:
            return self._plan_since(request.since, topic_filter)
        gap = HistoryGap("history needs `since` or a position for this stream", self.oldest)
        return self._replay(self.offset + 1, topic_filter, gap, replaces_queued=False)

    def _replay(
        self,
        first: int,
        topic_filter: str | None,
        gap: HistoryGap | None = None,
        *,
        since: float | None = None,
        replaces_queued: bool = True,
    ) -> Replay:
        return Replay(self, first, self.offset, topic_filter, since, gap, replaces_queued)

    @property
    def kept_from(self) -> int:
        """The oldest offset kept, or the next one when nothing is."""
        oldest = self.oldest
        return oldest if oldest is not None else self.offset + 1

    def _plan_position(self, position: StreamPosition, topic_filter: str | None) -> Replay:
        span = self._epoch_span(position.epoch)
        if span is not None and position.offset <= span[1]:
            # This epoch or an older one of this run whose rows the ring may hold: the rows
            # after the position follow (offsets go on across epochs, and a frame holds
            # rows of one epoch: the change shows). An offset below the epoch's first
            # (-1: nothing of it) means the epoch's first row on.
            position = StreamPosition(self.epoch, max(position.offset, span[0] - 1))
        elif span is None and self._same_run(position.epoch):
            gap = HistoryGap(
                f"epoch {position.epoch!r} of stream {self.name!r} is no longer kept: the "
                "stream lost continuity since (the server's MQTT bridge came back without "
                f"its broker session) and continues in epoch {self.epoch!r}",
                self.oldest,
            )
            return self._replay(self.kept_from, topic_filter, gap)
        if position.epoch != self.epoch:
            # Everything this epoch still keeps is after the client's position.
            gap = HistoryGap(
                f"epoch {position.epoch!r} of stream {self.name!r} is gone (the server "
                f"restarted); the stream continues in epoch {self.epoch!r}",
                self.oldest,
            )
            return self._replay(self.kept_from, topic_filter, gap)
        if position.offset > self.offset:
            gap = HistoryGap(
                f"offset {position.offset} is not in stream {self.name!r} "
                f"(last offset is {self.offset})",
                self.oldest,
            )
            return self._replay(self.offset + 1, topic_filter, gap, replaces_queued=False)
        # Offsets start at 1: holding "up to 0" or "-1" both mean nothing of this epoch.
        first = max(position.offset, 0) + 1
        kept_from = self.kept_from
        if first >= kept_from or first > self.offset:
            return self._replay(first, topic_filter)
        gap = HistoryGap(
            f"readings {first}..{kept_from - 1} of stream {self.name!r} are no longer kept "
            f"({self.spec.retention()})",
            self.oldest,
        )
        return self._replay(kept_from, topic_filter, gap)

    def _same_run(self, epoch: str) -> bool:
        return epoch == self.run or epoch.startswith(self.run + ".")

    def _plan_since(self, since: float, topic_filter: str | None) -> Replay:
        gap = self._lost_at(since)
        if gap is None and since < self.started_at:
            gap = HistoryGap(
                f"readings of stream {self.name!r} before {self.started_at:.3f}, when this "
                f"server started epoch {self.epoch!r}, are not kept",
                self.oldest,
            )
        elif gap is None and since <= self._evicted_until:
            gap = HistoryGap(
                f"readings of stream {self.name!r} since {since:.3f} are partly no longer "
                f"kept ({self.spec.retention()})",
                self.oldest,
            )
        return self._replay(self.kept_from, topic_filter, gap, since=since)

    def _lost_at(self, since: float) -> HistoryGap | None:
        """The gap a ``since`` request starts in: between the last reading before an
        outage that lost readings and the first after. (A ``since`` before such a gap gets
        rows of both epochs: the change of epoch in the frames reports it.)"""
        for lost in self.continuity:
            if (
                lost.start is not None
                and lost.start < since
                and (lost.end is None or since < lost.end)
            ):
                return HistoryGap(
                    f"readings of stream {self.name!r} after {lost.start:.3f} until "
                    + ("now" if lost.end is None else f"{lost.end:.3f}")
                    + f" are lost: {lost.detail}",
                    self.oldest,
                )
        return None

    # -- frames -----------------------------------------------------------------------

    def frames(
        self, sub: Subscriber, entries: Sequence[Entry], dropped: int, *, shared: bool = True
    ) -> list[bytes]:
        """``sub``'s frames for ``entries`` (offsets increasing), ``dropped`` on the first.

        A frame is built once and shared with every subscriber that gets the same rows
        under the same identifier in the same shape. A data frame holds one row: its
        offset says which. A batch frame holds a run: the identifier names the filter,
        so the same first and last offsets and count are the same rows as long as nothing
        was taken out of the live run (``dropped`` is 0: a conflated run is not shared;
        ``shared=False``: a history answer, which its request may have filtered).
        """
        frames: list[bytes] = []
        if sub.batched:
            share = shared and not dropped
            for epoch_json, run in self._epoch_runs(entries):
                for chunk in _chunks(run, sub.rows_per_frame):
                    key = (True, sub.identifier, chunk[0].offset, chunk[-1].offset, len(chunk))
                    frame = self._frames.get(key) if share else None
                    if frame is None:
                        frame = batch_frame(
                            sub.identifier_json,
                            [e.batch_row() for e in chunk],
                            self.json,
                            epoch_json,
                        )
                        self._remember(share, key, frame)
                    else:
                        self.frames_shared += 1
                    frames.append(frame)
        else:
            for entry in entries:
                key = (False, sub.identifier, entry.offset, entry.offset, 1)
                frame = self._frames.get(key)
                if frame is None:
                    frame = data_frame(sub.identifier_json, self._data_body(entry))
                    self._remember(True, key, frame)
                else:
                    self.frames_shared += 1
                frames.append(frame)
        if dropped:
            frames[0] = with_dropped(frames[0], dropped)
        return frames

    def _remember(self, share: bool, key: tuple[bool, str, int, int, int], frame: bytes) -> None:
        self.frames_built += 1
        if share:
            if len(self._frames) >= SHARED_FRAMES or self._frames_bytes > SHARED_FRAME_BYTES:
                self._frames.clear()
                self._frames_bytes = 0
            self._frames[key] = frame
            self._frames_bytes += len(frame)

    def _data_body(self, entry: Entry) -> bytes:
        template = self.spec.columns
        columns = template.extract(entry.topic) if template is not None else None
        return data_body(
            self.json,
            self.epoch_of(entry.offset)[1],
            entry.offset,
            entry.time,
            entry.topic_json,
            entry.payload,
            json_bytes(columns) if columns else None,
            None if entry.error is None else json_bytes(entry.error),
        )

    # -- subscribers ------------------------------------------------------------------

    def attach(self, sub: Subscriber) -> None:
        if sub.topic_filter is None:
            self._whole.add(sub)
        else:
            self._narrow.add(sub.topic_filter, sub)

    def detach(self, sub: Subscriber) -> None:
        if sub.topic_filter is None:
            self._whole.discard(sub)
        else:
            self._narrow.remove(sub.topic_filter, sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._whole) + len(self._narrow)

    def subscribers_for(self, topic: str) -> Iterable[Subscriber]:
        if self._whole:
            yield from self._whole
        if len(self._narrow):
            yield from self._narrow.match(topic)

    def fan_out(self, entry: Entry) -> None:
        """Queue ``entry`` for every subscriber that wants it (the ingest hot path)."""
        for sub in self._whole:
            sub.outbox.push(sub, entry)
        if len(self._narrow):
            for sub in self._narrow.match(entry.topic):
                sub.outbox.push(sub, entry)


def _chunks(entries: Sequence[Entry], max_rows: int) -> Iterable[Sequence[Entry]]:
    """Runs of at most ``max_rows`` entries and ``FRAME_ROWS_BYTES`` (one entry at least)."""
    if len(entries) <= max_rows and sum(e.size for e in entries) <= FRAME_ROWS_BYTES:
        yield entries
        return
    start, count = 0, len(entries)
    while start < count:
        end, size = start, 0
        while end < count and end - start < max_rows:
            size += entries[end].size
            if size > FRAME_ROWS_BYTES and end > start:
                break
            end += 1
        yield entries[start:end]
        start = end


@dataclass
class Replay:
    """A history answer being sent: a cursor over the stream's ring, not a copy of it.

    The I/O layer takes rows in chunks as the socket drains (:meth:`take`), then answers
    ``confirm_history``, or ``reject_history`` with :attr:`gap` when there is one. Rows are
    read from the ring when their turn comes, so an answer to a client that does not read
    costs nothing; rows evicted before their turn join the reported gap.
    """

    stream: Stream
    next_offset: int  # the next offset to look at
    last: int  # the stream's last offset when the request came: live rows follow it
    topic_filter: str | None = None
    since: float | None = None  # rows older than this were not asked for...
    gap: HistoryGap | None = None
    # ...unless they replace what the subscription had queued: the answer then covers
    # every row from ``live_from`` on, so the queued rows (and their drop count) go.
    replaces_queued: bool = True
    live_from: int | None = None
    # Offsets the subscription was already sent (``skip_from``..``skip_to``): skipped.
    skip_from: int | None = None
    skip_to: int = 0

    @property
    def done(self) -> bool:
        start = self.next_offset
        if self.skip_from is not None and self.skip_from <= start <= self.skip_to:
            start = self.skip_to + 1  # only rows already sent are left
        return start > self.last

    def wants(self, entry: Entry) -> bool:
        if self.topic_filter is not None and not matches(self.topic_filter, entry.topic):
            return False
        if self.since is None or entry.time >= self.since:
            return True
        return self.live_from is not None and entry.offset >= self.live_from

    def add_gap(self, gap: HistoryGap) -> None:
        self.gap = gap if self.gap is None else self.gap.and_then(gap)

    def take(
        self, max_rows: int, max_bytes: float, cost: Callable[[Entry], int] = lambda e: e.size
    ) -> list[Entry]:
        """The next rows in offset order: at most ``max_rows``, about ``max_bytes``.

        May return no rows before :attr:`done` (a narrow filter scanned a stretch of the
        ring without a match): call again.
        """
        self._settle()
        if self.done:
            return []
        ring = self.stream.ring
        end = self._segment_end()
        rows: list[Entry] = []
        size = 0
        scan_limit = max(1, max_rows) * SCAN_FACTOR
        window = islice(ring, self.next_offset - ring[0].offset, None)
        for scanned, entry in enumerate(window, 1):
            if entry.offset > end:
                break
            self.next_offset = entry.offset + 1
            if self.wants(entry):
                rows.append(entry)
                size += cost(entry)
                if len(rows) >= max_rows or size >= max_bytes:
                    return rows
            if scanned >= scan_limit:
                return rows
        self.next_offset = end + 1
        return rows

    def drain(self) -> list[Entry]:
        """Every remaining row at once (for tests and small answers)."""
        rows: list[Entry] = []
        while not self.done:
            rows.extend(self.take(len(self.stream.ring) + 1, math.inf))
        return rows

    def skip_sent(self, sent_through: int, first_sent: int | None) -> None:
        """Never send the subscription a row it was sent: skip ``first_sent..sent_through``.

        Rows below ``first_sent`` are still sent: a backfill below what the client holds,
        which it tells from duplicates by its lowest and highest offsets.
        """
        if first_sent is not None:
            self.skip_from, self.skip_to = first_sent, sent_through

    def _segment_end(self) -> int:
        """The last offset before the skipped range, or of the answer."""
        if self.skip_from is not None and self.next_offset < self.skip_from:
            return min(self.skip_from - 1, self.last)
        return self.last

    def _settle(self) -> None:
        """Move past rows already sent, and past evicted ones (they join the gap)."""
        while not self.done:
            if self.skip_from is not None and self.skip_from <= self.next_offset <= self.skip_to:
                self.next_offset = self.skip_to + 1
                continue
            kept_from = self.stream.kept_from
            if kept_from <= self.next_offset:
                return
            evicted_to = min(kept_from - 1, self._segment_end())
            spec = self.stream.spec
            self.add_gap(
                HistoryGap(
                    f"readings {self.next_offset}..{evicted_to} of stream {self.stream.name!r} "
                    f"were evicted ({spec.retention()}) before they could be sent: the "
                    "client read the answer more slowly than the stream turned over",
                    self.stream.oldest,
                )
            )
            self.next_offset = evicted_to + 1


@dataclass(eq=False, slots=True)
class Subscriber:
    """One confirmed, readable subscription of one connection (hashed by identity)."""

    outbox: Outbox
    identifier: str
    identifier_json: bytes
    stream: Stream
    topic_filter: str | None
    policy: Policy
    # A resumed subscription holds its live readings until the client's history request
    # arrives, so that missed readings are sent before newer ones (order is the contract).
    held: bool = False
    # Bytes each frame of this subscription carries besides its rows (identifier, stream
    # id, epoch, keys). A batch frame carries them once for up to ``rows_per_frame`` rows;
    # a data frame once per row, with the topic's levels again as columns.
    frame_bytes: int = 0
    batched: bool = True
    rows_per_frame: int = 500
    # The lowest and highest offsets sent: live rows go out once, in offset order, and
    # a history answer skips what lies between (rows below are a backfill).
    sent_through: int = 0
    first_sent: int | None = None
    replay: Replay | None = None  # the history answer being sent; live rows wait
    unreported_dropped: int = 0  # a drop count whose rows turned out already sent

    def cost(self, entry: Entry) -> int:
        """Bytes ``entry`` adds to this subscription's frames."""
        if self.batched:
            return entry.size + -(-self.frame_bytes // self.rows_per_frame)
        return entry.size + self.frame_bytes + len(entry.topic_json)

    @property
    def queue_overhead(self) -> int:
        """Bytes a queued run of rows costs once (the batch frame's own members)."""
        return self.frame_bytes if self.batched else 0

    @property
    def waiting(self) -> bool:
        """Live rows wait: a resume hold, or a history answer still being sent."""
        return self.held or self.replay is not None

    def unsent(self, entries: list[Entry]) -> list[Entry]:
        """Live ``entries`` without those at or below the highest offset sent (in order)."""
        if not entries or entries[0].offset > self.sent_through:
            return entries
        return [e for e in entries if e.offset > self.sent_through]

    def mark_sent(self, entries: Sequence[Entry]) -> None:
        """Record rows sent (in offset order): a backfill lowers ``first_sent``."""
        if entries:
            lowest = entries[0].offset
            if self.first_sent is None or lowest < self.first_sent:
                self.first_sent = lowest
            self.sent_through = max(self.sent_through, entries[-1].offset)


@dataclass(slots=True)
class Pending:
    """What one subscription has queued: in order, or conflated by topic."""

    entries: list[Entry] = field(default_factory=list)
    latest: dict[str, Entry] | None = None  # set once conflation started
    dropped: int = 0
    first_offset: int | None = None  # of the first entry queued: drops are all after it
    # An entry larger than the whole bound, queued outside it (see Outbox.push): never
    # conflated away by later readings.
    pinned: Entry | None = None

    def ordered(self) -> list[Entry]:
        # dict order follows insertion, and a replaced topic is re-inserted: offset order.
        entries = self.entries if self.latest is None else list(self.latest.values())
        pinned = self.pinned
        if pinned is None:
            return entries
        at = 0
        while at < len(entries) and entries[at].offset < pinned.offset:
            at += 1
        return [*entries[:at], pinned, *entries[at:]]

    def __len__(self) -> int:
        queued = len(self.entries) if self.latest is None else len(self.latest)
        return queued if self.pinned is None else queued + 1


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries for one subscription, ready to encode; ``dropped`` counts conflated ones."""

    sub: Subscriber
    entries: list[Entry]
    dropped: int


class Pressure:
    """A flag the outboxes raise for the bridge: one of them filled to half its bound since
    it last wrote. The bridge then stops reading the broker until the next turn of the
    event loop, after the connections' writes (bridge/fast_ingest.py), and lowers it.

    Raised once per outbox between two writes of its connection: a client that does not
    read holds its outbox full without slowing the bridge for everyone.
    """

    __slots__ = ("raised",)

    def __init__(self) -> None:
        self.raised = False


class Outbox:
    """The bounded outgoing queue of one connection.

    ``wake`` is called when a subscription queues its first row since it was last taken
    (and when the outbox overflows): the I/O layer then sends as soon as the socket is
    free. Queued plus in-flight bytes stay within ``max_bytes``, except for an entry that
    is larger than the whole bound on its own: it is queued outside the bound (one per
    subscription at a time) and the bound grows by its size until the socket has taken
    it, so that neither it nor the readings after it count as overflow or are conflated
    because of it.
    """

    __slots__ = (
        "allowance",
        "dropped_total",
        "in_flight",
        "max_bytes",
        "overflowed",
        "pending",
        "pending_bytes",
        "pending_rows",
        "pinned_bytes",
        "pressed",
        "pressure",
        "wake",
    )

    def __init__(
        self,
        max_bytes: int = 1 << 20,
        *,
        wake: Callable[[], None] | None = None,
        pressure: Pressure | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.wake = wake
        self.pressure = pressure
        self.pressed = False  # raised the pressure since the socket last took bytes
        self.pending: dict[Subscriber, Pending] = {}
        self.pending_bytes = 0
        self.pending_rows = 0
        self.in_flight = 0  # bytes written to the transport and not yet flushed
        self.overflowed = False  # a `disconnect`-policy subscription could not keep up
        self.dropped_total = 0
        # Bytes of entries larger than the bound that are queued (pinned_bytes) or were
        # written and not yet flushed: the bound grows by them (allowance).
        self.pinned_bytes = 0
        self.allowance = 0

    @property
    def used(self) -> int:
        return self.pending_bytes + self.in_flight

    @property
    def limit(self) -> int:
        """The bound now: ``max_bytes``, plus the oversized entries not yet flushed."""
        return self.max_bytes + self.allowance

    def push(self, sub: Subscriber, entry: Entry) -> None:
        if self.overflowed:
            return
        cost = sub.cost(entry)
        pending = self.pending.get(sub)
        opening = pending is None
        overhead = sub.queue_overhead if opening else 0
        if self.pending_bytes + self.in_flight + overhead + cost <= self.max_bytes + self.allowance:
            if pending is None:
                pending = self.pending[sub] = Pending()
                self.pending_bytes += overhead
            if pending.latest is None:
                pending.entries.append(entry)
                if pending.first_offset is None:
                    pending.first_offset = entry.offset
            else:
                self._replace(sub, pending, entry)
            self.pending_bytes += cost
            self.pending_rows += 1
            if (
                not self.pressed
                and self.pending_bytes + self.in_flight > self.max_bytes >> 1
                and self.pressure is not None
            ):
                self.pressed = self.pressure.raised = True
        elif overhead + cost > self.max_bytes:
            # Larger than the whole bound on its own: it goes on its own. One waits per
            # subscription: a newer one replaces it, or is one too many (disconnect).
            if pending is not None and pending.pinned is not None:
                if sub.policy is Policy.DISCONNECT:
                    self._overflow()
                    return
                self._unpin(sub, pending)
            self._pin(sub, entry, cost)
        elif sub.policy is Policy.DISCONNECT:
            self._overflow()
            return
        else:
            self._conflate(sub, entry, cost)
        if opening and self.wake is not None:
            self.wake()

    def _open(self, sub: Subscriber) -> Pending:
        pending = self.pending.get(sub)
        if pending is None:
            pending = self.pending[sub] = Pending()
            self.pending_bytes += sub.queue_overhead
        return pending

    def _pin(self, sub: Subscriber, entry: Entry, cost: int) -> None:
        """Queue an entry larger than the whole bound, outside it: it goes on its own."""
        pending = self._open(sub)
        pending.pinned = entry
        if pending.first_offset is None:
            pending.first_offset = entry.offset
        self.pending_bytes += cost
        self.pending_rows += 1
        self.pinned_bytes += cost
        self.allowance += cost

    def _unpin(self, sub: Subscriber, pending: Pending) -> None:
        """Drop the oversized entry waiting for ``sub`` (a newer one takes its place)."""
        assert pending.pinned is not None
        cost = sub.cost(pending.pinned)
        pending.pinned = None
        pending.dropped += 1
        self.dropped_total += 1
        self.pending_bytes -= cost
        self.pending_rows -= 1
        self.pinned_bytes -= cost
        self.allowance -= cost

    def _replace(self, sub: Subscriber, pending: Pending, entry: Entry) -> None:
        assert pending.latest is not None
        old = pending.latest.pop(entry.topic, None)
        if old is not None:
            self._drop(sub, pending, old)
        pending.latest[entry.topic] = entry
        if pending.first_offset is None:
            pending.first_offset = entry.offset

    def _drop(self, sub: Subscriber, pending: Pending, old: Entry) -> None:
        pending.dropped += 1
        self.dropped_total += 1
        self.pending_bytes -= sub.cost(old)
        self.pending_rows -= 1

    def _conflate(self, sub: Subscriber, entry: Entry, cost: int) -> None:
        pending = self._open(sub)
        if pending.latest is None:
            # Switch to keeping the latest reading per topic; older ones count as dropped.
            latest: dict[str, Entry] = {}
            for e in pending.entries:
                if e.topic in latest:
                    self._drop(sub, pending, latest.pop(e.topic))
                latest[e.topic] = e
            pending.entries = []
            pending.latest = latest
        self._replace(sub, pending, entry)
        self.pending_bytes += cost
        self.pending_rows += 1
        # Many distinct topics can still exceed the bound: drop the oldest ones.
        while self.used > self.limit and len(pending.latest) > 1:
            self._drop(sub, pending, pending.latest.pop(next(iter(pending.latest))))

    def _overflow(self) -> None:
        self.overflowed = True
        self.pending.clear()
        self.pending_bytes = 0
        self.pending_rows = 0
        self.pinned_bytes = 0
        if self.wake is not None:
            self.wake()

    def take(self) -> list[Batch]:
        """Everything queued (but waiting subscriptions), per subscription in stream order."""
        batches = []
        for sub in [s for s in self.pending if not s.waiting]:
            dropped = self.pending[sub].dropped
            entries = self.remove(sub)
            if entries:
                batches.append(Batch(sub, entries, dropped))
        return batches

    def first_queued(self, sub: Subscriber) -> int | None:
        """Offset of the first entry queued for ``sub`` since its last send, if any."""
        pending = self.pending.get(sub)
        return None if pending is None else pending.first_offset

    def remove(self, sub: Subscriber) -> list[Entry]:
        """Take one subscription's queued entries out (in order) and return them."""
        pending = self.pending.pop(sub, None)
        if pending is None:
            return []
        entries = pending.ordered()
        if pending.pinned is not None:
            self.pinned_bytes -= sub.cost(pending.pinned)
        self.pending_bytes -= sum(sub.cost(e) for e in entries) + sub.queue_overhead
        self.pending_rows -= len(entries)
        return entries

    def sent(self, nbytes: int) -> None:
        self.in_flight += nbytes

    def flushed(self, nbytes: int) -> None:
        self.pressed = False
        in_flight = self.in_flight = max(0, self.in_flight - nbytes)
        if in_flight == 0:
            # Oversized entries that were written are gone: the bound is what it was.
            self.allowance = self.pinned_bytes


class Hub:
    """All streams of one server run, and the routing of readings to subscriptions."""

    def __init__(
        self,
        channels: Sequence[ChannelSpec],
        epoch: str,
        started_at: float = float("-inf"),
        *,
        dumps: JsonBytes = json_bytes,
        history_bytes: int = DEFAULT_SERVER_HISTORY_BYTES,
    ) -> None:
        self.epoch = epoch
        # The server-wide bound on history memory: past it, the stream holding the most
        # gives up its oldest entries first.
        self.budget = HistoryBudget(history_bytes)
        self.streams: dict[str, Stream] = {
            c.name: Stream(c, epoch, started_at, self.budget) for c in channels
        }
        self._routes: TopicIndex[Stream] = TopicIndex()
        for stream in self.streams.values():
            for f in stream.spec.filters:
                self._routes.add(f, stream)
        # The streams of a topic, in name order (a topic in two channels is handled in
        # the same order every time); channels do not change while the hub runs.
        self._routed: dict[str, tuple[Stream, ...]] = {}
        self._topics: dict[str, tuple[str, bytes]] = {}
        self._topic_bytes = 0
        self._dumps = dumps
        # Raised by the outboxes of this hub's connections, lowered by the bridge.
        self.pressure = Pressure()
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

    def ingest(
        self, topic: str, payload: bytes, received_at: float, now: float
    ) -> tuple[Stream, ...]:
        """Route one MQTT message to its streams and subscribers; returns the streams."""
        self.messages_in += 1
        streams = self._routed.get(topic)
        if streams is None:
            streams = self._route(topic)
        if not streams:
            self.unrouted += 1
            return streams
        topic, topic_json = self._topic(topic)
        if len(streams) == 1:
            stream = streams[0]
            self._append(stream, topic, topic_json, payload, received_at, now, None)
        else:
            # Decoded and encoded once per payload format, whatever the number of channels.
            decoded: dict[Decoder, tuple[Reading, bytes, str | None]] = {}
            for stream in streams:
                self._append(stream, topic, topic_json, payload, received_at, now, decoded)
        if self.budget.over:
            self._evict_for_budget()
        return streams

    def _append(
        self,
        stream: Stream,
        topic: str,
        topic_json: bytes,
        payload: bytes,
        received_at: float,
        now: float,
        decoded: dict[Decoder, tuple[Reading, bytes, str | None]] | None,
    ) -> None:
        spec = stream.spec
        limit = spec.max_reading_bytes
        oversize = len(payload) > limit
        error: str | None
        if oversize:
            # Not even decoded: a device must not make the server spend what it sends.
            reading, encoded, error = _oversize(topic, received_at, len(payload), limit, "")
        else:
            done = None if decoded is None else decoded.get(spec.decoder)
            if done is None:
                reading = spec.decoder.decode(topic, payload, received_at)
                done = (reading, *encode_payload(self._dumps, reading.payload, reading.error))
                if decoded is not None:
                    decoded[spec.decoder] = done
            reading, encoded, error = done
            oversize = len(encoded) > limit
            if oversize:
                reading, encoded, error = _oversize(
                    topic, received_at, len(encoded), limit, " as JSON", reading.time
                )
        if oversize:
            stream.oversize += 1
        size = len(topic_json) + len(encoded) + ENTRY_OVERHEAD
        if error is not None:
            size += len(error) + 3
        entry = stream.append(reading, topic_json, encoded, error, size, now)
        stream.fan_out(entry)

    def _evict_for_budget(self) -> None:
        """Keep the server's history within its bytes: the biggest stream gives way first."""
        budget = self.budget
        while budget.over:
            stream = max(self.streams.values(), key=lambda s: s.ring_memory)
            if len(stream.ring) <= 1:
                break  # every stream is down to its newest entry
            stream.evict_oldest()
            budget.evicted += 1

    @property
    def history_memory(self) -> int:
        """What every stream's history takes in memory (``Entry.memory``), in bytes."""
        return self.budget.used

    def _route(self, topic: str) -> tuple[Stream, ...]:
        streams = tuple(sorted(self._routes.match(topic), key=lambda s: s.name))
        if len(self._routed) >= KNOWN_TOPICS or self._topic_bytes > KNOWN_TOPIC_BYTES:
            self._routed.clear()
            self._topics.clear()
            self._topic_bytes = 0
        self._routed[topic] = streams
        return streams

    def _topic(self, topic: str) -> tuple[str, bytes]:
        """One copy of a topic and its JSON, shared by the entries that carry it."""
        known = self._topics.get(topic)
        if known is None:
            if len(self._topics) >= KNOWN_TOPICS or self._topic_bytes > KNOWN_TOPIC_BYTES:
                self._topics.clear()
                self._routed.clear()
                self._topic_bytes = 0
            known = self._topics[topic] = (topic, json_bytes(topic))
            self._topic_bytes += 3 * len(known[1])  # the topic, its JSON, its route
        return known

    def subscribe(
        self,
        outbox: Outbox,
        identifier: str,
        channel: str,
        topic_filter: str | None,
        policy: Policy | None = None,
        *,
        batched: bool = True,
        rows_per_frame: int = 500,
    ) -> Subscriber:
        """Attach a subscription; ``batched``: its rows travel in batch frames of up to
        ``rows_per_frame`` rows, else in one data frame per row (what its bytes count)."""
        stream = self.streams[channel]
        identifier_json = json_bytes(identifier)
        frame_bytes = (
            len(identifier_json) + utf8_len(stream.name) + utf8_len(stream.epoch) + FRAME_OVERHEAD
        )
        sub = Subscriber(
            outbox,
            identifier,
            identifier_json,
            stream,
            topic_filter,
            policy or stream.spec.policy,
            frame_bytes=frame_bytes,
            batched=batched,
            rows_per_frame=max(1, rows_per_frame),
        )
        stream.attach(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.stream.detach(sub)
        sub.outbox.remove(sub)
        sub.replay = None

    def replay(self, sub: Subscriber, request: HistoryRequest, now: float) -> Replay:
        """Start answering ``sub``'s history request; live rows wait until it is sent.

        The answer never repeats a row the subscription was sent (rows older than those
        are a backfill). When it covers what the subscription had queued, the queue (and
        its drop count) goes: those rows, or the gap that took them, are in the answer.
        """
        replay = sub.stream.plan(request, now, sub.topic_filter)
        if replay.replaces_queued:
            replay.live_from = sub.outbox.first_queued(sub)
            sub.outbox.remove(sub)
        replay.skip_sent(sub.sent_through, sub.first_sent)
        sub.replay = replay
        return replay

    def lose_continuity(self, detail: str, now: float) -> list[Stream]:
        """Readings were lost upstream (the bridge came back without its broker session):
        every stream goes on in a new epoch. Returns the streams that opened a gap."""
        return [s for s in self.streams.values() if s.lose_continuity(detail, now) is not None]

    def trim(self, now: float) -> None:
        """Age out history even when a stream is quiet (called on a timer)."""
        for stream in self.streams.values():
            stream.trim(now)
