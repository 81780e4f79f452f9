"""Reconnect delays: exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the clients
of a restarted server over the whole window instead of having them all knock at once.
The random source is injected so that tests are deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff", "ReconnectDecision"]


@dataclass(frozen=True)
class ReconnectDecision:
    """What to do after a connection ended.

    ``reason`` is the server's ``disconnect`` reason when it sent one (``unauthorized``,
    ``server_restart``...), else ``connection_lost``.
    """

    reconnect: bool
    delay: float
    reason: str


class Backoff:
    """Delay before reconnect attempt ``n``: uniform in ``[0, min(cap, base * factor**n)]``."""

    def __init__(
        self,
        *,
        base: float = 0.5,
        factor: float = 2.0,
        cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or factor < 1 or cap < base:
            raise ValueError(
                f"backoff needs base > 0, factor >= 1 and cap >= base; got {base}, {factor}, {cap}"
            )
        self.base = base
        self.factor = factor
        self.cap = cap
        self.attempts = 0
        self._rng = rng if rng is not None else random.Random()
        self._ceiling = base

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one attempt."""
        delay = self._rng.uniform(0.0, self._ceiling)
        self.attempts += 1
        # Grow the ceiling incrementally: factor**attempts would overflow a float after
        # a long outage.
        self._ceiling = min(self.cap, self._ceiling * self.factor)
        return delay

    def reset(self) -> None:
        """Back to the first delay (after a successful connection)."""
        self.attempts = 0
        self._ceiling = self.base
