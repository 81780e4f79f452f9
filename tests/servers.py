"""A real ``jupyter server`` subprocess with the extension, for client, kernel and demo tests.

In-process pytest-jupyter servers share the test's event loop, so a synchronous client
(which blocks the calling thread) would deadlock against them; a subprocess is also what
users run. ``LiveServer`` writes a config file, starts the server on a free loopback
port with a known token, waits until the iotcable status endpoint answers, and stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.brokers import Mosquitto, free_port

#: The channels every live-server test uses (the client tests rely on these names).
TEST_CHANNELS: dict[str, dict[str, Any]] = {
    "telemetry": {
        "topics": ["plant/+/+/env"],
        "columns": "plant/{site}/{device}/env",
        "format": "json",
        "read": ["*"],
        "history_limit": 200_000,
        "units": {"temperature": "°C", "humidity": "%"},
    },
    "commands": {
        "topics": ["plant/+/+/cmd"],
        "format": "json",
        "read": ["*"],
        "write": ["*"],
    },
    "numbers": {"topics": ["num/#"], "format": "number", "read": ["*"]},
    "secret": {"topics": ["secret/#"], "read": ["user:somebody-else"]},
}


#: What a server that is still starting answers with: nothing yet.
NOT_YET: tuple[type[Exception], ...] = (urllib.error.URLError, ConnectionError, TimeoutError)


def wait_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log_tail: Callable[[], str],
    interval: float = 0.2,
    not_yet: tuple[type[Exception], ...] = NOT_YET,
) -> None:
    """Poll ``ready()`` until it says yes; raise with the process's log tail when the
    process exits first (RuntimeError) or ``timeout`` passes (TimeoutError). ``ready``
    may raise any of ``not_yet`` while the process is starting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log_tail()}")
        try:
            if ready():
                return
        except not_yet:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready in {timeout}s:\n{log_tail()}")


@dataclass
class LiveServer:
    workdir: Path
    mosquitto: Mosquitto | None
    channels: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(TEST_CHANNELS))
    extra_config: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def config(self) -> dict[str, Any]:
        iot: dict[str, Any] = {"channels": self.channels}
        if self.mosquitto is not None:
            iot["broker_url"] = self.mosquitto.url
        iot.update(self.extra_config)
        return {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_iotcable": True},
                "allow_unauthenticated_access": False,
                "open_browser": False,
                "ip": "127.0.0.1",
                "port": self.port,
                "port_retries": 0,
                "root_dir": str(self.workdir / "root"),
                "allow_root": True,
            },
            "IdentityProvider": {"token": self.token},
            "IoTCableApp": iot,
        }

    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("IOTCABLE_", "JUPYTERHUB_"))
        }
        env["JUPYTER_CONFIG_DIR"] = str(self.workdir / "config")
        env["JUPYTER_RUNTIME_DIR"] = str(self.workdir / "runtime")
        env["JUPYTER_DATA_DIR"] = str(self.workdir / "data")
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        return env

    def start(self, timeout: float = 60.0, *, wait_for_broker: bool = True) -> None:
        (self.workdir / "root").mkdir(parents=True, exist_ok=True)
        (self.workdir / "config").mkdir(parents=True, exist_ok=True)
        config_file = self.workdir / "config" / "jupyter_server_config.json"
        config_file.write_text(json.dumps(self.config()))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--config={config_file}"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            if not wait_for_broker:
                self.get("api/status")
                return True
            broker = self.get("iotcable/api/status").get("broker", {})
            return isinstance(broker, dict) and broker.get("state") == "connected"

        wait_ready(
            self.process, ready, timeout=timeout, what="jupyter server", log_tail=self.log_tail
        )

    def get(self, path: str, token: str | None = None) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url + path, headers={"Authorization": f"token {token or self.token}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
