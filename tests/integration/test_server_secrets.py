"""The broker password never leaves the server: no response, frame or log line has it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.integration.conftest import CableFactory, rest_publish
from tests.integration.test_client_kernel import rest, run_in_kernel
from tests.servers import LiveServer


@pytest.fixture
def mosquitto(secured_mosquitto: Mosquitto) -> Mosquitto:
    return secured_mosquitto


@pytest.fixture
def iotcable_config(
    secured_mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """The secured broker's credentials; parametrized (``indirect``) with an invalid
    configuration ``(channels, settings)``, that configuration with the password variable."""
    assert secured_mosquitto.password
    monkeypatch.setenv("TEST_IOTCABLE_BROKER_PASSWORD", secured_mosquitto.password)
    if hasattr(request, "param"):
        channels, settings = request.param
        return {"channels": channels, **WITH_PASSWORD, **settings}
    return {
        "broker_username": secured_mosquitto.username,
        "broker_password_env": "TEST_IOTCABLE_BROKER_PASSWORD",
    }


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_password_appears_nowhere(
    all_logs: pytest.LogCaptureFixture,
    jp_fetch: Any,
    cable: CableFactory,
    mosquitto: Mosquitto,
    iotcable: Any,
) -> None:
    secret = mosquitto.password
    assert secret
    # Kernels inherit the server's environment: the password variable is gone from it.
    assert "TEST_IOTCABLE_BROKER_PASSWORD" not in os.environ
    assert secret not in os.environ.values()
    seen: list[str] = []

    for path in (("status",), ("channels",)):
        seen.append((await jp_fetch("iotcable", "api", *path)).body.decode())
    for body in ({"topic": "plant/a/b/cmd", "payload": 1}, {"topic": "#", "payload": 1}):
        r = await rest_publish(jp_fetch, "commands", body, raise_error=False)
        seen.append(r.body.decode())

    ws = await cable(["actioncable-v1-ext-json"])
    await ws.subscribe(make_identifier("telemetry"))
    mosquitto.publish("plant/x/y/env", b"{}")
    seen.append(json.dumps(await ws.recv_until(lambda m: "offset" in m)))

    # A broker outage makes the bridge log errors and send broker events: still no secret.
    mosquitto.kill()
    event = await ws.recv_until(lambda m: m.get("type") == "broker", timeout=15)
    seen.append(json.dumps(event))
    assert event["state"] != "connected"
    status = json.loads((await jp_fetch("iotcable", "api", "status")).body)
    seen.append(json.dumps(status))
    assert status["broker"]["state"] != "connected"
    mosquitto.start()
    seen.append(
        json.dumps(
            await ws.recv_until(
                lambda m: m.get("type") == "broker" and m["state"] == "connected", timeout=30
            )
        )
    )

    seen.extend(r.getMessage() for r in all_logs.records)
    seen.extend(str(r.exc_info) for r in all_logs.records if r.exc_info)
    assert len(all_logs.records) > 5, "the logs should have been captured"
    leaks = [s for s in seen if secret in s]
    assert not leaks, f"broker password leaked in: {leaks[:3]}"


# -- a real server: its environment for kernels, and its whole log ------------------------


class PasswordServer(LiveServer):
    """A live server whose environment holds the broker password, logging at DEBUG."""

    def __init__(self, workdir: Path, broker: Mosquitto | None, password: str, **kw: Any):
        super().__init__(workdir, broker, **kw)
        self.password = password

    def env(self) -> dict[str, str]:
        return {**super().env(), PASSWORD_VARIABLE: self.password}

    def config(self) -> dict[str, Any]:
        config = super().config()
        config["ServerApp"]["log_level"] = "DEBUG"
        return config


PASSWORD_VARIABLE = "TEST_IOTCABLE_BROKER_PASSWORD"
WITH_PASSWORD = {"broker_username": "bridge", "broker_password_env": PASSWORD_VARIABLE}
GOOD_CHANNELS = {"t": {"topics": ["a/#"], "read": ["*"]}}


INVALID = {
    "bad_channel": (
        {"t": {"topics": ["a/#/b"], "read": ["*"]}},
        {"broker_url": "mqtt://127.0.0.1:9"},
    ),
    "bad_url": (GOOD_CHANNELS, {"broker_url": "http://127.0.0.1:9"}),
    "missing_tls_file": (
        GOOD_CHANNELS,
        {"broker_url": "mqtts://127.0.0.1:9", "broker_ca_certs": "/nonexistent"},
    ),
    "type_error": (
        GOOD_CHANNELS,
        {"broker_url": "mqtt://127.0.0.1:9", "max_subscriptions": "many"},
    ),
    "no_channels": ({}, {}),
}


@pytest.mark.parametrize(
    "iotcable_config", list(INVALID.values()), ids=list(INVALID), indirect=True
)
async def test_the_password_variable_is_gone_from_the_environment_whatever_the_config(
    iotcable_config: dict[str, Any], jp_serverapp: Any, jp_fetch: Any
) -> None:
    """In-process: the server's environment, which its kernels inherit, after loading (or
    refusing) each invalid configuration; a kernel of a real server below, once for a
    config that links and once for a traitlets type error (the password variable's name
    then comes from the raw config)."""
    assert (await jp_fetch("api", "status")).code == 200
    assert PASSWORD_VARIABLE not in os.environ


@pytest.mark.parametrize(
    ("channels", "settings"),
    [INVALID["bad_channel"], INVALID["type_error"]],
    ids=["bad_channel", "type_error"],
)
async def test_kernels_never_inherit_the_password_even_when_the_config_is_invalid(
    tmp_path: Path, channels: dict[str, Any], settings: dict[str, Any]
) -> None:
    secret = f"pw-{secrets.token_hex(8)}"
    server = PasswordServer(
        tmp_path / "server",
        None,
        secret,
        channels=channels,
        extra_config={**WITH_PASSWORD, **settings},
    )
    await asyncio.to_thread(server.start, wait_for_broker=False)
    try:
        kernel = rest(server, "POST", "api/kernels")
        try:
            code = f"import os; print(repr(os.environ.get({PASSWORD_VARIABLE!r})))"
            out = await run_in_kernel(server, kernel["id"], code)
        finally:
            rest(server, "DELETE", f"api/kernels/{kernel['id']}")
    finally:
        await asyncio.to_thread(server.stop)
    assert out.strip() == "None"


async def _read_until(ws: WebSocketClientConnection, wanted: str, timeout: float) -> list[str]:
    """Frames up to and including the first broker event in state ``wanted``."""
    frames: list[str] = []
    while True:
        frame = await asyncio.wait_for(ws.read_message(), timeout)
        assert isinstance(frame, str), "the socket closed"
        frames.append(frame)
        message = json.loads(frame)
        if message.get("type") == "broker" and message.get("state") == wanted:
            return frames


async def _exercise(server: LiveServer, broker: Mosquitto) -> list[str]:
    """Use every endpoint and the websocket, through a broker outage; return what came back."""
    client = AsyncHTTPClient()
    auth = {"Authorization": f"token {server.token}"}
    seen: list[str] = []
    for path in ("status", "channels"):
        response = await client.fetch(f"{server.url}iotcable/api/{path}", headers=auth)
        seen.append(response.body.decode())
    for body in ({"topic": "plant/a/b/cmd", "payload": 1}, {"topic": "#", "payload": 1}):
        response = await client.fetch(
            f"{server.url}iotcable/api/channels/commands/publish",
            method="POST",
            body=json.dumps(body),
            headers=auth,
            raise_error=False,
        )
        seen.append(response.body.decode())
    ws = await websocket_connect(
        f"ws://127.0.0.1:{server.port}/iotcable/cable?token={server.token}",
        subprotocols=["actioncable-v1-ext-json"],
    )
    try:
        await ws.write_message(
            json.dumps({"command": "subscribe", "identifier": make_identifier("telemetry")})
        )
        await asyncio.to_thread(broker.publish, "plant/x/y/env", b"{}")
        # A broker outage: the bridge logs its errors and tells the socket.
        await asyncio.to_thread(broker.kill)
        seen += await _read_until(ws, "reconnecting", 20)
        await asyncio.to_thread(broker.start)
        seen += await _read_until(ws, "connected", 30)
    finally:
        ws.close()
    return seen


async def test_password_is_in_no_response_frame_or_server_log_line(
    tmp_path: Path, secured_mosquitto: Mosquitto
) -> None:
    """The whole DEBUG log of a real server, with a wrong and then the right password."""
    secret = secured_mosquitto.password
    assert secret
    wrong = PasswordServer(
        tmp_path / "wrong", secured_mosquitto, secret + "-wrong", extra_config=WITH_PASSWORD
    )
    await asyncio.to_thread(wrong.start, wait_for_broker=False)
    try:
        status: dict[str, Any] = {}
        for _ in range(100):
            status = wrong.get("iotcable/api/status")
            if "authentication failed" in str(status["broker"].get("last_error")):
                break
            await asyncio.sleep(0.2)
        assert "authentication failed" in status["broker"]["last_error"]
    finally:
        await asyncio.to_thread(wrong.stop)

    right = PasswordServer(
        tmp_path / "right", secured_mosquitto, secret, extra_config=WITH_PASSWORD
    )
    await asyncio.to_thread(right.start)
    try:
        seen = [json.dumps(status), *await _exercise(right, secured_mosquitto)]
    finally:
        await asyncio.to_thread(right.stop)

    logs = {name: s.log_path.read_text() for name, s in (("wrong", wrong), ("right", right))}
    # The logs are the real, complete ones: the bridge's DEBUG packet traces and its
    # INFO/WARNING lines, formatted by the server.
    for log in logs.values():
        assert "jupyter_iotcable.bridge.paho] Sending CONNECT" in log
    assert re.search(
        r"^\[W [-\d: .]+ jupyter_iotcable\.bridge\] MQTT broker: authentication failed",
        logs["wrong"],
        re.M,
    )
    assert re.search(
        r"^\[I [-\d: .]+ jupyter_iotcable\.bridge\] MQTT bridge connected", logs["right"], re.M
    )
    assert re.search(
        r"^\[W [-\d: .]+ jupyter_iotcable\.bridge\] MQTT broker: lost the connection",
        logs["right"],
        re.M,
    )
    leaks = [text for text in [*seen, *logs.values()] if secret in text]
    assert not leaks, f"the broker password leaked in: {[t[:200] for t in leaks]}"
