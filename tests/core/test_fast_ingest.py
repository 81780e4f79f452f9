"""The bridge's reader between paho and the broker's socket (bridge/fast_ingest.py).

A real paho client reads through a :class:`BrokerReader` over a socketpair whose other end
plays the broker: the tests write MQTT bytes there and read the PUBACKs back. The event
loop's turns are real; what aiomqtt's reader does on a readable socket is ``read_ready``.
End to end against mosquitto: tests/integration/test_bridge.py and bench/ingest.py.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from jupyter_iotcable.bridge import fast_ingest
from jupyter_iotcable.bridge.fast_ingest import STEP, BrokerReader
from jupyter_iotcable.bridge.mqtt_packets import Publish
from jupyter_iotcable.hub import Pressure

from .test_mqtt_packets import PINGRESP, publish

pytestmark = pytest.mark.asyncio


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    broker, ours = socket.socketpair()
    ours.setblocking(False)
    broker.settimeout(5)
    yield broker, ours
    broker.close()
    ours.close()


def paho_client() -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    # As under aiomqtt: paho asks for a writer callback instead of writing itself.
    client.on_socket_register_write = lambda *args: None
    return client


def read_ready(client: mqtt.Client, reader: BrokerReader) -> MQTTErrorCode:
    """What aiomqtt's reader does when the socket is readable."""
    while True:
        rc = client.loop_read()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or reader.pending() <= 0:
            return rc


def acks_for(mids: range | list[int]) -> bytes:
    return b"".join(struct.pack("!BBH", 0x40, 2, mid) for mid in mids)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def make_reader(
    ours: socket.socket,
    client: mqtt.Client,
    delivered: list[Publish],
    pressure: Pressure | None = None,
) -> BrokerReader:
    reader = BrokerReader(
        ours,
        client,
        delivered.extend,
        v5=True,
        loop=asyncio.get_running_loop(),
        pressure=pressure,
    )
    client._sock = reader
    return reader


async def test_messages_are_routed_in_order_and_acknowledged_in_one_send(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    broker, ours = pair
    client = paho_client()
    delivered: list[Publish] = []
    reader = make_reader(ours, client, delivered)
    client._ping_t = 1.0  # a PINGREQ is outstanding: paho must see the PINGRESP
    broker.sendall(
        b"".join(publish(b"plant/a", str(i).encode(), qos=1, mid=i + 1) for i in range(50))
        + PINGRESP
        + publish(b"plant/b", b"qos0")
    )
    assert read_ready(client, reader) == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert [payload for _, payload, _, _ in delivered] == [
        *(str(i).encode() for i in range(50)),
        b"qos0",
    ]
    assert delivered[0] == ("plant/a", b"0", 1, False)
    assert client._ping_t == 0, "paho handled the PINGRESP"
    assert recv_exactly(broker, 200) == acks_for(range(1, 51))
    assert not client.want_write(), "sent directly, nothing left for paho's writer"


async def test_acks_wait_behind_what_paho_is_writing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    broker, ours = pair
    client = paho_client()
    delivered: list[Publish] = []
    reader = make_reader(ours, client, delivered)
    client._packet_queue(0xC0, b"\xc0\x00", 0, 0)  # a PINGREQ paho has not written yet
    broker.sendall(publish(b"t", b"x", qos=1, mid=77))
    read_ready(client, reader)
    assert delivered == [("t", b"x", 1, False)]
    client.loop_write()  # aiomqtt's writer callback
    assert recv_exactly(broker, 6) == b"\xc0\x00" + acks_for([77]), "in paho's order"


async def test_pressure_stops_reading_until_the_next_turn(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    broker, ours = pair
    client = paho_client()
    pressure = Pressure()
    delivered: list[Publish] = []

    def deliver(messages: list[Publish]) -> None:
        delivered.extend(messages)
        pressure.raised = True  # an outbox filled to half its bound

    reader = BrokerReader(
        ours, client, deliver, v5=True, loop=asyncio.get_running_loop(), pressure=pressure
    )
    client._sock = reader
    total = 3 * STEP
    broker.sendall(b"".join(publish(b"p", str(i).encode(), qos=1, mid=i + 1) for i in range(total)))
    read_ready(client, reader)
    assert len(delivered) == STEP, "one step, then the connections get to write"
    assert not pressure.raised, "the bridge lowered it"
    assert reader.pending() == 0, "aiomqtt's reader stops for this turn"
    assert recv_exactly(broker, 4 * STEP) == acks_for(range(1, STEP + 1)), "only what was routed"
    # No new bytes on the socket: the reader goes on by itself at the next turns.
    for _ in range(10):
        await asyncio.sleep(0)
    assert [int(payload) for _, payload, _, _ in delivered] == list(range(total))
    assert recv_exactly(broker, 4 * (total - STEP)) == acks_for(range(STEP + 1, total + 1))


async def test_a_slow_turn_yields_and_the_rest_follows(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, ours = pair
    monkeypatch.setattr(fast_ingest, "TURN_SECONDS", 0.001)
    client = paho_client()
    delivered: list[Publish] = []

    def slow(messages: list[Publish]) -> None:
        time.sleep(0.002)  # a step takes longer than the turn may
        delivered.extend(messages)

    reader = BrokerReader(ours, client, slow, v5=True, loop=asyncio.get_running_loop())
    client._sock = reader
    broker.sendall(b"".join(publish(b"s", str(i).encode()) for i in range(5 * STEP)))
    read_ready(client, reader)
    assert len(delivered) == STEP
    for _ in range(20):
        await asyncio.sleep(0)
    assert [int(payload) for _, payload, _, _ in delivered] == list(range(5 * STEP))


async def test_a_closed_connection_routes_what_is_complete_and_tells_paho(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    broker, ours = pair
    client = paho_client()
    delivered: list[Publish] = []
    reader = make_reader(ours, client, delivered)
    whole = b"".join(publish(b"c", str(i).encode(), qos=1, mid=i + 1) for i in range(3))
    broker.sendall(whole + publish(b"c", b"cut", qos=1, mid=4)[:5])
    broker.shutdown(socket.SHUT_WR)
    rc = read_ready(client, reader)
    assert rc == MQTTErrorCode.MQTT_ERR_CONN_LOST
    assert [payload for _, payload, _, _ in delivered] == [b"0", b"1", b"2"]
    assert recv_exactly(broker, 12) == acks_for([1, 2, 3]), "the cut message is not acknowledged"
