"""The columnar reading buffer: flattening, bounds, windows, duplicates, late rows."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_iotcable.client.buffer import Kind, ReadingBuffer, Row, flatten_payload, kind_of
from jupyter_iotcable.topics import TopicTemplate

T0 = 1_700_000_000.0
TEMPLATE = TopicTemplate("plant/{site}/{device}/env")


def rows(
    start: int, stop: int, *, step: float = 1.0, topic: str = "plant/lyon/p1/env"
) -> list[Row]:
    return [(n, T0 + n * step, topic, {"seq": n}, None) for n in range(start, stop)]


def offsets(buffer: ReadingBuffer) -> list[int]:
    seqs = buffer.snapshot().columns.get("seq", [])
    return [int(s) for s in seqs]  # type: ignore[call-overload]


def test_flatten_objects_nested_and_scalars() -> None:
    assert flatten_payload({"t": 21.5, "env": {"h": 40, "deep": {"x": "a"}}}) == {
        "t": 21.5,
        "env.h": 40,
        "env.deep.x": "a",
    }
    assert flatten_payload(3.5) == {"value": 3.5}
    assert flatten_payload("on") == {"value": "on"}
    assert flatten_payload([1, 2]) == {"value": [1, 2]}
    assert flatten_payload({"empty": {}}) == {"empty": {}}


def test_kinds() -> None:
    assert [kind_of(v) for v in (1, 2.5, "x", True, None, [1])] == [
        Kind.NUMBER,
        Kind.NUMBER,
        Kind.TEXT,
        Kind.BOOL,
        Kind(0),
        Kind.OTHER,
    ]


def test_keeps_every_row_up_to_the_bound() -> None:
    buffer = ReadingBuffer(max_rows=100_000)
    for start in range(0, 100_000, 1000):
        buffer.add("e1", rows(start, start + 1000))
    assert len(buffer) == 100_000
    assert offsets(buffer) == list(range(100_000))


def test_evicts_the_oldest_rows_beyond_the_bound() -> None:
    buffer = ReadingBuffer(max_rows=100_000)
    for start in range(0, 150_000, 500):
        buffer.add("e1", rows(start, start + 500))
        assert len(buffer) <= 100_000
    assert offsets(buffer) == list(range(50_000, 150_000))


def test_time_window_is_measured_back_from_the_newest_reading() -> None:
    buffer = ReadingBuffer(max_rows=10_000, window=60.0)
    buffer.add("e1", rows(0, 1000))
    # times are T0 + n seconds: the newest is n=999, so n >= 939 stay.
    assert offsets(buffer) == list(range(939, 1000))


def test_duplicates_are_dropped_within_an_epoch_but_not_across_epochs() -> None:
    buffer = ReadingBuffer(max_rows=100)
    assert len(buffer.add("e1", rows(0, 10))) == 10
    assert buffer.add("e1", rows(5, 12)) == rows(10, 12)
    assert len(buffer) == 12
    # A new epoch starts offsets again: offset 0 of epoch e2 is a new reading.
    restarted = [(0, T0 + 100, "plant/lyon/p1/env", {"seq": 100}, None)]
    assert buffer.add("e2", restarted) == restarted
    assert len(buffer) == 13


def test_backfill_lands_in_time_order_without_duplicates() -> None:
    buffer = ReadingBuffer(max_rows=1000)
    buffer.add("e1", rows(100, 200))  # live rows first
    buffer.add("e1", rows(0, 150))  # then the history, overlapping
    snap = buffer.snapshot()
    assert snap.times == [T0 + n for n in range(200)]
    assert offsets(buffer) == list(range(200))


def test_out_of_order_rows_keep_memory_bounded() -> None:
    buffer = ReadingBuffer(max_rows=100)
    for n in range(1000):
        # every other row is older than the one before it
        when = T0 + n + (-0.5 if n % 2 else 0.0)
        buffer.add("e1", [(n, when, "a", {"seq": n}, None)])
        assert len(buffer) <= 200
    assert offsets(buffer) == list(range(900, 1000))


def test_columns_topic_levels_late_fields_and_reserved_names() -> None:
    buffer = ReadingBuffer(max_rows=10, template=TEMPLATE)
    buffer.add(
        "e1",
        [
            (1, T0, "plant/lyon/p1/env", {"t": 20.0}, None),
            (2, T0 + 1, "plant/paris/p2/env", {"t": 21.0, "h": 40, "site": "x", "topic": 1}, None),
            (3, T0 + 2, "other/topic", "raw text", "payload is not JSON"),
        ],
    )
    snap = buffer.snapshot()
    assert list(snap.columns) == [
        "topic",
        "site",
        "device",
        "t",
        "h",
        "payload.site",
        "payload.topic",
        "value",
        "error",
    ]
    assert snap.columns["site"] == ["lyon", "paris", None]
    assert snap.columns["h"] == [None, 40, None]
    assert snap.columns["payload.site"] == [None, "x", None]
    assert snap.columns["value"] == [None, None, "raw text"]
    assert snap.columns["error"] == [None, None, "payload is not JSON"]
    assert snap.kinds["t"] == Kind.NUMBER
    assert snap.kinds["value"] == Kind.TEXT


batches = st.lists(
    st.lists(
        st.tuples(st.integers(0, 300), st.floats(-5.0, 5.0, allow_nan=False)),
        max_size=40,
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(batches=batches, max_rows=st.integers(1, 120), window=st.none() | st.floats(1.0, 200.0))
def test_invariants(
    batches: list[list[tuple[int, float]]], max_rows: int, window: float | None
) -> None:
    """Sorted, unique, bounded, within the window; nothing lost while under the bounds."""
    buffer = ReadingBuffer(max_rows=max_rows, window=window)
    distinct: dict[int, float] = {}
    for batch in batches:
        # Offset n is always the same reading, with a time near T0 + n (devices jitter).
        added = [(n, T0 + n + jitter / 10, "a", {"seq": n}, None) for n, jitter in batch]
        for n, when, *_ in buffer.add("e1", added):
            distinct.setdefault(n, when)
        assert len(buffer) <= 2 * max_rows
    snap = buffer.snapshot()
    seqs = offsets(buffer)
    assert snap.times == sorted(snap.times)
    assert len(seqs) == len(set(seqs)) <= max_rows
    if snap.times and window is not None:
        assert snap.times[0] >= snap.times[-1] - window
    if len(distinct) <= max_rows and window is None:
        assert sorted(seqs) == sorted(distinct)


def test_a_payload_time_field_is_stored_as_payload_time() -> None:
    # ``time`` is the frame's index: a device's own timestamp must not clash with it.
    buffer = ReadingBuffer(max_rows=10)
    buffer.add("e1", [(1, T0, "a", {"time": "2024-01-01T00:00:00Z", "v": 1}, None)])
    snap = buffer.snapshot()
    assert list(snap.columns) == ["topic", "payload.time", "v"]
    assert snap.columns["payload.time"] == ["2024-01-01T00:00:00Z"]


def test_a_column_types_by_the_values_still_in_the_window() -> None:
    # One string in a numeric column makes it mixed only while that string is kept.
    buffer = ReadingBuffer(max_rows=10)
    buffer.add("e1", [(0, T0, "a", {"v": "broken"}, None)])
    buffer.add("e1", [(n, T0 + n, "a", {"v": n / 2}, None) for n in range(1, 6)])
    assert buffer.snapshot().kinds["v"] == Kind.NUMBER | Kind.TEXT
    buffer.add("e1", [(n, T0 + n, "a", {"v": n / 2}, None) for n in range(6, 11)])
    snap = buffer.snapshot()
    assert snap.columns["v"] == [n / 2 for n in range(1, 11)]
    assert snap.kinds["v"] == Kind.NUMBER


def test_columns_that_only_evicted_rows_used_leave_the_frame_and_memory() -> None:
    buffer = ReadingBuffer(max_rows=3)
    buffer.add("e1", [(0, T0, "a", {"old": 1, "v": 0}, None)])
    buffer.add("e1", [(n, T0 + n, "a", {"v": n}, None) for n in range(1, 4)])
    assert list(buffer.snapshot().columns) == ["topic", "v"]
    # A new key in every reading: the columns stay as few as the window's rows need.
    for n in range(4, 3000):
        buffer.add("e1", [(n, T0 + n, "a", {f"k{n}": n}, None)])
    assert list(buffer.snapshot().columns) == ["topic", "k2997", "k2998", "k2999"]
    assert len(buffer._columns) <= 2 * (3 + 1) + 64 + 1


def test_a_new_key_per_reading_keeps_memory_bounded() -> None:
    # The audit's case: a 100-row window of readings that each bring a new key grew to
    # 12,001 columns and 245 MB. Now the columns are those of the live rows (+ slack).
    buffer = ReadingBuffer(max_rows=100)
    tracemalloc.start()
    try:
        for n in range(6000):
            buffer.add("e1", [(n, T0 + n, "a", {f"k{n}": n, "v": 1.0}, None)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(buffer._columns) <= 2 * (100 + 2) + 64 + 1
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    snap = buffer.snapshot()
    assert len(snap.times) == 100
    assert list(snap.columns)[-1] == "k5999"
    assert len(snap.columns) == 2 + 100  # topic, v and the live rows' keys


def test_len_never_exceeds_the_bound_after_an_out_of_order_backfill() -> None:
    buffer = ReadingBuffer(max_rows=100)
    buffer.add("e1", rows(100, 200))  # live rows
    buffer.add("e1", rows(0, 100))  # a backfill of older rows lands after them
    assert len(buffer) == 100
    assert len(buffer._times) - buffer._head == 100
    assert offsets(buffer) == list(range(100, 200))
