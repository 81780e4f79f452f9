"""50 hostile publishes, over REST and over the cable, while a device publishes at 10/s
(issue 12): each is refused with its reason, the bridge never disconnects, and every
telemetry reading the broker acknowledged reaches the Python client. Real mosquitto, a
real server; delivery is asserted, not timing."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

import jupyter_iotcable as iot
from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.integration.test_client import wait_until
from tests.servers import LiveServer

# Topic classes that made mosquitto drop the bridge, and others a broker refuses.
BAD_LEVELS = ["\t", "\n", "\x00", "\x01", "\x1f", "\x7f", "\x85", "\x9f", "\ufdd0", "\uffff"]
HOSTILE_TOPICS = [
    *(f"plant/a{c}/pump/cmd" for c in BAD_LEVELS),
    "plant/+/pump/cmd",
    "plant/#",
    "",
    "plant/" + "x" * 70_000 + "/p/cmd",  # over MQTT's 65535 bytes
    "elsewhere/a/b/cmd",  # outside the channel's write filters
]
CMD = "plant/a/pump/cmd"


def hostile_bodies() -> list[str]:
    """25 REST bodies: the topics above, then payloads and bodies a publish cannot carry."""
    bodies = [json.dumps({"topic": t, "payload": {"on": True}}) for t in HOSTILE_TOPICS]
    bodies.append('{"topic": "plant/a/\\ud800/cmd", "payload": 1}')  # a lone surrogate
    bodies += [
        '{"topic": "' + CMD + '", "payload": NaN}',
        '{"topic": "' + CMD + '", "payload": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"topic": "' + CMD + '", "payload": 1e400}',
        json.dumps({"topic": CMD, "payload": "x" * (2 << 20)}),  # over the publish size
        json.dumps({"topic": CMD}),
        json.dumps({"topic": [CMD], "payload": 1}),
        "not json",
        json.dumps([CMD, 1]),
        "\xff\xfe",
    ]
    return bodies[:25]


def hostile_frames(identifier: str) -> list[str]:
    """25 cable publishes on the commands channel."""
    frames = []
    for i, topic in enumerate([*HOSTILE_TOPICS[:-2], "elsewhere/a/b/cmd", "$SYS/x"]):
        data: dict[str, object] = {
            "action": "publish",
            "topic": topic,
            "payload": {"on": True},
            "ref": str(i),
        }
        frames.append(
            json.dumps({"command": "message", "identifier": identifier, "data": json.dumps(data)})
        )
    for i, payload in enumerate(['"\\ud800"', "NaN", "[" * 3000 + "]" * 3000, "1e400"], 100):
        text = (
            '{"action":"publish","topic":"'
            + CMD
            + '","payload":'
            + payload
            + ',"ref":"'
            + str(i)
            + '"}'
        )
        frames.append(json.dumps({"command": "message", "identifier": identifier, "data": text}))
    while len(frames) < 25:
        topic = f"plant/a{BAD_LEVELS[len(frames) % 10]}/x/cmd"
        data = {"action": "publish", "topic": topic, "payload": 1, "ref": str(len(frames) + 200)}
        frames.append(
            json.dumps({"command": "message", "identifier": identifier, "data": json.dumps(data)})
        )
    return frames


class Device:
    """Publishes ``{"seq": n}`` at 10/s with QoS 1; keeps what the broker acknowledged."""

    def __init__(self, broker: Mosquitto) -> None:
        self.acked: list[int] = []
        self._stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-device")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.wait(0.1):
            info = self.client.publish("plant/hostile/dev1/env", json.dumps({"seq": seq}), qos=1)
            info.wait_for_publish(5)
            if info.is_published():
                self.acked.append(seq)
            seq += 1

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)
        self.client.loop_stop()
        self.client.disconnect()


async def attack(server: LiveServer) -> tuple[list[tuple[int, str]], list[dict[str, Any]]]:
    http = AsyncHTTPClient()
    url = f"{server.url}iotcable/api/channels/commands/publish"
    headers = {"Authorization": f"token {server.token}", "Content-Type": "application/json"}
    rest: list[tuple[int, str]] = []
    for body in hostile_bodies():
        response = await http.fetch(
            HTTPRequest(url, "POST", headers, body.encode("utf-8", "surrogatepass")),
            raise_error=False,
        )
        rest.append((response.code, response.body.decode(errors="replace")))
    identifier = make_identifier("commands")
    ws = await websocket_connect(
        HTTPRequest(
            f"{server.url.replace('http', 'ws')}iotcable/cable",
            headers={"Authorization": f"token {server.token}"},
        ),
        subprotocols=["iotcable-v1-json"],
    )
    answers: list[dict[str, Any]] = []
    try:
        await ws.write_message(json.dumps({"command": "subscribe", "identifier": identifier}))
        frames = hostile_frames(identifier)
        for frame in frames:
            await ws.write_message(frame)
        while len(answers) < len(frames):
            text = await asyncio.wait_for(ws.read_message(), 30)
            assert text is not None, f"the server closed the cable: {ws.close_reason}"
            message = json.loads(text)
            if message.get("type") == "error" or (
                isinstance(message.get("message"), dict)
                and message["message"].get("action") == "publish_result"
            ):
                answers.append(message)
    finally:
        ws.close()
    return rest, answers


def test_fifty_hostile_publishes_cost_no_reading_and_no_reconnect(
    tmp_path: Any, mosquitto: Mosquitto
) -> None:
    server = LiveServer(
        tmp_path / "server", mosquitto, extra_config={"publish_rate": 1000, "publish_burst": 1000}
    )
    server.start()
    try:
        with iot.connect(server.url, token=server.token) as cable:
            sub = cable.subscribe("telemetry", topic="plant/hostile/+/env", window=None)
            device = Device(mosquitto)
            try:
                wait_until(lambda: len(sub) >= 5, 30, "the device's first readings")
                rest, answers = asyncio.run(attack(server))
                sent = len(device.acked)
                wait_until(lambda: len(device.acked) >= sent + 10, 30, "10 more readings")
            finally:
                device.stop()
            last = device.acked[-1]
            wait_until(lambda: last in [int(s) for s in sub.frame["seq"]], 30, "every reading")
            got = [int(s) for s in sub.frame["seq"]]
            gaps = sub.gaps
        status = server.get("iotcable/api/status")
    finally:
        server.stop()

    assert len(rest) + len(answers) == 50
    refused_rest = [(code, body) for code, body in rest if code >= 400]
    assert len(refused_rest) == 25, [r for r in rest if r[0] < 400]
    for code, body in refused_rest:
        assert code in (400, 403, 413), (code, body[:200])
    for answer in answers:
        if answer.get("type") == "error":
            assert answer["message"]
        else:
            result = answer["message"]
            assert result["ok"] is False and result["reason"], result
    assert got == device.acked, "every acknowledged reading, once, in order"
    assert gaps == []
    broker = status["broker"]
    assert (broker["connects"], broker["disconnects"], broker["outages"]) == (1, 0, 0)
    assert status["publishes"]["ok"] == 0
    print(
        f"\n[hostile] 50 publishes refused ({len(refused_rest)} REST, {len(answers)} cable), "
        f"{len(got)} device readings delivered, bridge connects {broker['connects']}"
    )
