"""Columnar, bounded storage of a subscription's readings (pure Python, no pandas).

Readings arrive on the client's thread, one batch at a time; ``sub.frame`` is built from a
snapshot on the user's thread. Appending one value per column is O(1), and so (amortized)
is eviction: the oldest rows are dropped by moving a head index, and the lists are
compacted only once the dead prefix is as long as the live part. A DataFrame is never
grown row by row (``pd.concat`` per reading runs at 2k readings/s and falls).

Payloads are flattened on arrival: a JSON object gives one column per key (nested
objects as ``a.b``), anything else goes into ``value``. A payload key that would clash
with ``time`` (the frame's index), ``topic``, ``error`` or a topic-level column is
stored as ``payload.<key>``: a device's own ``{"time": ...}`` becomes ``payload.time``.

A column's dtype follows the values still in the buffer, not every value it ever held:
per column the buffer remembers the last row holding each kind of value (number, text,
...), so one string that has left the window no longer makes a numeric column ``object``,
and a column whose live rows are all empty is left out of the frame and dropped from
memory at the next compaction (a payload with a new key per reading stays bounded).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import IntFlag
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ..topics import TopicTemplate

Row = tuple[int, float, str, object, str | None]
"""One reading as the protocol delivers it: ``(offset, time, topic, payload, error)``."""

# Compacting a list costs O(live rows); doing it only when the dead prefix is at least
# this long and at least as long as the live part keeps eviction O(1) amortized.
_COMPACT_MIN = 1024

# Every row pads every column, so columns that only dead rows use must go too: compact
# when the number of columns doubled (plus this slack) since the last compaction. Each new
# column cost O(rows) to create, which pays for the O(rows x columns) compaction.
_COLUMN_SLACK = 64

_RESERVED = ("time", "topic", "error")
"""Frame names a payload key cannot take (it is stored as ``payload.<key>`` instead)."""


class Kind(IntFlag):
    """Which kinds of values a column has held; decides its dtype in the frame."""

    NUMBER = 1
    TEXT = 2
    BOOL = 4
    OTHER = 8


def kind_of(value: object) -> Kind:
    """The kind of one value (``None`` has none: it is a missing value in any column)."""
    kind = type(value)
    if kind is float or kind is int:
        return Kind.NUMBER
    if kind is str:
        return Kind.TEXT
    if kind is bool:
        return Kind.BOOL
    if value is None:
        return Kind(0)
    return Kind.OTHER


def flatten_payload(payload: object) -> dict[str, object]:
    """A payload as columns: an object's keys (nested as ``a.b``), else ``{"value": payload}``."""
    if not isinstance(payload, dict):
        return {"value": payload}
    flat: dict[str, object] = {}
    _flatten_into(flat, "", payload)
    return flat


