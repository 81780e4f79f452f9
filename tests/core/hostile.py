"""Hostile device payloads, and what the server makes of them, for both clients' tests.

``POISON`` holds payloads that a device may publish and that no client may choke on: numbers
beyond a 64-bit float, nesting past ``MAX_DEPTH`` (and past Python's recursion limit), lone
surrogates, invalid UTF-8, readings over ``max_reading_bytes`` (raw, or only once encoded
as JSON). ``EDGE`` holds payloads just inside the limits: they must arrive as they are.

:func:`server_frames` runs them, among good readings, through the server's own sans-I/O
layers (engine, hub, session, orjson), live and as a history answer, and returns the
frames as the socket would carry them; :func:`python_rows` decodes frames as the Python
client does. ``labextension/test/hostile_cases.py`` hands the same frames and Python's
rows to the TypeScript client (node:test), so the three sides are compared on the same
bytes.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jupyter_iotcable.client.codec import FRAME_CODEC
from jupyter_iotcable.protocol import (
    Backoff,
    ClientConnection,
    Codec,
    RowsReceived,
    Subprotocol,
    make_identifier,
)
from jupyter_iotcable.protocol.limits import MAX_DEPTH
from tests.core.sessions import Client, bridge, engine

NOW = 1_700_000_000.0
TOPIC_GOOD = "plant/lyon/good{}/env"
TOPIC_BAD = "plant/lyon/bad{}/env"
MAX_READING = 64 * 1024  # the test channel's max_reading_bytes: small, so tests stay fast

CHANNELS: dict[str, dict[str, Any]] = {
    "telemetry": {
        "topics": ["plant/+/+/env"],
        "columns": "plant/{site}/{device}/env",
        "read": ["*"],
        "history_limit": 10_000,
        "max_reading_bytes": MAX_READING,
    },
    "text": {
        "topics": ["text/#"],
        "format": "text",
        "read": ["*"],
        "max_reading_bytes": MAX_READING,
    },
}


def nested(depth: int, open_: str = "[", close: str = "]", inner: str = "1") -> bytes:
    return (open_ * depth + inner + close * depth).encode()


def nested_objects(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


POISON: dict[str, bytes] = {
    "integer of 401 digits": b'{"v": ' + b"9" * 401 + b"}",
    "integer of 309 digits": b'{"v": -' + b"9" * 309 + b"}",
    "integer of 5000 digits": b"[" + b"7" * 5000 + b"]",
    "float 1e400": b'{"v": 1e400}',
    "NaN": b'{"v": NaN}',
    "-Infinity": b"[-Infinity]",
    f"arrays {MAX_DEPTH + 1} deep": nested(MAX_DEPTH + 1),
    f"objects {MAX_DEPTH + 1} deep": nested_objects(MAX_DEPTH + 1),
    "arrays 900 deep": nested(900),
    "arrays 975 deep": nested(975),
    "objects 980 deep": nested_objects(980),
    "arrays 5000 deep": nested(5000),
    "lone surrogate escape": b'{"v": "\\ud800"}',
    "lone surrogate key": b'{"\\udfff": 1}',
    "invalid UTF-8": b'{"v": "\xff\xfe"}',
    "not JSON": b"{nope",
    "empty": b"",
    "over max_reading_bytes": b'"' + b"x" * (MAX_READING + 10) + b'"',
    # 4 bytes each as sent by the device, 9 as JSON (100000.0): the encoded size is over.
    "over max_reading_bytes as JSON": b"[" + b"1e5," * (MAX_READING // 6) + b"1e5]",
    "empty objects over max_reading_bytes": b"[" + b"{}," * (MAX_READING // 3) + b"{}]",
}

EDGE: dict[str, bytes] = {
    "largest float": b'{"v": 1.7976931348623157e308}',
    "smallest float": b'{"v": -1.7976931348623157e308}',
    "subnormal": b'{"v": 5e-324}',
    "integer of 308 digits": b'{"v": ' + b"9" * 308 + b"}",
    "2**53 + 1": b'{"v": 9007199254740993}',
    "2**64": b'{"v": 18446744073709551616}',
    f"arrays {MAX_DEPTH} deep": nested(MAX_DEPTH),
    f"objects {MAX_DEPTH} deep": nested_objects(MAX_DEPTH),
    "control characters": b'{"v": "\\u0000\\u001f\\u007f"}',
    "non-characters": '{"v": "\ufdd0\uffff"}'.encode(),
    "surrogate pair": b'{"v": "\\ud83d\\ude00"}',
    "byte order mark": b'\xef\xbb\xbf{"v": 1}',
    "__proto__": b'{"__proto__": {"x": 1}, "constructor": 2}',
    "duplicate keys": b'{"a": 1, "a": 2}',
    "just under max_reading_bytes": b'"' + b"y" * (MAX_READING - 200) + b'"',
}

SUBPROTOCOLS = (Subprotocol.IOTCABLE, Subprotocol.EXT)

_FRAGMENTS = [
    b"[",
    b"]",
    b"{",
    b"}",
    b'"a":',
    b",",
    b"1",
    b"-0.0",
    b"1e308",
    b"1e400",
    b"9" * 400,
    b'"x"',
    b"null",
    b"true",
    b'"\\ud800"',
    b'"\\u0000"',
    b"\xff",
    "\u00e9\ufffe".encode(),
    b"\xef\xbb\xbf",
    b"[" * 120,
    b"]" * 120,
    b"NaN",
    b" ",
    b'"\\"]',
    b"9007199254740993",
]


def _random_json(rng: random.Random, depth: int) -> object:
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice(
            [0, -1, 2**53 + 1, 10**300, 1.5e308, 5e-324, "[{", "\u2028", "a" * 50, None, True]
        )
    if rng.random() < 0.5:
        return [_random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}]": _random_json(rng, depth - 1) for i in range(rng.randint(0, 3))}


def random_payloads(rng: random.Random, count: int) -> dict[str, bytes]:
    """Seeded payloads: fragments glued at random (mostly not JSON, some poison) and random
    JSON nested up to MAX_DEPTH + 10 (some too deep). Whether each is flagged is for the
    server to say: the clients must agree with it and with each other."""
    payloads: dict[str, bytes] = {}
    for i in range(count):
        if i % 2:
            pieces = rng.choices(_FRAGMENTS, k=rng.randint(1, 10))
            payloads[f"random fragments {i}"] = b"".join(pieces)
        else:
            value: object = _random_json(rng, rng.randint(0, 6))
            for _ in range(rng.choice([0, 0, MAX_DEPTH - 3, MAX_DEPTH + 2])):
                value = [value]
            payloads[f"random json {i}"] = json.dumps(
                value, ensure_ascii=rng.random() < 0.5
            ).encode()
    return payloads


@dataclass
class RawClient(Client):
    """A session test client that also keeps the frames as text, as the socket carries them."""

    texts: list[str] = field(default_factory=list)

    def _collect(self) -> None:
        for frame in self.session.data_to_send():
            text = frame.decode() if isinstance(frame, bytes) else frame
            self.texts.append(text)
            self.frames.append(json.loads(text))
            self.unwritten += len(frame)


def mixed(payloads: dict[str, bytes], rng: random.Random) -> list[tuple[str, str, bytes]]:
    """(name, topic, payload): a good reading before and after each hostile one, shuffled."""
    items: list[tuple[str, str, bytes]] = []
    for i, (name, payload) in enumerate(payloads.items()):
        items.append((f"good {2 * i}", TOPIC_GOOD.format(i), json.dumps({"seq": 2 * i}).encode()))
        items.append((name, TOPIC_BAD.format(i), payload))
        good = json.dumps({"seq": 2 * i + 1}).encode()
        items.append((f"good {2 * i + 1}", TOPIC_GOOD.format(i), good))
    rng.shuffle(items)
    return items


@dataclass
class ServerRun:
    """What the server sent one subscription: live frames, then a history answer's frames."""

    subprotocol: Subprotocol
    identifier: str
    live: list[str]
    history: list[str]
    readings: list[tuple[str, str, bytes]]  # in publish order: offset = index + 1


