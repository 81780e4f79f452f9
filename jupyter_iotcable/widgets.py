"""``sub.live()``: a live chart and table of a subscription.

By default the widget is ``LiveChart``, a ``DOMWidget`` drawn by this package's
JupyterLab extension (``labextension/src/widgets/livechart.ts``): the kernel sends it only
the new points since the last send, as binary buffers (``encode_points``), plus the
latest reading of each topic; the browser keeps the chart. ``sub.live(renderer="html")``
draws the chart in the kernel as SVG in standard ipywidgets instead, for frontends
without this labextension (VS Code, Colab).

Readings reach the view through ``sub.on`` (on the cable's thread) and only mark it dirty;
a renderer thread redraws at most ``1 / interval`` times a second (10 by default), so a
burst of 10,000 readings costs one redraw, not 10,000 comm messages: Jupyter's IOPub
channel drops output past 1,000 messages per second. The view keeps its own small ring
of recent points, so a redraw costs the same whatever the size of ``sub.frame``, and it
keeps moving while a notebook cell computes.

The chart is an inline SVG (no plotting library needed): one line per topic for the
field ``y``. Choose it with ``sub.live(y="temperature")``; by default it is the first
measurement in the readings: a float field before an int one, never a counter or a
timestamp such as ``seq``, ``id`` or ``ts`` (a sawtooth of sequence numbers says nothing).
The table shows the latest reading of each topic.
"""

from __future__ import annotations

import contextlib
import html
import math
import threading
from array import array
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ipywidgets
import traitlets

from .client.buffer import flatten_payload

if TYPE_CHECKING:
    from .client.subscription import Reading, Subscription

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_WIDTH, _HEIGHT, _PAD = 640, 220, 30

#: The version of labextension/package.json; the LiveChart model names "^" + it.
EXTENSION_VERSION = "0.1.0"
_MODULE = "jupyter-iotcable"
_MODULE_VERSION = "^" + EXTENSION_VERSION
RENDERERS = ("widget", "html")

Send = Callable[[dict[str, object], list[bytes]], None]


class LiveChart(ipywidgets.DOMWidget):  # type: ignore[misc]
    """The live chart widget (view: the labextension's ``LiveChartView``).

    Synced traits: the status line. Points and the latest table go as custom messages:
    ``{"type": "points", ...}`` with three buffers, ``{"type": "latest", "rows": [...]}``.
    ``live_view`` is the ``LiveView`` feeding it (``chart.live_view.stop()``).
    """

    _model_name = traitlets.Unicode("LiveChartModel").tag(sync=True)
    _view_name = traitlets.Unicode("LiveChartView").tag(sync=True)
    _model_module = traitlets.Unicode(_MODULE).tag(sync=True)
    _view_module = traitlets.Unicode(_MODULE).tag(sync=True)
    _model_module_version = traitlets.Unicode(_MODULE_VERSION).tag(sync=True)
    _view_module_version = traitlets.Unicode(_MODULE_VERSION).tag(sync=True)

    channel = traitlets.Unicode("").tag(sync=True)
    topic = traitlets.Unicode("").tag(sync=True)
    y = traitlets.Unicode("").tag(sync=True)
    state = traitlets.Unicode("").tag(sync=True)
    rows = traitlets.Int(0).tag(sync=True)
    rate = traitlets.Float(0.0).tag(sync=True)
    gaps = traitlets.Int(0).tag(sync=True)
    points = traitlets.Int(500).tag(sync=True)

    live_view: LiveView  # set by the LiveView that feeds it


_COUNTERS = frozenset(
    {"seq", "sequence", "n", "id", "index", "offset", "count", "counter", "ts", "time"}
    | {"timestamp", "epoch", "at", "date", "datetime"}
)
_COUNTER_SUFFIXES = ("_id", "_seq", "_ts", "_time", "_at", "_index", "_count")


