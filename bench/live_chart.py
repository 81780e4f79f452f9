"""``sub.live()`` under load: 10,000 readings/s from 200 topics into one live chart.

    .venv/bin/python bench/live_chart.py                 # 10,000/s, 200 topics, 20 s
    .venv/bin/python bench/live_chart.py --rate 2000 --seconds 10 --history 100000

What a notebook user runs, end to end, all real: a private mosquitto, a real ``jupyter
server`` with the extension, a real kernel, JupyterLab in Debian's Chromium (Playwright).
A publisher process (paho) first puts ``--history`` readings into the channel's history,
dated over the last 15 minutes at 2 Hz per topic (the issue's 360,000 points: 200 topics,
2 Hz, 15 minutes), then publishes ``--rate`` readings a second round-robin over
``--topics`` topics. In the notebook:

1. ``sub = cable.subscribe(..., history="20min")`` (the backfill), then **phase A**
   (``--baseline`` s): the load runs into the subscription alone. This is the baseline:
   the kernel's CPU for the same readings without a chart.
2. ``sub.live(y="temperature")``: the time until the view holds the whole window.
3. **Phase B** (``--seconds`` s): the same load with the chart, 12 of 200 series drawn.
4. **Phase C** (``--all-seconds`` s): the chart set to draw all 200 series.

Measured, per phase:

- in the kernel (a sampler thread in the notebook writes its counters twice a second):
  readings received per second, the kernel process's CPU seconds per second (B - A: what
  the chart costs, its reading callback included), the chart thread's own CPU per second
  (``LiveView.flush_cpu``), its comm messages per second (goal: <= 10) and bytes;
- from outside the kernel, in Chromium: the bytes per second of the kernel's websocket
  (everything the browser gets from the kernel: comm messages, status, outputs), the
  chart's messages as its view counts them, the time of one ``draw()`` (p50/p99, from the
  store to the painted canvas, ``performance.now()``; goal under 16 ms at 360,000
  points), the points the view held while drawing, and frames per second
  (``requestAnimationFrame``) with the longest frame;
- "IOPub message rate exceeded" anywhere (server log, page): must be none.

The machine's load average is printed: the figures of a shared 2-core machine move with
what else runs on it. The raw results go to ``bench/results/`` (not committed). Not a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import json
import math
import os
import queue
import subprocess
import tempfile
import threading
import time
import urllib.error
from dataclasses import dataclass
from typing import Any

from bench.harness import BENCH, cpu_seconds, git_revision, start_broker

#: The bench's channel: JSON readings on ``bench/<device>``, dated by their ``ts``.
CHANNELS: dict[str, dict[str, Any]] = {
    "bench": {
        "topics": ["bench/#"],
        "columns": "bench/{device}",
        "format": "json",
        "time_field": "ts",
        "read": ["*"],
        "history_limit": 2_000_000,
        "history_bytes": 1 << 30,  # the default 64 MB holds about 210,000 of these
        "units": {"temperature": "°C"},
    }
}

#: Seconds the history spans, and its readings' spacing per topic (the issue's 2 Hz).
HISTORY_SPAN = 900.0
HISTORY_RATE = 20_000  # readings/s while the history is published (paced: no broker drops)


# -- the publisher (a process of its own) ---------------------------------------------------


def publisher(config: dict[str, Any]) -> None:
    """Publish the history, say so, then the live load from "go" until "stop" (stdin)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-live-chart")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", config["port"])
    client.loop_start()
    topics = [f"bench/dev{n:03d}" for n in range(config["topics"])]
    words: queue.Queue[str] = queue.Queue()

    def listen() -> None:
        for line in sys.stdin:
            words.put(line.strip())
        words.put("stop")

    threading.Thread(target=listen, daemon=True).start()

    def paced(total: int, rate: float, payload: Any, until: threading.Event | None) -> int:
        start = time.monotonic()
        sent = 0
        while sent < total and not (until is not None and until.is_set()):
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while sent < due:
                client.publish(topics[sent % len(topics)], payload(sent))
                sent += 1
            time.sleep(0.002)
        return sent

    history = config["history"]
    per_topic = max(1, history // len(topics))
    step = HISTORY_SPAN / per_topic
    first = time.time() - HISTORY_SPAN

    def old(n: int) -> str:
        tick = n // len(topics)
        device = n % len(topics)
        value = 10 + device / 10 + (tick % 20) / 10
        return json.dumps({"ts": first + tick * step, "temperature": value, "seq": n})

    started = time.monotonic()
    sent = paced(history, HISTORY_RATE, old, None)
    print(json.dumps({"event": "history", "sent": sent, "seconds": time.monotonic() - started}))
    sys.stdout.flush()
    while words.get() != "go":
        pass
    stop = threading.Event()

    def wait_stop() -> None:
        while words.get() != "stop":
            pass
        stop.set()

    threading.Thread(target=wait_stop, daemon=True).start()

    def live(n: int) -> str:
        device = n % len(topics)
        value = 10 + device / 10 + (n // len(topics) % 40) / 20
        return json.dumps({"ts": time.time(), "temperature": value, "seq": n})

    started = time.monotonic()
    sent = paced(10**12, config["rate"], live, stop)
    seconds = time.monotonic() - started
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"event": "live", "sent": sent, "seconds": seconds}))
    sys.stdout.flush()


