"""Malformed frames get an answer (or a 1009 close) and never stop other subscriptions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.integration.conftest import Cable, CableFactory


async def _still_flowing(ws: Cable, identifier: str, mosquitto: Mosquitto, value: int) -> None:
    mosquitto.publish("num/check", str(value))
    msg = await ws.recv_until(lambda m: m.get("identifier") == identifier and "batch" in m)
    assert msg["batch"][-1][3] == float(value)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("{not json", {"type": "error", "reason": "malformed_json"}),
        ("[1, 2]", {"type": "error"}),
        (
            json.dumps({"command": "dance", "identifier": "x"}),
            {"type": "error", "reason": "unknown_command"},
        ),
        (
            json.dumps(
                {"command": "message", "identifier": make_identifier("commands"), "data": "{}"}
            ),
            {"type": "error", "reason": "not_subscribed"},
        ),
        (
            json.dumps({"command": "subscribe", "identifier": "not json"}),
            {"type": "reject_subscription"},
        ),
        (
            json.dumps({"command": "subscribe", "identifier": '{"topic": "a"}'}),
            {"type": "reject_subscription"},
        ),
        (json.dumps({"command": "subscribe"}), {"type": "error"}),
    ],
)
async def test_malformed_frames_are_answered(
    cable: CableFactory, mosquitto: Mosquitto, frame: str, expected: dict[str, Any]
) -> None:
    ws = await cable()
    numbers = make_identifier("numbers")
    await ws.subscribe(numbers)
    await ws.send(frame)
    answer = await ws.recv_until(lambda m: m.get("type") in ("error", "reject_subscription"))
    for key, value in expected.items():
        assert answer[key] == value, answer
    reason = answer.get("message") or answer.get("reason")
    assert isinstance(reason, str) and len(reason) > 10, "the answer must say what is wrong"
    await _still_flowing(ws, numbers, mosquitto, 5)


async def test_bad_perform_data_is_answered(cable: CableFactory, mosquitto: Mosquitto) -> None:
    ws = await cable()
    numbers = make_identifier("numbers")
    await ws.subscribe(numbers)
    for data in ("not json", json.dumps([1]), json.dumps({"no": "action"})):
        await ws.send({"command": "message", "identifier": numbers, "data": data})
        answer = await ws.recv_until(lambda m: m.get("type") == "error")
        assert answer["message"]
    await ws.send(
        {"command": "message", "identifier": numbers, "data": json.dumps({"action": "explode"})}
    )
    answer = await ws.recv_until(lambda m: m.get("type") == "error")
    assert answer["reason"] == "unknown_action" and "publish" in answer["message"]
    await _still_flowing(ws, numbers, mosquitto, 6)


async def test_duplicate_subscribe_is_confirmed_again(
    cable: CableFactory, mosquitto: Mosquitto
) -> None:
    ws = await cable()
    numbers = make_identifier("numbers")
    assert (await ws.subscribe(numbers))["type"] == "confirm_subscription"
    assert (await ws.subscribe(numbers))["type"] == "confirm_subscription"
    mosquitto.publish("num/dup", "1")
    msg = await ws.recv_until(lambda m: m.get("identifier") == numbers and "batch" in m)
    assert len(msg["batch"]) == 1, "a duplicate subscribe must not double the stream"


async def test_oversized_frame_closes_1009_and_others_keep_flowing(
    cable: CableFactory, mosquitto: Mosquitto, iotcable: Any
) -> None:
    bystander = await cable()
    numbers = make_identifier("numbers")
    await bystander.subscribe(numbers)
    offender = await cable()
    await offender.send("x" * (iotcable.max_message_size + 1))
    while (await offender.recv()) is not None:
        pass
    assert offender.ws.close_code == 1009
    await _still_flowing(bystander, numbers, mosquitto, 7)


@pytest.mark.parametrize("note", ["x" * 1_100, "é" * 600])  # 600 characters, 1 200 bytes
async def test_an_oversized_identifier_is_rejected_with_the_limit(
    cable: CableFactory, mosquitto: Mosquitto, note: str
) -> None:
    ws = await cable()
    numbers = make_identifier("numbers")
    await ws.subscribe(numbers)
    # Every frame repeats the identifier and a kept session holds it: it is bounded.
    big = make_identifier("numbers", note=note)
    reply = await ws.subscribe(big)
    assert reply["type"] == "reject_subscription"
    assert reply["identifier"] == big
    assert "1024 bytes" in reply["reason"]
    assert str(len(big.encode())) in reply["reason"]
    fits = make_identifier("numbers", note="x" * 900)
    assert (await ws.subscribe(fits))["type"] == "confirm_subscription"
    await _still_flowing(ws, numbers, mosquitto, 8)


async def test_subscription_limit(cable: CableFactory, iotcable: Any) -> None:
    ws = await cable()
    limit = iotcable.max_subscriptions
    for i in range(limit):
        reply = await ws.subscribe(make_identifier("numbers", topic=f"num/{i}"))
        assert reply["type"] == "confirm_subscription"
    reply = await ws.subscribe(make_identifier("numbers", topic="num/over"))
    assert reply["type"] == "reject_subscription"
    assert str(limit) in reply["reason"]


@pytest.fixture
def iotcable_config() -> dict[str, Any]:
    # A small limit keeps the subscription-limit test quick.
    return {"max_subscriptions": 5}
