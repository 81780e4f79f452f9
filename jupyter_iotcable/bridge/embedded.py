"""The default broker: amqtt in a child process on 127.0.0.1, with generated credentials.

With no ``broker_url`` configured, the server starts one of these so that a single command
gives a working system (DESIGN.md section 8). It is a child process rather than a task in
the server's event loop so that a busy broker cannot stall the Jupyter server and the other
way round, and so that it can be killed outright.

Why the child cannot outlive us: it watches its stdin, a pipe whose only write end is held
by this object. However the parent ends (``stop()``, a crash, SIGKILL, the OOM killer) the
kernel closes that end, the child reads end-of-file and shuts down. Unlike
``PR_SET_PDEATHSIG`` this works on macOS as well as Linux, and it is tied to the parent
process, not to the thread that happened to spawn the child. The pipe is created
non-inheritable, so other children of the server (kernels, terminals) do not hold it open.
``stop_when_stdin_closes`` is that watchdog; the demo gives it to its other children
(JupyterLab and the simulator) as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .settings import BrokerSettings, redact

__all__ = ["EmbeddedBroker", "EmbeddedBrokerError", "stop_when_stdin_closes"]

CHILD_MODULE = "jupyter_iotcable.bridge.embedded_child"
STOP_GRACE = 5.0
"""Seconds the child gets to shut down cleanly after SIGTERM before it is killed."""
LOG_TAIL = 2000
"""Characters of the child's log quoted in an error."""


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be started; the message quotes its log."""


class EmbeddedBroker:
    """amqtt in a child process on ``host`` with generated credentials.

    ``port=0`` lets the kernel choose a free port, so a second Jupyter server gets its own
    broker. The password is generated unless given; it reaches the child through a pipe and
    never appears in ``repr``, ``status()``, errors or the command line.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "iotcable",
        password: str | None = None,
        workdir: Path | None = None,
    ) -> None:
        if not 0 <= port <= 65_535:
            raise ValueError(f"port must be between 0 and 65535, not {port}")
        if not username:
            raise ValueError("the embedded broker needs a non-empty username")
        self.host = host
        self.username = username
        self._password = password if password is not None else secrets.token_urlsafe(24)
        self._requested_port = port
        self._workdir = workdir
        self._own_workdir: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self.port: int | None = None

    def __repr__(self) -> str:
        return f"EmbeddedBroker(host={self.host!r}, port={self.port}, pid={self.pid})"

    @property
    def password(self) -> str:
        return self._password

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedBrokerError("the embedded broker has not been started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def log_path(self) -> Path | None:
        """Where the child's log goes (amqtt warnings and errors)."""
        workdir = self._workdir or self._own_workdir
        return workdir / "broker.log" if workdir is not None else None

    def settings(self, client_id: str = "jupyter-iotcable") -> BrokerSettings:
        """How to connect to this broker. amqtt speaks MQTT 3.1.1 only, so no v5 probe."""
        return BrokerSettings(
            self.url,
            username=self.username,
            password=self._password,
            client_id=client_id,
            protocol="3.1.1",
        )

    def status(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "pid": self.pid, "running": self.running}

    async def start(self, timeout: float = 20.0) -> None:
        """Spawn the broker and return once it accepts MQTT connections."""
        if self.running:
            return
        workdir = self._workdir
        if workdir is None:
            self._own_workdir = workdir = Path(tempfile.mkdtemp(prefix="iotcable-broker-"))
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / "broker.log"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                CHILD_MODULE,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        config = {
            "host": self.host,
            "port": self._requested_port,
            "username": self.username,
            "password": self._password,
            # A temporary directory of ours goes with the child too: if we are killed,
            # nobody else is left to remove it.
            "remove_at_exit": str(self._own_workdir) if self._own_workdir else None,
        }
        try:
            process.stdin.write(json.dumps(config).encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
            self.port = int(json.loads(line)["port"])
        except (TimeoutError, ValueError, KeyError, TypeError, ConnectionError) as exc:
            problem = (
                f"did not start within {timeout:g} s"
                if isinstance(exc, TimeoutError)
                else "exited during start-up"
            )
            await self._terminate()
            tail = self._log_tail()
            # A temporary log is quoted, then removed with its directory; a given one stays.
            where = "" if self._own_workdir else f" ({log_path})"
            self._remove_own_workdir()
            raise EmbeddedBrokerError(
                f"the embedded MQTT broker {problem} (exit code {process.returncode}); "
                f"its log{where} ends with:\n{tail}"
            ) from None

    async def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after a grace period) and wait for it."""
        await self._terminate()
        self._remove_own_workdir()

    def _remove_own_workdir(self) -> None:
        if self._own_workdir is not None:
            shutil.rmtree(self._own_workdir, ignore_errors=True)
            self._own_workdir = None

    async def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        if process.returncode is None:
            _signal(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except TimeoutError:
                _signal(process.pid, signal.SIGKILL)
                await process.wait()
        self._process = None

    def _log_tail(self) -> str:
        path = self.log_path
        try:
            text = path.read_text(errors="replace") if path is not None else ""
        except OSError as exc:
            text = f"(cannot read the log: {exc})"
        return redact(text[-LOG_TAIL:], self._password).strip() or "(empty)"


def stop_when_stdin_closes(signum: signal.Signals = signal.SIGTERM) -> threading.Thread:
    """Send ``signum`` to this process once stdin, a pipe from the parent, reaches end of file.

    The parent holds the pipe's only write end; the kernel closes it however the parent
    ends, SIGKILL included, so the child then stops through its ordinary SIGTERM path
    (JupyterLab shuts its kernels down, the broker closes its sessions). The watchdog is a
    daemon thread reading the file descriptor directly: a thread blocked in
    ``sys.stdin.buffer`` would hold the buffer's lock when the interpreter shuts down.
    Whatever the parent writes is read and ignored. A stdin that cannot be read (closed,
    not a pipe) disarms the watchdog instead of stopping the process.
    """

    def watch() -> None:
        try:
            while os.read(0, 65_536):
                pass
        except OSError:
            return
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=watch, name="stop-when-stdin-closes", daemon=True)
    thread.start()
    return thread


def _signal(pid: int, signum: signal.Signals) -> None:
    """Signal the child without ``Process.send_signal``.

    ``Process.send_signal`` ends in ``Popen.send_signal``, which first polls, and so reaps,
    a child that has just exited; asyncio's child watcher then finds it gone and reports the
    exit code as 255. ``os.kill`` leaves the reaping to the watcher.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
