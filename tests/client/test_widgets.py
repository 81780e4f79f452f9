"""``sub.live()`` in the kernel: downsampling, the chart's store, series naming, and the
LiveChart's messages (one per flush at most, binary buffers, the window on request).

The subscriptions here are real ``Subscription`` objects fed through their ``Inbox`` as
the cable's session feeds them (tests/client/memory.py); the widget's ``send`` is
replaced by a recorder, so every message the browser would get is checked. The browser
side is tested in labextension/test and tests/browser/test_live_widget.py.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from jupyter_iotcable.client.buffer import Row
from jupyter_iotcable.client.inbox import Inbox
from jupyter_iotcable.client.subscription import Reading, Subscription
from jupyter_iotcable.widgets import LiveChart, LiveView, live_view
from jupyter_iotcable.widgets.chart import BUNDLE, HEARTBEAT, TABLE_INTERVAL
from jupyter_iotcable.widgets.downsample import downsample, minmax_indices
from jupyter_iotcable.widgets.lines import Chunk, LineStore, group_points
from jupyter_iotcable.widgets.naming import series_namer, varying_levels

from .memory import MemoryControl, memory_subscription

T0 = 1_700_000_000.0
TEMPLATE = "plant/{site}/{device}/env"


FED: dict[int, tuple[Inbox, MemoryControl]] = {}


def subscription(topic: str | None = None, window: float | None = 900.0) -> Subscription:
    control = MemoryControl()
    sub, inbox = memory_subscription(
        topic=topic,
        meta={"columns": TEMPLATE, "units": {"temperature": "°C"}},
        max_rows=100_000,
        window=window,
        control=control,
    )
    FED[id(sub)] = (inbox, control)
    return sub


def receive(sub: Subscription, rows: list[Row]) -> None:
    """Rows as the cable's session hands them to the subscription (live arrivals)."""
    FED[id(sub)][0].receive(rows, 0, backfill=False)


def reading_rows(start: int, stop: int, *, devices: int = 4, site: str = "lyon") -> list[Row]:
    return [
        (
            n,
            T0 + n / 4,
            f"plant/{site}/pump{n % devices}/env",
            {"seq": n, "temperature": 20.0 + (n % 7) / 4, "status": "ok" if n % 5 else "fault"},
            None,
        )
        for n in range(start, stop)
    ]


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], list[bytes]]] = []

    def __call__(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        # What the comm does: the content goes out as JSON.
        self.messages.append((json.loads(json.dumps(content)), buffers))

    def last(self) -> tuple[dict[str, Any], Chunk]:
        content, buffers = self.messages[-1]
        return content, Chunk.from_buffers(buffers)


def quiet_view(sub: Subscription, **options: Any) -> tuple[LiveView, Recorder]:
    """A view whose thread sleeps (interval 1 h): the test flushes by hand."""
    recorder = Recorder()
    view = LiveView(sub, send=recorder, interval=3600, **options)
    return view, recorder


# -- downsampling ------------------------------------------------------------------------


def test_minmax_keeps_each_buckets_extremes_and_both_ends() -> None:
    rng = np.random.default_rng(7)
    times = T0 + np.cumsum(rng.uniform(0.001, 0.02, 50_000))
    values = np.sin(np.arange(50_000) / 400) + rng.normal(0, 0.1, 50_000)
    values[12_345] = 40.0
    values[33_333] = -40.0
    width = 1.0
    keep = minmax_indices(times, values, width)
    assert keep[0] == 0 and keep[-1] == len(times) - 1
    assert np.all(np.diff(keep) > 0), "sorted, no repeats"
    buckets = np.floor(times / width)
    kept_buckets = buckets[keep]
    for bucket in np.unique(buckets):
        every = values[buckets == bucket]
        kept = values[keep][kept_buckets == bucket]
        assert kept.min() == every.min() and kept.max() == every.max()
    assert len(keep) <= 2 * len(np.unique(buckets)) + 2
    assert {12_345, 33_333} <= set(keep.tolist()), "the spikes survive"


def test_minmax_keeps_the_first_of_equal_extremes_and_sparse_series_whole() -> None:
    times = T0 + np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    values = np.array([1.0, 1.0, 3.0, 3.0, 2.0])
    assert minmax_indices(times, values, 10.0).tolist() == [0, 2, 4]
    sparse = T0 + np.arange(20.0) * 5
    assert minmax_indices(sparse, np.arange(20.0), 1.0).tolist() == list(range(20))
    assert minmax_indices(times[:2], values[:2], 1.0).tolist() == [0, 1]
    t, v = downsample(times, values, 10.0)
    assert t.tolist() == times[[0, 2, 4]].tolist() and v.tolist() == [1.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="positive"):
        minmax_indices(times, values, 0.0)
    with pytest.raises(ValueError, match="differ in length"):
        minmax_indices(times, values[:3], 1.0)


# -- the store ---------------------------------------------------------------------------


def chunk_of(series: list[int], times: list[float], values: list[list[float]]) -> Chunk:
    return group_points(
        np.array(series, np.uint32), np.array(times), np.array(values, dtype=np.float64)
    )


def test_points_group_into_lines_per_series_and_field_without_missing_values() -> None:
    chunk = chunk_of(
        [1, 0, 1, 0],
        [T0 + 2, T0 + 1, T0 + 1, T0 + 3],
        [[1.0, math.nan], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]],
    )
    lines = {(s, f): (t.tolist(), v.tolist()) for s, f, t, v in chunk.lines()}
    assert lines == {
        (0, 0): ([T0 + 1, T0 + 3], [2.0, 4.0]),
        (1, 0): ([T0 + 1, T0 + 2], [3.0, 1.0]),  # time-sorted within a line
        (0, 1): ([T0 + 1, T0 + 3], [20.0, 40.0]),
        (1, 1): ([T0 + 1], [30.0]),  # the NaN is not a point
    }
    again = Chunk.from_buffers(chunk.buffers())
    assert again.table.tolist() == chunk.table.tolist()
    assert again.times.tolist() == chunk.times.tolist()
    with pytest.raises(ValueError, match="do not match"):
        Chunk.from_buffers([chunk.buffers()[0], b"", b""])


