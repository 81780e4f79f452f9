"""``sub.rate``: readings that *arrived* per second, over a sliding window.

A rate that a person reads next to a live stream must mean arrivals: a history backfill
delivers thousands of old readings in a second, and counting them would show 70,000
readings/s where 4 a second arrive. So the subscription tells the meter only about live
rows (not the answers to history requests, nor the catch-up after a reconnect), and the
meter divides by the time it has really watched, never less than a second, so the first
reading after a quiet start does not read as a burst.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RATE_WINDOW", "RateMeter"]

RATE_WINDOW = 10.0
"""Seconds of arrivals that a rate averages over."""

_BUCKET = 0.1
"""Arrivals are counted in buckets of this many seconds: memory stays at most
``window / bucket`` entries whatever the rate."""

_MIN_ELAPSED = 1.0
"""A meter younger than this divides by it: one reading in its first 0.1 s is not 10/s."""


class RateMeter:
    """Arrivals per second over the last ``window`` seconds (thread-safe).

    ``clock`` is a monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self, window: float = RATE_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._started = clock()
        self._buckets: deque[list[float]] = deque()  # [bucket start, count], oldest first
        self._lock = threading.Lock()
        self.total = 0
        """Every arrival counted since the meter started."""

    def arrived(self, count: int) -> None:
        """``count`` readings arrived now."""
        if count <= 0:
            return
        now = self._clock()
        start = now - now % _BUCKET
        with self._lock:
            self.total += count
            buckets = self._buckets
            if buckets and buckets[-1][0] == start:
                buckets[-1][1] += count
            else:
                buckets.append([start, count])
            self._expire(now)

    def restart(self) -> None:
        """Forget the arrivals so far (the subscription went live again after a pause)."""
        with self._lock:
            self._buckets.clear()
            self._started = self._clock()

    def rate(self) -> float:
        """Arrivals per second over the window (or over the time watched, if shorter)."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            count = sum(bucket[1] for bucket in self._buckets)
        elapsed = max(_MIN_ELAPSED, min(self.window, now - self._started))
        return count / elapsed

    def _expire(self, now: float) -> None:
        buckets, horizon = self._buckets, now - self.window
        while buckets and buckets[0][0] + _BUCKET <= horizon:
            buckets.popleft()
