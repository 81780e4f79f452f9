"""Handing readings across threads: blocking feeds and feeds read on another event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jupyter_iotcable.client.feeds import AsyncFeed, SyncFeed


def test_sync_feed_returns_items_then_none_on_idle_timeout() -> None:
    feed: SyncFeed[int] = SyncFeed(10)
    feed.put([1, 2])
    assert [feed.get(0.01), feed.get(0.01), feed.get(0.01)] == [1, 2, None]


def test_sync_feed_drops_the_oldest_and_counts_them() -> None:
    feed: SyncFeed[int] = SyncFeed(3)
    feed.put([1, 2])
    feed.put([3, 4, 5])
    assert feed.missed == 2
    assert [feed.get(0), feed.get(0), feed.get(0)] == [3, 4, 5]


def test_sync_feed_wakes_a_blocked_reader_from_another_thread() -> None:
    feed: SyncFeed[int] = SyncFeed(10)
    got: list[int | None] = []
    reader = threading.Thread(target=lambda: got.append(feed.get(None)))
    reader.start()
    feed.put([7])
    reader.join(10)
    assert got == [7]


def test_sync_feed_close_ends_a_blocked_reader() -> None:
    feed: SyncFeed[int] = SyncFeed(10)
    got: list[int | None] = []
    reader = threading.Thread(target=lambda: got.append(feed.get(None)))
    reader.start()
    feed.close()
    reader.join(10)
    assert got == [None]


@pytest.mark.asyncio
async def test_async_feed_receives_batches_put_from_another_thread() -> None:
    feed: AsyncFeed[int] = AsyncFeed(asyncio.get_running_loop(), 100_000)

    def producer() -> None:
        for start in range(0, 10_000, 100):
            feed.put(list(range(start, start + 100)))
        feed.close()

    thread = threading.Thread(target=producer)
    thread.start()
    received = []
    while (item := await asyncio.wait_for(feed.get(), 10)) is not None:
        received.append(item)
    thread.join(10)
    assert received == list(range(10_000))
    assert feed.missed == 0
