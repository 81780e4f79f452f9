"""``iotcable demo``: JupyterLab with the extension, an embedded broker and a device simulator.

One command gives a working system (DESIGN.md section 8). The demo starts the broker itself,
rather than letting the extension start its own, because the simulator needs the broker's
address and credentials too. Passwords reach the children through their environment, never
their command line (which any local user can read).

Stopping. Every child runs in a session of its own so that a Ctrl-C in the terminal reaches
only the demo. On Ctrl-C, SIGTERM or SIGHUP (the terminal was closed) the demo stops the
children in order (Lab first, so its kernels stop while the broker is still there) and
waits for each one; a child that ignores SIGTERM is killed after a grace period. If the
demo itself is killed (SIGKILL, the OOM killer), no code of it runs: each child then stops
itself, because it watches a pipe from the demo that the kernel closes when the demo dies
(``stop_when_stdin_closes``, the embedded broker's watchdog). Its temporary directory is
left behind then; the next demo removes it.

The example notebooks are copied into the demo's directory and Lab serves that copy, so
what Lab saves (outputs, checkpoints) never lands in the source checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import platform
import runpy
import secrets
import shutil
import signal
import socket
import sys
import sysconfig
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bridge import EmbeddedBroker, EmbeddedBrokerError
from .bridge.embedded import stop_when_stdin_closes

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DemoOptions",
    "copy_notebooks",
    "lab_config",
    "main",
    "opened_clean",
    "parse_args",
    "remove_stale_workdirs",
    "run_child",
    "scripts_on_path",
    "terminal_shell",
]

PASSWORD_VAR = "IOTCABLE_DEMO_BROKER_PASSWORD"
"""The environment variable through which the simulator and Lab get the broker password."""
QUICKSTART = "lab/tree/quickstart.ipynb"
STOP_GRACE = 10.0
"""Seconds a child gets to exit after SIGTERM before it is killed (Lab stops its kernels)."""
LAB_START_TIMEOUT = 120.0
SIMULATOR_SETTLE = 1.0
#: The simulator's measurements and their units (the charts' axis titles show them).
DEMO_UNITS = {
    "temperature": "°C",
    "setpoint": "°C",
    "humidity": "%",
    "pressure": "hPa",
    "vibration": "mm/s",
}
"""Seconds the simulator must stay up before it counts as started. Bad arguments end it
sooner; a broker it cannot reach does not (it keeps retrying), but the demo's own broker
is up by then."""
WORKDIR_PREFIX = "iotcable-demo-"
OWNER_FILE = "demo.pid"
"""In a temporary work directory: the pid of the demo that owns it."""
CHILD_CODE = "from jupyter_iotcable.demo import run_child; run_child()"
"""How the demo starts a child module: ``python -c CHILD_CODE MODULE ARGS...``."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class DemoOptions:
    port: int
    open_browser: bool
    devices: int
    rate: float
    workdir: Path | None


