"""The hub: offsets, history rings, fan-out and the slow-consumer policy (no sockets)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_iotcable.hub import ChannelSpec, HistoryGap, Hub, Outbox, Policy, RateMeter
from jupyter_iotcable.protocol import HistoryRequest, StreamPosition
from jupyter_iotcable.readings import make_decoder

JSON = make_decoder("json")
NUMBER = make_decoder("number")


def make_hub(**overrides: object) -> Hub:
    telemetry = ChannelSpec("telemetry", ("plant/+/+/env",), JSON, history_limit=100)
    numbers = ChannelSpec("numbers", ("num/#",), NUMBER, history_limit=5, history_ttl=60.0)
    everything = ChannelSpec("all", ("#",), make_decoder("text"))
    specs = [telemetry, numbers, everything]
    if overrides:
        specs = [ChannelSpec(**{**s.__dict__, **overrides}) for s in specs]
    return Hub(specs, epoch="e1")


def feed(hub: Hub, topic: str, n: int, start: float = 1000.0, step: float = 0.01) -> None:
    for i in range(n):
        hub.ingest(topic, str(i).encode(), start + i * step, start + i * step)


def test_each_channel_is_a_stream_with_its_own_offsets() -> None:
    hub = make_hub()
    assert hub.filters == ["plant/+/+/env", "num/#", "#"]
    touched = hub.ingest("num/a", b"1.5", 1.0, 1.0)
    assert sorted(s.name for s in touched) == ["all", "numbers"]
    hub.ingest("plant/lyon/p1/env", b'{"t": 1}', 2.0, 2.0)
    assert hub.streams["numbers"].offset == 1
    assert hub.streams["telemetry"].offset == 1
    assert hub.streams["all"].offset == 2
    # Each stream decodes with its own format.
    assert hub.streams["numbers"].ring[0].reading.payload == 1.5
    assert hub.streams["all"].ring[0].reading.payload == "1.5"


def test_dollar_topics_only_where_a_filter_names_them() -> None:
    hub = make_hub()
    assert hub.ingest("$SYS/broker/uptime", b"1", 1.0, 1.0) == []
    assert hub.unrouted == 1


def test_fan_out_respects_narrow_filters_and_keeps_order() -> None:
    hub = make_hub()
    box = Outbox()
    whole = hub.subscribe(box, "id-whole", "telemetry", None)
    narrow = hub.subscribe(box, "id-lyon", "telemetry", "plant/lyon/+/env")
    for site in ("lyon", "porto", "lyon"):
        hub.ingest(f"plant/{site}/p/env", b"{}", 1.0, 1.0)
    batches = {b.sub.identifier: b for b in box.take()}
    assert [e.offset for e in batches["id-whole"].entries] == [1, 2, 3]
    # Increasing but not contiguous: a narrower topic skips offsets.
    assert [e.offset for e in batches["id-lyon"].entries] == [1, 3]
    hub.unsubscribe(narrow)
    hub.ingest("plant/lyon/p/env", b"{}", 1.0, 1.0)
    assert [b.sub for b in box.take()] == [whole]


def test_history_by_position() -> None:
    hub = make_hub()
    feed(hub, "plant/a/b/env", 10)
    stream = hub.streams["telemetry"]
    got = stream.history(HistoryRequest(streams={"telemetry": StreamPosition("e1", 7)}), 1000.0)
    assert isinstance(got, list)
    assert [e.offset for e in got] == [8, 9, 10]
    assert (
        stream.history(HistoryRequest(streams={"telemetry": StreamPosition("e1", 10)}), 1000.0)
        == []
    )


def test_history_since_and_topic_filter() -> None:
    hub = make_hub()
    feed(hub, "plant/a/b/env", 5, start=100.0, step=1.0)
    feed(hub, "plant/c/d/env", 5, start=105.0, step=1.0)
    stream = hub.streams["telemetry"]
    got = stream.history(HistoryRequest(since=103.0), 200.0, "plant/a/+/env")
    assert isinstance(got, list)
    assert [e.reading.time for e in got] == [103.0, 104.0]


def test_history_after_eviction_is_a_gap_with_what_is_left() -> None:
    hub = make_hub()
    feed(hub, "num/x", 12)  # history_limit 5: offsets 8..12 remain
    stream = hub.streams["numbers"]
    assert stream.oldest == 8
    gap = stream.history(HistoryRequest(streams={"numbers": StreamPosition("e1", 3)}), 1000.0)
    assert isinstance(gap, HistoryGap)
    assert gap.available_from == 8
    assert "4..7" in gap.reason and "no longer kept" in gap.reason
    # Exactly at the edge is not a gap.
    edge = stream.history(HistoryRequest(streams={"numbers": StreamPosition("e1", 7)}), 1000.0)
    assert isinstance(edge, list)
    assert [e.offset for e in edge] == [8, 9, 10, 11, 12]
    since = stream.history(HistoryRequest(since=0.0), 1000.0)
    assert isinstance(since, HistoryGap)


def test_history_from_another_epoch_is_a_gap() -> None:
    hub = make_hub()
    feed(hub, "num/x", 2)
    gap = hub.streams["numbers"].history(
        HistoryRequest(streams={"numbers": StreamPosition("old", 1)}), 1000.0
    )
    assert isinstance(gap, HistoryGap)
    assert "'old'" in gap.reason and "'e1'" in gap.reason


def test_history_since_before_the_epoch_started_is_a_gap() -> None:
    hub = Hub([ChannelSpec("numbers", ("num/#",), NUMBER)], epoch="e2", started_at=500.0)
    hub.ingest("num/x", b"1", 600.0, 600.0)
    gap = hub.streams["numbers"].history(HistoryRequest(since=400.0), 700.0)
    assert isinstance(gap, HistoryGap)
    assert "epoch 'e2'" in gap.reason
    assert gap.available_from == 1
    kept = hub.streams["numbers"].history(HistoryRequest(since=550.0), 700.0)
    assert isinstance(kept, list)
    assert [e.offset for e in kept] == [1]


def test_history_ttl_evicts_by_age() -> None:
    hub = make_hub()
    feed(hub, "num/x", 3, start=1000.0, step=1.0)
    hub.trim(1000.0 + 61.5)  # ttl 60 s: the readings at 1000 and 1001 are gone
    assert [e.offset for e in hub.streams["numbers"].ring] == [3]


def test_conflate_keeps_latest_per_topic_and_counts_drops() -> None:
    hub = make_hub()
    box = Outbox(max_bytes=2_000)
    hub.subscribe(box, "id", "numbers", None, Policy.CONFLATE)
    for i in range(200):
        hub.ingest(f"num/{i % 3}", str(i).encode(), 1.0, 1.0)
    assert box.used <= box.max_bytes
    (batch,) = box.take()
    payloads = [e.reading.payload for e in batch.entries]
    assert len(payloads) == len(batch.entries)
    # The latest reading of each topic survives, in stream order.
    assert payloads[-3:] == [197.0, 198.0, 199.0]
    offsets = [e.offset for e in batch.entries]
    assert offsets == sorted(offsets)
    assert batch.dropped == 200 - len(batch.entries)
    assert box.pending_rows == 0 and box.pending_bytes == 0


def test_conflate_with_many_topics_stays_bounded() -> None:
    hub = make_hub()
    box = Outbox(max_bytes=10_000)
    hub.subscribe(box, "id", "numbers", None, Policy.CONFLATE)
    for i in range(100_000):
        hub.ingest(f"num/{i}", b"1", 1.0, 1.0)
        assert box.used <= box.max_bytes
    (batch,) = box.take()
    assert batch.dropped + len(batch.entries) == 100_000
    assert batch.entries[-1].reading.topic == "num/99999"


def test_in_flight_bytes_count_against_the_bound() -> None:
    hub = make_hub()
    box = Outbox(max_bytes=1_000)
    hub.subscribe(box, "id", "numbers", None, Policy.CONFLATE)
    box.sent(990)
    hub.ingest("num/a", b"1", 1.0, 1.0)
    hub.ingest("num/a", b"2", 1.0, 1.0)
    (batch,) = box.take()
    assert [e.reading.payload for e in batch.entries] == [2.0]
    assert batch.dropped == 1
    box.flushed(990)
    assert box.in_flight == 0


def test_disconnect_policy_overflows_and_frees_memory() -> None:
    hub = make_hub()
    woken: list[int] = []
    box = Outbox(max_bytes=500, wake=lambda: woken.append(box.pending_rows))
    hub.subscribe(box, "id", "numbers", None, Policy.DISCONNECT)
    for i in range(100):
        hub.ingest("num/a", str(i).encode(), 1.0, 1.0)
    assert box.overflowed
    assert box.pending_bytes == 0 and box.take() == []
    assert woken, "the I/O layer must be woken to close the connection"


def test_held_subscription_waits_for_history() -> None:
    hub = make_hub()
    box = Outbox()
    sub = hub.subscribe(box, "id", "numbers", None)
    sub.held = True
    hub.ingest("num/a", b"1", 1.0, 1.0)
    assert box.take() == []
    assert [e.offset for e in box.remove(sub)] == [1]
    assert box.pending_rows == 0


def test_rate_meter() -> None:
    meter = RateMeter(window=10)
    for i in range(100):
        meter.record(1000.0 + i * 0.1)
    assert meter.rate(1009.95) == pytest.approx(10.0)
    assert meter.rate(1030.0) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["num/a", "num/b", "num/c/d"]), st.integers(0, 10**6)),
        max_size=300,
    ),
    st.integers(min_value=200, max_value=3_000),
)
def test_outbox_bound_and_order_hold_for_any_sequence(
    messages: list[tuple[str, int]], max_bytes: int
) -> None:
    hub = make_hub()
    box = Outbox(max_bytes=max_bytes)
    hub.subscribe(box, "id", "numbers", None, Policy.CONFLATE)
    for topic, value in messages:
        hub.ingest(topic, json.dumps(value).encode(), 1.0, 1.0)
        assert box.used <= max_bytes + 100  # one entry may straddle the bound
    delivered = [e for b in box.take() for e in b.entries]
    offsets = [e.offset for e in delivered]
    assert offsets == sorted(offsets)
    if messages:
        # The very latest reading is never dropped.
        assert delivered[-1].offset == len(messages)