class Publisher:
    def __init__(self, port: int, rate: float, topics: int, history: int) -> None:
        config = {"port": port, "rate": rate, "topics": topics, "history": history}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--publisher", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def event(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the publisher exited ({self.process.wait(5)})")
        event: dict[str, Any] = json.loads(line)
        return event

    def say(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# -- the notebook ----------------------------------------------------------------------------


def cells(samples: Path, topics: int) -> list[str]:
    setup = f"""\
import json, os, threading, time
import jupyter_iotcable as iot
cable = iot.connect()
sub = cable.subscribe("bench", window="15min", max_rows=3_000_000, history="20min")
chart = None

def _sample(path={str(samples)!r}):
    with open(path, "a") as out:
        while True:
            cpu = os.times()
            view = chart.live_view if chart is not None else None
            record = {{
                "t": time.time(), "pid": os.getpid(), "cpu": cpu.user + cpu.system,
                "received": sub.received, "rows": len(sub), "dropped": sub.dropped,
                "gaps": len(sub.gaps), "rate": sub.rate,
            }}
            if view is not None:
                record.update(
                    sends=view.sends, sent_bytes=view.sent_bytes, flush_cpu=view.flush_cpu,
                    requests=view.requests, points=len(view.store),
                )
            out.write(json.dumps(record) + "\\n")
            out.flush()
            time.sleep(0.5)

threading.Thread(target=_sample, daemon=True).start()
print("subscribed", len(sub))"""
    return [
        setup,
        'chart = sub.live(y="temperature")\nchart',
        f'chart.shown = [f"dev{{n:03d}}" for n in range({topics})]',
    ]


def read_samples(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line being written
            out.append(json.loads(line))
    return out


def sample_at(samples: list[dict[str, Any]], when: float) -> dict[str, Any]:
    """The kernel's sample nearest to the wall-clock time ``when``."""
    return min(samples, key=lambda s: abs(float(s["t"]) - when))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Phase:
    name: str
    t0: float  # wall clock, time.time()
    t1: float = 0.0
    ws_bytes0: int = 0
    ws_bytes1: int = 0
    ws_frames0: int = 0
    ws_frames1: int = 0
    server_cpu0: float = 0.0
    server_cpu1: float = 0.0
    perf0: float = 0.0  # the page's performance.now() at t0
    perf1: float = 0.0
    view_messages0: int = 0
    view_messages1: int = 0


class KernelSocket:
    """Counts what the browser receives on the kernels' websockets (from outside).

    Playwright's sync API hands events over only while it is called: the phases wait
    with ``page.wait_for_timeout``, never ``time.sleep``, and read the counters after a
    call into the page."""

    def __init__(self) -> None:
        self.bytes = 0
        self.frames = 0

    def attach(self, ws: Any) -> None:
        if "/api/kernels/" not in ws.url:
            return

        def received(payload: str | bytes) -> None:
            self.frames += 1
            self.bytes += len(payload.encode() if isinstance(payload, str) else payload)

        ws.on("framereceived", received)


FRAMES_JS = """() => {
    const now = performance.now();
    const f = (window.__benchFrames = {n: 0, start: now, last: now, longest: 0});
    const tick = now => {
        f.longest = Math.max(f.longest, now - f.last);
        f.last = now;
        f.n++;
        if (!f.stopped) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    return f.start;
}"""

STOP_FRAMES_JS = """() => {
    const f = window.__benchFrames;
    f.stopped = true;
    return {frames: f.n, seconds: (performance.now() - f.start) / 1000, longest: f.longest};
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10_000, help="readings/s (10000)")
    parser.add_argument("--topics", type=int, default=200, help="topics (200)")
    parser.add_argument("--seconds", type=float, default=20, help="phase B seconds (20)")
    parser.add_argument("--baseline", type=float, default=10, help="phase A seconds (10)")
    parser.add_argument("--all-seconds", type=float, default=8, help="phase C seconds (8)")
    parser.add_argument("--history", type=int, default=360_000, help="readings of history (360000)")
    parser.add_argument(
        "--profile", action="store_true", help="print where phase C spends the page's time"
    )
    parser.add_argument("--publisher", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        publisher(json.loads(args.publisher))
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.browser.test_live_widget import open_notebook, put_notebook, run_cell
    from tests.servers import LiveServer

    revision = git_revision()
    print(
        f"live_chart at {revision}: {args.rate:,.0f} readings/s over {args.topics} topics, "
        f"history {args.history:,}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-live-chart-"))
    broker = start_broker(workdir)
    server = LiveServer(
        workdir / "server", broker, channels=dict(CHANNELS), extra_config={"history_bytes": 1 << 30}
    )
    server.start(timeout=120)
    assert server.process is not None
    server_pid = server.process.pid
    pub = Publisher(broker.port, args.rate, args.topics, args.history)
    samples_path = workdir / "samples.jsonl"
    results: dict[str, Any] = {"revision": revision, "args": vars(args)}
    try:
        event = pub.event()
        deadline = time.monotonic() + 300
        held = 0
        while time.monotonic() < deadline:
            try:
                channel = server.get("iotcable/api/status")["channels"]["bench"]
            except (OSError, urllib.error.URLError):  # a server busy ingesting: ask again
                time.sleep(1)
                continue
            held = int(channel["history"]["size"])
            if held >= event["sent"]:
                break
            time.sleep(0.5)
        broker_status = server.get("iotcable/api/status")["broker"]
        print(
            f"history: {event['sent']:,} readings published in {event['seconds']:.1f} s; "
            f"the server holds {held:,} (broker bridge dropped {broker_status['dropped']})",
            flush=True,
        )
        results["history"] = {"published": event["sent"], "held": held}

        put_notebook(server, "bench.ipynb", cells(samples_path, args.topics))
        sockets = KernelSocket()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(viewport={"width": 1300, "height": 1000})
            page = context.new_page()
            page.on("websocket", sockets.attach)
            open_notebook(page, server, "lab", "bench.ipynb")
            started = time.monotonic()
            run_cell(page, 0)
            wait_for(lambda: bool(read_samples(samples_path)), 300, "the subscription")
            first = read_samples(samples_path)[-1]
            print(
                f"backfill: the subscription holds {first['rows']:,} rows "
                f"{time.monotonic() - started:.1f} s after the cell ran",
                flush=True,
            )
            pub.say("go")
            page.wait_for_timeout(2000)  # the load settles (the first readings warm the path up)

            def begin(name: str) -> Phase:
                perf = float(page.evaluate("performance.now()"))
                return Phase(
                    name,
                    time.time(),
                    ws_bytes0=sockets.bytes,
                    ws_frames0=sockets.frames,
                    perf0=perf,
                    view_messages0=view_messages(page),
                    server_cpu0=cpu_seconds(server_pid),
                )

            def end(phase: Phase) -> Phase:
                phase.perf1 = float(page.evaluate("performance.now()"))
                phase.t1 = time.time()
                phase.ws_bytes1 = sockets.bytes
                phase.ws_frames1 = sockets.frames
                phase.view_messages1 = view_messages(page)
                phase.server_cpu1 = cpu_seconds(server_pid)
                return phase

            page.evaluate(FRAMES_JS)
            a = begin("A")
            page.wait_for_timeout(args.baseline * 1000)
            end(a)
            results["A"] = {"frames": page.evaluate(STOP_FRAMES_JS), "draws": []}

            render_started = time.monotonic()
            run_cell(page, 1)
            root = page.locator(".iotcable-live").first
            root.wait_for(timeout=120_000)
            wait_for(
                lambda: (
                    root.get_attribute("data-window") == "whole"
                    and int(root.get_attribute("data-points") or 0) > 0
                ),
                120,
                "the chart's whole window",
            )
            render = time.monotonic() - render_started
            points = int(root.get_attribute("data-points") or 0)
            print(
                f"sub.live(): the view held the whole window ({points:,} points) "
                f"{render:.1f} s after the cell ran",
                flush=True,
            )
            results["first_render"] = {"seconds": render, "points": points}
            page.wait_for_timeout(1000)

            phases = [a]
            for name, seconds, cell in (("B", args.seconds, None), ("C", args.all_seconds, 2)):
                if cell is not None:
                    run_cell(page, cell)
                    try:
                        wait_for(
                            lambda: root.get_attribute("data-shown") == str(args.topics),
                            60,
                            "every series shown",
                        )
                    except TimeoutError as exc:
                        print(f"phase {name} skipped: {exc}", flush=True)
                        break
                    page.wait_for_timeout(1000)
                page.evaluate(FRAMES_JS)
                profiler = None
                if args.profile and name == "C":
                    profiler = context.new_cdp_session(page)
                    profiler.send("Profiler.enable")
                    profiler.send("Profiler.start")
                phase = begin(name)
                page.wait_for_timeout(seconds * 1000)
                end(phase)
                if profiler is not None:
                    profile = profiler.send("Profiler.stop")["profile"]
                    print_profile(profile)
                frames = page.evaluate(STOP_FRAMES_JS)
                draws = page.evaluate(
                    "([t0, t1]) => globalThis.__iotcableLiveChart.draws"
                    ".filter(d => d.at >= t0 && d.at <= t1)",
                    [phase.perf0, phase.perf1],
                )
                phases.append(phase)
                results[name] = {"frames": frames, "draws": draws}
            shown_text = root.locator(".iotcable-live-shown").inner_text()
            root.scroll_into_view_if_needed()
            shot = BENCH / "results" / "live_chart.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot))
            pub.say("stop")
            live_event = pub.event()
            exceeded = "IOPub message rate exceeded" in page.content()
            context.close()
            browser.close()
        exceeded = exceeded or "IOPub message rate exceeded" in server.log_path.read_text(
            errors="replace"
        )
        samples = read_samples(samples_path)
        report(args, phases, samples, results, live_event, exceeded, shown_text)
        results["samples"] = samples
        out = BENCH / "results" / f"live_chart-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, default=str))
        print(f"raw results: {out.relative_to(BENCH.parent)} (its screenshot: live_chart.png)")
    finally:
        pub.close()
        server.stop()
        broker.kill()


def print_profile(profile: dict[str, Any], top: int = 25) -> None:
    """The functions with the most self time in a CDP CPU profile (build the widget
    without --minify to read their names)."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    deltas = profile.get("timeDeltas", [])
    self_ms: dict[str, float] = {}
    for sample, delta in zip(profile.get("samples", []), deltas, strict=False):
        frame = nodes[sample]["callFrame"]
        where = f"{frame['functionName'] or '(anonymous)'} {frame['url'].rsplit('/', 1)[-1]}"
        where += f":{frame['lineNumber'] + 1}"
        self_ms[where] = self_ms.get(where, 0.0) + delta / 1000
    total = sum(self_ms.values())
    print(f"page profile of phase C: {total:.0f} ms sampled; most self time:")
    for where, ms in sorted(self_ms.items(), key=lambda item: -item[1])[:top]:
        print(f"  {ms:8.0f} ms  {where}")


def view_messages(page: Any) -> int:
    value = page.evaluate(
        "() => Number(document.querySelector('.iotcable-live')?.dataset.messages ?? 0)"
    )
    return int(value)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def report(
    args: argparse.Namespace,
    phases: list[Phase],
    samples: list[dict[str, Any]],
    results: dict[str, Any],
    live_event: dict[str, Any],
    exceeded: bool,
    shown_text: str,
) -> None:
    published = live_event["sent"] / live_event["seconds"]
    print(f"publisher: {published:,.0f} readings/s over {live_event['seconds']:.0f} s")
    rows = []
    cpu_a = 0.0
    for phase in phases:
        s0, s1 = sample_at(samples, phase.t0), sample_at(samples, phase.t1)
        seconds = float(s1["t"]) - float(s0["t"])
        wall = phase.t1 - phase.t0
        cpu = (float(s1["cpu"]) - float(s0["cpu"])) / seconds
        arrived = int(s1["received"]) - int(s0["received"])
        per_1000 = 1e6 * (float(s1["cpu"]) - float(s0["cpu"])) / arrived if arrived else math.nan
        if phase.name == "A":
            cpu_a = per_1000
        row: dict[str, Any] = {
            "phase": phase.name,
            "seconds": seconds,
            "received_per_s": (int(s1["received"]) - int(s0["received"])) / seconds,
            "dropped": int(s1["dropped"]) - int(s0["dropped"]),
            "kernel_cpu_per_s": cpu,
            "kernel_cpu_ms_per_1000": per_1000,
            "server_cpu_per_s": (phase.server_cpu1 - phase.server_cpu0) / wall,
            "ws_bytes_per_s": (phase.ws_bytes1 - phase.ws_bytes0) / wall,
            "ws_frames_per_s": (phase.ws_frames1 - phase.ws_frames0) / wall,
            "view_messages_per_s": (phase.view_messages1 - phase.view_messages0) / wall,
        }
        if "sends" in s0:
            row["comm_messages_per_s"] = (int(s1["sends"]) - int(s0["sends"])) / seconds
            row["comm_bytes_per_s"] = (int(s1["sent_bytes"]) - int(s0["sent_bytes"])) / seconds
            row["chart_thread_cpu_per_s"] = (
                float(s1["flush_cpu"]) - float(s0["flush_cpu"])
            ) / seconds
            row["chart_ms_per_1000"] = per_1000 - cpu_a
            row["kernel_points"] = int(s1["points"])
        extra = results.get(phase.name)
        if extra:
            row.update(
                fps=extra["frames"]["frames"] / extra["frames"]["seconds"],
                longest_frame_ms=extra["frames"]["longest"],
            )
        if extra and extra["draws"]:
            draws = extra["draws"]
            ms = [float(d["ms"]) for d in draws]
            big = [float(d["ms"]) for d in draws if int(d["points"]) >= 360_000]
            grid = [float(d.get("gridMs", "nan")) for d in draws]
            row.update(
                draws=len(ms),
                grid_p50_ms=percentile(grid, 0.5),
                draw_p50_ms=percentile(ms, 0.5),
                draw_p99_ms=percentile(ms, 0.99),
                draw_max_ms=max(ms, default=float("nan")),
                draws_at_360k=len(big),
                draw_p50_ms_at_360k=percentile(big, 0.5),
                draw_p99_ms_at_360k=percentile(big, 0.99),
                view_points=max((int(d["points"]) for d in draws), default=0),
            )
        rows.append(row)
    results["phases"] = rows
    for row in rows:
        what = {"A": "subscription only (baseline)", "B": "sub.live(), 12 of 200 drawn"}.get(
            row["phase"], "sub.live(), all 200 drawn"
        )
        print(f"\nphase {row['phase']}: {what}, {row['seconds']:.1f} s")
        print(
            f"  kernel received {row['received_per_s']:,.0f} readings/s "
            f"(dropped by the server: {row['dropped']}); "
            f"kernel CPU {row['kernel_cpu_per_s']:.2f} s/s "
            f"({row['kernel_cpu_ms_per_1000']:.0f} ms per 1,000 readings), server CPU "
            f"{row['server_cpu_per_s']:.2f} s/s"
        )
        if "comm_messages_per_s" in row:
            print(
                f"  chart: {row['comm_messages_per_s']:.1f} comm messages/s (goal <= 10), "
                f"{row['comm_bytes_per_s'] / 1000:,.0f} kB/s sent; kernel CPU for the chart "
                f"{row['chart_ms_per_1000']:+.0f} ms per 1,000 readings over the baseline, "
                f"its thread {row['chart_thread_cpu_per_s']:.3f} s/s; "
                f"{row['kernel_points']:,} points held"
            )
        print(
            f"  browser: kernel websocket {row['ws_bytes_per_s'] / 1000:,.0f} kB/s in "
            f"{row['ws_frames_per_s']:.1f} frames/s; the view counted "
            f"{row['view_messages_per_s']:.1f} chart messages/s"
        )
        if "draws" in row:
            print(
                f"  draw(): p50 {row['draw_p50_ms']:.1f} ms, p99 {row['draw_p99_ms']:.1f} ms, "
                f"max {row['draw_max_ms']:.1f} ms over {row['draws']} draws, of which the grid "
                f"p50 {row['grid_p50_ms']:.1f} ms "
                f"(at >= 360,000 points: {row['draws_at_360k']} draws, p50 "
                f"{row['draw_p50_ms_at_360k']:.1f} ms, p99 {row['draw_p99_ms_at_360k']:.1f} ms; "
                f"the view held up to {row['view_points']:,} points)"
            )
        if "fps" in row:
            baseline = " (the page's baseline)" if row["phase"] == "A" else ""
            print(
                f"  page: {row['fps']:.0f} frames/s, longest frame "
                f"{row['longest_frame_ms']:.0f} ms{baseline}"
            )
    print(f"\nlegend: {shown_text.strip()}")
    print(f"'IOPub message rate exceeded': {'SEEN' if exceeded else 'none'}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    results["iopub_exceeded"] = exceeded
    results["load_average"] = os.getloadavg()[0]


if __name__ == "__main__":
    main()
