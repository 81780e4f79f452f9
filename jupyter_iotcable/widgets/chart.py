"""``sub.live()``: the live chart widget and the thread that feeds it.

``LiveChart`` is an anywidget: its view is one ES module (``static/livechart.js``, built
from ``labextension/widget/`` with uPlot), so the same chart runs in JupyterLab, Notebook
7, VS Code, Colab and marimo. Its synced traits are the chart's fixed settings (fields,
units, series naming, window); the data travel as custom messages with binary buffers.

``LiveView`` owns the data (a ``LineStore``: the subscription's window, old points reduced
to min/max per bucket) and one thread. Readings reach it through ``sub.on`` (on the
cable's thread), which only appends them to pending arrays. Every ``interval`` seconds
(0.1 by default) the thread sends at most **one** message: the new points as a chunk, the
status, the latest rows of the topics that changed (at most once a second); or, when a
view asked for it (a view that renders: a reopened notebook, a reloaded page, a second
view), the whole store instead. With nothing new it still sends the status once a
second, so a view can tell a quiet subscription from a kernel that is gone. So the comm
carries at most 10 messages a second whatever the reading rate, never one per reading,
far below Jupyter's IOPub limit of 1,000 a second. The thread keeps running while a
notebook cell computes, so the chart keeps moving.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import numpy.typing as npt
import pandas as pd
import traitlets

from .lines import Chunk, LineStore, group_points
from .naming import (
    as_number,
    field_value,
    numeric_fields,
    pick_y,
    pick_y_from_payload,
    series_namer,
    template_levels,
    varying_levels,
)

if TYPE_CHECKING:
    from ..client.subscription import Reading, Subscription

STATIC = Path(__file__).resolve().parent.parent / "static"
BUNDLE = STATIC / "livechart.js"
STYLES = STATIC / "livechart.css"

#: Seconds between two sends of the latest table (it is read by people, not animated).
TABLE_INTERVAL = 1.0
#: Seconds between two status messages when nothing else changes (the view's heartbeat).
HEARTBEAT = 1.0
#: The chart keeps at least this many points, whatever the subscription's ``max_rows``.
MIN_CHART_POINTS = 1_000_000
#: Ranges the view offers (seconds), besides the whole window.
RANGES = (60.0, 900.0)
#: Integers beyond this lose digits as JavaScript numbers: the table gets them as text.
_EXACT_INT = 2**53

OPTIONS = ("y", "by", "max_shown", "height", "interval", "timezone")

Send = Callable[[dict[str, Any], list[bytes]], None]


def _bundle() -> tuple[str, str]:
    if not BUNDLE.exists():
        raise RuntimeError(
            f"the live chart's JavaScript ({BUNDLE}) is not built: in a source checkout run "
            "'bash .ci/setup' (or 'jlpm install && jlpm build:widget' in labextension/)"
        )
    return BUNDLE.read_text(encoding="utf-8"), STYLES.read_text(encoding="utf-8")


class LiveChart(anywidget.AnyWidget):
    """The live chart and table of a subscription (``sub.live()``).

    ``chart.live_view`` is the ``LiveView`` feeding it: ``chart.live_view.stop()`` stops
    following the subscription; ``chart.close()`` ends both.
    """

    _esm = traitlets.Unicode().tag(sync=True)
    _css = traitlets.Unicode().tag(sync=True)

    #: Names this chart's data in the browser, shared by all its views.
    uid = traitlets.Unicode().tag(sync=True)

    channel = traitlets.Unicode("").tag(sync=True)
    topic = traitlets.Unicode("").tag(sync=True)
    #: The charted fields, one panel each; a chunk's field index points in here.
    fields = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: Units of the fields, from the channel's ``units`` setting.
    units = traitlets.Dict().tag(sync=True)
    #: What names a series (topic-level columns, "topic" or payload fields).
    by = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: The subscription's window in seconds (0: bounded by rows only).
    span = traitlets.Float(0.0).tag(sync=True)
    ranges = traitlets.List(traitlets.Float()).tag(sync=True)
    max_shown = traitlets.Int(12).tag(sync=True)
    height = traitlets.Int(240).tag(sync=True)
    timezone = traitlets.Unicode("local").tag(sync=True)
    interval = traitlets.Float(0.1).tag(sync=True)
    #: The series a user chose to draw (set by the view; empty: the first ``max_shown``).
    shown = traitlets.List(traitlets.Unicode()).tag(sync=True)

    live_view: LiveView

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        """The synced state; asked for whole (``key=None``) when a frontend restores the
        model (a reopened notebook, a reloaded page): the next flush then sends the whole
        window, whether or not the new view's own request gets through."""
        state: dict[str, Any] = super().get_state(key=key, drop_defaults=drop_defaults)
        view = getattr(self, "live_view", None)
        if key is None and view is not None:
            view.request_window()
        return state

    def close(self) -> None:
        """Close the widget (its views say so) and end the thread that feeds it."""
        view = getattr(self, "live_view", None)
        if view is not None:
            view.close()
        super().close()