class LiveView:
    """The state behind one live widget; ``widget`` is what the notebook displays."""

    def __init__(
        self,
        sub: Subscription,
        *,
        y: str | None = None,
        points: int = 500,
        rows: int = 20,
        interval: float = 0.1,
        renderer: str = "widget",
        send: Send | None = None,
    ) -> None:
        """``send(content, buffers)`` replaces ``LiveChart.send`` (tests record with it)."""
        check_options(y=y, points=points, rows=rows, interval=interval)
        if renderer not in RENDERERS:
            raise ValueError(f"renderer must be 'widget' or 'html', not {renderer!r}")
        self.sub = sub
        self.y = y
        self.rows = rows
        self.interval = interval
        self.renderer = renderer
        self.renders = 0
        self._points: deque[tuple[float, str, float]] = deque(maxlen=points)
        self._unsent: deque[tuple[float, str, float]] = deque(maxlen=points)
        self._topics: list[str] = []  # the names the LiveChart view already has
        self._latest: dict[str, tuple[float, dict[str, object]]] = {}
        self._latest_changed = False
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stopped = threading.Event()
        self.status = ipywidgets.HTML()
        self.chart = ipywidgets.HTML()
        self.table = ipywidgets.HTML()
        self.widget: Any
        if renderer == "widget":
            self.widget = LiveChart(points=points)
            self._send: Send = send if send is not None else self._send_to_widget
        else:
            self.widget = ipywidgets.VBox([self.status, self.chart, self.table])
            self._send = send if send is not None else _no_send
        self.widget.live_view = self
        self._dirty.set()
        sub.on(self._on_reading)
        self._thread = threading.Thread(target=self._run, name="iotcable live view", daemon=True)
        self._thread.start()

    def _on_reading(self, reading: Reading) -> None:
        """Cable thread, once per reading: remember it, draw later."""
        flat = flatten_payload(reading.payload)
        with self._lock:
            if self.y is None:
                self.y = pick_y(flat)
            value = flat.get(self.y) if self.y is not None else None
            if _is_number(value):
                point = (reading.time, reading.topic, float(value))  # type: ignore[arg-type]
                self._points.append(point)
                self._unsent.append(point)
            self._latest.pop(reading.topic, None)
            self._latest[reading.topic] = (reading.time, flat)
            while len(self._latest) > self.rows:
                del self._latest[next(iter(self._latest))]
            self._latest_changed = True
        self._dirty.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            if self.sub.state not in ("pending", "live") or getattr(self.widget, "comm", 1) is None:
                # The subscription ended or the widget was closed: draw the last state, stop.
                self.flush()
                self.stop()
                return
            self.flush()
            self._stopped.wait(self.interval)

    def flush(self) -> bool:
        """Redraw if anything changed since the last redraw; True if it redrew."""
        if not self._dirty.is_set():
            return False
        self._dirty.clear()
        if self.renderer == "widget":
            self._flush_widget()
            self.renders += 1
            return True
        with self._lock:
            points = list(self._points)
            latest = dict(self._latest)
            y = self.y
        self.status.value = self._status_html()
        self.chart.value = svg_chart(points, y)
        self.table.value = latest_table(latest)
        self.renders += 1
        return True

    def _flush_widget(self) -> None:
        """Update the LiveChart: its status traits, then the new points, then the table."""
        with self._lock:
            new = list(self._unsent)
            self._unsent.clear()
            latest = dict(self._latest) if self._latest_changed else None
            self._latest_changed = False
            y = self.y
        sub, chart = self.sub, self.widget
        with chart.hold_sync():
            chart.channel = sub.channel
            chart.topic = sub.topic or ""
            chart.y = y or ""
            chart.state = sub.state
            chart.rows = len(sub)
            chart.rate = float(sub.rate)
            chart.gaps = len(sub.gaps)
        if new:
            content, buffers = encode_points(new, self._topics)
            self._send(content, buffers)
        if latest is not None:
            self._send(latest_message(latest), [])

    def _send_to_widget(self, content: dict[str, object], buffers: list[bytes]) -> None:
        self.widget.send(content, buffers or None)

    def stop(self) -> None:
        """Stop following the subscription (the widget keeps its last picture)."""
        self._stopped.set()
        with contextlib.suppress(ValueError):  # already removed
            self.sub.off(self._on_reading)

    def _status_html(self) -> str:
        sub = self.sub
        text = (
            f"{sub.channel} {sub.topic or ''} | {sub.state} | {len(sub):,} rows | "
            f"{sub.rate:.1f} readings/s | {len(sub.gaps)} gaps"
        )
        return f"<code>{html.escape(text)}</code>"


def live_view(sub: Subscription, **options: Any) -> Any:
    """The widget of a new ``LiveView`` on ``sub``: a ``LiveChart``, or with
    ``renderer="html"`` an ipywidgets box (options: y, points, rows, interval, renderer).
    ``widget.live_view`` is the view, e.g. to call ``stop()``."""
    return LiveView(sub, **options).widget


def latest_message(latest: dict[str, tuple[float, dict[str, object]]]) -> dict[str, object]:
    """The "latest" comm message: one row per topic (sorted), JSON-safe field values."""
    rows = [
        {"topic": topic, "time": when, "fields": {k: _json_cell(v) for k, v in flat.items()}}
        for topic, (when, flat) in sorted(latest.items())
    ]
    return {"type": "latest", "rows": rows}


def _json_cell(value: object) -> object:
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else str(value)
    return str(value)


def _no_send(content: dict[str, object], buffers: list[bytes]) -> None:
    """The html renderer draws in the kernel: nothing to send."""


def check_options(*, y: object, points: object, rows: object, interval: object) -> None:
    """Raise a clear TypeError/ValueError for a bad ``sub.live()`` argument."""
    if y is not None and not isinstance(y, str):
        raise TypeError(f"y must be a field name (str) such as y='temperature', not {y!r}")
    for name, value in (("points", points), ("rows", rows)):
        if type(value) is not int:
            raise TypeError(f"{name} must be an int such as {name}=500, not {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be positive (e.g. {name}=500), not {value}")
    if not _is_number(interval) or not interval > 0:  # type: ignore[operator]
        raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")


