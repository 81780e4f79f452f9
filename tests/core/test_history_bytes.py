"""History bounded in bytes (#12): per channel (``history_bytes``) and for the whole server,
counting what an entry really costs in memory (``Entry.memory``), not what a device sent.

Ten 1 MB payloads of ``[{},{},...]`` used to raise the server's RSS by 232 MB: the ring
kept decoded values (a dict per ``{}``). The ring now keeps each payload as its JSON bytes,
so memory follows the configuration; tracemalloc checks the estimate here, and
tests/integration/test_hostile_payloads.py the process's RSS with a real server.
"""

from __future__ import annotations

import gc
import tracemalloc

from jupyter_iotcable.hub import ENTRY_MEMORY, ChannelSpec, Hub
from jupyter_iotcable.protocol import HistoryRequest, StreamPosition
from jupyter_iotcable.readings import make_decoder
from jupyter_iotcable.server.codec import orjson_bytes

JSON = make_decoder("json")


def empty_objects(nbytes: int) -> bytes:
    """``[{},{},...]`` of about ``nbytes``: the payload that cost 23x its size in memory."""
    return b"[" + b"{}," * (nbytes // 3 - 1) + b"{}]"


#: Allocations made with our code on the stack: tracemalloc traces every thread, and a
#: pytest-xdist worker's own thread (execnet) allocates while a test runs (1,280 bytes of
#: its messages once pushed a bound below over by that much).
OURS = tracemalloc.Filter(True, "*/jupyter_iotcable/*", all_frames=True)


def allocated_by(hub: Hub, payloads: list[tuple[str, bytes]]) -> int:
    """Bytes still allocated after ingesting ``payloads`` (tracemalloc), by our code."""
    gc.collect()
    tracemalloc.start(8)  # enough to reach one of our frames from any allocation in ingest
    try:
        before = tracemalloc.take_snapshot().filter_traces([OURS])
        for i, (topic, payload) in enumerate(payloads):
            hub.ingest(topic, payload, 1000.0 + i, 1000.0 + i)
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces([OURS])
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def test_an_entry_costs_what_it_is_counted_for_small_readings() -> None:
    hub = Hub([ChannelSpec("t", ("#",), JSON, history_limit=100_000)], "e1", dumps=orjson_bytes)
    hub.ingest("plant/a/b/env", b'{"seq": -1}', 999.0, 999.0)  # the topic's caches
    readings = [("plant/a/b/env", b'{"seq": %d, "t": 21.5}' % i) for i in range(5000)]
    used = allocated_by(hub, readings)
    counted = hub.streams["t"].ring_memory
    # The count is an upper bound, and not a wild one: about ENTRY_MEMORY per entry.
    assert used <= counted
    assert counted - used <= 5000 * ENTRY_MEMORY // 2
    assert used / 5000 > ENTRY_MEMORY / 4


def test_a_payload_of_empty_objects_costs_its_bytes_not_23_times_them() -> None:
    spec = ChannelSpec("t", ("#",), JSON, max_reading_bytes=1 << 20)
    hub = Hub([spec], "e1", dumps=orjson_bytes)
    payload = empty_objects(200_000)
    hub.ingest("d/1", b"[]", 999.0, 999.0)  # the topic's caches
    used = allocated_by(hub, [("d/1", payload) for i in range(10)])
    assert hub.streams["t"].ring_memory == 10 * (ENTRY_MEMORY + len(payload)) + ENTRY_MEMORY + 2
    # Besides the ring: the rate meter's buckets (one per second, ten at most).
    assert used <= hub.streams["t"].ring_memory + 4096
    assert used >= 10 * len(payload)


def test_a_channel_keeps_at_most_its_history_bytes_and_reports_the_gap() -> None:
    spec = ChannelSpec("t", ("#",), JSON, history_bytes=20_000)
    hub = Hub([spec], "e1")
    payload = b'"' + b"x" * 1000 + b'"'
    for i in range(100):
        hub.ingest("d/1", payload, 1000.0 + i, 1000.0 + i)
    stream = hub.streams["t"]
    assert stream.ring_memory <= 20_000
    assert len(stream.ring) == 20_000 // (ENTRY_MEMORY + len(payload))
    assert stream.oldest == 100 - len(stream.ring) + 1
    gap = stream.history(HistoryRequest(None, {"t": StreamPosition("e1", 0)}), 1100.0)
    assert not isinstance(gap, list)
    assert gap.reason == (
        f"readings 1..{stream.oldest - 1} of stream 't' are no longer kept "
        "(history_limit 1000, history_ttl 3600s, history_bytes 20,000)"
    )
    assert gap.available_from == stream.oldest


def test_the_newest_reading_is_kept_whatever_its_size() -> None:
    hub = Hub([ChannelSpec("t", ("#",), JSON, history_bytes=100)], "e1")
    hub.ingest("d/1", b"[1, 2, 3]", 1.0, 1.0)
    hub.ingest("d/1", b"[4, 5, 6]", 2.0, 2.0)
    assert [e.offset for e in hub.streams["t"].ring] == [2]


def test_the_server_wide_bound_takes_from_the_channel_holding_the_most() -> None:
    noisy = ChannelSpec("noisy", ("noisy/#",), JSON, history_bytes=1 << 30)
    quiet = ChannelSpec("quiet", ("quiet/#",), JSON, history_bytes=1 << 30)
    hub = Hub([noisy, quiet], "e1", history_bytes=200_000)
    small = b'"' + b"q" * 100 + b'"'
    for i in range(10):
        hub.ingest("quiet/1", small, float(i), float(i))
    big = b'"' + b"n" * 10_000 + b'"'
    for i in range(100):
        hub.ingest("noisy/1", big, 100.0 + i, 100.0 + i)
    assert hub.budget.used <= 200_000
    assert hub.budget.used == sum(s.ring_memory for s in hub.streams.values())
    assert len(hub.streams["quiet"].ring) == 10  # the quiet channel keeps everything
    assert hub.streams["noisy"].evicted == hub.budget.evicted > 0
    assert hub.streams["noisy"].ring_memory <= 200_000 - hub.streams["quiet"].ring_memory


def test_evicting_by_count_or_age_gives_the_bytes_back() -> None:
    hub = Hub([ChannelSpec("t", ("#",), JSON, history_limit=3, history_ttl=10.0)], "e1")
    for i in range(10):
        hub.ingest("d/1", b"[%d]" % i, float(i), float(i))
    assert hub.budget.used == hub.streams["t"].ring_memory == 3 * (ENTRY_MEMORY + 3)
    hub.trim(100.0)
    assert hub.budget.used == hub.streams["t"].ring_memory == 0
