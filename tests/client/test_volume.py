"""100k readings through the client's whole stack, in memory: the server's protocol machine
sends them as it would (batch frames), the client's session decodes them into three
subscriptions, and the frames hold every reading once, in order, with the bounds kept.

The same path through a real broker and server, with fewer readings, is
tests/integration/test_client.py::test_readings_land_in_bounded_and_unbounded_frames.
"""

from __future__ import annotations

import gc
import tracemalloc

import pandas as pd

from jupyter_iotcable.client.inbox import Inbox
from jupyter_iotcable.client.subscription import Subscription
from jupyter_iotcable.protocol import EncodedRows, Row, Subprotocol

from .memory import T0, MemoryControl, MemoryServer

EXPECTED_DTYPES = {
    "topic": "str",
    "site": "str",
    "device": "str",
    "seq": "Int64",
    "temperature": "float64",
    "status": "str",
}


def rows(start: int, stop: int) -> list[Row]:
    """A thousand readings a second from four pumps in lyon, as the devices publish them."""
    return [
        (
            n + 1,
            T0 + n / 1000,
            f"plant/lyon/pump{n % 4}/env",
            {"seq": n, "temperature": 20 + n % 7 / 2, "status": "ok"},
            None,
        )
        for n in range(start, stop)
    ]


def seqs(sub: Subscription) -> list[int]:
    return [int(s) for s in sub.frame["seq"]]


def test_100k_readings_land_in_the_frame_with_bounded_memory() -> None:
    total, more = 100_000, 50_000
    server = MemoryServer()
    inboxes = {
        "whole": Inbox("telemetry", None, max_rows=total, window=None),
        "by_rows": Inbox("telemetry", None, max_rows=10_000, window=None),
        "by_time": Inbox("telemetry", None, max_rows=1000 * total, window=2.0),
    }
    for box in inboxes.values():
        server.session.subscribe(box)
        server.pump()
        server.confirm(box.identifier)
        server.pump()
        assert box.state == "live"
    whole, by_rows, by_time = (Subscription(box, MemoryControl()) for box in inboxes.values())

    def encoded(start: int, stop: int) -> list[EncodedRows]:
        """Batches of a thousand, encoded once for every subscriber (as the server does)."""
        return [
            EncodedRows.encode(Subprotocol.IOTCABLE, "telemetry", "e1", rows(first, first + 1000))
            for first in range(start, stop, 1000)
        ]

    def send(batches: list[EncodedRows], to: list[Inbox]) -> None:
        for batch in batches:
            for box in to:
                server.server.send_encoded(box.identifier, batch)
            server.pump()

    send(encoded(0, total), list(inboxes.values()))
    assert whole.received == by_rows.received == by_time.received == total
    frame = whole.frame
    assert len(frame) == total
    assert seqs(whole) == list(range(total))  # no reading lost, none twice
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert frame.index.is_monotonic_increasing
    assert {c: str(t) for c, t in frame.dtypes.items()} == EXPECTED_DTYPES
    assert whole.gaps == []
    assert seqs(by_rows) == list(range(total - 10_000, total))
    timed = by_time.frame
    assert {c: str(t) for c, t in timed.dtypes.items()} == EXPECTED_DTYPES
    assert timed.index[-1] - timed.index[0] <= pd.Timedelta(seconds=2)
    assert 1500 < len(timed) <= 2001, "two seconds at a thousand readings a second"
    assert seqs(by_time) == list(range(total - len(timed), total))  # the newest, in full

    # Memory: once the bounded subscriptions are full, 50k more readings leave behind
    # only what the bounds keep (10k rows + a 2 s window: 3.5 MiB measured). Were the
    # 50k kept by one of them, that alone would be 18.6 MiB.
    whole.unsubscribe()
    del frame, timed
    batches = encoded(total, total + more)  # the server's side, outside the measure
    gc.collect()
    tracemalloc.start()
    try:
        send(batches, [inboxes["by_rows"], inboxes["by_time"]])
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert by_rows.received == by_time.received == total + more
    assert kept < 10 * 2**20, f"{kept / 2**20:.1f} MiB kept"
    assert len(by_rows) == 10_000
    assert seqs(by_rows) == list(range(total + more - 10_000, total + more))
    assert by_time.frame.index[-1] - by_time.frame.index[0] <= pd.Timedelta(seconds=2)
