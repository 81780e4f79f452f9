"""The adapter frames its websocket text frames itself: one stream write per pump.

``CableSocket._write_frames`` replaces tornado's ``write_message`` per frame (a task each);
what it writes must be exactly the frames tornado would write (RFC 6455 server frames:
FIN + text opcode, unmasked, 7/16/64-bit lengths). Checked here against a small frame
parser, at every length class boundary, without a socket.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from jupyter_iotcable.server.cable_socket import CableSocket
from jupyter_iotcable.server.session import wire_size


class Stream:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> object:
        self.written.append(bytes(data))
        return object()  # tornado's future: not looked at here


class Connection:
    _compressor = None

    def __init__(self) -> None:
        self.stream = Stream()

    def is_closing(self) -> bool:
        return False


class Socket:
    def __init__(self) -> None:
        self.ws_connection = Connection()


def parse(wire: bytes) -> list[bytes]:
    """Server frames back to payloads (asserting FIN, text, unmasked)."""
    out: list[bytes] = []
    i = 0
    while i < len(wire):
        first, second = wire[i], wire[i + 1]
        assert first == 0x81, "FIN and the text opcode"
        assert not second & 0x80, "a server does not mask"
        length, i = second & 0x7F, i + 2
        if length == 126:
            (length,) = struct.unpack("!H", wire[i : i + 2])
            i += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", wire[i : i + 8])
            i += 8
        out.append(wire[i : i + length])
        i += length
    return out


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_frames_of_every_length_class_are_written_as_tornado_would(size: int) -> None:
    socket: Any = Socket()
    frames: list[str | bytes] = [b"x" * size, "\u00e9" * (size // 2), b"{}"]
    _future, reported = CableSocket._write_frames(socket, frames)
    (wire,) = socket.ws_connection.stream.written
    payloads = [f if isinstance(f, bytes) else f.encode() for f in frames]
    assert parse(wire) == payloads, "one write, every frame in order"
    assert reported == len(wire) == sum(wire_size(f) for f in frames), (
        "the size reported to the session is what it counted as in flight"
    )
