"""Small pure limiters used by the server: publish rate per connection."""

from __future__ import annotations


class TokenBucket:
    """``rate`` actions per second with bursts up to ``burst``; time is an argument."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def allow(self, now: float) -> bool:
        elapsed = max(0.0, now - self.updated)
        self.updated = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next action would be allowed."""
        return max(0.0, (1.0 - self.tokens) / self.rate) if self.rate > 0 else float("inf")