def _flatten_into(flat: dict[str, object], prefix: str, obj: dict[object, object]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _flatten_into(flat, name + ".", value)
        else:
            flat[name] = value


@dataclass(frozen=True)
class Columns:
    """A consistent copy of the buffer, oldest reading first, ready to become a DataFrame.

    ``columns`` holds ``topic``, then the topic-level columns, then payload columns in
    the order they first appeared, then ``error`` if any reading failed to decode.
    """

    times: list[float]
    columns: dict[str, list[object]]
    kinds: dict[str, Kind]


class ReadingBuffer:
    """The last ``max_rows`` readings, and only those within ``window`` seconds of the newest.

    Duplicates (same offset within the same epoch) are dropped, so a history backfill
    that overlaps what is already here adds nothing twice. Rows may arrive out of time
    order (a backfill lands after newer live rows): the buffer then sorts lazily, at the
    next snapshot or when it holds twice its bound, so memory stays bounded either way.
    Thread-safe: ``add`` runs on the client's thread, ``snapshot`` on the user's.
    """

    def __init__(
        self,
        *,
        max_rows: int,
        window: float | None = None,
        template: TopicTemplate | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.window = window
        self._template = template
        self._levels: tuple[str, ...] = template.names if template is not None else ()
        self._reserved = {*_RESERVED, *self._levels}
        # ``topic`` and the topic levels are always columns, always text.
        self._fixed = frozenset(("topic", *self._levels))
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._offsets: list[int] = []
        self._epochs: list[str] = []
        self._columns: dict[str, list[object]] = {name: [] for name in ("topic", *self._levels)}
        # Per payload (and error) column: kind -> row number of the last value of that
        # kind. Row numbers count every row ever stored (list index + ``_origin``), so
        # they survive compaction; a kind whose last row was evicted no longer counts.
        self._last_kind: dict[str, dict[Kind, int]] = {}
        self._origin = 0
        self._compact_columns_at = len(self._columns) + _COLUMN_SLACK
        self._head = 0
        self._sorted = True
        self._epoch: str | None = None
        self._seen: set[int] = set()

    def __len__(self) -> int:
        with self._lock:
            self._settle()
            return len(self._times) - self._head

    def add(self, epoch: str, rows: Iterable[Row]) -> list[Row]:
        """Store ``rows`` of stream epoch ``epoch``; return those that were not duplicates."""
        accepted: list[Row] = []
        with self._lock:
            if epoch != self._epoch:
                # Offsets restart with a new epoch; rows of the old one can no longer repeat.
                self._epoch = epoch
                self._seen = set()
            for row in rows:
                if row[0] in self._seen:
                    continue
                self._append(epoch, row)
                accepted.append(row)
            self._evict()
        return accepted

    def snapshot(self) -> Columns:
        """A copy of the live rows, in time order, without columns they leave empty."""
        with self._lock:
            self._settle()
            head = self._head
            columns: dict[str, list[object]] = {}
            kinds: dict[str, Kind] = {}
            for name in [*(n for n in self._columns if n != "error"), "error"]:
                kind = self._live_kind(name)
                if kind:
                    columns[name] = self._columns[name][head:]
                    kinds[name] = kind
            return Columns(self._times[head:], columns, kinds)

    def _settle(self) -> None:
        """Apply the bounds that out-of-order rows postponed, so that no caller sees more."""
        if not self._sorted:
            self._sort()
            self._evict()

    def _live_kind(self, name: str) -> Kind:
        """The kinds of value column ``name`` holds in the live rows (0: none, or no column)."""
        if name in self._fixed:
            return Kind.TEXT
        first_live = self._origin + self._head
        kind = Kind(0)
        for value_kind, last_row in self._last_kind.get(name, {}).items():
            if last_row >= first_live:
                kind |= value_kind
        return kind

    def _append(self, epoch: str, row: Row) -> None:
        offset, time, topic, payload, error = row
        times = self._times
        if times and time < times[-1]:
            self._sorted = False
        length = len(times)
        times.append(time)
        self._offsets.append(offset)
        self._epochs.append(epoch)
        self._seen.add(offset)
        columns, last_kind, row_number = self._columns, self._last_kind, self._origin + length
        columns["topic"].append(topic)
        if self._template is not None:
            levels = self._template.extract(topic) or {}
            for name in self._levels:
                columns[name].append(levels.get(name))
        if error is not None:
            self._column("error", length).append(error)
            last_kind["error"][Kind.TEXT] = row_number
        for key, value in flatten_payload(payload).items():
            name = f"payload.{key}" if key in self._reserved else key
            self._column(name, length).append(value)
            kind = kind_of(value)
            if kind:
                last_kind[name][kind] = row_number
        length += 1
        for values in columns.values():
            if len(values) < length:
                values.append(None)

    def _column(self, name: str, length: int) -> list[object]:
        """The column ``name``, created padded with ``None`` for the rows before it appeared."""
        values = self._columns.get(name)
        if values is None:
            values = self._columns[name] = [None] * length
            self._last_kind[name] = {}
        return values

    def _evict(self) -> None:
        times = self._times
        live = len(times) - self._head
        if not self._sorted:
            if live <= 2 * self.max_rows:
                return
            self._sort()
        new_head = max(self._head, len(times) - self.max_rows)
        if self.window is not None and times:
            cutoff = times[-1] - self.window
            while new_head < len(times) and times[new_head] < cutoff:
                new_head += 1
        self._forget(self._head, new_head)
        self._head = new_head
        long_dead_prefix = self._head >= _COMPACT_MIN and 2 * self._head >= len(times)
        if long_dead_prefix or len(self._columns) > self._compact_columns_at:
            self._compact()

    def _forget(self, start: int, stop: int) -> None:
        """Drop evicted offsets from the duplicate check (only the current epoch's are there)."""
        epochs, offsets, current, seen = self._epochs, self._offsets, self._epoch, self._seen
        for index in range(start, stop):
            if epochs[index] == current:
                seen.discard(offsets[index])

    def _compact(self) -> None:
        """Drop the evicted rows, and the columns that only they used."""
        self._drop_empty_columns()
        head = self._head
        for values in self._all_lists():
            del values[:head]
        self._origin += head
        self._head = 0
        self._compact_columns_at = 2 * len(self._columns) + _COLUMN_SLACK

    def _drop_empty_columns(self) -> None:
        for name in [n for n in self._last_kind if not self._live_kind(n)]:
            del self._columns[name]
            del self._last_kind[name]

    def _sort(self) -> None:
        """Put the live rows in time order (stable: equal times keep their arrival order)."""
        self._drop_empty_columns()
        head, times = self._head, self._times
        order = sorted(range(head, len(times)), key=times.__getitem__)
        for values in self._all_lists():
            values[:] = _take(values, order)
        self._origin += head
        self._head = 0
        self._sorted = True
        self._recount_kinds()

    def _recount_kinds(self) -> None:
        """Rebuild ``_last_kind`` after the rows moved (O(rows x columns), like the sort)."""
        origin = self._origin
        for name, last in self._last_kind.items():
            last.clear()
            for index, value in enumerate(self._columns[name]):
                kind = kind_of(value)
                if kind:
                    last[kind] = origin + index

    def _all_lists(self) -> list[list[Any]]:
        return [*self._columns.values(), self._times, self._offsets, self._epochs]


def _take(values: Sequence[object], order: Sequence[int]) -> list[object]:
    return [values[index] for index in order]
