"""Hand readings from the client's thread to a consumer on another thread or event loop.

A feed is a bounded queue of readings that the client's thread fills one batch at a time.
``SyncFeed`` wakes a blocked ``for r in sub.readings()``; ``AsyncFeed`` wakes an
``async for r in sub`` on the consumer's own event loop (ipykernel's, or any other) with
``loop.call_soon_threadsafe``, at most once per wake-up rather than once per reading.

A consumer slower than the stream loses the oldest readings it has not taken yet (the
subscription's frame still has them); ``missed`` counts them.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Sequence

T = TypeVar("T")


class SyncFeed(Generic[T]):
    """A feed read by a blocking thread."""

    def __init__(self, maxlen: int) -> None:
        self._items: deque[T] = deque(maxlen=maxlen)
        self._ready = threading.Condition()
        self._closed = False
        self.missed = 0

    def put(self, items: Sequence[T]) -> None:
        with self._ready:
            self.missed += _extend_counting_overflow(self._items, items)
            self._ready.notify_all()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def get(self, timeout: float | None) -> T | None:
        """The next item; None once closed and empty, or when ``timeout`` seconds pass idle."""
        with self._ready:
            if not self._items and not self._closed:
                self._ready.wait(timeout)
            return self._items.popleft() if self._items else None


class AsyncFeed(Generic[T]):
    """A feed read by a coroutine on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxlen: int) -> None:
        self._loop = loop
        self._items: deque[T] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._event = asyncio.Event()
        self._wake_pending = False
        self._closed = False
        self.missed = 0

    def put(self, items: Sequence[T]) -> None:
        with self._lock:
            self.missed += _extend_counting_overflow(self._items, items)
            self._schedule_wake()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._schedule_wake()

    def _schedule_wake(self) -> None:
        """Ask the consumer's loop to wake the reader, unless a wake-up is already on its way."""
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            # The consumer's loop is closed: nobody is left to wake.
            self._wake_pending = False

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        self._event.set()

    async def get(self) -> T | None:
        """The next item, or None once the feed is closed and empty."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    return None
                self._event.clear()
            await self._event.wait()


def _extend_counting_overflow(queue: deque[T], items: Sequence[T]) -> int:
    """Append ``items`` to a bounded deque; return how many old items fell off the front."""
    before = len(queue)
    queue.extend(items)
    return before + len(items) - len(queue)
