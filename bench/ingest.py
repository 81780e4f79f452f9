"""Ingest throughput: our bridge + hub + wire encoding, against a raw aiomqtt subscriber.

Both run in the same process against the same private mosquitto, one after the other,
so the figure that matters is the ratio (machines and load differ; ratios travel).

    .venv/bin/python -m bench.ingest [--messages 50000]

The pipeline measured is what the server does per MQTT message: the bridge hands it to
the hub (decode once per channel format, append to the stream's history ring, push to
subscribers' outboxes), and the outbox is drained and encoded as iotcable batch frames
and as per-reading ext frames, as the websocket handler would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from jupyter_iotcable.bridge import BrokerSettings, MqttBridge, MqttMessage
from jupyter_iotcable.hub import ChannelSpec, Hub, Outbox
from jupyter_iotcable.protocol import ServerConnection, Subprotocol
from jupyter_iotcable.readings import make_decoder
from jupyter_iotcable.server.codec import ORJSON_CODEC
from tests.brokers import Mosquitto

TOPIC = "plant/lyon/pump1/env"


def publish(port: int, n: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = json.dumps({"temperature": 21.5, "humidity": 40.0, "seq": 0})
    infos = [client.publish(TOPIC, payload, qos=1) for _ in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


async def raw_aiomqtt(port: int, n: int) -> float:
    """Seconds for a bare aiomqtt subscriber to receive n messages."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-raw") as client:
        await client.subscribe("plant/#", qos=1)
        task = asyncio.get_running_loop().run_in_executor(None, publish, port, n)
        count = 0
        start = time.perf_counter()
        async for _message in client.messages:
            count += 1
            if count == n:
                break
        elapsed = time.perf_counter() - start
        await task
        return elapsed


async def bridge_and_hub(port: int, n: int) -> float:
    """Seconds for bridge -> hub -> outboxes -> encoded frames for n messages."""
    spec = ChannelSpec("telemetry", ("plant/+/+/env",), make_decoder("json"), history_limit=10_000)
    hub = Hub([spec], "bench")
    conns = []
    for sub in (Subprotocol.IOTCABLE, Subprotocol.EXT):
        conn = ServerConnection(sub, "sid", codec=ORJSON_CODEC)
        conn.welcome()
        box = Outbox(64 << 20)
        hub.subscribe(box, '{"channel":"telemetry"}', "telemetry", None)
        conns.append((conn, box))
    done = asyncio.Event()
    count = 0

    def on_message(msg: MqttMessage) -> None:
        nonlocal count
        hub.ingest(msg.topic, msg.payload, msg.received_at, msg.received_at)
        count += 1
        if count % 500 == 0 or count == n:
            for conn, box in conns:
                for batch in box.take():
                    conn.send_rows(
                        batch.sub.identifier, "telemetry", "bench", [e.row() for e in batch.entries]
                    )
                conn.data_to_send()
        if count == n:
            done.set()

    bridge = MqttBridge(
        BrokerSettings(f"mqtt://127.0.0.1:{port}", client_id="bench-bridge"),
        ["plant/#"],
        on_message,
    )
    await bridge.start()
    assert await bridge.wait_connected(10)
    task = asyncio.get_running_loop().run_in_executor(None, publish, port, n)
    start = time.perf_counter()
    await done.wait()
    elapsed = time.perf_counter() - start
    await task
    await bridge.stop()
    return elapsed


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp), max_queued_messages=n * 2)
        broker.start()
        try:
            raw = await raw_aiomqtt(broker.port, n)
            ours = await bridge_and_hub(broker.port, n)
        finally:
            broker.kill()
    print(f"messages: {n}")
    print(f"raw aiomqtt subscriber: {n / raw:10.0f} msg/s ({raw / n * 1e6:.1f} us each)")
    print(f"bridge + hub + encode:  {n / ours:10.0f} msg/s ({ours / n * 1e6:.1f} us each)")
    print(f"ratio (ours / raw throughput): {raw / ours:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().messages))