class LiveView:
    """The data and the sending thread behind one ``LiveChart``."""

    def __init__(
        self,
        sub: Subscription,
        *,
        y: str | Sequence[str] | None = None,
        by: str | Sequence[str] | None = None,
        max_shown: int = 12,
        height: int = 240,
        interval: float = 0.1,
        timezone: str = "local",
        send: Send | None = None,
        frame: pd.DataFrame | None = None,
    ) -> None:
        """``send(content, buffers)`` replaces ``LiveChart.send`` (tests record with it);
        ``frame`` replaces ``sub.frame`` as the starting data (tests)."""
        check_options(max_shown=max_shown, height=height, interval=interval, timezone=timezone)
        self.sub = sub
        self.interval = float(interval)
        pattern = sub.meta.get("columns") if isinstance(sub.meta.get("columns"), str) else None
        self._levels = [name for _, name in template_levels(pattern)]
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # no longer following the subscription
        self._closed = threading.Event()  # the thread ends
        # The first message is the whole window: a view that renders at once needs no
        # round trip (a later view, e.g. after a reload, asks for it).
        self._window_wanted = True
        #: What the chart cost so far: messages and bytes sent, CPU seconds its thread
        #: spent preparing them (bench/live_chart.py reads these).
        self.sends = 0
        self.sent_bytes = 0
        self.flush_cpu = 0.0
        self.requests = 0  # window requests from views
        # Check the options on a first look at the frame; then follow, then read the frame
        # again: a reading in between is in both, and the store drops the repeat; one that
        # is in neither cannot happen.
        start = sub.frame if frame is None else frame
        self.fields = resolve_y(y, start, self._levels, sub.channel)
        self.by = resolve_by(by, start, pattern, sub.topic, self._levels)
        self._namer = series_namer(self.by, pattern, sub.topic)
        self._name_by_topic = all(name == "topic" or name in self._levels for name in self.by)
        self._series: dict[str, int] = {}
        self._series_names: list[str] = []
        self._sent_series = 0
        self._topic_series: dict[str, int] = {}
        self._pending = _Pending(len(self.fields))
        self._latest: dict[str, dict[str, Any]] = {}
        self._latest_changed: set[str] = set()
        self._last_table = -math.inf
        self._last_send = -math.inf
        self.store = LineStore(span=sub.window, max_points=max(sub.max_rows, MIN_CHART_POINTS))
        time_field = sub.meta.get("time_field")
        #: The payload field that dates a reading: the table's time column, not repeated.
        self._time_field = time_field if isinstance(time_field, str) else None
        units = sub.meta.get("units")
        self.units: dict[str, str] = dict(units) if isinstance(units, dict) else {}
        self.widget = self._make_widget(max_shown, height, timezone)
        self._send: Send = send if send is not None else self._send_to_widget
        sub.on(self._on_reading)
        self._load(sub.frame if frame is None else frame)
        self._thread = threading.Thread(target=self._run, name="iotcable live chart", daemon=True)
        self._thread.start()

    def _make_widget(self, max_shown: int, height: int, timezone: str) -> LiveChart:
        esm, css = _bundle()
        span = float(self.sub.window) if self.sub.window else 0.0
        ranges = [r for r in RANGES if not span or r < span]
        widget = LiveChart(
            _esm=esm,
            _css=css,
            uid=uuid.uuid4().hex,
            channel=self.sub.channel,
            topic=self.sub.topic or "",
            fields=self.fields,
            units=self.units,
            by=self.by,
            span=span,
            ranges=ranges,
            max_shown=max_shown,
            height=height,
            timezone=timezone,
            interval=self.interval,
        )
        widget.live_view = self
        widget.on_msg(self._on_message)
        return widget

    # -- data in ------------------------------------------------------------------------

    def _load(self, frame: pd.DataFrame) -> None:
        """The starting data: the subscription's frame (history included) and latest rows."""
        if not len(frame):
            return
        row_codes, names = self._frame_series(frame)
        index_of = np.array([self._series_index(name) for name in names], np.uint32)
        if self.fields:
            times = _seconds(frame.index)
            values = np.column_stack(
                [frame[f].to_numpy(np.float64, na_value=np.nan) for f in self.fields]
            )
            self.store.add(group_points(index_of[row_codes], times, values))
        # The series of each topic's last row names its row in the table.
        topic_codes, topics = pd.factorize(frame["topic"])
        last = np.zeros(len(topics), np.intp)
        np.maximum.at(last, topic_codes, np.arange(len(frame)))
        series_of = {str(topics[k]): names[row_codes[i]] for k, i in enumerate(last.tolist())}
        for topic, row in _latest_rows(frame, skip=self._levels).items():
            row["series"] = series_of.get(topic)
            self._latest[topic] = row
            self._latest_changed.add(topic)

    def _frame_series(self, frame: pd.DataFrame) -> tuple[npt.NDArray[np.intp], list[str]]:
        """The series of each frame row, as ``_namer`` names a reading: a code per row and
        the name of each code. Named once per distinct (topic, naming fields), never once
        per row: rows are grouped by vectorized ``factorize`` (a row-wise join took a
        minute for the 500,000 rows of a 15-minute window of 200 topics at 2 Hz and more).
        The topic-level columns follow from the topic, so the topic and the payload fields
        in ``by`` tell the series apart."""
        from ..client.subscription import Reading

        levels = [c for c in self._levels if c in frame.columns]
        extra = [c for c in self.by if c in frame.columns and c not in ("topic", *levels)]
        per_column = [
            pd.factorize(frame[column], use_na_sentinel=False)[0] for column in ("topic", *extra)
        ]
        if len(per_column) == 1:
            codes = per_column[0].astype(np.intp)
        else:
            _, inverse = np.unique(np.column_stack(per_column), axis=0, return_inverse=True)
            codes = inverse.reshape(-1).astype(np.intp)
        _, firsts = np.unique(codes, return_index=True)
        keys = frame[["topic", *levels, *extra]].iloc[firsts].astype(object)
        keys = keys.where(keys.notna(), None)
        names = []
        for row in keys.itertuples(index=False):
            values = dict(zip(keys.columns, row, strict=True))
            columns = {k: str(values[k]) for k in levels if values[k] is not None}
            payload = {k: _plain(values[k]) for k in extra}
            names.append(self._namer(Reading(str(values["topic"]), 0.0, payload, columns, 0)))
        return codes, names

    def _series_index(self, name: str) -> int:
        index = self._series.get(name)
        if index is None:
            index = self._series[name] = len(self._series_names)
            self._series_names.append(name)
        return index

    def _on_reading(self, reading: Reading) -> None:
        """Cable thread, once per reading: append to the pending arrays, nothing more."""
        if self._stopped.is_set():
            return
        with self._lock:
            index = self._topic_series.get(reading.topic) if self._name_by_topic else None
            if index is None:
                index = self._series_index(self._namer(reading))
                if self._name_by_topic:
                    self._topic_series[reading.topic] = index
            payload = reading.payload
            if not self.fields:
                first = pick_y_from_payload(payload)
                if first is not None:
                    self.fields = [first]
                    self._pending = _Pending(1)
            if self.fields:
                values = [as_number(field_value(payload, f)) for f in self.fields]
                self._pending.add(index, reading.time, values)
            self._latest[reading.topic] = {
                "topic": reading.topic,
                "series": self._series_names[index],
                "time": reading.time,
                "payload": payload,
            }
            self._latest_changed.add(reading.topic)

    def _on_message(self, widget: object, content: object, buffers: object) -> None:
        """A view's request (kernel's shell thread): ``{"type": "window"}`` after it renders."""
        if isinstance(content, dict) and content.get("type") == "window":
            with self._lock:
                self._window_wanted = True
                self.requests += 1

    # -- data out -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            if getattr(self.widget, "comm", None) is None:  # the widget was closed
                self.close()
                return
            try:
                self.flush()
            except Exception as exc:  # keep the chart alive; say why in its status
                self._error = f"{type(exc).__name__}: {exc}"

    _error: str | None = None

    def flush(self, now: float | None = None) -> bool:
        """Send what changed since the last send (one message at most); True if it sent."""
        started = time.thread_time()
        try:
            return self._flush(time.monotonic() if now is None else now)
        finally:
            self.flush_cpu += time.thread_time() - started

    def _flush(self, now: float) -> bool:
        with self._lock:
            pending, self._pending = self._pending, _Pending(len(self.fields))
            reset, self._window_wanted = self._window_wanted, False
            table_due = bool(self._latest_changed) and (
                reset or now - self._last_table >= TABLE_INTERVAL
            )
            topics = sorted(self._latest) if reset else sorted(self._latest_changed)
            rows = [self._latest[t] for t in topics] if (table_due or reset) else None
            if rows is not None:
                self._latest_changed.clear()
            fields = list(self.fields)
            names = list(self._series_names)
        new = pending.chunk()
        self.store.add(new)
        if fields != self.widget.fields:
            self.widget.fields = fields  # the first reading chose y: the view must know
        if not (reset or len(new) or rows or now - self._last_send >= HEARTBEAT):
            return False
        first = 0 if reset else self._sent_series
        content: dict[str, Any] = {
            "type": "data",
            "reset": reset,
            "series_from": first,
            "series": names[first:],
            "status": self.status(),
            "now": time.time(),
        }
        if rows is not None:
            content["latest"] = [_table_row(row, self._time_field) for row in rows]
        chunk = self.store.export() if reset else new
        buffers = chunk.buffers()
        self._send(content, buffers)
        self.sent_bytes += len(json.dumps(content)) + sum(len(b) for b in buffers)
        self._sent_series = len(names)
        self._last_send = now
        if rows is not None:
            self._last_table = now
        self.sends += 1
        return True

    def status(self) -> dict[str, Any]:
        """What the view's status line says (the view adds what it knows of the kernel)."""
        sub = self.sub
        status = {
            "state": "stopped" if self._stopped.is_set() else sub.state,
            "reason": sub.reason,
            "cable": sub.cable_state,
            "rate": float(sub.rate),
            "rows": len(sub),
            "gaps": len(sub.gaps),
            "dropped": sub.dropped,
            "points": len(self.store),
            "requests": self.requests,
            "error": self._error,
        }
        if not self.fields:
            status["note"] = "waiting for a reading with a numeric field"
        return status

    def _send_to_widget(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        self.widget.send(content, buffers)

    def request_window(self) -> None:
        """Send the whole store at the next flush (what a view's request does)."""
        with self._lock:
            self._window_wanted = True

    def stop(self) -> None:
        """Stop following the subscription; the chart keeps what it has and stays viewable."""
        self._stopped.set()
        with contextlib.suppress(ValueError):  # already removed
            self.sub.off(self._on_reading)

    def close(self) -> None:
        """Stop following and end the thread (``LiveChart.close()`` leads here too)."""
        self.stop()
        self._closed.set()


class _Pending:
    """Points that arrived since the last flush, in plain arrays (cheap appends)."""

    __slots__ = ("series", "times", "values")

    def __init__(self, fields: int) -> None:
        self.series = array("I")
        self.times = array("d")
        self.values = array("d")  # row-major, ``fields`` per point

    def add(self, series: int, when: float, values: list[float]) -> None:
        self.series.append(series)
        self.times.append(when)
        self.values.extend(values)

    def chunk(self) -> Chunk:
        if not self.times:
            return Chunk.empty()
        values = np.frombuffer(self.values, np.float64).reshape(len(self.times), -1)
        return group_points(
            np.frombuffer(self.series, np.uint32), np.frombuffer(self.times, np.float64), values
        )


# -- options ------------------------------------------------------------------------------


def check_options(*, max_shown: object, height: object, interval: object, timezone: object) -> None:
    """Raise a clear TypeError/ValueError for a bad ``sub.live()`` argument."""
    for name, value, example in (("max_shown", max_shown, 12), ("height", height, 240)):
        if type(value) is not int:
            raise TypeError(f"{name} must be an int such as {name}={example}, not {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be positive (e.g. {name}={example}), not {value}")
    if type(interval) not in (int, float) or not interval >= 0.1:  # type: ignore[operator]
        raise ValueError(
            f"interval must be a number of seconds >= 0.1, not {interval!r}: the chart sends "
            "one message per interval, and Jupyter drops output past 1,000 messages a second"
        )
    if timezone not in ("local", "UTC"):
        raise ValueError(f"timezone must be 'local' or 'UTC', not {timezone!r}")


def resolve_y(
    y: str | Sequence[str] | None, frame: pd.DataFrame, levels: Sequence[str], channel: str
) -> list[str]:
    """The fields to chart: ``y`` checked against the frame's numeric fields, or the default
    measurement (none yet when the frame is empty: the first reading decides)."""
    numeric = numeric_fields(frame, levels)
    if y is None:
        first = pick_y(frame, levels)
        return [first] if first else []
    names = [y] if isinstance(y, str) else list(y) if isinstance(y, list | tuple) else []
    if not names or not all(isinstance(name, str) and name for name in names):
        raise TypeError(
            f"y must be a field name or a list of them, such as y='temperature', not {y!r}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"y names a field twice: {names}")
    if len(frame):
        wrong = [name for name in names if name not in numeric]
        if wrong:
            fields = ", ".join(numeric) if numeric else "none so far"
            raise ValueError(
                f"y={wrong[0]!r} is not a numeric field of the {channel!r} readings; "
                f"numeric fields: {fields}"
            )
    return names


def resolve_by(
    by: str | Sequence[str] | None,
    frame: pd.DataFrame,
    pattern: str | None,
    topic: str | None,
    levels: Sequence[str],
) -> list[str]:
    """What names a series: ``by`` checked, or the template's levels that vary."""
    if by is None:
        return varying_levels(pattern, topic)
    names = [by] if isinstance(by, str) else list(by) if isinstance(by, list | tuple) else []
    if not names or not all(isinstance(name, str) and name for name in names):
        raise TypeError(
            f"by must be a column name or a list of them, such as by='device', not {by!r}"
        )
    known = ["topic", *levels]
    fields = [c for c in frame.columns if c not in (*known, "error")]
    wrong = [name for name in names if name not in known and (len(frame) and name not in fields)]
    if wrong:
        choices = ", ".join([*known, *fields])
        raise ValueError(
            f"by={wrong[0]!r} is neither a topic-level column nor a field; use one of: {choices}"
        )
    return names


# -- the latest table ---------------------------------------------------------------------


def _latest_rows(frame: pd.DataFrame, skip: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The last row of each topic in a frame, as ``_on_reading`` records a reading (without
    the topic-level columns ``skip``: the series name and the topic say them)."""
    if not len(frame) or "topic" not in frame.columns:
        return {}
    last = frame.groupby("topic", sort=False).tail(1)
    rows = {}
    times = _seconds(last.index)
    left_out = {"topic", "error", *skip}
    for when, (_, row) in zip(times.tolist(), last.iterrows(), strict=True):
        payload = {str(k): _plain(v) for k, v in row.items() if k not in left_out}
        payload = {k: v for k, v in payload.items() if v is not None}
        rows[str(row["topic"])] = {"topic": str(row["topic"]), "time": when, "payload": payload}
    return rows


def _seconds(index: pd.Index[Any]) -> npt.NDArray[np.float64]:
    """A frame's time index as unix seconds."""
    nanoseconds = pd.DatetimeIndex(index).as_unit("ns").asi8
    # Whole seconds and the fraction apart: nanoseconds since 1970 do not fit a float64.
    whole, fraction = np.divmod(nanoseconds, 1_000_000_000)
    return whole.astype(np.float64) + fraction.astype(np.float64) / 1e9


def _plain(value: object) -> object:
    """A pandas cell as a plain Python value (missing -> None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _table_row(row: dict[str, Any], time_field: str | None = None) -> dict[str, Any]:
    """One topic's row for the view's table: flat fields, JSON-safe, numbers exact
    (without the channel's ``time_field``: the row's time says it)."""
    payload = row["payload"]
    flat: dict[str, object] = {}
    if isinstance(payload, dict):
        _flatten(flat, "", payload)
        flat.pop(time_field or "", None)
    else:
        flat["value"] = payload
    return {
        "topic": row["topic"],
        "series": row.get("series"),
        "time": row["time"],
        "fields": {k: _cell(v) for k, v in flat.items()},
    }


def _flatten(flat: dict[str, object], prefix: str, obj: dict[Any, Any]) -> None:
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            _flatten(flat, f"{prefix}{key}.", value)
        else:
            flat[f"{prefix}{key}"] = value


def _cell(value: object) -> object:
    """A JSON value the browser shows exactly: floats as they are (JSON keeps every digit
    and JavaScript prints the shortest exact form), huge ints and other things as text."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if abs(value) < _EXACT_INT else str(value)  # type: ignore[arg-type]
    if kind is float:
        return value if math.isfinite(value) else str(value)  # type: ignore[arg-type]
    return json.dumps(value, default=str, ensure_ascii=False)
