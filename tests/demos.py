"""``iotcable demo`` as a user starts it, for the demo and notebook tests.

The demo runs as a subprocess in a session of its own (like a terminal's foreground job),
with Jupyter's directories inside the test's temporary directory. ``running_demo`` waits
for the line that tells the user where Lab is, and afterwards makes sure that nothing the
demo started outlives the test, whatever the test did to it. ``execute_in_lab`` runs a
notebook with nbclient in a kernel that the demo's Lab started, as when the user opens
the notebook there: ``connect()`` without arguments, the extension's kernel token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from tests.brokers import free_port

READY = re.compile(r"open (http://127\.0\.0\.1:\d+/)lab/tree/quickstart\.ipynb\?token=(\w+)")
START_TIMEOUT = 120.0
"""Seconds the demo may take to start (the issue's 30 seconds count from then on)."""


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    url: str
    token: str
    ready_at: float
    """``time.monotonic()`` when the demo printed its URL."""
    output: list[str]
    """What the demo printed up to its URL."""
    env: dict[str, str]
    lines: queue.Queue[str | None] = field(repr=False)
    reader: threading.Thread = field(repr=False)
    workdir: Path | None = None
    """The ``--workdir`` it was given (``None``: a temporary one of its own)."""

    @property
    def runtime_dir(self) -> Path:
        return Path(self.env["JUPYTER_RUNTIME_DIR"])

    def descendants(self) -> list[psutil.Process]:
        """Every process the demo started, and theirs (kernels included)."""
        children: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        return children

    def api(self, method: str, path: str, body: object = None) -> Any:
        """Lab's REST API with the demo's token."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def signal(self, signum: signal.Signals) -> int:
        """Send the demo (only the demo) ``signum``; its exit code."""
        self.process.send_signal(signum)
        return self.process.wait(60)

    def printed_until(self, text: str, timeout: float = 30.0) -> list[str]:
        """The lines printed after the URL, up to the first one containing ``text``."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            seen.append(line)
            if text in line:
                return seen
        raise AssertionError(f"the demo did not print {text!r}; it printed:\n{''.join(seen)}")

    def rest_of_output(self) -> str:
        """What the demo printed after the lines already read (call once it has exited)."""
        self.reader.join(10)
        rest = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        return "".join(rest)


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOTCABLE_", "JUPYTERHUB_"))}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    # As after `bash .ci/demo` or `.venv/bin/iotcable demo`: the venv is not activated.
    scripts = sysconfig.get_path("scripts")
    path = env.get("PATH", os.defpath).split(os.pathsep)
    env["PATH"] = os.pathsep.join(entry for entry in path if entry != scripts)
    # The temporary work directory (when the test gives no --workdir) goes here.
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp_path / "tmp")
    return env


def _read_lines(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def running_demo(tmp_path: Path, *args: str, small: bool = True) -> Iterator[RunningDemo]:
    """``iotcable demo --no-browser ARGS...``, started; ``small`` adds ``--port N --devices 4
    --rate 5`` (fewer devices, more readings each); without it, the demo's defaults."""
    env = demo_env(tmp_path)
    argv = ["--no-browser", *args]
    if small:
        argv += ["--port", str(free_port()), "--devices", "4", "--rate", "5"]
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_iotcable.cli", "demo", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    output: list[str] = []
    found: re.Match[str] | None = None
    seen: list[psutil.Process] = []
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while found is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            output.append(line)
            found = READY.search(line)
        assert found is not None, "the demo did not print its URL:\n" + "".join(output)
        demo = RunningDemo(
            process,
            found.group(1),
            found.group(2),
            time.monotonic(),
            output,
            env,
            lines,
            reader,
            Path(args[args.index("--workdir") + 1]) if "--workdir" in args else None,
        )
        seen = demo.descendants()
        yield demo
    finally:
        _stop(process, seen)


def _stop(process: subprocess.Popen[str], seen: list[psutil.Process]) -> None:
    """Stop the demo if the test did not, and kill whatever it left (a failing test must
    not leave processes for the next one)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        seen = seen + psutil.Process(process.pid).children(recursive=True)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    _, alive = psutil.wait_procs(seen, timeout=15)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()


class _LabKernel(AsyncKernelManager):
    """A kernel Lab started: nbclient talks to it but must not start or own one.

    Whether it is alive is Lab's to say (nbclient asks while it waits for replies).
    """

    def __init__(self, demo: RunningDemo, kernel_id: str, connection_file: Path) -> None:
        super().__init__(connection_file=str(connection_file))
        self.load_connection_file()
        self.demo = demo
        self.lab_kernel_id = kernel_id

    @property
    def has_kernel(self) -> bool:
        return True

    async def _async_is_alive(self) -> bool:
        model = await asyncio.to_thread(self.demo.api, "GET", f"api/kernels/{self.lab_kernel_id}")
        return bool(model["execution_state"] != "dead")

    is_alive = _async_is_alive


def execute_in_lab(demo: RunningDemo, notebook: Any, timeout: float = 90.0) -> None:
    """Run ``notebook`` (nbformat) top to bottom in a new kernel of the demo's Lab.

    A failing cell raises nbclient's CellExecutionError, naming the cell and the traceback.
    """
    kernel = demo.api("POST", "api/kernels", {"name": "python3"})
    connection_file = demo.runtime_dir / f"kernel-{kernel['id']}.json"
    try:
        deadline = time.monotonic() + 30
        while not connection_file.exists():
            assert time.monotonic() < deadline, f"Lab wrote no {connection_file}"
            time.sleep(0.1)
        manager = _LabKernel(demo, kernel["id"], connection_file)
        client = NotebookClient(notebook, km=manager, timeout=timeout, startup_timeout=60)
        try:
            client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
    finally:
        demo.api("DELETE", f"api/kernels/{kernel['id']}")


def run_in_terminal(demo: RunningDemo, command: str, timeout: float = 60.0) -> str:
    """Type ``command`` into a new terminal of the demo's Lab (as a user would in Lab's
    Terminal tab) and return what the terminal showed until the command finished.

    The output ends at a marker the shell prints after the command (``$((...))`` is
    expanded by the shell, so the echo of the typed line never matches it).
    """
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    name = demo.api("POST", "api/terminals")["name"]
    marker, typed_marker = "iotcable-terminal-done-42", "iotcable-terminal-done-$((40+2))"

    async def talk() -> str:
        url = demo.url.replace("http://", "ws://") + f"terminals/websocket/{name}"
        ws = await websocket_connect(
            HTTPRequest(url, headers={"Authorization": f"token {demo.token}"})
        )
        try:
            await ws.write_message(json.dumps(["stdin", f"{command}; echo {typed_marker}\r"]))
            shown = ""
            while marker not in shown:
                raw = await asyncio.wait_for(ws.read_message(), timeout)
                assert raw is not None, f"the terminal closed; it showed:\n{shown}"
                kind, *content = json.loads(raw)
                if kind == "stdout":
                    shown += content[0]
            return shown
        finally:
            ws.close()

    try:
        return asyncio.run(talk())
    finally:
        demo.api("DELETE", f"api/terminals/{name}")


def outputs(notebook: Any, output_type: str) -> list[Any]:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == output_type
    ]


__all__ = [
    "READY",
    "RunningDemo",
    "demo_env",
    "execute_in_lab",
    "outputs",
    "run_in_terminal",
    "running_demo",
]
