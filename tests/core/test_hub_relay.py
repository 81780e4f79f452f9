"""The relay in a user's server (server/hubclient.py) as a byte splice, on loopback.

A user's server relays the sidebar's and kernels' cables to the hub service as bytes:
after both handshakes, what one side sends is written to the other without decoding
frames. Here a small tornado "service" stands in for the hub service and a bare handler
does what ``CableProxy.open`` does (``connect_cable`` then ``splice``), so frames of any
size pass both ways, the service's close code and reason (its 1008 on a withdrawn grant)
reach the client as sent, a service that vanishes without a close frame still gives the
client a 1011 to resume on, and a refused handshake says what the service answered.
``FrameScanner``, which finds frame boundaries without copying payloads, is checked on
every way of cutting a stream into reads. The real hub is in tests/hub.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.websocket import WebSocketHandler, websocket_connect

from jupyter_iotcable.server.hubclient import (
    FrameScanner,
    ServiceLink,
    ServiceRefused,
    close_frame,
    connect_cable,
    splice,
)


def frame(opcode: int, payload: bytes, *, masked: bool, fin: bool = True) -> bytes:
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(bit | 127)
        head += struct.pack(">Q", n)
    if masked:
        key = os.urandom(4)
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


SIZES = (0, 1, 125, 126, 127, 65535, 65536, 70000)


@pytest.mark.parametrize("masked", [False, True])
def test_the_scanner_follows_frames_however_the_reads_cut_them(masked: bool) -> None:
    frames = [frame(0x1, b"x" * n, masked=masked) for n in SIZES]
    frames.insert(3, frame(0x9, b"ping", masked=masked))
    frames.insert(5, frame(0x1, b"part", masked=masked, fin=False))
    frames.insert(6, frame(0x0, b"end", masked=masked))
    stream = b"".join(frames)
    ends = set()
    at = 0
    for f in frames:
        at += len(f)
        ends.add(at)
    rng = random.Random(7)
    cuttings = [[1] * 300, [2, 3, 5, 7, 11, 13], [14], [65536], [len(stream)]]
    cuttings += [[rng.randint(1, 20000) for _ in range(40)] for _ in range(20)]
    for sizes in cuttings:
        scanner = FrameScanner()
        at = i = 0
        while at < len(stream):
            step = sizes[i % len(sizes)]
            i += 1
            scanner.feed(stream[at : at + step])
            at = min(len(stream), at + step)
            assert scanner.between_frames == (at in ends), (sizes[:5], at)
            assert not scanner.closed
        scanner.feed(frame(0x8, struct.pack(">H", 1008) + b"bye", masked=masked))
        assert scanner.closed and scanner.between_frames


def test_a_close_frame_of_the_relay_reads_as_code_and_reason() -> None:
    scanner = FrameScanner()
    data = close_frame(1011, "the service went " + "away " * 40)
    scanner.feed(data)
    assert scanner.closed and scanner.between_frames
    assert data[0] == 0x88 and data[1] == len(data) - 2 <= 125
    assert struct.unpack(">H", data[2:4]) == (1011,)


class Service(WebSocketHandler):
    """Echoes text and bytes; 'revoke' closes 1008, 'vanish' drops the socket."""

    opened: list[Service] = []

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return subprotocols[0] if subprotocols else None

    def prepare(self) -> None:
        if self.request.headers.get("Authorization") != "token hub-token":
            raise web.HTTPError(403)

    def open(self) -> None:
        Service.opened.append(self)
        self.write_message(f"welcome {self.get_query_argument('sid', '-')}")

    def on_message(self, message: str | bytes) -> None:
        if message == "revoke":
            self.close(1008, "you may no longer read channel 'commands'")
        elif message == "vanish":
            assert self.ws_connection is not None and self.ws_connection.stream is not None
            self.ws_connection.stream.close()
        else:
            self.write_message(message, binary=isinstance(message, bytes))


class Relay(WebSocketHandler):
    """What CableProxy.open does, without the jupyter server around it."""

    def initialize(self, link: ServiceLink) -> None:
        self.link = link

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return subprotocols[0] if subprotocols else None

    async def open(self) -> None:
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        query = (
            {"sid": self.get_query_argument("sid")} if self.get_query_argument("sid", None) else {}
        )
        try:
            service = await connect_cable(self.link, query, ["iotcable-v1-json"])
        except ServiceRefused as e:
            self.close(1008, f"refused {e.code}")
            return
        await splice(self.ws_connection.stream, service)


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[Any]:
    servers = []

    def serve(app: web.Application) -> int:
        [sock] = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        server = HTTPServer(app)
        server.add_sockets([sock])
        servers.append(server)
        return int(sock.getsockname()[1])

    service_port = serve(web.Application([(r"/iotcable/cable", Service)]))
    good = ServiceLink(f"http://127.0.0.1:{service_port}/", "hub-token")
    bad = ServiceLink(f"http://127.0.0.1:{service_port}/", "wrong")
    port = serve(
        web.Application([(r"/cable", Relay, {"link": good}), (r"/refused", Relay, {"link": bad})])
    )
    Service.opened.clear()
    yield lambda path: f"ws://127.0.0.1:{port}/{path}"
    for server in servers:
        server.stop()


@pytest.mark.asyncio
async def test_frames_pass_both_ways_as_sent(relay: Any) -> None:
    ws = await websocket_connect(relay("cable?sid=s1"), subprotocols=["iotcable-v1-json"])
    assert await ws.read_message() == "welcome s1"
    assert ws.selected_subprotocol == "iotcable-v1-json"
    big = "é" * 300_000
    blob = os.urandom(200_000)
    messages: list[str | bytes] = ["hello", big, blob, "", b""]
    for message in messages:
        await ws.write_message(message, binary=isinstance(message, bytes))
        assert await ws.read_message() == message
    ws.close()


@pytest.mark.asyncio
async def test_the_services_close_code_and_reason_reach_the_client(relay: Any) -> None:
    ws = await websocket_connect(relay("cable"))
    await ws.read_message()
    await ws.write_message("revoke")
    assert await ws.read_message() is None
    assert ws.close_code == 1008
    assert ws.close_reason == "you may no longer read channel 'commands'"


@pytest.mark.asyncio
async def test_a_service_gone_without_a_close_frame_gives_1011(relay: Any) -> None:
    ws = await websocket_connect(relay("cable"))
    await ws.read_message()
    await ws.write_message("vanish")
    assert await ws.read_message() is None
    assert ws.close_code == 1011
    assert ws.close_reason == "the iotcable hub service closed the cable"


@pytest.mark.asyncio
async def test_the_client_leaving_closes_the_services_socket(relay: Any) -> None:
    ws = await websocket_connect(relay("cable"))
    await ws.read_message()
    [service] = Service.opened
    ws.close(1000)
    for _ in range(200):
        if service.ws_connection is None:
            break
        await asyncio.sleep(0.01)
    assert service.ws_connection is None
    # and the relay keeps serving
    ws = await websocket_connect(relay("cable"))
    assert await ws.read_message() == "welcome -"
    ws.close()


@pytest.mark.asyncio
async def test_a_refused_handshake_says_what_the_service_answered(relay: Any) -> None:
    ws = await websocket_connect(relay("refused"))
    assert await ws.read_message() is None
    assert (ws.close_code, ws.close_reason) == (1008, "refused 403")
