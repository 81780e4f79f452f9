"""A private asyncio event loop on a daemon thread, owned by one ``Cable``.

The connection must keep reading while a notebook cell computes, and must not depend on
the caller having (or not having) a running loop: ipykernel runs one, scripts don't.
So each cable runs its socket on its own loop in a daemon thread, and the user's thread
hands work to it with ``submit`` (a coroutine) or ``call`` (a plain function), getting
a ``concurrent.futures.Future`` back that sync code can wait on and async code can
wrap with ``asyncio.wrap_future``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")
P = ParamSpec("P")


class BackgroundLoop:
    """An event loop running forever on a daemon thread until ``stop``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[object, object, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(
        self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` on the loop's thread (the one owning the protocol state)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the loop's thread to end (not from that thread)."""
        if not self.in_loop_thread:
            self._thread.join(timeout)

    def stop(self, timeout: float) -> None:
        """Stop the loop and wait up to ``timeout`` seconds for its thread to end."""
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return  # closed in between
        if not self.in_loop_thread:
            self._thread.join(timeout)
