"""The live chart's data in the kernel: one time-sorted line per (series, field), bounded.

A ``Chunk`` is many lines' points packed for the wire: a table of ``(series, field,
count)`` and the points' times and values, line after line. New points travel as a chunk
(a few per line per update); a view that renders gets the whole store as one chunk.

``LineStore`` keeps what the chart can show: the subscription's time window, measured back
from the newest point (as ``sub.frame`` is), with the part older than the last few
seconds reduced to min/max per bucket of ``span / buckets`` seconds (``downsample``), so
a line holds at most about ``2 * buckets`` points plus its recent ones whatever the
reading rate. The recent part stays whole for the zoomed-in views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .downsample import Floats, downsample

Uints = npt.NDArray[np.uint32]

#: Buckets across the window that old points are reduced to (2 points each at most).
BUCKETS = 2000
#: Seconds at the end of each line kept whole.
RECENT = 10.0
#: A line is compacted once it holds this many times ``BUCKETS`` points.
HIGH_WATER = 4


@dataclass(frozen=True)
class Chunk:
    """Points of many lines: ``table`` rows ``(series, field, count)``, then the points
    of each line in that order (``times``, ``values``: float64, time-sorted per line)."""

    table: Uints
    times: Floats
    values: Floats

    @staticmethod
    def empty() -> Chunk:
        return Chunk(np.zeros((0, 3), np.uint32), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return len(self.times)

    def lines(self) -> list[tuple[int, int, Floats, Floats]]:
        """``(series, field, times, values)`` per line (views into this chunk)."""
        out = []
        start = 0
        for series, field, count in self.table.tolist():
            stop = start + count
            out.append((series, field, self.times[start:stop], self.values[start:stop]))
            start = stop
        return out

    def buffers(self) -> list[bytes]:
        """The three binary buffers of a chart message (native byte order, as a browser's
        typed arrays read them): the table as uint32, the times and values as float64."""
        return [
            np.ascontiguousarray(self.table, np.uint32).tobytes(),
            np.ascontiguousarray(self.times, np.float64).tobytes(),
            np.ascontiguousarray(self.values, np.float64).tobytes(),
        ]

    @staticmethod
    def from_buffers(buffers: list[bytes] | list[memoryview]) -> Chunk:
        """The inverse of ``buffers`` (what a view does, for tests)."""
        table = np.frombuffer(buffers[0], np.uint32).reshape(-1, 3)
        times = np.frombuffer(buffers[1], np.float64)
        values = np.frombuffer(buffers[2], np.float64)
        if int(table[:, 2].sum()) != len(times) or len(times) != len(values):
            raise ValueError("a chart chunk's counts do not match its points")
        return Chunk(table, times, values)


def group_points(series: Uints, times: Floats, values: Floats) -> Chunk:
    """Pack points in arrival order into a chunk: one line per (series, field) that has a
    finite value. ``values`` has one column per field (NaN: the reading lacks it)."""
    if values.ndim != 2 or len(values) != len(times) or len(series) != len(times):
        raise ValueError("series, times and values must be as long as each other")
    tables, all_times, all_values = [], [], []
    for field in range(values.shape[1]):
        column = values[:, field]
        present = np.isfinite(column)
        if not present.any():
            continue
        s, t, v = series[present], times[present], column[present]
        order = np.lexsort((t, s))  # by series, then time (stable)
        s, t, v = s[order], t[order], v[order]
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        counts = np.diff(np.append(starts, len(s)))
        table = np.empty((len(starts), 3), np.uint32)
        table[:, 0], table[:, 1], table[:, 2] = s[starts], field, counts
        tables.append(table)
        all_times.append(t)
        all_values.append(v)
    if not tables:
        return Chunk.empty()
    return Chunk(np.concatenate(tables), np.concatenate(all_times), np.concatenate(all_values))


class Line:
    """One series' points of one field, time-sorted, in arrays that grow by doubling."""

    __slots__ = ("_t", "_v", "start", "stop")

    def __init__(self) -> None:
        self._t = np.empty(64)
        self._v = np.empty(64)
        self.start = 0
        self.stop = 0

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def times(self) -> Floats:
        return self._t[self.start : self.stop]

    @property
    def values(self) -> Floats:
        return self._v[self.start : self.stop]

    @property
    def newest(self) -> float:
        return float(self._t[self.stop - 1]) if self.stop > self.start else -math.inf

    def extend(self, times: Floats, values: Floats) -> None:
        """Add points (time-sorted among themselves); older ones are merged in place."""
        if not len(times):
            return
        if len(self) and times[0] <= self._t[self.stop - 1]:
            # Late points (a history backfill after live ones): merge, stable by time, and
            # drop exact repeats (a reading seen both in the first snapshot and live).
            t = np.concatenate((self.times, times))
            v = np.concatenate((self.values, values))
            order = np.argsort(t, kind="stable")
            t, v = t[order], v[order]
            repeat = np.concatenate(([False], (t[1:] == t[:-1]) & (v[1:] == v[:-1])))
            self._replace(t[~repeat], v[~repeat])
            return
        need = self.stop + len(times)
        if need > len(self._t):
            self._replace(self.times, self.values, room=len(times))
            need = self.stop + len(times)
        self._t[self.stop : need] = times
        self._v[self.stop : need] = values
        self.stop = need

    def drop_before(self, cutoff: float) -> None:
        """Forget the points older than ``cutoff``."""
        self.start += int(np.searchsorted(self.times, cutoff, side="left"))

    def compact(self, before: float, width: float) -> None:
        """Reduce the points older than ``before`` to min/max per ``width`` seconds."""
        split = int(np.searchsorted(self.times, before, side="left"))
        if split <= 2:
            return
        old_t, old_v = downsample(self.times[:split], self.values[:split], width)
        self._replace(
            np.concatenate((old_t, self.times[split:])),
            np.concatenate((old_v, self.values[split:])),
        )

    def _replace(self, times: Floats, values: Floats, room: int = 0) -> None:
        size = max(64, 2 * (len(times) + room))
        self._t = np.empty(size)
        self._v = np.empty(size)
        self._t[: len(times)] = times
        self._v[: len(values)] = values
        self.start, self.stop = 0, len(times)


