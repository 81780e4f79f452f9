"""The live widget: coalesced redraws, the SVG chart and the latest table."""

from __future__ import annotations

from typing import Any

import numpy
import pytest

from jupyter_iotcable.client.buffer import Row
from jupyter_iotcable.client.subscription import Subscription
from jupyter_iotcable.widgets import (
    LiveView,
    decode_points,
    encode_points,
    latest_table,
    pick_y,
    svg_chart,
)

T0 = 1_700_000_000.0


class FakeCable:
    """The little a subscription asks of its cable when nothing goes over the wire."""

    url = "http://127.0.0.1:8888/"

    def _unsubscribe(self, sub: Subscription) -> None:
        sub._end("unsubscribed")


def live_subscription() -> Subscription:
    cable: Any = FakeCable()
    sub = Subscription(
        cable,
        "telemetry",
        None,
        '{"channel":"telemetry"}',
        max_rows=1000,
        window=None,
    )
    sub._confirm({"columns": "plant/{site}/{device}/env"})
    return sub


def feed(sub: Subscription, start: int, stop: int) -> None:
    sub._receive(
        "e1",
        [
            (n, T0 + n, f"plant/lyon/p{n % 2}/env", {"t": float(n), "state": "<ok>"}, None)
            for n in range(start, stop)
        ],
        0,
    )


def test_a_stopped_view_no_longer_follows() -> None:
    sub = live_subscription()
    view = LiveView(sub, interval=3600)
    view.stop()
    view._thread.join(10)
    view.flush()  # whatever was pending before the stop
    renders = view.renders
    feed(sub, 0, 10)
    assert view.flush() is False
    assert view.renders == renders


def test_a_burst_of_readings_costs_one_redraw() -> None:
    sub = live_subscription()
    view = LiveView(sub, interval=3600)
    view._stopped.set()  # keep the renderer thread out of the way; flush by hand
    view._thread.join(10)
    view.flush()
    renders = view.renders
    for start in range(0, 1000, 10):
        feed(sub, start, start + 10)
    assert view.flush() is True
    assert view.renders == renders + 1
    assert view.flush() is False
    assert "polyline" in view.chart.value
    assert "plant/lyon/p0/env" in view.table.value
    assert "&lt;ok&gt;" in view.table.value  # payload text is escaped
    assert "1,000 rows" in view.status.value
    view.stop()


def test_the_widget_is_a_box_with_status_chart_and_table() -> None:
    sub = live_subscription()
    box = sub.live(interval=3600)
    assert len(box.children) == 3
    box.live_view.stop()


def test_svg_chart_draws_one_line_per_topic() -> None:
    points = [(T0 + n, f"t{n % 3}", float(n)) for n in range(30)]
    svg = svg_chart(points, "temperature")
    assert svg.count("<polyline") == 3
    assert "temperature" in svg
    assert "waiting for numeric readings" in svg_chart([], None)
    assert "sub.live(y=&quot;field&quot;)" in svg_chart([], None)


def test_latest_table_has_one_row_per_topic() -> None:
    html = latest_table({"b": (T0, {"x": 1.0}), "a": (T0, {"y": "z"})})
    assert html.count("<tr>") == 3
    assert html.index("<td>a</td>") < html.index("<td>b</td>")
    assert latest_table({}) == ""


def test_the_default_y_is_a_float_measurement_not_a_counter() -> None:
    assert pick_y({"seq": 3, "temperature": 20.5, "status": "ok"}) == "temperature"
    assert pick_y({"id": 7, "ts": 1.7e9, "rpm": 1200, "load": 0.5}) == "load"
    assert pick_y({"seq": 3, "device_id": 9, "rpm": 1200}) == "rpm"
    assert pick_y({"env.created_at": 1.7e9, "env.humidity": 40.0}) == "env.humidity"
    assert pick_y({"seq": 3, "ok": True, "status": "ok"}) is None


def test_the_view_charts_the_measurement_and_y_overrides_it() -> None:
    sub = live_subscription()
    readings: list[Row] = [
        (n, T0 + n, "plant/lyon/p0/env", {"seq": n, "t": n / 2}, None) for n in range(5)
    ]
    view = LiveView(sub, interval=3600)
    chosen = LiveView(sub, y="seq", interval=3600)
    sub._receive("e1", readings, 0)
    for each in (view, chosen):
        each._stopped.set()
        each._thread.join(10)
        each.flush()
    assert view.y == "t"
    assert "<strong>t</strong>" in view.chart.value
    assert chosen.y == "seq"
    assert "<strong>seq</strong>" in chosen.chart.value
    view.stop()
    chosen.stop()


def test_points_encode_as_binary_buffers_that_numpy_reads_back() -> None:
    points = [(T0, "a", 1.5), (T0 + 1, "b", -2.0), (T0 + 2, "a", 3.25)]
    topics: list[str] = []
    content, buffers = encode_points(points, topics)
    assert content == {"type": "points", "count": 3, "new_topics": ["a", "b"]}
    assert topics == ["a", "b"]
    assert numpy.frombuffer(buffers[0], dtype=numpy.float64).tolist() == [T0, T0 + 1, T0 + 2]
    assert numpy.frombuffer(buffers[1], dtype=numpy.float64).tolist() == [1.5, -2.0, 3.25]
    assert numpy.frombuffer(buffers[2], dtype=numpy.uint32).tolist() == [0, 1, 0]
    received: list[str] = []
    assert decode_points(content, buffers, received) == points
    # A topic's name crosses the wire once: the next message only names new ones.
    content2, buffers2 = encode_points([(T0 + 3, "b", 4.0), (T0 + 4, "c", 5.0)], topics)
    assert content2["new_topics"] == ["c"]
    assert decode_points(content2, buffers2, received) == [(T0 + 3, "b", 4.0), (T0 + 4, "c", 5.0)]
    assert received == topics == ["a", "b", "c"]


def test_no_points_encode_as_empty_buffers() -> None:
    content, buffers = encode_points([], [])
    assert content["count"] == 0
    assert buffers == [b"", b"", b""]


@pytest.mark.parametrize(
    ("options", "error", "hint"),
    [
        ({"y": 3}, TypeError, "y='temperature'"),
        ({"points": 0}, ValueError, "points must be positive"),
        ({"points": -5}, ValueError, "points must be positive"),
        ({"points": 2.5}, TypeError, "points must be an int"),
        ({"rows": 0}, ValueError, "rows must be positive"),
        ({"interval": 0}, ValueError, "interval must be a positive number"),
    ],
)
def test_bad_live_options_raise_a_clear_error(
    options: dict[str, Any], error: type[Exception], hint: str
) -> None:
    sub = live_subscription()
    with pytest.raises(error, match=hint.replace("(", r"\(")):
        sub.live(**options)
