"""Columnar, bounded storage of a subscription's readings (pure Python, no pandas).

Readings arrive on the cable's thread, one batch at a time, already free of duplicates
(the protocol machine drops rows it holds); ``sub.frame`` is built from a snapshot on the
user's thread. Per reading the buffer appends its time and topic, and each payload value
to its column: no dict, no tuple and no copy per reading, and nothing decided per value
that can be decided when the frame is built (dtypes, topic-level columns, names).

Payloads are flattened on arrival: a JSON object gives one column per key (nested
objects as ``a.b``), anything else goes into the column ``value``. A row without some key
leaves that column shorter; columns are padded with ``None`` lazily, when a later row
writes to them or when a snapshot or compaction needs them whole.

Eviction is O(1) amortized: the oldest rows are dropped by moving a head index, and the
lists are compacted only once the dead prefix is as long as the live part. Compaction
also drops the columns that only dead rows used, so a payload with a new key per reading
stays bounded. A DataFrame is never grown row by row (``pd.concat`` per reading runs at
2k readings/s and falls).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol import Row

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Columns", "ReadingBuffer", "Row", "flatten_payload"]

# Compacting a list costs O(live rows); doing it only when the dead prefix is at least
# this long and at least as long as the live part keeps eviction O(1) amortized.
_COMPACT_MIN = 1024

# Every column is padded to every row, so columns that only dead rows use must go too:
# compact when the number of columns doubled (plus this slack) since the last compaction.
# Each new column cost O(rows) to pad, which pays for the O(rows x columns) compaction.
_COLUMN_SLACK = 64

VALUE = "value"
"""The column of payloads that are not JSON objects."""


def flatten_payload(payload: object) -> dict[str, object]:
    """A payload as columns: an object's keys (nested as ``a.b``), else ``{"value": payload}``."""
    if type(payload) is not dict:
        return {VALUE: payload}
    flat: dict[str, object] = {}
    _flatten_into(flat, "", payload)
    return flat