def server_frames(readings: list[tuple[str, str, bytes]], subprotocol: Subprotocol) -> ServerRun:
    """Publish ``readings`` through a MemoryBridge into a real engine and session: a
    subscriber gets them live; a second connection then asks for them as history."""
    eng = engine(CHANNELS)
    identifier = make_identifier("telemetry")
    live = RawClient(eng, subprotocol)
    live.open()
    live.subscribe(identifier)
    live.texts.clear()
    for _name, topic, payload in readings:
        assert bridge(eng).deliver(topic, payload)
        live.advance()
    live_texts = [t for t in live.texts if '"identifier"' in t and '"type"' not in t]
    later = RawClient(eng, subprotocol, sid="sid-2")
    later.open()
    later.texts.clear()
    history = {"streams": {"telemetry": {"epoch": eng.epoch, "offset": 0}}}
    later.send({"command": "subscribe", "identifier": identifier, "history": history})
    later.advance()
    history_texts = [t for t in later.texts if '"type"' not in t]
    assert any('"confirm_history"' in t for t in later.texts), later.texts[-3:]
    return ServerRun(subprotocol, identifier, live_texts, history_texts, readings)


def python_rows(
    run: ServerRun, texts: Iterable[str], codec: Codec = FRAME_CODEC
) -> tuple[list[list[Any]], list[str]]:
    """The rows a Python ClientConnection (with ``codec``) reads from ``texts``, and the
    errors it reports: ``[offset, topic, payload as JSON text, error]``."""
    client = ClientConnection(
        subprotocol=run.subprotocol, backoff=Backoff(rng=random.Random(0)), codec=codec
    )
    client.connection_opened(NOW)
    client.receive_text('{"type":"welcome","sid":"s"}', NOW)
    identifier = client.subscribe("telemetry")
    assert identifier == run.identifier
    client.receive_text(json.dumps({"type": "confirm_subscription", "identifier": identifier}), NOW)
    client.events_received()
    rows: list[list[Any]] = []
    errors: list[str] = []
    for text in texts:
        client.receive_text(text, NOW)
        for event in client.events_received():
            if isinstance(event, RowsReceived):
                for offset, _time, topic, payload, error in event.rows:
                    rows.append([offset, topic, as_json(payload), error])
            elif type(event).__name__ == "ServerError":
                errors.append(repr(event))
    return rows, errors