class LineStore:
    """Every line of a chart: ``(series, field) -> Line``, bounded in time and in size.

    ``span``: the window in seconds (``None``: bounded by ``max_points`` only);
    ``max_points``: a hard bound on all lines together (the oldest points go first).
    """

    def __init__(
        self,
        *,
        span: float | None,
        max_points: int,
        buckets: int = BUCKETS,
        recent: float = RECENT,
    ) -> None:
        if span is not None and not span > 0:
            raise ValueError(f"span must be positive seconds or None, not {span!r}")
        self.span = span
        self.max_points = max_points
        self.buckets = buckets
        self.recent = recent
        self.lines: dict[tuple[int, int], Line] = {}
        self.newest = -math.inf

    def __len__(self) -> int:
        return sum(len(line) for line in self.lines.values())

    def add(self, chunk: Chunk) -> None:
        """Store a chunk's points, then apply the bounds."""
        for series, field, times, values in chunk.lines():
            line = self.lines.get((series, field))
            if line is None:
                line = self.lines[(series, field)] = Line()
            line.extend(times, values)
            self.newest = max(self.newest, line.newest)
        self._bound()

    def _bound(self) -> None:
        if self.span is not None:
            cutoff = self.newest - self.span
            for line in self.lines.values():
                line.drop_before(cutoff)
        for line in self.lines.values():
            if len(line) > HIGH_WATER * self.buckets:
                line.compact(line.newest - self.recent, self._width(line))
        total = len(self)
        if total > self.max_points:
            every = np.concatenate([line.times for line in self.lines.values()])
            cutoff = float(np.partition(every, total - self.max_points)[total - self.max_points])
            for line in self.lines.values():
                line.drop_before(cutoff)
        for key in [key for key, line in self.lines.items() if not len(line)]:
            del self.lines[key]

    def _width(self, line: Line) -> float:
        if self.span is not None:
            return self.span / self.buckets
        return max((line.newest - float(line.times[0])) / self.buckets, 1e-6)

    def export(self) -> Chunk:
        """Every line as one chunk (what a view gets when it renders)."""
        if not self.lines:
            return Chunk.empty()
        keys = sorted(self.lines)
        table = np.array(
            [(series, field, len(self.lines[(series, field)])) for series, field in keys],
            np.uint32,
        ).reshape(-1, 3)
        times = np.concatenate([self.lines[key].times for key in keys])
        values = np.concatenate([self.lines[key].values for key in keys])
        return Chunk(table, times, values)
