"""Publishing back to devices: allowed where the channel says so, refused with a reason."""

from __future__ import annotations

import json
import queue
import re
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tornado.httpclient import HTTPClientError

from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.integration.conftest import CableFactory, rest_publish


class Sniffer:
    """An independent MQTT subscriber: what actually reached the broker."""

    def __init__(self, broker: Mosquitto, topic_filter: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        time.sleep(0.2)  # let SUBACK land before the test publishes

    def get(self, timeout: float = 5.0) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def assert_nothing(self, wait: float = 0.5) -> None:
        with pytest.raises(queue.Empty):
            self.messages.get(timeout=wait)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def sniffer(mosquitto: Mosquitto) -> Iterator[Sniffer]:
    s = Sniffer(mosquitto, "#")
    yield s
    s.close()


async def _perform(ws: Any, identifier: str, data: dict[str, Any]) -> dict[str, Any]:
    await ws.send({"command": "message", "identifier": identifier, "data": json.dumps(data)})
    reply = await ws.recv_until(
        lambda m: (
            m.get("identifier") == identifier
            and isinstance(m.get("message"), dict)
            and m["message"].get("action") == "publish_result"
        )
    )
    result: dict[str, Any] = reply["message"]
    return result


async def test_perform_publish_reaches_the_broker(cable: CableFactory, sniffer: Sniffer) -> None:
    ws = await cable()
    identifier = make_identifier("commands")
    await ws.subscribe(identifier)
    result = await _perform(
        ws,
        identifier,
        {
            "action": "publish",
            "topic": "plant/lyon/pump3/cmd",
            "payload": {"speed": 40},
            "ref": "1",
        },
    )
    assert result == {
        "action": "publish_result",
        "ref": "1",
        "topic": "plant/lyon/pump3/cmd",
        "ok": True,
    }
    topic, payload = sniffer.get()
    assert topic == "plant/lyon/pump3/cmd"
    assert json.loads(payload) == {"speed": 40}


@pytest.mark.parametrize(
    ("channel", "topic", "reason"),
    [
        ("telemetry", "plant/lyon/pump3/env", "may not publish to channel 'telemetry'"),
        ("commands", "plant/+/pump3/cmd", "not a valid MQTT topic name"),
        ("commands", "plant/lyon/pump3/env", "outside channel 'commands'"),
        ("commands", "", "needs a 'topic'"),
    ],
)
async def test_perform_publish_refused_with_a_reason(
    cable: CableFactory, sniffer: Sniffer, channel: str, topic: str, reason: str
) -> None:
    ws = await cable()
    identifier = make_identifier(channel)
    await ws.subscribe(identifier)
    result = await _perform(
        ws, identifier, {"action": "publish", "topic": topic, "payload": {"x": 1}, "ref": 9}
    )
    assert result["ok"] is False
    assert reason in result["reason"]
    assert result["ref"] == 9
    sniffer.assert_nothing()
    # The connection still works afterwards: an allowed publish goes through.
    commands = make_identifier("commands")
    await ws.subscribe(commands)
    ok = await _perform(
        ws, commands, {"action": "publish", "topic": "plant/a/b/cmd", "payload": 1, "ref": "2"}
    )
    assert ok["ok"] is True
    assert sniffer.get()[0] == "plant/a/b/cmd"


async def test_publish_rate_limit(cable: CableFactory, iotcable: Any) -> None:
    ws = await cable()
    identifier = make_identifier("commands")
    await ws.subscribe(identifier)
    burst = iotcable.publish_burst
    results = [
        await _perform(
            ws,
            identifier,
            {"action": "publish", "topic": "plant/a/b/cmd", "payload": i, "ref": str(i)},
        )
        for i in range(burst + 5)
    ]
    refused = [r for r in results if not r["ok"]]
    assert refused, "the burst allowance should run out"
    assert "rate limit" in refused[0]["reason"]


async def test_rest_publish(jp_fetch: Any, iotcable: Any, sniffer: Sniffer) -> None:
    response = await rest_publish(
        jp_fetch, "commands", {"topic": "plant/porto/fan1/cmd", "payload": {"setpoint": 22}}
    )
    assert json.loads(response.body) == {"ok": True, "topic": "plant/porto/fan1/cmd"}
    topic, payload = sniffer.get()
    assert topic == "plant/porto/fan1/cmd" and json.loads(payload) == {"setpoint": 22}


@pytest.mark.parametrize(
    ("channel", "body", "code", "reason"),
    [
        ("telemetry", {"topic": "plant/a/b/env", "payload": 1}, 403, "may not publish"),
        ("commands", {"topic": "plant/#", "payload": 1}, 400, "not a valid MQTT topic name"),
        ("commands", {"topic": "elsewhere/x", "payload": 1}, 403, "outside channel"),
        ("nope", {"topic": "a", "payload": 1}, 404, "unknown channel 'nope'"),
        ("commands", {"payload": 1}, 400, "body must be a JSON object"),
        ("commands", "not json", 400, "not valid JSON"),
    ],
)
async def test_rest_publish_refused(
    jp_fetch: Any, iotcable: Any, sniffer: Sniffer, channel: str, body: Any, code: int, reason: str
) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("iotcable", "api", "channels", channel, "publish", method="POST", body=raw)
    assert info.value.code == code
    assert info.value.response is not None
    answer = json.loads(info.value.response.body)
    assert answer["ok"] is False and reason in answer["reason"]
    sniffer.assert_nothing()


@pytest.mark.parametrize("iotcable_config", [{"publish_rate": 0.5, "publish_burst": 5}])
async def test_rest_publish_rate_limit(jp_fetch: Any, iotcable: Any, sniffer: Sniffer) -> None:
    """Past the burst, REST publishes get 429 with when to retry; only the others are sent."""
    codes: list[int] = []
    while 429 not in codes:
        assert len(codes) < 50, "the rate limit never applied"
        response = await rest_publish(
            jp_fetch,
            "commands",
            {"topic": "plant/a/b/cmd", "payload": len(codes)},
            raise_error=False,
        )
        codes.append(response.code)
    answer = json.loads(response.body)
    assert answer["ok"] is False
    retry = re.fullmatch(
        r"publish rate limit reached \(0.5/s\); retry in ([\d.]+)s", answer["reason"]
    )
    assert retry and 0 < float(retry.group(1)) <= 2.0, answer
    accepted = codes[:-1]
    assert len(accepted) >= 5 and set(accepted) == {200}, codes
    delivered = [json.loads(sniffer.get()[1]) for _ in accepted]
    assert delivered == list(range(len(accepted)))
    sniffer.assert_nothing()
