"""What a broker sends, split into MQTT packets: PUBLISH read here, the rest left to paho.

The ingest hot path (issue #11). paho reads every packet with three ``recv`` calls or more
and decodes a PUBLISH into a ``PublishPacket``, a ``Properties`` object (MQTT 5), an
``MQTTMessage``, then calls back; measured under a backlog this was about 30 % of the
server's CPU, more than routing the reading. :class:`PacketSplitter` is sans-I/O: it is fed
the bytes the socket gave and hands out, per step,

- the PUBLISH packets of QoS 0 and 1 as ``(topic, payload, qos, retain)`` (the topic
  ``None`` when it is not UTF-8, which a broker must refuse), and the PUBACK packets that
  acknowledge the QoS 1 ones, as bytes ready for the socket;
- any other packet (CONNACK, SUBACK, PINGRESP, DISCONNECT, a PUBACK for our own publish,
  a QoS 2 PUBLISH, anything malformed) whole, for paho to read and handle as it always
  does. A step ends at such a packet, so that everything stays in the broker's order.

MQTT 5 properties of a PUBLISH are skipped (the bridge uses none of them). A PUBLISH with an
empty topic (a topic alias, which the bridge never allows the broker to use) goes to paho.
The framing follows MQTT 3.1.1 section 2 and MQTT 5.0 section 3.3; the tests compare it
with paho's own decoder on generated packets.
"""

from __future__ import annotations

__all__ = ["PUBACK", "PacketSplitter", "Publish"]

PUBLISH = 0x30
PUBACK = 0x40

#: One message: topic (``None`` if not UTF-8), payload, QoS, retain flag.
Publish = tuple[str | None, bytes, int, bool]


class PacketSplitter:
    """Splits a byte stream from a broker into packets (see the module's docstring)."""

    __slots__ = ("_data", "_pos", "v5")

    def __init__(self, *, v5: bool) -> None:
        self.v5 = v5
        self._data = b""
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Bytes the socket gave, in order."""
        pos = self._pos
        rest = self._data
        self._data = rest[pos:] + data if pos < len(rest) else data
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes fed and not handed out yet (an incomplete packet, or packets not taken)."""
        return len(self._data) - self._pos

    def take(self, limit: int) -> tuple[list[Publish], bytes, bytes | None]:
        """Up to ``limit`` PUBLISH packets, the PUBACKs for those of QoS 1, and the packet
        after them if it is one for paho (``None`` otherwise).

        Stops early at the end of what was fed (an incomplete packet stays buffered) and
        after a packet for paho. Nothing is lost: whatever is not handed out stays
        buffered for the next call.
        """
        data = self._data
        end = len(data)
        pos = self._pos
        v5 = self.v5
        out: list[Publish] = []
        acks = bytearray()
        other: bytes | None = None
        while len(out) < limit:
            # Fixed header: the packet type and flags, then the remaining length (1-4
            # bytes, 7 bits each, least significant first).
            if pos + 2 > end:
                break
            first = data[pos]
            length = data[pos + 1]
            body = pos + 2
            if length > 127:
                length &= 127
                shift = 7
                while True:
                    if body >= end:
                        length = -1  # incomplete
                        break
                    byte = data[body]
                    body += 1
                    length |= (byte & 127) << shift
                    if byte < 128:
                        break
                    shift += 7
                    if shift > 21:  # more than 4 bytes: malformed, paho says so
                        other, pos = data[pos:end], end
                        break
                if other is not None:
                    break
                if length < 0:
                    break
            packet_end = body + length
            if packet_end > end:
                break
            qos = (first >> 1) & 3
            if first & 0xF0 != PUBLISH or qos > 1:
                other, pos = data[pos:packet_end], packet_end
                break
            publish = self._publish(data, first, qos, body, packet_end, v5, acks)
            if publish is None:  # malformed or a topic alias: paho's business
                other, pos = data[pos:packet_end], packet_end
                break
            out.append(publish)
            pos = packet_end
        self._pos = pos
        if pos >= end:
            self._data, self._pos = b"", 0
        return out, bytes(acks), other

    @staticmethod
    def _publish(
        data: bytes, first: int, qos: int, body: int, end: int, v5: bool, acks: bytearray
    ) -> Publish | None:
        if body + 2 > end:
            return None
        topic_end = body + 2 + ((data[body] << 8) | data[body + 1])
        if topic_end > end or topic_end == body + 2:
            return None
        at = topic_end
        if qos:
            if at + 2 > end:
                return None
            acks += b"\x40\x02"
            acks += data[at : at + 2]
            at += 2
        if v5:
            # Property length (a variable byte integer), then the properties: skipped.
            shift = size = 0
            while True:
                if at >= end or shift > 21:
                    if qos:
                        del acks[-4:]
                    return None
                byte = data[at]
                at += 1
                size |= (byte & 127) << shift
                if byte < 128:
                    break
                shift += 7
            at += size
            if at > end:
                if qos:
                    del acks[-4:]
                return None
        try:
            topic: str | None = data[body + 2 : topic_end].decode()
        except UnicodeDecodeError:
            topic = None
        return topic, data[at:end], qos, bool(first & 1)