def test_the_store_merges_a_backfill_drops_repeats_and_keeps_its_window() -> None:
    store = LineStore(span=60.0, max_points=1000)
    store.add(chunk_of([0, 0], [T0 + 10, T0 + 20], [[1.0], [2.0]]))
    store.add(chunk_of([0, 0, 0], [T0 + 5, T0 + 10, T0 + 15], [[0.5], [1.0], [1.5]]))
    line = store.lines[(0, 0)]
    assert line.times.tolist() == [T0 + 5, T0 + 10, T0 + 15, T0 + 20]
    assert line.values.tolist() == [0.5, 1.0, 1.5, 2.0]
    store.add(chunk_of([1], [T0 + 70], [[7.0]]))
    assert line.times.tolist() == [T0 + 10, T0 + 15, T0 + 20], "older than newest - 60 s"
    assert len(store) == 4


def test_a_busy_line_is_compacted_and_keeps_its_extremes_and_recent_points() -> None:
    store = LineStore(span=100.0, max_points=10**6, buckets=50, recent=5.0)
    times = T0 + np.arange(4000, dtype=np.float64) * 0.025  # 40 Hz for 100 s
    values = (np.arange(4000, dtype=np.float64) % 10) - 5.0
    store.add(group_points(np.zeros(4000, np.uint32), times, values[:, None]))
    line = store.lines[(0, 0)]
    assert len(line) <= 2 * 50 + 2 + 5 / 0.025 + 1
    assert line.values.min() == -5.0 and line.values.max() == 4.0
    recent = line.times[line.times >= times[-1] - 5.0]
    assert len(recent) == 201, "the last 5 s stay whole"


def test_a_store_without_a_window_is_bounded_by_points() -> None:
    store = LineStore(span=None, max_points=100)
    for start in range(0, 300, 50):
        store.add(
            group_points(
                np.zeros(50, np.uint32), T0 + np.arange(start, start + 50.0), np.ones((50, 1))
            )
        )
    assert len(store) <= 100
    assert store.lines[(0, 0)].newest == T0 + 299