def parse_args(argv: Sequence[str]) -> DemoOptions:
    """The options the command line asks for; exits with status 2 and a message if bad."""
    parser = argparse.ArgumentParser(
        prog="iotcable demo",
        description="Start JupyterLab with the iotcable extension, an embedded MQTT broker "
        "and a device simulator, and open the quickstart notebook. Ctrl-C stops everything.",
    )
    parser.add_argument(
        "--port", type=int, default=0, metavar="N", help="Lab's port (default: a free one)"
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument(
        "--devices", type=int, default=8, metavar="N", help="simulated devices (default: 8)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        metavar="HZ",
        help="readings per second per device (default: 1)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="where the notebooks, configuration and logs go; kept after the demo "
        "(default: a temporary directory, removed when the demo stops)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65_535:
        parser.error(f"--port must be between 0 and 65535, not {args.port}")
    if not 1 <= args.devices <= 10_000:
        parser.error(f"--devices must be between 1 and 10000, not {args.devices}")
    if not 0 < args.rate <= 1000:
        parser.error(f"--rate must be more than 0 and at most 1000 per second, not {args.rate:g}")
    return DemoOptions(
        port=args.port,
        open_browser=not args.no_browser and _can_open_browser(),
        devices=args.devices,
        rate=args.rate,
        workdir=args.workdir,
    )


def _can_open_browser() -> bool:
    """No browser in CI or on a headless Linux box (it would fail or hang there)."""
    if os.environ.get("CI"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def copy_notebooks(destination: Path) -> list[Path]:
    """Copy the example notebooks next to the package (a source checkout) to ``destination``.

    A notebook already there is kept: with ``--workdir`` it holds the user's own changes.
    Returns the notebooks copied now; nothing when the package has no notebooks (installed
    from a wheel). Each copy says which kernel and Python it runs on as Lab would write it
    (``opened_clean``), so that it does not open already marked as changed.
    """
    source = Path(__file__).resolve().parent.parent / "notebooks"
    destination.mkdir(parents=True, exist_ok=True)
    copied = []
    for notebook in sorted(source.glob("*.ipynb")):
        target = destination / notebook.name
        if not target.exists():
            target.write_text(opened_clean(notebook.read_text(encoding="utf-8")), "utf-8")
            copied.append(target)
    return copied


def opened_clean(text: str) -> str:
    """A notebook's JSON with its ``kernelspec`` and ``language_info`` as Lab sets them when
    it starts the kernel here.

    Lab rewrites both from the kernel (the kernelspec's ``display_name``, the kernel's
    Python version) and marks the notebook unsaved whenever they differ from the file: the
    checked-in notebooks can only match one Python version, the demo's copy matches the
    Python the demo (and so its kernels) runs. Written as Lab writes notebooks (indent 1,
    sorted keys, a final newline), so that saving unchanged changes nothing.
    """
    notebook = json.loads(text)
    metadata = notebook.setdefault("metadata", {})
    kernelspec = metadata.get("kernelspec")
    name = kernelspec.get("name") if isinstance(kernelspec, dict) else None
    spec = _kernel_spec(name if isinstance(name, str) else "python3")
    if spec is not None:
        metadata["kernelspec"] = spec
    language = metadata.get("language_info")
    if isinstance(language, dict) and language.get("name") == "python":
        language["version"] = platform.python_version()
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _kernel_spec(name: str) -> dict[str, str] | None:
    """``{"display_name", "language", "name"}`` of the kernel ``name`` installed here."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:  # no Jupyter installed: the copy keeps what the file says
        return None
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None
    return {"display_name": spec.display_name, "language": spec.language, "name": name}


def remove_stale_workdirs(parent: Path) -> list[Path]:
    """Remove the temporary directories of demos that were killed before they could.

    A directory counts as stale when its owner file names a process that no longer exists;
    one without an owner file, or owned by another user, is left alone.
    """
    removed = []
    for workdir in parent.glob(WORKDIR_PREFIX + "*"):
        try:
            if workdir.stat().st_uid != os.getuid():
                continue
            pid = int((workdir / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _process_exists(pid):
            shutil.rmtree(workdir, ignore_errors=True)
            removed.append(workdir)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


def run_child() -> None:
    """The demo's children run as ``python -c CHILD_CODE MODULE ARGS...``.

    Runs MODULE as ``python -m MODULE ARGS...`` would, with the embedded broker's watchdog:
    when the demo is gone (however it ended), the child gets SIGTERM and stops cleanly.
    """
    if len(sys.argv) < 2:
        sys.exit("usage: python -c CHILD_CODE MODULE [ARGS...] (started by iotcable demo)")
    stop_when_stdin_closes()
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)


def lab_config(
    broker: EmbeddedBroker,
    *,
    root_dir: Path,
    port: int,
    token: str,
    open_browser: bool,
) -> dict[str, Any]:
    """Lab's configuration: the extension on the demo's broker with two channels.

    Everybody may read the telemetry; only the person running the demo may send
    commands to the devices.
    """
    owner = f"user:{getpass.getuser()}"
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_iotcable": True},
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "root_dir": str(root_dir),
            "open_browser": open_browser,
            # Containers often run as root; the demo should work there as well.
            "allow_root": hasattr(os, "geteuid") and os.geteuid() == 0,
            # Lab's terminals: a plain interactive shell rather than the login shell Jupyter
            # picks when its stdout is not a terminal (the demo's goes to a log): a login
            # shell's /etc/profile resets PATH, and `iotcable` was "command not found".
            "terminado_settings": {"shell_command": [terminal_shell()]},
        },
        "LabApp": {"default_url": "/" + QUICKSTART},
        "IdentityProvider": {"token": token},
        "IoTCableApp": {
            "broker_url": broker.url,
            "broker_username": broker.username,
            "broker_password_env": PASSWORD_VAR,
            # amqtt speaks 3.1.1 only and ignores an MQTT 5 attempt: no 10 s probe.
            "broker_protocol": "3.1.1",
            "channels": {
                "telemetry": {
                    "topics": ["plant/+/+/env"],
                    "columns": "plant/{site}/{device}/env",
                    "format": "json",
                    # The device's own clock: the frames' time index, not a float column.
                    "time_field": "ts",
                    "read": ["*"],
                    "history_limit": 20_000,
                    "description": "readings of the simulated plant",
                    "units": DEMO_UNITS,
                },
                "commands": {
                    "topics": ["plant/+/+/cmd"],
                    "format": "json",
                    "read": [owner],
                    "write": [owner],
                    "description": 'commands to the devices, e.g. {"setpoint": 25}',
                },
            },
        },
    }


def terminal_shell() -> str:
    """The shell of Lab's terminals: the user's own (``$SHELL``), else ``sh``."""
    return os.environ.get("SHELL") or shutil.which("sh") or "/bin/sh"


def scripts_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this environment's scripts directory (where ``iotcable`` is installed)
    first on ``PATH``: Lab's terminals and kernels inherit it, so ``iotcable`` and
    ``!iotcable`` work there even when the demo was started without activating the venv
    (``.venv/bin/iotcable demo``, ``bash .ci/demo``)."""
    scripts = sysconfig.get_path("scripts")
    path = env.get("PATH", os.defpath)
    if scripts not in path.split(os.pathsep):
        path = os.pathsep.join([scripts, path])
    return {**env, "PATH": path}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until Ctrl-C, SIGTERM or SIGHUP; 0 after a clean stop, 1 if it could not
    start."""
    try:
        options = parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    workdir = options.workdir
    if workdir is None:
        parent = Path(tempfile.gettempdir())
        remove_stale_workdirs(parent)
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=parent))
        (workdir / OWNER_FILE).write_text(str(os.getpid()))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(_Demo(options, workdir).run())
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


class _Demo:
    def __init__(self, options: DemoOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.broker = EmbeddedBroker(workdir=workdir / "broker")
        self.children: list[tuple[str, asyncio.subprocess.Process]] = []
        self.stop = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self.stop.set)
        try:
            url = await self._start()
            if url is None:
                return 0 if self.stop.is_set() else 1
            _say("Ctrl-C stops the demo.")
            await self._wait_until_stopped()
            return 0
        finally:
            _say("stopping…")
            await self._stop_all()
            _say("stopped.")

    async def _start(self) -> str | None:
        """Start the three parts; the URL to open, or None after a failure (or a Ctrl-C)."""
        _say("starting embedded MQTT broker… ", end="")
        try:
            await self.broker.start()
        except EmbeddedBrokerError as exc:
            _say(f"failed\n{exc}")
            return None
        _say(f"ok ({self.broker.url})")

        options = self.options
        _say("starting device simulator… ", end="")
        simulator = await self._spawn(
            "simulator",
            [
                "jupyter_iotcable.cli",
                "simulate",
                "--broker",
                self.broker.url,
                "--username",
                self.broker.username,
                "--password-env",
                PASSWORD_VAR,
                # amqtt speaks 3.1.1 only and ignores an MQTT 5 attempt: no probe.
                "--protocol",
                "3.1.1",
                "--devices",
                str(options.devices),
                "--rate",
                f"{options.rate:g}",
            ],
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(simulator.wait(), SIMULATOR_SETTLE)
        if simulator.returncode is not None:
            _say(f"failed (exit code {simulator.returncode})\n{self._log_tail('simulator')}")
            return None
        _say(f"ok ({options.devices} devices, {options.rate:g} Hz)")

        _say("starting JupyterLab… ", end="")
        port = options.port or _free_port()
        token = secrets.token_hex(24)
        root_dir = self.workdir / "notebooks"
        copy_notebooks(root_dir)
        config_file = self.workdir / "jupyter_demo_config.json"
        config = lab_config(
            self.broker,
            root_dir=root_dir,
            port=port,
            token=token,
            open_browser=options.open_browser,
        )
        config_file.write_text(json.dumps(config, indent=2))
        lab = await self._spawn("lab", ["jupyterlab", f"--config={config_file}"])
        base = f"http://127.0.0.1:{port}/"
        if not await self._wait_for_lab(lab, base, token):
            return None
        url = f"{base}{QUICKSTART}?token={token}"
        _say(f"open {url}")
        self._say_where_the_notebooks_are(root_dir)
        return url

    def _say_where_the_notebooks_are(self, root_dir: Path) -> None:
        if not (root_dir / "quickstart.ipynb").is_file():
            _say(
                f"note: the example notebooks are not installed with this package; Lab "
                f"starts in {root_dir}"
            )
        elif self.options.workdir is None:
            _say(
                f"notebooks: {root_dir} (a copy, removed when the demo stops; "
                "--workdir DIR keeps it)"
            )
        else:
            _say(f"notebooks: {root_dir} (a copy, kept after the demo stops)")

    async def _spawn(self, name: str, args: list[str]) -> asyncio.subprocess.Process:
        """Start ``python -m args...`` with the watchdog, on a pipe only the demo writes to."""
        env = scripts_on_path(dict(os.environ))
        env[PASSWORD_VAR] = self.broker.password
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CHILD_CODE,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        self.children.append((name, process))
        return process

    async def _wait_for_lab(self, lab: asyncio.subprocess.Process, base: str, token: str) -> bool:
        """Wait until Lab answers and its extension is connected to the broker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LAB_START_TIMEOUT
        while loop.time() < deadline and not self.stop.is_set():
            if lab.returncode is not None:
                _say(f"failed (exit code {lab.returncode})\n{self._log_tail('lab')}")
                return False
            if await asyncio.to_thread(_broker_connected, base, token):
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.5)
        if not self.stop.is_set():
            _say(f"failed (not ready within {LAB_START_TIMEOUT:g} s)\n{self._log_tail('lab')}")
        return False

    async def _wait_until_stopped(self) -> None:
        """Until Ctrl-C/SIGTERM, or until a child dies (then say which one)."""
        waits = {asyncio.create_task(p.wait()): name for name, p in self.children}
        stop = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait([stop, *waits], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in waits:
                _say(f"the {waits[task]} exited unexpectedly:\n{self._log_tail(waits[task])}")
        for task in [stop, *waits]:
            task.cancel()

    async def _stop_all(self) -> None:
        for name, process in reversed(self.children):
            await _terminate(process)
            _say(f"  {name} stopped")
        self.children.clear()
        await self.broker.stop()
        _say("  broker stopped")

    def _log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / f"{name}.log"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return f"(no log at {path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"{path} ends with:\n{tail.replace(self.broker.password, '***')}"


async def _terminate(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the child's process group, SIGKILL it after the grace period, reap it."""
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    # Whatever the child left in its group (it was the group leader) goes with it.
    _signal_group(process.pid, signal.SIGKILL)
    # Only now: closing the watchdog's pipe earlier would send the child a second SIGTERM.
    if process.stdin is not None:
        process.stdin.close()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _broker_connected(base: str, token: str) -> bool:
    request = urllib.request.Request(
        base + "iotcable/api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False
    broker = status.get("broker") if isinstance(status, dict) else None
    return isinstance(broker, dict) and broker.get("state") == "connected"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _say(text: str, *, end: str = "\n") -> None:
    """Progress for the person at the terminal, flushed at once (stdout may be a pipe).

    After SIGHUP the terminal may be gone: the demo must still stop its children, so a
    stdout that cannot be written to is not an error.
    """
    with contextlib.suppress(OSError):
        sys.stdout.write(text + end)
        sys.stdout.flush()
