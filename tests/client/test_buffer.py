"""The columnar reading buffer: flattening, bounds, windows, late rows, bounded columns.

Duplicates are the protocol machine's business (tests/core/test_protocol_client.py): the
buffer stores what it is given.
"""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_iotcable.client.buffer import ReadingBuffer, Row, flatten_payload

T0 = 1_700_000_000.0


def rows(
    start: int, stop: int, *, step: float = 1.0, topic: str = "plant/lyon/p1/env"
) -> list[Row]:
    return [(n, T0 + n * step, topic, {"seq": n}, None) for n in range(start, stop)]


def seqs(buffer: ReadingBuffer) -> list[int]:
    return [int(s) for s in buffer.snapshot().fields.get("seq", [])]  # type: ignore[call-overload]


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


def test_keeps_every_row_up_to_the_bound() -> None:
    buffer = ReadingBuffer(max_rows=100_000)
    for start in range(0, 100_000, 1000):
        buffer.extend(rows(start, start + 1000))
    assert len(buffer) == 100_000
    assert seqs(buffer) == list(range(100_000))


def test_evicts_the_oldest_rows_beyond_the_bound() -> None:
    buffer = ReadingBuffer(max_rows=100_000)
    for start in range(0, 150_000, 500):
        buffer.extend(rows(start, start + 500))
        assert len(buffer) <= 100_000
    assert seqs(buffer) == list(range(50_000, 150_000))


def test_time_window_is_measured_back_from_the_newest_reading() -> None:
    buffer = ReadingBuffer(max_rows=10_000, window=60.0)
    buffer.extend(rows(0, 1000))
    # times are T0 + n seconds: the newest is n=999, so n >= 939 stay.
    assert seqs(buffer) == list(range(939, 1000))


def test_backfill_lands_in_time_order() -> None:
    buffer = ReadingBuffer(max_rows=1000)
    buffer.extend(rows(100, 200))  # live rows first
    buffer.extend(rows(0, 100))  # then the history
    snap = buffer.snapshot()
    assert snap.times == [T0 + n for n in range(200)]
    assert seqs(buffer) == list(range(200))
    assert buffer.newest == T0 + 199


def test_out_of_order_rows_keep_memory_bounded() -> None:
    buffer = ReadingBuffer(max_rows=100)
    for n in range(1000):
        # every other row is older than the one before it
        when = T0 + n + (-0.5 if n % 2 else 0.0)
        buffer.extend([(n, when, "a", {"seq": n}, None)])
        assert len(buffer) <= 200
    assert seqs(buffer) == list(range(900, 1000))


def test_fields_late_fields_values_and_errors() -> None:
    buffer = ReadingBuffer(max_rows=10)
    buffer.extend(
        [
            (1, T0, "plant/lyon/p1/env", {"t": 20.0}, None),
            (2, T0 + 1, "plant/paris/p2/env", {"t": 21.0, "h": 40, "env": {"x": 1}}, None),
            (3, T0 + 2, "other/topic", "raw text", "payload is not JSON"),
        ]
    )
    snap = buffer.snapshot()
    assert snap.topics == ["plant/lyon/p1/env", "plant/paris/p2/env", "other/topic"]
    assert snap.fields == {
        "t": [20.0, 21.0, None],
        "h": [None, 40, None],
        "env.x": [None, 1, None],
        "value": [None, None, "raw text"],
    }
    assert snap.errors == [None, None, "payload is not JSON"]


def test_a_key_twice_in_one_reading_keeps_the_last_value_and_the_rows_aligned() -> None:
    buffer = ReadingBuffer(max_rows=10)
    buffer.extend(
        [(1, T0, "a", {"a.b": 1, "a": {"b": 2}}, None), (2, T0 + 1, "a", {"a.b": 3}, None)]
    )
    assert buffer.snapshot().fields == {"a.b": [2, 3]}


def test_errors_leave_the_snapshot_with_their_rows() -> None:
    buffer = ReadingBuffer(max_rows=2)
    buffer.extend([(1, T0, "a", "x", "bad")])
    buffer.extend([(n, T0 + n, "a", {"v": n}, None) for n in (2, 3)])
    assert buffer.snapshot().errors is None