# -- series names --------------------------------------------------------------------------


def reading(topic: str, payload: object = None) -> Reading:
    levels = topic.split("/")
    return Reading(topic, T0, payload, {"site": levels[1], "device": levels[2]}, 0)


def test_series_are_named_by_the_levels_that_vary() -> None:
    assert varying_levels(TEMPLATE, None) == ["site", "device"]
    assert varying_levels(TEMPLATE, "plant/lyon/+/env") == ["device"]
    assert varying_levels(TEMPLATE, "plant/+/pump1/env") == ["site"]
    assert varying_levels(TEMPLATE, "plant/#") == ["site", "device"]
    assert varying_levels(TEMPLATE, "plant/lyon/pump1/env") == ["site", "device"]
    assert varying_levels(None, "plant/#") == []
    name = series_namer(["site", "device"], TEMPLATE, None)
    assert name(reading("plant/lyon/pump1/env")) == "lyon/pump1"
    by_sensor = series_namer(["sensor"], TEMPLATE, None)
    assert by_sensor(reading("plant/lyon/pump1/env", {"sensor": "a1"})) == "a1"
    assert by_sensor(reading("plant/lyon/pump1/env", {"other": 1})) == "?"
    # Without a template: the levels under the filter's wildcards.
    bare = series_namer([], None, "plant/lyon/+/env")
    assert bare(Reading("plant/lyon/pump7/env", T0, 1, {}, 0)) == "pump7"
    assert series_namer([], None, None)(Reading("a/b", T0, 1, {}, 0)) == "a/b"


# -- the widget ----------------------------------------------------------------------------


def test_live_is_an_anywidget_carrying_the_bundle_and_the_channels_units() -> None:
    sub = subscription("plant/lyon/+/env")
    receive(sub, reading_rows(0, 40))
    chart = sub.live()
    try:
        assert isinstance(chart, LiveChart)
        assert chart._esm == BUNDLE.read_text(encoding="utf-8")
        assert "uPlot" in chart._esm or "uplot" in chart._esm.lower()
        assert chart.fields == ["temperature"]
        assert chart.units == {"temperature": "°C"}
        assert chart.by == ["device"]
        assert chart.span == 900.0
        assert chart.ranges == [60.0]
        assert chart.live_view.sub is sub
    finally:
        chart.close()


def test_the_first_window_holds_the_history_and_names_series_by_columns() -> None:
    sub = subscription()
    receive(sub, reading_rows(0, 400, devices=4) + reading_rows(400, 440, site="porto"))
    view, sent = quiet_view(sub)
    try:
        view.request_window()  # what a view does when it renders
        assert view.flush()
        content, chunk = sent.last()
        assert content["reset"] is True and content["series_from"] == 0
        assert sorted(content["series"]) == [
            "lyon/pump0", "lyon/pump1", "lyon/pump2", "lyon/pump3",
            "porto/pump0", "porto/pump1", "porto/pump2", "porto/pump3",
        ]  # fmt: skip
        assert len(chunk) == 440, "every reading of the frame, history included"
        assert chunk.times.min() == T0 and chunk.times.max() == T0 + 439 / 4
        assert {row["series"] for row in content["latest"]} == set(content["series"])
    finally:
        view.close()


def test_the_status_rate_after_a_backfill_counts_live_arrivals_only() -> None:
    # Issue 10: the status said 390.4 readings/s after a backfill while 4 a second arrived.
    clock = [T0]
    sub, inbox = memory_subscription(
        meta={"columns": TEMPLATE}, max_rows=100_000, window=None, clock=lambda: clock[0]
    )
    inbox.receive(reading_rows(0, 20_000, devices=4), 0, backfill=True)
    view, sent = quiet_view(sub)
    try:
        view.request_window()
        view.flush(now=0.0)
        content, chunk = sent.last()
        assert len(chunk) == 20_000, "the backfill is drawn"
        assert content["status"]["rate"] == 0.0 and content["status"]["rows"] == 20_000
        for n in range(20_000, 20_040):  # then 4 a second for 10 seconds
            clock[0] += 0.25
            inbox.receive(reading_rows(n, n + 1, devices=4), 0, backfill=False)
        view.flush(now=10.0)
        content, chunk = sent.last()
        assert len(chunk) == 40
        assert content["status"]["rate"] == pytest.approx(4.0, abs=0.15)
    finally:
        view.close()


