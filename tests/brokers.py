"""A real mosquitto for the tests: own process, free loopback port, generated config.

The machine may run its own mosquitto on 1883; tests never use it. Each ``Mosquitto``
writes a config into a temporary directory so a test can set credentials, ACLs and
queue limits, and can stop (SIGKILL, like a crash) and start the broker again on the
same port with the same persistence file (so QoS 1 sessions survive a restart).

Mosquitto writes its persistence file only every ``autosave_interval`` (in whole seconds,
so up to twice that apart), on SIGUSR1 and on a clean stop. State changed since the last
save (messages acknowledged, sessions) is lost on a crash: a test that kills the broker
and expects an exact outcome calls :meth:`Mosquitto.save` first.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


@dataclass
class Mosquitto:
    """One mosquitto process bound to 127.0.0.1 only."""

    workdir: Path
    port: int = field(default_factory=free_port)
    username: str | None = None
    password: str | None = None
    acl: str | None = None
    max_queued_messages: int = 100_000
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def persistence_path(self) -> Path:
        return self.workdir / "mosquitto.db"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            # Run as root, mosquitto drops to the `mosquitto` user, which cannot read the
            # password file or write persistence in the test's private directory.
            *(["user root"] if os.geteuid() == 0 else []),
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"max_queued_messages {self.max_queued_messages}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.username is not None:
            pwfile = self.workdir / "passwd"
            subprocess.run(
                [MOSQUITTO_PASSWD, "-b", "-c", str(pwfile), self.username, self.password or ""],
                check=True,
                capture_output=True,
            )
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            aclfile = self.workdir / "acl"
            aclfile.write_text(self.acl)
            lines.append(f"acl_file {aclfile}")
        if self.extra_config:
            lines.append(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}: "
                    + self.log_path.read_text(errors="replace")
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def save(self, timeout: float = 10.0) -> None:
        """Make the broker write its persistence file now, and wait until it has.

        SIGUSR1 asks mosquitto to save at the end of its current loop iteration, so the
        file reflects every packet it had processed when the signal came. Mosquitto
        writes a new file and renames it over the old one: a new inode or modification
        time says the save is done.
        """
        assert self.process is not None and self.process.poll() is None, "broker not running"
        before = _file_identity(self.persistence_path)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while _file_identity(self.persistence_path) == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not save {self.persistence_path} in {timeout}s")
            time.sleep(0.01)

    def kill(self) -> None:
        """Stop abruptly, as a crash would (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """Stop cleanly (SIGTERM): mosquitto saves its persistence file."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish one message with an independent client (paho), as a device would."""
        import paho.mqtt.publish as publish

        auth: Any = (
            {"username": self.username, "password": self.password or ""}
            if self.username is not None
            else None
        )
        publish.single(
            topic, payload, qos=qos, retain=retain, hostname="127.0.0.1", port=self.port, auth=auth
        )
