"""The bridge's packet splitter (bridge/mqtt_packets.py), in memory, against paho's decoder.

The splitter reads PUBLISH packets itself on the ingest hot path; paho stays the reference:
every PUBLISH the splitter hands out must be what paho's own ``decode_publish`` makes of the
same bytes, every other packet must reach paho whole and in order, however the stream is
cut into reads, and every QoS 1 message gets exactly one PUBACK, in order.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt._packet import decode_publish  # the oracle
from paho.mqtt.enums import MQTTProtocolVersion

from jupyter_iotcable.bridge.mqtt_packets import PacketSplitter

PINGRESP = b"\xd0\x00"
SUBACK = b"\x90\x03\x00\x01\x01"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 127, n >> 7
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def publish(
    topic: bytes,
    payload: bytes,
    *,
    qos: int = 0,
    mid: int = 1,
    retain: bool = False,
    v5: bool = True,
    properties: bytes = b"",
) -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if v5:
        body += varint(len(properties)) + properties
    body += payload
    return bytes([0x30 | qos << 1 | int(retain)]) + varint(len(body)) + body


def split_all(
    stream: bytes, cuts: list[int], *, v5: bool = True, limit: int = 1000
) -> tuple[list[object], bytes]:
    """Feed ``stream`` in pieces cut at ``cuts``; every message and packet out, in order,
    and the PUBACKs."""
    splitter = PacketSplitter(v5=v5)
    events: list[object] = []
    acks = b""
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(stream))), len(stream)]
    for start, end in itertools.pairwise(bounds):
        splitter.feed(stream[start:end])
        while True:
            messages, step_acks, other = splitter.take(limit)
            events.extend(messages)
            acks += step_acks
            if other is not None:
                events.append(other)
            if not messages and other is None:
                break
    assert splitter.buffered == 0, "everything fed was handed out"
    return events, acks


def paho_view(packet: bytes, v5: bool) -> tuple[str, bytes, int, bool]:
    """What paho makes of one PUBLISH packet."""
    length_end = 1
    while packet[length_end] & 128:
        length_end += 1
    decoded = decode_publish(
        packet[0],
        packet[length_end + 1 :],
        MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
    )
    return decoded.topic.decode(), bytes(decoded.payload), decoded.qos, decoded.retain


topics = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#"),
    min_size=1,
    max_size=40,
).map(str.encode)
payloads = st.binary(max_size=300)
properties = st.sampled_from(
    [b"", b"\x01\x01", b"\x02\x00\x00\x0e\x10", b"\x26" + b"\x00\x01k\x00\x01v"]
)


@st.composite
def packets(draw: st.DrawFn, v5: bool) -> tuple[bytes, object, bytes]:
    """One packet: its bytes, what the splitter should hand out, the PUBACK it should cause."""
    kind = draw(st.sampled_from(["publish", "publish", "publish", "pingresp", "suback", "qos2"]))
    if kind == "pingresp":
        return PINGRESP, PINGRESP, b""
    if kind == "suback":
        return SUBACK, SUBACK, b""
    qos = 2 if kind == "qos2" else draw(st.integers(0, 1))
    mid = draw(st.integers(1, 65535))
    packet = publish(
        draw(topics),
        draw(payloads),
        qos=qos,
        mid=mid,
        retain=draw(st.booleans()),
        v5=v5,
        properties=draw(properties) if v5 else b"",
    )
    if qos == 2:  # paho's to handle (PUBREC, PUBREL, PUBCOMP)
        return packet, packet, b""
    return packet, paho_view(packet, v5), struct.pack("!BBH", 0x40, 2, mid) if qos else b""


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.data())
def test_any_stream_cut_anywhere_splits_as_paho_reads_it(v5: bool, data: st.DataObject) -> None:
    drawn = data.draw(st.lists(packets(v5), min_size=1, max_size=30))
    stream = b"".join(packet for packet, _, _ in drawn)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    limit = data.draw(st.integers(1, 40))
    events, acks = split_all(stream, cuts, v5=v5, limit=limit)
    assert events == [expected for _, expected, _ in drawn]
    assert acks == b"".join(ack for _, _, ack in drawn)


def test_a_step_stops_at_its_limit_and_at_a_packet_for_paho() -> None:
    stream = b"".join(publish(b"a/b", str(i).encode(), qos=1, mid=i + 1) for i in range(5))
    splitter = PacketSplitter(v5=True)
    splitter.feed(stream + PINGRESP + publish(b"c", b"x"))
    messages, acks, other = splitter.take(3)
    assert [m[1] for m in messages] == [b"0", b"1", b"2"]
    assert acks == b"".join(struct.pack("!BBH", 0x40, 2, mid) for mid in (1, 2, 3))
    assert other is None
    messages, acks, other = splitter.take(100)
    assert [m[1] for m in messages] == [b"3", b"4"]
    assert other == PINGRESP, "the step ends at a packet for paho, in the broker's order"
    assert splitter.take(100)[0] == [("c", b"x", 0, False)]
    assert splitter.buffered == 0


def test_an_incomplete_packet_waits_for_the_rest() -> None:
    packet = publish(b"t" * 200, b"p" * 300, qos=1, mid=7)  # a two-byte remaining length
    splitter = PacketSplitter(v5=True)
    for size in (1, 2, 3, 150, len(packet) - 1):
        splitter = PacketSplitter(v5=True)
        splitter.feed(packet[:size])
        assert splitter.take(10) == ([], b"", None)
        assert splitter.buffered == size
        splitter.feed(packet[size:])
        assert splitter.take(10) == ([("t" * 200, b"p" * 300, 1, False)], b"\x40\x02\x00\x07", None)


def test_mqtt_311_has_no_properties() -> None:
    packet = publish(b"plant/a", b"\x00\x01payload", qos=1, mid=258, v5=False)
    events, acks = split_all(packet, [], v5=False)
    assert events == [("plant/a", b"\x00\x01payload", 1, False)]
    assert acks == b"\x40\x02\x01\x02"
    assert events[0] == paho_view(packet, v5=False)


def test_a_topic_that_is_not_utf8_is_handed_out_as_none_and_still_acknowledged() -> None:
    events, acks = split_all(publish(b"bad/\xff", b"x", qos=1, mid=9), [])
    assert events == [(None, b"x", 1, False)]
    assert acks == b"\x40\x02\x00\x09", "acknowledged: the bridge counts and skips it"


@pytest.mark.parametrize(
    ("why", "packet"),
    [
        ("remaining length over 4 bytes", b"\x30\xff\xff\xff\xff\x01"),
        ("topic length past the packet", b"\x30\x05\x00\x09abc"),
        ("no room for the topic length", b"\x30\x01\x00"),
        ("packet id missing (QoS 1)", b"\x32\x04\x00\x02ab"),
        ("properties past the packet", b"\x30\x06\x00\x02ab\x09x"),
        ("property length over 4 bytes", b"\x30\x09\x00\x02ab\xff\xff\xff\xff\x01"),
        ("empty topic (a topic alias, never allowed)", b"\x30\x03\x00\x00\x00"),
        ("QoS 3", b"\x36\x05\x00\x01a\x00\x01"),
    ],
)
def test_a_malformed_or_unexpected_publish_goes_to_paho_whole(why: str, packet: bytes) -> None:
    splitter = PacketSplitter(v5=True)
    splitter.feed(packet + PINGRESP)
    messages, acks, other = splitter.take(10)
    assert messages == [], why
    assert acks == b"", "nothing acknowledged that was not handed out"
    # paho gets the bad packet (it disconnects, as it always did) and nothing is lost.
    rest = splitter.take(10)[2] if other == packet else None
    assert other in (packet, packet + PINGRESP), why
    assert rest in (PINGRESP, None)


def test_a_packet_id_acknowledged_is_the_one_sent() -> None:
    mids = [1, 255, 256, 65535]
    stream = b"".join(publish(b"m", b"", qos=1, mid=mid) for mid in mids)
    _, acks = split_all(stream, list(range(len(stream))))  # one byte at a time
    assert acks == b"".join(struct.pack("!BBH", 0x40, 2, mid) for mid in mids)
