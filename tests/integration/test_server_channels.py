"""Readings from a real broker reach websocket subscribers, in each subprotocol."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.integration.conftest import CableFactory

SUBPROTOCOLS = ["iotcable-v1-json", "actioncable-v1-ext-json", "actioncable-v1-json"]


def _rows(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """Readings of a data or batch frame, as dicts, whatever the subprotocol."""
    if "batch" in msg:
        return [
            {
                "offset": r[0],
                "time": r[1],
                "topic": r[2],
                "payload": r[3],
                "error": (r[4:] or [None])[0],
            }
            for r in msg["batch"]
        ]
    m = msg["message"]
    return [
        {
            "offset": msg["offset"],
            "time": m["time"],
            "topic": m["topic"],
            "payload": m["payload"],
            "columns": m.get("columns"),
            "error": m.get("error"),
        }
    ]


def _is_data(identifier: str) -> Any:
    return lambda m: m.get("identifier") == identifier and ("batch" in m or "offset" in m)


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
async def test_reading_reaches_subscriber(
    cable: CableFactory, mosquitto: Mosquitto, subprotocol: str
) -> None:
    ws = await cable([subprotocol])
    assert ws.subprotocol == subprotocol
    # Identifiers are opaque: an unusual spacing and key order must come back as sent.
    identifier = '{"channel": "telemetry",  "topic":"plant/lyon/+/env"}'
    confirm = await ws.subscribe(identifier)
    assert confirm["type"] == "confirm_subscription"
    assert confirm["identifier"] == identifier
    if subprotocol == "iotcable-v1-json":
        assert confirm["meta"]["columns"] == "plant/{site}/{device}/env"
        assert confirm["meta"]["read"] is True
        assert confirm["meta"]["units"] == {"temperature": "°C", "humidity": "%"}

    mosquitto.publish("plant/porto/pump1/env", json.dumps({"temperature": 1.0}))  # filtered out
    mosquitto.publish("plant/lyon/pump3/env", json.dumps({"temperature": 21.5, "seq": 7}))
    msg = await ws.recv_until(_is_data(identifier))
    assert msg["identifier"] == identifier
    assert msg["stream_id"] == "telemetry"
    assert isinstance(msg["epoch"], str) and msg["epoch"]
    (row,) = _rows(msg)
    # The porto reading took offset 1 in the stream; this subscriber only sees offset 2.
    assert row["offset"] == 2
    assert row["topic"] == "plant/lyon/pump3/env"
    assert row["payload"] == {"temperature": 21.5, "seq": 7}
    assert row["error"] is None
    if subprotocol == "iotcable-v1-json":
        assert "message" not in msg
    else:
        assert row["columns"] == {"site": "lyon", "device": "pump3"}


@pytest.mark.parametrize(
    ("offer", "selected"),
    [
        (["actioncable-v1-json", "actioncable-unsupported"], "actioncable-v1-json"),
        (["actioncable-v1-ext-json", "actioncable-v1-json"], "actioncable-v1-ext-json"),
        (
            ["actioncable-v1-json", "actioncable-v1-ext-json", "iotcable-v1-json"],
            "iotcable-v1-json",
        ),
    ],
)
async def test_handshake_selects_the_best_offered_subprotocol(
    cable: CableFactory, offer: list[str], selected: str
) -> None:
    ws = await cable(offer)
    assert ws.subprotocol == selected


async def test_an_offer_with_none_of_ours_is_closed_with_a_reason(cable: CableFactory) -> None:
    ws = await cable(["mqtt", "graphql-ws"], welcome=False)
    assert await ws.recv() is None
    assert ws.ws.close_code == 1002
    assert "iotcable-v1-json" in (ws.ws.close_reason or "")


async def test_readings_keep_stream_order_and_offsets(
    cable: CableFactory, mosquitto: Mosquitto
) -> None:
    ws = await cable()
    identifier = make_identifier("numbers")
    await ws.subscribe(identifier)
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        for i in range(300):
            client.publish("num/a", str(i), qos=1)
    finally:
        client.loop_stop()
        client.disconnect()
    got: list[dict[str, Any]] = []
    while len(got) < 300:
        got.extend(_rows(await ws.recv_until(_is_data(identifier))))
    assert [r["payload"] for r in got] == [float(i) for i in range(300)]
    assert [r["offset"] for r in got] == list(range(1, 301))


async def test_undecodable_payload_is_flagged_and_the_stream_goes_on(
    cable: CableFactory, mosquitto: Mosquitto
) -> None:
    ws = await cable(["actioncable-v1-ext-json"])
    identifier = make_identifier("numbers")
    await ws.subscribe(identifier)
    mosquitto.publish("num/a", b"not a number")
    mosquitto.publish("num/a", b"42")
    first = _rows(await ws.recv_until(_is_data(identifier)))[0]
    second = _rows(await ws.recv_until(_is_data(identifier)))[0]
    assert first["payload"] == "not a number"
    assert first["error"] and "number" in first["error"]
    assert second["payload"] == 42.0 and second["error"] is None


async def test_status_reports_broker_and_channel_counters(
    jp_fetch: Any, cable: CableFactory, mosquitto: Mosquitto
) -> None:
    ws = await cable()
    identifier = make_identifier("numbers")
    await ws.subscribe(identifier)
    mosquitto.publish("num/x", b"1")
    await ws.recv_until(_is_data(identifier))
    response = await jp_fetch("iotcable", "api", "status")
    status = json.loads(response.body)
    assert status["broker"]["state"] == "connected"
    assert status["connections"] == 1
    numbers = status["channels"]["numbers"]
    assert numbers["offset"] == 1 and numbers["messages_in"] == 1
    assert numbers["subscribers"] == 1
    # `secret` is readable by user:somebody-else only: its counters are not shown (21e359f).
    assert set(status["channels"]) == {"telemetry", "commands", "numbers"}


def iotcable_client_id(engine: Any) -> str:
    client_id: str = engine.bridge.status()["client_id"]
    assert client_id.startswith("jupyter-iotcable-"), client_id
    return client_id


async def test_status_reports_the_bridges_back_pressure(
    jp_fetch: Any, cable: CableFactory, mosquitto: Mosquitto, engine: Any
) -> None:
    ws = await cable()
    identifier = make_identifier("numbers")
    await ws.subscribe(identifier)
    mosquitto.publish("num/x", b"1")
    await ws.recv_until(_is_data(identifier))
    broker = json.loads((await jp_fetch("iotcable", "api", "status")).body)["broker"]
    # Readings the bridge had to drop (its queue full), how busy routing keeps it, and
    # whether it says it cannot keep up: a silent loss otherwise.
    assert broker["dropped"] == 0
    assert isinstance(broker["load"], float) and 0.0 <= broker["load"] <= 1.0
    assert broker["overloaded"] is False
    assert broker["max_backlog"] > 0
    assert broker["messages_in"] >= 1
    # The session the broker keeps for us, so that an admin can tell two servers apart.
    assert broker["client_id"] == iotcable_client_id(engine)
    assert broker["client_id_conflict"] is False


async def test_channel_list_shows_what_the_user_may_do(jp_fetch: Any, iotcable: Any) -> None:
    response = await jp_fetch("iotcable", "api", "channels")
    channels = {c["name"]: c for c in json.loads(response.body)["channels"]}
    # `secret` is readable by user:somebody-else only: not listed at all.
    assert set(channels) == {"telemetry", "commands", "numbers"}
    assert channels["telemetry"]["read"] is True and channels["telemetry"]["write"] is False
    assert channels["commands"]["write"] is True
    # Writers learn what a publish topic must match; readers do not need it.
    assert channels["commands"]["write_topics"] == ["plant/+/+/cmd"]
    assert "write_topics" not in channels["telemetry"]
    assert channels["telemetry"]["columns"] == "plant/{site}/{device}/env"
    assert "read_principals" not in channels["telemetry"]