def as_json(value: object) -> str:
    """A decoded payload as JSON text (integers past 64 bits included), for comparing."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def check_delivery(run: ServerRun, rows: list[list[Any]]) -> None:
    """Every reading once, in offset order; good ones unflagged and intact, poison flagged."""
    assert [row[0] for row in rows] == list(range(1, len(run.readings) + 1))
    for (name, topic, payload), (_offset, got_topic, got_payload, error) in zip(
        run.readings, rows, strict=True
    ):
        assert got_topic == topic
        if name.startswith("random"):  # the server says which are poison
            if error is None:
                assert got_payload == as_json(json.loads(payload.decode("utf-8-sig"))), name
        elif name in POISON:
            assert error is not None, name
        else:
            assert error is None, (name, error)
            expected = json.loads(payload.decode("utf-8-sig"))
            assert got_payload == as_json(expected), name


def cases_for_typescript() -> dict[str, Any]:
    """Frames and Python's rows for labextension/test/hostile.test.ts."""
    rng = random.Random(12)
    readings = mixed({**POISON, **EDGE, **random_payloads(rng, 200)}, rng)
    runs = []
    for subprotocol in SUBPROTOCOLS:
        run = server_frames(readings, subprotocol)
        for path, texts in (("live", run.live), ("history", run.history)):
            rows, errors = python_rows(run, texts)
            assert not errors, errors
            check_delivery(run, rows)
            runs.append(
                {
                    "subprotocol": subprotocol.value,
                    "path": path,
                    "frames": texts,
                    "rows": rows,
                    "names": [name for name, _topic, _payload in run.readings],
                    "poison": [row[3] is not None for row in rows],
                }
            )
    return {"runs": runs, "max_depth": MAX_DEPTH}


if __name__ == "__main__":
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    print(json.dumps(cases_for_typescript(), ensure_ascii=False))
