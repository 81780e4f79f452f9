"""Small pure limiters used by the server: publish rate per connection and per REST user."""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """``rate`` actions per second with bursts up to ``burst``; time is an argument."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def allow(self, now: float) -> bool:
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.updated = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)

    def retry_after(self) -> float:
        """Seconds until the next action would be allowed."""
        return max(0.0, (1.0 - self.tokens) / self.rate) if self.rate > 0 else float("inf")


class BucketMap:
    """One ``TokenBucket`` per key (a user name), holding at most ``max_keys`` of them.

    A bucket that has refilled to its burst is the same as a new one, so it can be
    forgotten; past ``max_keys``, the least recently used buckets go first. Memory thus
    stays bounded however many users publish, and a user can only regain a fresh burst by
    pushing ``max_keys`` other users' buckets out first.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> TokenBucket | None:
        """Take one action for ``key``: None if allowed, else its (empty) bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        allowed = bucket.allow(now)
        self._forget(now)
        return None if allowed else bucket

    def _forget(self, now: float) -> None:
        """Drop full buckets from the cold end, then whatever exceeds ``max_keys``."""
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            oldest.refill(now)
            if oldest.tokens < oldest.burst and len(self._buckets) <= self.max_keys:
                return
            del self._buckets[key]
