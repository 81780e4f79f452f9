"""What the benches share: the broker, the two servers, the node load generator, CPU readings.

Everything runs on loopback in processes of its own, so that each can be measured (psutil)
and none steals the interpreter of another:

- a private mosquitto (``tests/brokers.py``: free port, generated config);
- **the floor** (``bench/floor.py``), a minimal tornado MQTT -> ActionCable bridge;
- **the extension**: a real ``jupyter server`` with jupyter-iotcable
  (``tests/servers.py``'s ``LiveServer``), on the same broker;
- the load generator (``bench/loadgen.mjs``: node with ``ws`` and ``mqtt``), whose npm
  dependencies are installed into ``bench/node_modules`` from ``bench/package-lock.json``
  on first use (``npm ci``; the npm registry only).
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from tests.brokers import Mosquitto, free_port
from tests.servers import LiveServer

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

#: The identifier every bench subscriber uses, on both servers.
IDENTIFIER = json.dumps({"channel": "bench"}, separators=(",", ":"))

#: The extension's channel: JSON readings on ``ext/#`` (the floor bridges ``floor/#``, so
#: neither server sees the other's load).
EXT_CHANNELS: dict[str, dict[str, Any]] = {
    "bench": {"topics": ["ext/#"], "format": "json", "read": ["*"]},
}

PROTOCOLS = {"plain": "actioncable-v1-json", "iotcable": "iotcable-v1-json"}


def git_revision() -> str:
    """The commit the bench runs at (``+dirty`` when the work tree has changes)."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def ensure_node_deps() -> str:
    """The node executable, once ``bench/node_modules`` holds the locked ``ws`` and ``mqtt``."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit(
            "the load generator needs Node.js 18+ (node and npm on PATH); "
            "`bash .ci/setup test` installs it"
        )
    modules = BENCH / "node_modules"
    if not all((modules / name / "package.json").exists() for name in ("ws", "mqtt")):
        print("installing the load generator's npm packages (npm ci in bench/) ...", flush=True)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH, check=True
        )
    return node


def start_broker(workdir: Path) -> Mosquitto:
    broker = Mosquitto(workdir / "mosquitto", max_queued_messages=1_000_000)
    broker.start()
    return broker


@dataclass
class Floor:
    """``bench/floor.py`` in a process of its own, bridging ``topic_filter``."""

    broker: Mosquitto
    topic_filter: str = "floor/#"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/cable"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "floor.py"),
                f"--port={self.port}",
                f"--mqtt-port={self.broker.port}",
                f"--filter={self.topic_filter}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        lines = _line_queue(self.process.stdout)
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the floor server did not start (said {line!r})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


def start_extension(workdir: Path, broker: Mosquitto, **config: Any) -> LiveServer:
    """A ``jupyter server`` with the extension and the bench channel, ready (broker connected)."""
    server = LiveServer(workdir, broker, channels=dict(EXT_CHANNELS), extra_config=config)
    server.start(timeout=120)
    return server


def extension_target(server: LiveServer) -> dict[str, Any]:
    """Where the load generator finds the extension: URL, auth header, publish topic."""
    return {
        "url": server.url.replace("http://", "ws://") + "iotcable/cable",
        "headers": {"Authorization": f"token {server.token}"},
        "topic": "ext/bench/r",
    }


def floor_target(floor: Floor) -> dict[str, Any]:
    return {"url": floor.url, "headers": {}, "topic": "floor/bench/r"}


class LoadGen:
    """One run of ``bench/loadgen.mjs``; see that file for the stdio conversation."""

    def __init__(self, node: str, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [node, str(BENCH / "loadgen.mjs"), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH,
        )
        assert self.process.stdout is not None
        self._lines = _line_queue(self.process.stdout)

    @property
    def pid(self) -> int:
        return self.process.pid

    def event(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the load generator prints (an ``error`` event raises)."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the load generator said nothing for {timeout:.0f} s") from None
        if not line:
            raise RuntimeError(f"the load generator exited ({self.process.wait(5)})")
        event: dict[str, Any] = json.loads(line)
        if event.get("event") == "error":
            raise RuntimeError(f"the load generator failed: {event.get('message')}")
        return event

    def say(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.say("close")
                assert self.process.stdin is not None
                self.process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _line_queue(stream: IO[str]) -> queue.Queue[str]:
    """Lines of ``stream`` read by a daemon thread ("" once it ends), for reads with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return lines


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def wait_quiet(pid: int, settle: float = 0.5, limit: float = 10.0) -> None:
    """Wait until a process stops burning CPU (a run's tail has been handled)."""
    deadline = time.monotonic() + limit
    proc = psutil.Process(pid)
    while time.monotonic() < deadline:
        if proc.cpu_percent(interval=settle) < 5.0:
            return
