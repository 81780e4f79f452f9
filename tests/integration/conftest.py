"""Fixtures for the server tests: pytest-jupyter's in-process server with the extension
pointed at the test's own mosquitto, a websocket helper, and a live subprocess server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.websocket
from tornado.httpclient import HTTPResponse

from jupyter_iotcable.server.app import IoTCableApp
from jupyter_iotcable.server.engine import CableEngine
from tests.brokers import Mosquitto
from tests.servers import TEST_CHANNELS, LiveServer


@pytest.fixture
def iotcable_config() -> dict[str, Any]:
    """Extra ``c.IoTCableApp`` settings a test module may override."""
    return {}


@pytest.fixture
def jp_server_config(mosquitto: Mosquitto, iotcable_config: dict[str, Any]) -> dict[str, Any]:
    iot: dict[str, Any] = {
        "broker_url": mosquitto.url,
        "channels": json.loads(json.dumps(TEST_CHANNELS)),
        "ping_interval": 3.0,
    }
    iot.update(iotcable_config)
    return {
        "ServerApp": {
            # pytest-jupyter adds jupyter_server_terminals, whose TermSocket has no auth
            # decorator: its JupyterServerAuthWarning would be an error here (we turn
            # every such warning into one, to catch our own handlers).
            "jpserver_extensions": {"jupyter_iotcable": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "IoTCableApp": iot,
    }


@pytest.fixture
def iotcable(jp_serverapp: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> IoTCableApp:
    """The extension, started (pytest-jupyter does not run extension start hooks), with
    its bridge connected to the test's mosquitto.

    Server tests are plain ``async def`` tests run by pytest-jupyter's loop (the server's
    loop), not marked for pytest-asyncio; so this fixture is synchronous and drives
    that loop itself.
    """
    manager = jp_serverapp.extension_manager
    jp_asyncio_loop.run_until_complete(manager.start_extension("jupyter_iotcable"))
    app: IoTCableApp = manager.extension_points["jupyter_iotcable"].app
    assert app.engine is not None, "extension did not load; see the server log"
    assert app.engine.bridge is not None
    connected = jp_asyncio_loop.run_until_complete(app.engine.bridge.wait_connected(10))
    assert connected, "bridge did not connect to mosquitto"
    return app


@pytest.fixture
def engine(iotcable: IoTCableApp) -> CableEngine:
    assert iotcable.engine is not None
    return iotcable.engine


@pytest.fixture
def kernel_token(iotcable: IoTCableApp) -> str:
    """The token the extension exported to kernels (``IOTCABLE_TOKEN``)."""
    return iotcable.kernel_token.value


class Cable:
    """A raw ActionCable websocket for tests: JSON in, JSON out, with timeouts."""

    def __init__(self, ws: tornado.websocket.WebSocketClientConnection) -> None:
        self.ws = ws

    @property
    def subprotocol(self) -> str | None:
        return self.ws.selected_subprotocol

    async def send(self, obj: Any) -> None:
        await self.ws.write_message(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, timeout: float = 5.0) -> Any:
        msg = await asyncio.wait_for(self.ws.read_message(), timeout)
        if msg is None:
            return None
        return json.loads(msg)

    async def recv_until(
        self, predicate: Callable[[Any], bool], timeout: float = 10.0, skip_pings: bool = True
    ) -> Any:
        """The first message satisfying ``predicate`` (others are dropped)."""

        async def loop() -> Any:
            while True:
                msg = await self.recv(timeout)
                if msg is None:
                    raise ConnectionError(
                        f"socket closed: {self.ws.close_code} {self.ws.close_reason}"
                    )
                if skip_pings and isinstance(msg, dict) and msg.get("type") == "ping":
                    continue
                if predicate(msg):
                    return msg

        return await asyncio.wait_for(loop(), timeout)

    async def subscribe(self, identifier: str, **extra: Any) -> Any:
        await self.send({"command": "subscribe", "identifier": identifier, **extra})
        return await self.recv_until(
            lambda m: (
                m.get("identifier") == identifier
                and m.get("type") in ("confirm_subscription", "reject_subscription")
            )
        )

    def close(self) -> None:
        self.ws.close()


CableFactory = Callable[..., Awaitable[Cable]]


async def rest_publish(
    jp_fetch: Any, channel: str, body: dict[str, Any], **options: Any
) -> HTTPResponse:
    """``POST {base_url}iotcable/api/channels/CHANNEL/publish`` as a REST user would;
    ``options`` go to ``jp_fetch`` (headers, raise_error...)."""
    response: HTTPResponse = await jp_fetch(
        "iotcable",
        "api",
        "channels",
        channel,
        "publish",
        method="POST",
        body=json.dumps(body),
        **options,
    )
    return response


@pytest.fixture
def cable(jp_ws_fetch: Any, iotcable: IoTCableApp) -> Iterator[CableFactory]:
    opened: list[Cable] = []

    async def connect(
        subprotocols: list[str] | None = None,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        welcome: bool = True,
    ) -> Cable:
        ws = await jp_ws_fetch(
            "iotcable",
            "cable",
            headers=headers,
            params=params,
            subprotocols=subprotocols if subprotocols is not None else ["iotcable-v1-json"],
        )
        c = Cable(ws)
        opened.append(c)
        if welcome:
            msg = await c.recv()
            assert msg["type"] == "welcome", msg
        return c

    yield connect
    for c in opened:
        c.close()


@pytest.fixture
def live_server(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[LiveServer]:
    """A real ``jupyter server`` subprocess with the extension and the test channels."""
    server = LiveServer(tmp_path / "server", mosquitto)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One ``LiveServer`` (and its own mosquitto) for every test of a module that only reads
    from it or publishes through it: starting one costs about 10 s on a loaded machine.

    Tests that change the server or the broker (restart, kill, reconfigure) use
    ``live_server``. Topics of one test must not be read by another: give each test its
    own site or device in the topic (``plant/<test>/...``).
    """
    workdir = tmp_path_factory.mktemp("shared-live-server")
    mosquitto = Mosquitto(workdir / "mosquitto")
    mosquitto.start()
    server = LiveServer(workdir / "server", mosquitto)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        mosquitto.kill()