def encode_points(
    points: list[tuple[float, str, float]], topics: list[str]
) -> tuple[dict[str, object], list[bytes]]:
    """The comm message for new chart points: small JSON content and three binary buffers.

    Buffers: float64 times, float64 values, uint32 topic indexes (native byte order, as
    a browser's Float64Array/Uint32Array read them). ``topics`` is the list of topic
    names the view already knows; new names are appended to it and sent in
    ``content["new_topics"]``, so a topic's name crosses the wire once.
    """
    index = {name: i for i, name in enumerate(topics)}
    new_topics: list[str] = []
    times, values, which = array("d"), array("d"), array("I")
    for when, topic, value in points:
        if topic not in index:
            index[topic] = len(topics)
            topics.append(topic)
            new_topics.append(topic)
        times.append(when)
        values.append(value)
        which.append(index[topic])
    content: dict[str, object] = {"type": "points", "count": len(times), "new_topics": new_topics}
    return content, [times.tobytes(), values.tobytes(), which.tobytes()]


def decode_points(
    content: dict[str, object], buffers: list[bytes], topics: list[str]
) -> list[tuple[float, str, float]]:
    """The inverse of ``encode_points`` (``topics`` is the receiver's list, extended)."""
    topics.extend(content.get("new_topics", []))  # type: ignore[arg-type]
    times, values, which = array("d"), array("d"), array("I")
    times.frombytes(buffers[0])
    values.frombytes(buffers[1])
    which.frombytes(buffers[2])
    return [(t, topics[i], v) for t, v, i in zip(times, values, which, strict=True)]


def pick_y(flat: dict[str, object]) -> str | None:
    """The field to chart by default: a float measurement, else an int one, else none.

    Counters and timestamps (``seq``, ``id``, ``ts``, ``created_at``...) are skipped:
    they are numbers, but charting them shows a ramp, not the device.
    """
    numbers = [name for name, value in flat.items() if _is_number(value) and not _is_counter(name)]
    floats = [name for name in numbers if type(flat[name]) is float]
    candidates = floats or numbers
    return candidates[0] if candidates else None


def _is_counter(name: str) -> bool:
    last = name.rsplit(".", 1)[-1].lower()
    return last in _COUNTERS or last.endswith(_COUNTER_SUFFIXES)


def svg_chart(points: list[tuple[float, str, float]], y: str | None) -> str:
    """An SVG line chart: one polyline per topic, time on x, ``y`` on the vertical axis."""
    if not points or y is None:
        return (
            "<em>waiting for numeric readings... (to chart a given field: "
            "sub.live(y=&quot;field&quot;))</em>"
        )
    times = [p[0] for p in points]
    values = [p[2] for p in points]
    t0, t1 = min(times), max(times)
    v0, v1 = min(values), max(values)
    tspan = (t1 - t0) or 1.0
    vspan = (v1 - v0) or 1.0
    lines: dict[str, list[str]] = {}
    for when, topic, value in points:
        x = _PAD + (when - t0) / tspan * (_WIDTH - 2 * _PAD)
        yy = _HEIGHT - _PAD - (value - v0) / vspan * (_HEIGHT - 2 * _PAD)
        lines.setdefault(topic, []).append(f"{x:.1f},{yy:.1f}")
    shapes = []
    legend = []
    for index, (topic, coords) in enumerate(sorted(lines.items())[: len(COLORS)]):
        color = COLORS[index]
        shapes.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
            f'points="{" ".join(coords)}"/>'
        )
        legend.append(f'<span style="color:{color}">&#9632; {html.escape(topic)}</span>')
    labels = (
        f'<text x="2" y="{_PAD}" font-size="10">{v1:.4g}</text>'
        f'<text x="2" y="{_HEIGHT - _PAD}" font-size="10">{v0:.4g}</text>'
        f'<text x="{_PAD}" y="{_HEIGHT - 8}" font-size="10">{_clock(t0)}</text>'
        f'<text x="{_WIDTH - _PAD}" y="{_HEIGHT - 8}" font-size="10" '
        f'text-anchor="end">{_clock(t1)}</text>'
    )
    return (
        f"<div><strong>{html.escape(y)}</strong> {' '.join(legend)}</div>"
        f'<svg width="{_WIDTH}" height="{_HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"{labels}{''.join(shapes)}</svg>"
    )


def latest_table(latest: dict[str, tuple[float, dict[str, object]]]) -> str:
    """An HTML table: the latest reading of each topic, one row per topic."""
    if not latest:
        return ""
    names: list[str] = []
    for _, flat in latest.values():
        names.extend(name for name in flat if name not in names)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["topic", "time", *names])
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(topic)}</td><td>{_clock(when)}</td>"
        + "".join(f"<td>{html.escape(_cell(flat.get(n)))}</td>" for n in names)
        + "</tr>"
        for topic, (when, flat) in sorted(latest.items())
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


def _cell(value: object) -> str:
    if value is None:
        return ""
    if type(value) is float:
        return f"{value:.6g}"
    return str(value)


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")


__all__ = [
    "EXTENSION_VERSION",
    "LiveChart",
    "LiveView",
    "check_options",
    "decode_points",
    "encode_points",
    "latest_message",
    "latest_table",
    "live_view",
    "pick_y",
    "svg_chart",
]