def _flatten_into(flat: dict[str, object], prefix: str, obj: dict[object, object]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if type(value) is dict and value:
            _flatten_into(flat, f"{name}.", value)
        else:
            flat[name] = value


@dataclass(frozen=True)
class Columns:
    """A consistent copy of the buffer's live rows, oldest first, ready for pandas.

    ``fields`` maps each flattened payload key (``a.b`` for nested keys, ``value`` for
    payloads that are not objects) to one value per row (``None`` where a row has none),
    in the order the keys first appeared; ``errors`` is ``None`` when no live row failed
    to decode. Which dtype each column gets, and the topic-level columns, are the frame
    builder's business (``frames.py``).
    """

    times: list[float]
    topics: list[str]
    fields: dict[str, list[object]]
    errors: list[str | None] | None


class ReadingBuffer:
    """The last ``max_rows`` readings, and only those within ``window`` seconds of the newest.

    Rows may arrive out of time order (a backfill lands after newer live rows): the buffer
    then sorts lazily, at the next snapshot or when it holds twice its bound, so memory
    stays bounded either way. Thread-safe: ``extend`` runs on the cable's thread,
    ``snapshot`` on the user's.
    """

    def __init__(self, *, max_rows: int, window: float | None = None) -> None:
        self.max_rows = max_rows
        self.window = window
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._offsets: list[int] = []
        self._topics: list[str] = []
        self._fields: dict[str, list[object]] = {}
        self._errors: list[str | None] = []
        self._head = 0
        self._sorted = True
        self._compact_columns_at = _COLUMN_SLACK
        self.newest: float | None = None
        """The time of the newest reading ever stored (``None``: none yet)."""

    def __len__(self) -> int:
        with self._lock:
            self._settle()
            return len(self._times) - self._head

    def extend(self, rows: Sequence[Row]) -> None:
        """Store ``rows`` (none of them held already)."""
        if not rows:
            return
        with self._lock:
            count = len(self._times)
            times = [row[1] for row in rows]
            payloads = [row[3] for row in rows]
            errors = [row[4] for row in rows]
            self._offsets.extend([row[0] for row in rows])
            self._topics.extend([row[2] for row in rows])
            last = self._times[-1] if self._times else float("-inf")
            if times[0] < last or times != sorted(times):  # sorted: O(n) on sorted input
                self._sorted = False
            self._times.extend(times)
            if not self._extend_uniform(count, payloads):
                for index, payload in enumerate(payloads, count):
                    self._store(index, payload)
            if errors.count(None) != len(errors):
                for index, error in enumerate(errors, count):
                    if error is not None:
                        self._put_error(index, error)
            newest = max(times)
            if self.newest is None or newest > self.newest:
                self.newest = newest
            self._evict()

    def time_of(self, offset: int) -> float | None:
        """The time of the live reading at ``offset`` (the newest such), if still held."""
        with self._lock:
            offsets, head = self._offsets, self._head
            for index in range(len(offsets) - 1, head - 1, -1):
                if offsets[index] == offset:
                    return self._times[index]
            return None

    def oldest_from(self, moment: float, *, inclusive: bool) -> float | None:
        """The oldest live reading time at (``inclusive``) or after ``moment``, if any."""
        with self._lock:
            live = self._times[self._head :]
        later = [t for t in live if t > moment or (inclusive and t == moment)]
        return min(later) if later else None

    def _extend_uniform(self, count: int, payloads: list[object]) -> bool:
        """The common batch: objects with the same keys and no nested object, stored one
        column at a time (a list comprehension per key, no work per value in Python).
        ``False`` (nothing stored) for any other batch."""
        first = payloads[0]
        if type(first) is not dict or not first:
            return False
        keys = first.keys()
        try:
            if not all(map(keys.__eq__, map(dict.keys, payloads))):  # type: ignore[arg-type]
                return False
        except TypeError:  # not every payload is a dict
            return False
        columns = []
        for key in keys:
            values = [payload[key] for payload in payloads]  # type: ignore[index]
            if dict in map(type, values):
                return False  # a nested object: flattened by the general path
            columns.append((key, values))
        fields = self._fields
        for key, values in columns:
            column = fields.get(key)
            if column is None:
                column = fields[key] = []
            if len(column) < count:
                column.extend([None] * (count - len(column)))
            column.extend(values)
        return True

    def _store(self, row: int, payload: object) -> None:
        """One payload into its columns at ``row``: the general path."""
        if type(payload) is dict:
            for key, value in payload.items():
                if type(value) is dict and value:
                    self._nested(row, f"{key}.", value)
                else:
                    self._put(key, row, value)
        else:
            self._put(VALUE, row, payload)

    def _put_error(self, row: int, error: str) -> None:
        errors = self._errors
        if len(errors) < row:
            errors.extend([None] * (row - len(errors)))
        errors.append(error)

    def _put(self, name: str, row: int, value: object) -> None:
        """``value`` into column ``name`` at ``row``: the slow path (new, short or written)."""
        column = self._fields.get(name)
        if column is None:
            column = self._fields[name] = []
        if len(column) < row:
            column.extend([None] * (row - len(column)))
        if len(column) == row:
            column.append(value)
        else:
            column[row] = value  # a key twice in one row ({"a.b": 1, "a": {"b": 2}}): last wins

    def _nested(self, row: int, prefix: str, obj: dict[object, object]) -> None:
        for key, value in obj.items():
            name = f"{prefix}{key}"
            if type(value) is dict and value:
                self._nested(row, f"{name}.", value)
            else:
                self._put(name, row, value)

    def snapshot(self) -> Columns:
        """A copy of the live rows, in time order."""
        with self._lock:
            self._settle()
            head, count = self._head, len(self._times)
            fields = {name: _padded(column, head, count) for name, column in self._fields.items()}
            errors: list[str | None] | None = None
            if self._errors:
                errors = _padded(self._errors, head, count)  # type: ignore[assignment]
                if errors is not None and errors.count(None) == len(errors):
                    errors = None
            return Columns(self._times[head:], self._topics[head:], fields, errors)

    def _settle(self) -> None:
        """Apply the bounds that out-of-order rows postponed, so that no caller sees more."""
        if not self._sorted:
            self._sort()
            self._evict()

    def _evict(self) -> None:
        times = self._times
        live = len(times) - self._head
        if not self._sorted:
            if live <= 2 * self.max_rows:
                return
            self._sort()
        head = max(self._head, len(times) - self.max_rows)
        if self.window is not None and times:
            cutoff = times[-1] - self.window
            while head < len(times) and times[head] < cutoff:
                head += 1
        self._head = head
        long_dead_prefix = head >= _COMPACT_MIN and 2 * head >= len(times)
        if long_dead_prefix or len(self._fields) > self._compact_columns_at:
            self._compact()

    def _whole_columns(self) -> list[list[object]]:
        """Every list, padded to the row count (compaction and sorting move rows)."""
        count = len(self._times)
        columns: list[list[object]] = [*self._fields.values()]
        if self._errors:
            columns.append(self._errors)  # type: ignore[arg-type]
        for column in columns:
            if len(column) < count:
                column.extend([None] * (count - len(column)))
        return [self._times, self._offsets, self._topics, *columns]  # type: ignore[list-item]

    def _compact(self) -> None:
        """Drop the evicted rows, and the columns that only they used."""
        head = self._head
        for column in self._whole_columns():
            del column[:head]
        self._head = 0
        self._drop_empty_columns()
        self._compact_columns_at = 2 * len(self._fields) + _COLUMN_SLACK

    def _drop_empty_columns(self) -> None:
        """Columns without a value (after compaction or sorting: every row is live)."""
        for name in [n for n, c in self._fields.items() if _all_none(c)]:
            del self._fields[name]
        if _all_none(self._errors):
            self._errors = []

    def _sort(self) -> None:
        """Put the live rows in time order (stable: equal times keep their arrival order)."""
        head, times = self._head, self._times
        order = sorted(range(head, len(times)), key=times.__getitem__)
        for column in self._whole_columns():
            column[:] = [column[index] for index in order]
        self._head = 0
        self._sorted = True
        self._drop_empty_columns()


def _padded(column: Sequence[object], head: int, count: int) -> list[object]:
    live = list(column[head:count])
    missing = count - max(len(column), head)
    if missing > 0:
        live.extend([None] * missing)
    return live


def _all_none(column: Sequence[object]) -> bool:
    return column.count(None) == len(column)  # list.count runs in C
