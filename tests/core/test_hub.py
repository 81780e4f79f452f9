"""The hub: offsets, history rings, fan-out and the slow-consumer policy (no sockets)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_iotcable.hub import (
    Batch,
    ChannelSpec,
    HistoryGap,
    Hub,
    Outbox,
    Policy,
    Pressure,
    RateMeter,
)
from jupyter_iotcable.protocol import HistoryRequest, StreamPosition, Subprotocol, make_identifier
from jupyter_iotcable.protocol.rows import EncodedRows
from jupyter_iotcable.readings import make_decoder
from jupyter_iotcable.topics import TopicTemplate

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
    # Each stream decodes with its own format, and keeps the payload as JSON.
    assert hub.streams["numbers"].ring[0].payload == b"1.5"
    assert hub.streams["all"].ring[0].payload == b'"1.5"'
    assert hub.streams["all"].ring[1].row() == (2, 2.0, "plant/lyon/p1/env", '{"t": 1}', None)


def test_dollar_topics_only_where_a_filter_names_them() -> None:
    hub = make_hub()
    assert hub.ingest("$SYS/broker/uptime", b"1", 1.0, 1.0) == ()
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
    assert [e.time for e in got] == [103.0, 104.0]


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
    payloads = [e.row()[3] for e in batch.entries]
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
    assert batch.entries[-1].topic == "num/99999"


def test_in_flight_bytes_count_against_the_bound() -> None:
    hub = make_hub()
    box = Outbox(max_bytes=1_000)
    hub.subscribe(box, "id", "numbers", None, Policy.CONFLATE)
    box.sent(990)
    hub.ingest("num/a", b"1", 1.0, 1.0)
    hub.ingest("num/a", b"2", 1.0, 1.0)
    (batch,) = box.take()
    assert [e.payload for e in batch.entries] == [b"2.0"]
    assert batch.dropped == 1
    box.flushed(990)
    assert box.in_flight == 0


def test_an_outbox_half_full_raises_the_pressure_once_until_its_socket_takes_bytes() -> None:
    hub = make_hub()
    pressure = Pressure()
    box = Outbox(max_bytes=2_000, pressure=pressure)
    hub.subscribe(box, "id", "numbers", None, Policy.CONFLATE)
    pushes = 0
    while not pressure.raised:
        hub.ingest("num/a", str(pushes).encode(), 1.0, 1.0)
        pushes += 1
        assert pushes < 100
    assert 1_000 < box.used <= 2_000, "raised on crossing half the bound"
    pressure.raised = False  # the bridge lowers it and waits a turn
    for i in range(200):  # the socket took nothing meanwhile: a stuck client
        hub.ingest(f"num/{i}", b"1", 1.0, 1.0)
    assert not pressure.raised, "a full outbox does not hold the bridge back forever"
    for batch in box.take():
        box.sent(sum(e.size for e in batch.entries))
    box.flushed(box.in_flight)  # its socket took everything
    while not pressure.raised:
        hub.ingest("num/b", b"2", 1.0, 1.0)
    assert box.used > 1_000, "half full again since the write: raised again"


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
        # One entry may straddle the bound; one larger than the whole bound is queued
        # outside it (it goes on its own) and the bound grows by it.
        assert box.used <= max_bytes + box.allowance + 100
        assert box.allowance <= max_bytes + 100
    delivered = [e for b in box.take() for e in b.entries]
    offsets = [e.offset for e in delivered]
    assert offsets == sorted(offsets)
    if messages:
        # The very latest reading is never dropped.
        assert delivered[-1].offset == len(messages)


# -- history answers: a cursor, sent once, in order ------------------------------------


def _position(offset: int, epoch: str = "e1", stream: str = "numbers") -> HistoryRequest:
    return HistoryRequest(streams={stream: StreamPosition(epoch, offset)})


def test_history_answer_is_read_in_chunks_and_evicted_rows_become_the_gap() -> None:
    hub = make_hub(history_limit=50)
    feed(hub, "num/x", 40)
    stream = hub.streams["numbers"]
    replay = stream.plan(_position(0), 1000.0)
    first = replay.take(10, float("inf"))
    assert [e.offset for e in first] == list(range(1, 11))
    assert replay.gap is None and not replay.done
    # The client reads slowly: the ring turns over before the rest is sent.
    feed(hub, "num/x", 30)  # offsets 41..70; the ring keeps 21..70
    rest = replay.drain()
    assert [e.offset for e in rest] == list(range(21, 41)), "up to the request's last offset"
    assert replay.done
    assert replay.gap is not None
    assert "11..20" in replay.gap.reason and "evicted" in replay.gap.reason
    assert replay.gap.available_from == 21


def test_reject_history_is_preceded_only_by_rows_after_the_clients_position() -> None:
    hub = make_hub()
    feed(hub, "num/x", 12)  # history_limit 5: offsets 8..12 kept
    stream = hub.streams["numbers"]
    ahead = stream.plan(_position(500), 1000.0)
    assert ahead.gap is not None and "offset 500" in ahead.gap.reason
    assert ahead.drain() == [], "nothing is after a position ahead of the stream"
    other = stream.plan(_position(3, stream="telemetry"), 1000.0)
    assert other.gap is not None and "position for this stream" in other.gap.reason
    assert other.drain() == [], "the request does not name this stream"
    evicted = stream.plan(_position(3), 1000.0)
    assert evicted.gap is not None and evicted.gap.available_from == 8
    assert [e.offset for e in evicted.drain()] == [8, 9, 10, 11, 12]
    old_epoch = stream.plan(_position(3, epoch="e0"), 1000.0)
    assert old_epoch.gap is not None and "'e0'" in old_epoch.gap.reason
    assert [e.offset for e in old_epoch.drain()] == [8, 9, 10, 11, 12]


def test_history_from_offset_minus_one_means_from_the_start() -> None:
    hub = make_hub()
    feed(hub, "num/x", 3)
    got = hub.streams["numbers"].history(_position(-1), 1000.0)
    assert isinstance(got, list)
    assert [e.offset for e in got] == [1, 2, 3]


def test_history_never_repeats_a_row_the_subscription_was_sent() -> None:
    hub = make_hub(history_limit=100)
    box = Outbox()
    sub = hub.subscribe(box, "id", "numbers", None)
    feed(hub, "num/x", 60)
    # Live rows 41..60 went out (a resume hold that ended before the history request).
    sub.mark_sent([e for e in hub.streams["numbers"].ring if e.offset > 40])
    box.remove(sub)
    feed(hub, "num/x", 5)  # 61..65 are queued
    replay = hub.replay(sub, _position(20), 1000.0)
    rows = [e.offset for e in replay.drain()]
    # A backfill below what was sent, then what comes after it; 41..60 not again.
    assert rows == [*range(21, 41), *range(61, 66)]
    assert replay.gap is None
    assert box.pending_rows == 0, "the answer replaced what was queued"


def test_a_backfill_sent_in_chunks_is_not_sent_again() -> None:
    hub = make_hub(history_limit=100)
    box = Outbox()
    sub = hub.subscribe(box, "id", "numbers", None)
    feed(hub, "num/x", 60)
    sub.mark_sent([e for e in box.remove(sub) if e.offset > 50])  # live: 51..60
    replay = hub.replay(sub, _position(0), 1000.0)
    chunks = []
    while not replay.done:
        chunk = replay.take(10, float("inf"))
        sub.mark_sent(chunk)
        chunks.append([e.offset for e in chunk])
    assert chunks == [list(range(i, i + 10)) for i in range(1, 51, 10)]
    assert (sub.first_sent, sub.sent_through) == (1, 60)
    assert hub.replay(sub, _position(0), 1000.0).drain() == []


def test_rows_evicted_while_an_answer_waits_are_a_gap_but_rows_already_sent_are_not() -> None:
    hub = make_hub(history_limit=30)
    box = Outbox()
    sub = hub.subscribe(box, "id", "numbers", None)
    feed(hub, "num/x", 30)
    sub.mark_sent([e for e in hub.streams["numbers"].ring if e.offset > 20])  # 21..30
    box.remove(sub)
    replay = hub.replay(sub, _position(0), 1000.0)
    assert [e.offset for e in replay.take(5, float("inf"))] == [1, 2, 3, 4, 5]
    feed(hub, "num/x", 25)  # 31..55; the ring keeps 26..55
    assert [e.offset for e in replay.drain()] == []
    assert replay.gap is not None
    assert "6..20" in replay.gap.reason, "21..25 were sent: not part of the gap"


def test_history_a_subscription_already_has_is_not_a_gap() -> None:
    hub = make_hub(history_limit=100)
    box = Outbox()
    sub = hub.subscribe(box, "id", "numbers", None)
    feed(hub, "num/x", 30)
    sub.mark_sent(box.remove(sub))
    replay = hub.replay(sub, _position(0), 1000.0)
    assert replay.drain() == []
    assert replay.gap is None


def test_queued_rows_and_their_drop_count_stay_when_the_answer_does_not_cover_them() -> None:
    hub = make_hub()
    box = Outbox(max_bytes=1_000)
    sub = hub.subscribe(box, "id", "numbers", None, Policy.CONFLATE)
    for i in range(40):
        hub.ingest("num/a", str(i).encode(), 1.0, 1.0)
    assert box.pending_rows and box.dropped_total
    # A request for another stream is answered with nothing: the live rows and the
    # count of those conflated away are still owed to the client.
    replay = hub.replay(sub, _position(0, stream="telemetry"), 1.0)
    assert replay.drain() == [] and replay.gap is not None
    assert box.take() == [], "live rows wait while the answer is being sent"
    sub.replay = None
    (batch,) = box.take()
    assert batch.dropped + len(batch.entries) == 40
    assert batch.entries[-1].row()[3] == 39.0


def test_since_answer_covers_the_queued_live_rows_it_replaces() -> None:
    hub = make_hub(history_limit=100)
    box = Outbox()
    sub = hub.subscribe(box, "id", "numbers", None)
    feed(hub, "num/x", 10, start=100.0, step=1.0)  # times 100..109, all queued
    replay = hub.replay(sub, HistoryRequest(since=105.0), 150.0)
    # Rows older than `since` are not asked for, but those the live flow had queued are
    # in the answer since the queue went: none is lost.
    assert [e.offset for e in replay.drain()] == list(range(1, 11))
    assert replay.gap is None


# -- bytes: what the frames really carry -----------------------------------------------


def _frame_bytes(subprotocol: Subprotocol, identifier: str, batch: Batch, step: int) -> int:
    template = TopicTemplate("plant/{site}/{device}/env")
    total = 0
    for i in range(0, len(batch.entries), step):
        chunk = batch.entries[i : i + step]
        encoded = EncodedRows.encode(
            subprotocol,
            batch.sub.stream.name,
            batch.sub.stream.epoch,
            [e.row() for e in chunk],
            columns=lambda t: template.extract(t) or {},
        )
        frames = encoded.frames(identifier, batch.dropped if i == 0 else 0)
        total += sum(len(f.encode()) for f in frames)
    return total


@pytest.mark.parametrize("subprotocol", [Subprotocol.IOTCABLE, Subprotocol.EXT])
@pytest.mark.parametrize("topics", [1, 5_000])
def test_outbox_bound_counts_the_identifier_each_frame_repeats(
    subprotocol: Subprotocol, topics: int
) -> None:
    hub = make_hub(history_limit=10)
    box = Outbox(max_bytes=256 * 1024)
    # 30 KB of identifier in UTF-8 (15 000 characters): every data frame repeats it.
    identifier = make_identifier("telemetry", note="é" * 15_000)
    step = 500
    hub.subscribe(
        box, identifier, "telemetry", None, batched=subprotocol.batched, rows_per_frame=step
    )
    for i in range(5_000):
        payload = json.dumps({"seq": i, "temp": 21.5, "status": "ok"}).encode()
        hub.ingest(f"plant/site{i % topics}/dev/env", payload, 1000.0 + i, 1000.0 + i)
        assert box.used <= box.max_bytes
    estimate = box.pending_bytes
    (batch,) = box.take()
    written = _frame_bytes(subprotocol, identifier, batch, step)
    assert written <= estimate, "the bound must count what is written, not less"
    assert written <= box.max_bytes
    assert batch.dropped + len(batch.entries) == 5_000


def test_frame_overhead_covers_a_data_frame_with_columns() -> None:
    hub = make_hub()
    box = Outbox()
    identifier = make_identifier("telemetry")
    sub = hub.subscribe(box, identifier, "telemetry", None, batched=False)
    hub.ingest("plant/a-long-site-name/device-42/env", b'{"t":1}', 1_700_000_000.123456, 1.0)
    entry = hub.streams["telemetry"].ring[-1]
    (batch,) = box.take()
    assert _frame_bytes(Subprotocol.EXT, identifier, batch, 500) <= sub.cost(entry)


# -- encode once, share the bytes ---------------------------------------------------------


def test_subscribers_with_one_identifier_share_their_frames() -> None:
    hub = make_hub()
    boxes = [Outbox() for _ in range(3)]
    same = make_identifier("telemetry")
    subs = [hub.subscribe(box, same, "telemetry", None) for box in boxes[:2]]
    other = hub.subscribe(
        boxes[2], make_identifier("telemetry", topic="plant/+/+/env"), "telemetry", None
    )
    feed(hub, "plant/a/b/env", 3)
    stream = hub.streams["telemetry"]
    frames = [
        stream.frames(sub, box.take()[0].entries, 0) for sub, box in zip(subs, boxes, strict=False)
    ]
    assert frames[0] == frames[1]
    assert frames[0][0] is frames[1][0], "one frame, written to both"
    (others,) = stream.frames(other, boxes[2].take()[0].entries, 0)
    assert others is not frames[0][0]
    assert json.loads(others)["batch"] == json.loads(frames[0][0])["batch"]
    assert (stream.frames_built, stream.frames_shared) == (2, 1)


def test_a_drop_count_is_spliced_into_a_copy_of_a_shared_frame() -> None:
    hub = make_hub()
    box = Outbox()
    identifier = make_identifier("numbers")
    sub = hub.subscribe(box, identifier, "numbers", None, batched=False)
    feed(hub, "num/a", 2)
    entries = box.take()[0].entries
    shared = hub.streams["numbers"].frames(sub, entries, 0)
    with_drop = hub.streams["numbers"].frames(sub, entries, 4)
    assert [json.loads(f) for f in with_drop] == [
        {**json.loads(shared[0]), "dropped": 4},
        json.loads(shared[1]),
    ]
    assert with_drop[1] is shared[1]
    assert json.loads(shared[0]) == {
        "identifier": identifier,
        "message": {"topic": "num/a", "time": 1000.0, "payload": 0.0},
        "stream_id": "numbers",
        "epoch": "e1",
        "offset": 1,
    }


def test_a_payload_that_cannot_be_encoded_is_a_flagged_row() -> None:
    def dumps(value: object) -> bytes:
        if value == {"boom": 1}:
            raise TypeError("Type is not JSON serializable: Boom")
        return json.dumps(value, separators=(",", ":")).encode()

    spec = ChannelSpec("telemetry", ("plant/+/+/env",), JSON)
    hub = Hub([spec], "e1", dumps=dumps)
    box = Outbox()
    sub = hub.subscribe(box, "id", "telemetry", None)
    for payload in (b'{"ok": 1}', b'{"boom": 1}', b'{"ok": 2}'):
        hub.ingest("plant/a/b/env", payload, 5.0, 5.0)
    (batch,) = box.take()
    (frame,) = hub.streams["telemetry"].frames(sub, batch.entries, 0)
    rows = json.loads(frame)["batch"]
    assert rows[0] == [1, 5.0, "plant/a/b/env", {"ok": 1}]
    assert rows[1] == [
        2,
        5.0,
        "plant/a/b/env",
        None,
        "payload cannot be encoded as JSON (Type is not JSON serializable: Boom); "
        "it is sent as null",
    ]
    assert rows[2] == [3, 5.0, "plant/a/b/env", {"ok": 2}], "the next row is untouched"


def test_a_conflated_run_is_not_shared() -> None:
    hub = make_hub()
    boxes = [Outbox(max_bytes=1_000), Outbox()]
    identifier = make_identifier("numbers")
    slow, fast = (hub.subscribe(box, identifier, "numbers", None) for box in boxes)
    feed(hub, "num/a", 40)
    (conflated,) = boxes[0].take()
    (whole,) = boxes[1].take()
    assert conflated.dropped
    stream = hub.streams["numbers"]
    (slow_frame,) = stream.frames(slow, conflated.entries, conflated.dropped)
    (fast_frame,) = stream.frames(fast, whole.entries, 0)
    assert len(json.loads(slow_frame)["batch"]) == len(conflated.entries)
    assert len(json.loads(fast_frame)["batch"]) == 40
