"""The floor: the least a Python server does to bridge MQTT to ActionCable subscribers.

The yardstick of ``bench/fanout.py`` (DESIGN §10): tornado, the plain protocol
(``actioncable-v1-json``) and nothing else (no auth, no history, no batching, no bounds);
each reading is decoded once, encoded once per identifier and written to every
subscriber; TCP_NODELAY on. Not for use anywhere else.

    .venv/bin/python bench/floor.py --port 8900 --mqtt-port 1883 --filter 'floor/#'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import aiomqtt
import orjson
from tornado.web import Application
from tornado.websocket import WebSocketClosedError, WebSocketHandler

SUBPROTOCOL = "actioncable-v1-json"
connections: set[Cable] = set()
subscribers: dict[str, set[Cable]] = {}  # identifier -> its subscribed connections


class Cable(WebSocketHandler):
    def check_origin(self, origin: str) -> bool:
        return True

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)
        connections.add(self)
        self.write_message(b'{"type":"welcome"}')

    def on_message(self, message: str | bytes) -> None:
        command = orjson.loads(message)
        identifier = command.get("identifier")
        if command.get("command") == "subscribe" and isinstance(identifier, str):
            subscribers.setdefault(identifier, set()).add(self)
            confirm = {"type": "confirm_subscription", "identifier": identifier}
            self.write_message(orjson.dumps(confirm))
        elif command.get("command") == "unsubscribe" and isinstance(identifier, str):
            subscribers.get(identifier, set()).discard(self)

    def on_close(self) -> None:
        connections.discard(self)
        for subscribed in subscribers.values():
            subscribed.discard(self)


def send(targets: set[Cable], frame: bytes) -> None:
    for conn in list(targets):
        with contextlib.suppress(WebSocketClosedError):  # closing: on_close forgets it
            conn.write_message(frame)


async def bridge(mqtt_port: int, topic_filter: str) -> None:
    async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="bench-floor") as client:
        await client.subscribe(topic_filter, qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            raw = message.payload
            payload = orjson.loads(raw) if isinstance(raw, bytes | bytearray | str) else raw
            reading = {"topic": message.topic.value, "time": time.time(), "payload": payload}
            for identifier, targets in subscribers.items():
                if targets:  # encode once per identifier, write to each subscriber
                    send(targets, orjson.dumps({"identifier": identifier, "message": reading}))


async def ping() -> None:
    while True:
        await asyncio.sleep(3)
        send(connections, orjson.dumps({"type": "ping", "message": int(time.time())}))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--filter", default="floor/#")
    args = parser.parse_args()
    Application([(r"/cable", Cable)]).listen(args.port, "127.0.0.1")
    pinger = asyncio.ensure_future(ping())
    try:
        await bridge(args.mqtt_port, args.filter)
    finally:
        pinger.cancel()


if __name__ == "__main__":
    asyncio.run(main())