batches = st.lists(
    st.lists(st.tuples(st.integers(0, 300), st.floats(-5.0, 5.0, allow_nan=False)), max_size=40),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(batches=batches, max_rows=st.integers(1, 120), window=st.none() | st.floats(1.0, 200.0))
def test_invariants(
    batches: list[list[tuple[int, float]]], max_rows: int, window: float | None
) -> None:
    """Sorted, bounded, within the window, aligned; nothing lost while under the bounds."""
    buffer = ReadingBuffer(max_rows=max_rows, window=window)
    stored = 0
    for batch in batches:
        # Some rows carry a second field, so that columns are padded lazily.
        added = [
            (n, T0 + n + jitter / 10, "a", {"seq": n, **({"odd": n} if n % 2 else {})}, None)
            for n, jitter in batch
        ]
        buffer.extend(added)
        stored += len(added)
        assert len(buffer) <= 2 * max_rows
    snap = buffer.snapshot()
    assert snap.times == sorted(snap.times)
    assert len(snap.times) == len(snap.topics) <= max_rows
    assert all(len(column) == len(snap.times) for column in snap.fields.values())
    seq = snap.fields.get("seq", [])
    odd = snap.fields.get("odd", [None] * len(seq))
    assert [s if s % 2 else None for s in seq] == odd  # type: ignore[operator]
    if snap.times and window is not None:
        assert snap.times[0] >= snap.times[-1] - window
    if stored <= max_rows and window is None:
        assert len(snap.times) == stored


def test_fields_that_only_evicted_rows_used_leave_the_snapshot_and_memory() -> None:
    buffer = ReadingBuffer(max_rows=3)
    buffer.extend([(0, T0, "a", {"old": 1, "v": 0}, None)])
    buffer.extend([(n, T0 + n, "a", {"v": n}, None) for n in range(1, 4)])
    assert buffer.snapshot().fields["old"] == [None, None, None]  # dropped by the frame
    # A new key in every reading: the columns stay as few as the window's rows need.
    for n in range(4, 3000):
        buffer.extend([(n, T0 + n, "a", {f"k{n}": n}, None)])
    live = {k for k, v in buffer.snapshot().fields.items() if any(x is not None for x in v)}
    assert live == {"k2997", "k2998", "k2999"}
    assert len(buffer._fields) <= 2 * (3 + 1) + 64 + 1


def test_a_new_key_per_reading_keeps_memory_bounded() -> None:
    # A 100-row window of readings that each bring a new key once grew to 12,001 columns
    # and 245 MB. The columns are those of the live rows (+ slack).
    buffer = ReadingBuffer(max_rows=100)
    tracemalloc.start()
    try:
        for n in range(6000):
            buffer.extend([(n, T0 + n, "a", {f"k{n}": n, "v": 1.0}, None)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(buffer._fields) <= 2 * (100 + 2) + 64 + 1
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    snap = buffer.snapshot()
    assert len(snap.times) == 100
    assert list(snap.fields)[-1] == "k5999"


def test_len_never_exceeds_the_bound_after_an_out_of_order_backfill() -> None:
    buffer = ReadingBuffer(max_rows=100)
    buffer.extend(rows(100, 200))  # live rows
    buffer.extend(rows(0, 100))  # a backfill of older rows lands after them
    assert len(buffer) == 100
    assert seqs(buffer) == list(range(100, 200))


def test_times_by_offset_and_the_oldest_time_after_a_moment() -> None:
    buffer = ReadingBuffer(max_rows=100)
    buffer.extend(rows(10, 20))
    assert buffer.time_of(12) == T0 + 12
    assert buffer.time_of(99) is None
    assert buffer.oldest_from(T0 + 12, inclusive=True) == T0 + 12
    assert buffer.oldest_from(T0 + 12, inclusive=False) == T0 + 13
    assert buffer.oldest_from(T0 + 30, inclusive=True) is None