def test_the_window_names_its_series_as_live_readings_are_named() -> None:
    # The first window groups the frame's rows (vectorized); live readings are named one
    # by one: the same rows must make the same series, with the same points, either way.
    rows = reading_rows(0, 300, devices=3) + reading_rows(300, 330, site="porto")
    for row in rows[::11]:
        del row[3]["status"]  # type: ignore[attr-defined]  # some readings lack it
    loaded, live = subscription(), subscription()
    receive(loaded, rows)
    views = []
    try:
        for sub in (loaded, live):
            view, sent = quiet_view(sub, by=["device", "status"])
            views.append((view, sent))
        receive(live, rows)
        lines = []
        for view, sent in views:
            view.request_window()
            view.flush()
            content, chunk = sent.last()
            names = content["series"]
            lines.append(
                {
                    (names[series], field): (list(times), list(values))
                    for series, field, times, values in chunk.lines()
                }
            )
        assert lines[0] == lines[1]
        assert {name for name, _ in lines[0]} == {
            f"{device}/{status}"
            for device in ("pump0", "pump1", "pump2", "pump3")
            for status in ("ok", "fault", "?")
        }
        assert sum(len(times) for times, _ in lines[0].values()) == 330
    finally:
        for view, _ in views:
            view.close()


def test_a_frontend_restoring_the_model_gets_the_whole_window() -> None:
    # A reopened notebook or a reloaded page asks the kernel for every widget's whole
    # state: the chart then sends its whole window too, even if the view's request is lost.
    sub = subscription()
    receive(sub, reading_rows(0, 40))
    view, sent = quiet_view(sub)
    try:
        view.flush(now=0.0)
        receive(sub, reading_rows(40, 41))
        view.flush(now=1.0)
        assert sent.last()[0]["reset"] is False
        view.widget.get_state(key="shown")  # a trait's sync: nothing more
        receive(sub, reading_rows(41, 42))
        view.flush(now=2.0)
        assert sent.last()[0]["reset"] is False
        view.widget.get_state()  # what ipywidgets' request_state(s) does
        view.flush(now=3.0)
        content, chunk = sent.last()
        assert content["reset"] is True and len(chunk) == 42
    finally:
        view.close()


def test_a_burst_of_10000_readings_is_one_message_with_binary_buffers() -> None:
    sub = subscription()
    view, sent = quiet_view(sub)
    try:
        view.flush()
        before = len(sent.messages)
        for start in range(0, 10_000, 500):
            receive(sub, reading_rows(start, start + 500, devices=200))
        assert view.flush()
        assert len(sent.messages) == before + 1
        content, chunk = sent.last()
        assert len(chunk) == 10_000
        assert len(content["series"]) == 200 and content["series_from"] == 0
        assert all(isinstance(buffer, bytes) for buffer in sent.messages[-1][1])
        assert len(json.dumps(content)) < 40_000, "the points travel in the buffers"
        # The next flush carries only what is new, and no series twice.
        receive(sub, reading_rows(10_000, 10_010, devices=200))
        view.flush(now=1e9)
        content, chunk = sent.last()
        assert len(chunk) == 10 and content["series_from"] == 200 and content["series"] == []
    finally:
        view.close()


def test_with_nothing_new_the_view_only_sends_a_heartbeat_now_and_then() -> None:
    sub = subscription()
    view, sent = quiet_view(sub)
    try:
        assert view.flush(now=1000.0)
        assert not view.flush(now=1000.0 + HEARTBEAT / 2), "nothing new, heartbeat not due"
        assert view.flush(now=1000.0 + HEARTBEAT)
        content, chunk = sent.last()
        assert len(chunk) == 0 and content["status"]["state"] == "live"
    finally:
        view.close()


