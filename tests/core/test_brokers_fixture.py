"""The mosquitto fixture itself: it must be ours, not the machine's broker on 1883."""

from __future__ import annotations

import queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.brokers import Mosquitto


def test_fixture_broker_is_private_and_delivers(mosquitto: Mosquitto) -> None:
    assert mosquitto.port != 1883
    got: queue.Queue[bytes] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    client.connect("127.0.0.1", mosquitto.port)
    client.subscribe("fixture/check", qos=1)
    client.loop_start()
    try:
        import time

        time.sleep(0.2)
        mosquitto.publish("fixture/check", b"hello")
        assert got.get(timeout=5) == b"hello"
    finally:
        client.loop_stop()
        client.disconnect()
