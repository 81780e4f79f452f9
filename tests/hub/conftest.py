"""One real JupyterHub per test session, shared by every hub test (tests/hub/jupyterhub.py).

Started lazily by the first test that asks for it; users' servers and kernels are started
once and reused by the tests that only read from them. All hub tests run on one xdist
worker (group ``hub``; ``.ci/test`` distributes with ``--dist loadgroup``), so one hub
serves the whole run.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.brokers import Mosquitto
from tests.hub.jupyterhub import TestHub, UsersLock, make_workdir, remove_workdir
from tests.hub.kernels import RemoteKernel

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("hub"))
            # The first test also pays for the hub, the users' servers and their kernels.
            item.add_marker(pytest.mark.timeout(300))


class Device:
    """A device publishing telemetry a few times a second while the hub runs."""

    def __init__(self, broker: Mosquitto, topic: str = "plant/lyon/pump1/env") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topic = topic
        self.stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-device")
        self.client.username_pw_set(broker.username, broker.password)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(0.2):
            n += 1
            self.client.publish(self.topic, f'{{"temperature": {20 + n % 5}, "seq": {n}}}', qos=1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Hub(TestHub):
    """The session's hub with its users' servers, tokens and kernels, made on first use."""

    __test__ = False
    _tokens: dict[str, str] = field(default_factory=dict)
    _servers: set[tuple[str, str]] = field(default_factory=set)
    _kernels: dict[tuple[str, str], RemoteKernel] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user not in self._tokens:
            self._tokens[user] = self.new_token(user, "tests")
        return self._tokens[user]

    def server(self, user: str, name: str = "") -> str:
        if (user, name) not in self._servers:
            self.start_server(user, name)
            self._servers.add((user, name))
        return self.server_url(user, name)

    def stop_server(self, user: str, name: str) -> None:
        """Stop a user's (named) server and wait until the hub says it has stopped."""
        self._servers.discard((user, name))
        self._kernels.pop((user, name), None)
        self.api("DELETE", f"users/{user}/servers/{name}")
        deadline = time.monotonic() + 60
        while name in self.api("GET", f"users/{user}").get("servers", {}):
            assert time.monotonic() < deadline, f"{user}'s server {name!r} did not stop"
            time.sleep(0.5)

    def kernel(self, user: str, name: str = "") -> RemoteKernel:
        if (user, name) not in self._kernels:
            kernel = RemoteKernel(self.server(user, name), self.token(user))
            kernel.start()
            self._kernels[(user, name)] = kernel
        return self._kernels[(user, name)]


@pytest.fixture(scope="session")
def hub() -> Iterator[Hub]:
    lock = UsersLock()
    workdir = make_workdir()
    password = f"broker-{secrets.token_hex(16)}"
    broker = Mosquitto(workdir / "mosquitto", username="iotcable-service", password=password)
    hub = Hub(workdir, broker, password)
    device: Device | None = None
    try:
        broker.start()
        hub.start()
        device = Device(broker)
        yield hub
    finally:
        if device is not None:
            device.close()
        hub.stop()
        broker.kill()
        lock.release()
        remove_workdir(workdir)
