"""Columnar, bounded storage of a subscription's readings (pure Python, no pandas).

Readings arrive on the client's thread, one batch at a time; ``sub.frame`` is built from a
snapshot on the user's thread. Appending one value per column is O(1), and so (amortized)
is eviction: the oldest rows are dropped by moving a head index, and the lists are
compacted only once the dead prefix is as long as the live part. A DataFrame is never
grown row by row (``pd.concat`` per reading runs at 2k readings/s and falls).

Payloads are flattened on arrival: a JSON object gives one column per key (nested
objects as ``a.b``), anything else goes into ``value``. A payload key that would clash
with ``topic``, ``error`` or a topic-level column is stored as ``payload.<key>``.
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
        self._reserved = {"topic", "error", *self._levels}
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._offsets: list[int] = []
        self._epochs: list[str] = []
        self._columns: dict[str, list[object]] = {"topic": []}
        self._kinds: dict[str, Kind] = {"topic": Kind.TEXT}
        for name in self._levels:
            self._columns[name] = []
            self._kinds[name] = Kind.TEXT
        self._head = 0
        self._sorted = True
        self._epoch: str | None = None
        self._seen: set[int] = set()

    def __len__(self) -> int:
        with self._lock:
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
        """A copy of the live rows, in time order."""
        with self._lock:
            if not self._sorted:
                self._sort()
                self._evict()
            head = self._head
            columns = {
                name: values[head:] for name, values in self._columns.items() if name != "error"
            }
            if "error" in self._columns:
                columns["error"] = self._columns["error"][head:]
            return Columns(self._times[head:], columns, dict(self._kinds))

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
        columns, kinds = self._columns, self._kinds
        columns["topic"].append(topic)
        if self._template is not None:
            levels = self._template.extract(topic) or {}
            for name in self._levels:
                columns[name].append(levels.get(name))
        if error is not None:
            self._column("error", length).append(error)
            kinds["error"] = Kind.TEXT
        for key, value in flatten_payload(payload).items():
            name = f"payload.{key}" if key in self._reserved else key
            self._column(name, length).append(value)
            kinds[name] |= kind_of(value)
        length += 1
        for values in columns.values():
            if len(values) < length:
                values.append(None)

    def _column(self, name: str, length: int) -> list[object]:
        """The column ``name``, created padded with ``None`` for the rows before it appeared."""
        values = self._columns.get(name)
        if values is None:
            values = self._columns[name] = [None] * length
            self._kinds[name] = Kind(0)
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
        if self._head >= _COMPACT_MIN and 2 * self._head >= len(times):
            self._compact()

    def _forget(self, start: int, stop: int) -> None:
        """Drop evicted offsets from the duplicate check (only the current epoch's are there)."""
        epochs, offsets, current, seen = self._epochs, self._offsets, self._epoch, self._seen
        for index in range(start, stop):
            if epochs[index] == current:
                seen.discard(offsets[index])

    def _compact(self) -> None:
        head = self._head
        for values in self._all_lists():
            del values[:head]
        self._head = 0

    def _sort(self) -> None:
        """Put the live rows in time order (stable: equal times keep their arrival order)."""
        head, times = self._head, self._times
        order = sorted(range(head, len(times)), key=times.__getitem__)
        for values in self._all_lists():
            values[:] = _take(values, order)
        self._head = 0
        self._sorted = True

    def _all_lists(self) -> list[list[Any]]:
        return [*self._columns.values(), self._times, self._offsets, self._epochs]


def _take(values: Sequence[object], order: Sequence[int]) -> list[object]:
    return [values[index] for index in order]
