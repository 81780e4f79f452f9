"""The broker password never leaves the server: no response, frame or log line has it."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest

from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.integration.conftest import CableFactory


@pytest.fixture
def mosquitto(secured_mosquitto: Mosquitto) -> Mosquitto:
    return secured_mosquitto


@pytest.fixture
def iotcable_config(
    secured_mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    assert secured_mosquitto.password
    monkeypatch.setenv("TEST_IOTCABLE_BROKER_PASSWORD", secured_mosquitto.password)
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
        r = await jp_fetch(
            "iotcable",
            "api",
            "channels",
            "commands",
            "publish",
            method="POST",
            body=json.dumps(body),
            raise_error=False,
        )
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
