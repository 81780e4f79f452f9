"""The live widget: coalesced updates, the LiveChart messages, the SVG chart and the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ipywidgets
import numpy
import pytest

from jupyter_iotcable.client.buffer import Row
from jupyter_iotcable.client.subscription import Subscription
from jupyter_iotcable.widgets import (
    EXTENSION_VERSION,
    LiveChart,
    LiveView,
    decode_points,
    encode_points,
    latest_message,
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
    view = LiveView(sub, interval=3600, renderer="html")
    view.stop()
    view._thread.join(10)
    view.flush()  # whatever was pending before the stop
    renders = view.renders
    feed(sub, 0, 10)
    assert view.flush() is False
    assert view.renders == renders


def test_a_burst_of_readings_costs_one_redraw() -> None:
    sub = live_subscription()
    view = LiveView(sub, interval=3600, renderer="html")
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


def test_the_html_renderer_is_a_box_with_status_chart_and_table() -> None:
    sub = live_subscription()
    box = sub.live(interval=3600, renderer="html")
    assert isinstance(box, ipywidgets.VBox)
    assert len(box.children) == 3
    box.live_view.stop()


def test_live_returns_a_live_chart_by_default() -> None:
    sub = live_subscription()
    chart = sub.live(interval=3600)
    assert isinstance(chart, LiveChart)
    assert chart.live_view.renderer == "widget"
    chart.live_view.stop()


def test_the_live_chart_names_the_labextension_version() -> None:
    package = Path(__file__).parents[2] / "labextension" / "package.json"
    version = json.loads(package.read_text())["version"]
    assert version == EXTENSION_VERSION
    chart = LiveChart()
    assert chart._model_module == chart._view_module == "jupyter-iotcable"
    assert chart._model_name == "LiveChartModel"
    assert chart._view_name == "LiveChartView"
    assert chart._model_module_version == chart._view_module_version == "^" + version
    chart.close()


class Recorder:
    """Stands in for the widget's comm: what LiveView would send."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, object], list[bytes]]] = []

    def __call__(self, content: dict[str, object], buffers: list[bytes]) -> None:
        self.sent.append((content, buffers))

    def kinds(self) -> list[object]:
        return [content["type"] for content, _ in self.sent]


def recording_view(sub: Subscription, **options: Any) -> tuple[LiveView, Recorder]:
    recorder = Recorder()
    view = LiveView(sub, interval=3600, send=recorder, **options)
    view._stopped.set()  # keep the thread out of the way; flush by hand
    view._thread.join(10)
    view.flush()
    recorder.sent.clear()
    return view, recorder


def test_a_burst_of_10000_readings_is_one_points_message() -> None:
    sub = live_subscription()
    view, recorder = recording_view(sub, points=500)
    for start in range(0, 10_000, 100):
        feed(sub, start, start + 100)
    assert view.flush() is True
    assert recorder.kinds() == ["points", "latest"]
    (content, buffers), (latest, latest_buffers) = recorder.sent
    # Only what the chart can hold: the last 500 points, in order.
    assert content["count"] == 500
    assert content["new_topics"] == ["plant/lyon/p0/env", "plant/lyon/p1/env"]
    topics: list[str] = []
    points = decode_points(content, buffers, topics)
    assert [p[2] for p in points] == [float(n) for n in range(9_500, 10_000)]
    assert latest_buffers == []
    rows: Any = latest["rows"]
    assert [row["topic"] for row in rows] == ["plant/lyon/p0/env", "plant/lyon/p1/env"]
    assert rows[1]["fields"]["t"] == 9_999.0
    assert rows[1]["fields"]["state"] == "<ok>"  # text: the view escapes it
    json.dumps(latest, allow_nan=False)
    chart = view.widget
    assert (chart.channel, chart.y, chart.rows, chart.gaps) == ("telemetry", "t", 1000, 0)
    assert chart.state == "live"
    # Nothing new: nothing sent.
    assert view.flush() is False
    assert len(recorder.sent) == 2
    view.stop()


def test_each_message_carries_only_the_new_points() -> None:
    sub = live_subscription()
    view, recorder = recording_view(sub)
    feed(sub, 0, 3)
    view.flush()
    feed(sub, 3, 5)
    view.flush()
    points = [(c, b) for c, b in recorder.sent if c["type"] == "points"]
    assert [c["count"] for c, _ in points] == [3, 2]
    assert points[1][0]["new_topics"] == []  # the names crossed the wire once
    topics: list[str] = []
    received = [p for c, b in points for p in decode_points(c, b, topics)]
    assert [p[2] for p in received] == [0.0, 1.0, 2.0, 3.0, 4.0]
    view.stop()


def test_the_latest_message_is_json_safe() -> None:
    message = latest_message(
        {"b": (T0, {"x": float("nan"), "n": None, "ok": True}), "a": (T0, {"l": [1, 2]})}
    )
    text = json.dumps(message, allow_nan=False)
    assert '"topic": "a"' in text
    rows: Any = message["rows"]
    assert rows[1]["fields"] == {"x": "nan", "n": None, "ok": True}
    assert rows[0]["fields"] == {"l": "[1, 2]"}


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
    view = LiveView(sub, interval=3600, renderer="html")
    chosen = LiveView(sub, y="seq", interval=3600, renderer="html")
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
        ({"renderer": "svg"}, ValueError, "renderer must be 'widget' or 'html'"),
    ],
)
def test_bad_live_options_raise_a_clear_error(
    options: dict[str, Any], error: type[Exception], hint: str
) -> None:
    sub = live_subscription()
    with pytest.raises(error, match=hint.replace("(", r"\(")):
        sub.live(**options)