def test_the_table_goes_at_most_once_a_second_with_exact_numbers() -> None:
    sub = subscription()
    view, sent = quiet_view(sub)
    try:
        receive(sub, reading_rows(0, 1))
        view.flush(now=100.0)
        assert len(sent.last()[0]["latest"]) == 1
        big = 2**60
        receive(
            sub, [(1, T0, "plant/lyon/p1/env", {"ts": 1796504832.7, "n": big, "x": [1, 2]}, None)]
        )
        count = len(sent.messages)
        view.flush(now=100.0 + TABLE_INTERVAL / 2)
        news = sent.messages[count:]
        assert all("latest" not in content for content, _ in news), "it waits for its second"
        view.flush(now=100.0 + TABLE_INTERVAL)
        (row,) = sent.last()[0]["latest"]
        assert row["series"] == "lyon/p1" and row["time"] == T0
        assert row["fields"]["ts"] == 1796504832.7, "every digit, not 1796500000"
        assert row["fields"]["n"] == str(big), "an int JavaScript cannot hold goes as text"
        assert row["fields"]["x"] == "[1, 2]"
    finally:
        view.close()


def test_the_table_leaves_out_the_channels_time_field() -> None:
    # The row's time is the reading's time_field: the table does not show it twice.
    sub, inbox = memory_subscription(
        meta={"columns": TEMPLATE, "time_field": "ts"}, max_rows=1000, window=None
    )
    view, sent = quiet_view(sub)
    try:
        inbox.receive(
            [(0, T0, "plant/lyon/p1/env", {"ts": T0, "temperature": 21.5}, None)],
            0,
            backfill=False,
        )
        view.flush(now=100.0)
        (row,) = sent.last()[0]["latest"]
        assert row["time"] == T0 and row["fields"] == {"temperature": 21.5}
    finally:
        view.close()


def test_y_may_be_a_list_and_each_field_is_a_line() -> None:
    sub = subscription()
    receive(sub, reading_rows(0, 8))
    view, sent = quiet_view(sub, y=["temperature", "seq"])
    try:
        view.request_window()
        view.flush()
        _, chunk = sent.last()
        assert view.widget.fields == ["temperature", "seq"]
        assert sorted({field for _, field, _ in chunk.table.tolist()}) == [0, 1]
    finally:
        view.close()


def test_the_first_reading_picks_y_when_the_frame_was_empty() -> None:
    sub = subscription()
    view, sent = quiet_view(sub)
    try:
        assert view.widget.fields == []
        receive(sub, reading_rows(0, 4))
        view.flush()
        assert view.widget.fields == ["temperature"], "a float measurement, not seq"
        assert len(sent.last()[1]) == 4
    finally:
        view.close()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"y": "status"}, ValueError, "y='status' is not a numeric field of the 'telemetry'"),
        ({"y": "nope"}, ValueError, "numeric fields: seq, temperature"),
        ({"y": 3}, TypeError, "y must be a field name"),
        ({"y": ["temperature", "temperature"]}, ValueError, "names a field twice"),
        ({"by": "colour"}, ValueError, "by='colour' is neither"),
        ({"max_shown": 0}, ValueError, "max_shown must be positive"),
        ({"interval": 0.01}, ValueError, "interval must be a number of seconds >= 0.1"),
        ({"timezone": "CET"}, ValueError, "timezone must be 'local' or 'UTC'"),
        ({"renderer": "html"}, TypeError, "unknown option(s) ['renderer']"),
    ],
)
def test_bad_options_raise_at_once(options: dict[str, Any], error: type, message: str) -> None:
    sub = subscription()
    receive(sub, reading_rows(0, 8))
    with pytest.raises(error) as info:
        live_view(sub, **options)
    assert message in str(info.value)
    assert FED[id(sub)][0].callback_count == 0, "nothing keeps following after a refusal"


def test_the_status_says_stopped_or_reconnecting_and_a_closed_chart_stops() -> None:
    sub = subscription()
    view, _ = quiet_view(sub)
    FED[id(sub)][1].cable_state = "reconnecting"
    assert view.status()["cable"] == "reconnecting"
    view.stop()
    receive(sub, reading_rows(0, 4))
    assert view.status()["state"] == "stopped" and len(view.store) == 0
    view.widget.close()
    view._thread.join(5)
    assert not view._thread.is_alive(), "the thread ends with its widget"
