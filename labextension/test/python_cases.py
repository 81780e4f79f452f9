"""Expectations for the TypeScript protocol tests, computed by the Python core.

    .venv/bin/python labextension/test/python_cases.py > cases.json

prints them as one JSON document (deterministic: seeded). python-cases.test.ts runs this
script with the project's virtualenv each time (so the expectations follow the Python
core as it changes) and requires the TypeScript mirror to give exactly these answers:

- identifiers: make_identifier's text, or its error;
- pyrepr / describe / excerpt: Python's spellings of numbers and peer text;
- loads: the stdlib codec's value, or explain_decode_error's words, for handcrafted and
  mutated texts;
- history: HistoryRequest.from_wire's to_wire(), or its error;
- frames: what a subscribed ClientConnection reports for malformed or odd server frames;
- scenarios: random conversations recorded in the transcript format (client side only),
  exercising the duplicate/backfill/gap bookkeeping across reconnects; the TS test
  replays them exactly as tests/core/transcripts.py replay_client does;
- transcripts: the file names tests/core/transcripts.py expects in tests/transcripts;
- literals: every wire literal of messages.py, by enum and member name.

Cases on which the mirror knowingly differs are left out, and counted in "skipped":
JSON.parse cannot tell "1.0" from "1" (an integral float literal), integers beyond 2**53
lose precision, and nesting deeper than the mirror's MAX_NESTING (Python's limit
depends on its stack depth).
"""

from __future__ import annotations

import json
import math
import random
import re
import struct
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from jupyter_iotcable.protocol import (  # noqa: E402
    PLAIN_HISTORY_REASON,
    PREFERENCE,
    Backoff,
    BrokerState,
    ClientConnection,
    CommandName,
    DisconnectReason,
    ErrorCode,
    HistoryRequest,
    MessageType,
    ProtocolError,
    Subprotocol,
    make_identifier,
)
from jupyter_iotcable.protocol.codec import JSON_CODEC, explain_decode_error  # noqa: E402
from jupyter_iotcable.protocol.errors import describe, excerpt  # noqa: E402
from jupyter_iotcable.protocol.identifiers import MAX_CHANNEL_LENGTH  # noqa: E402
from tests.core.transcripts import (  # noqa: E402
    NOW,
    every_transcript,
    path_for,
    replay_client,
    to_json,
)

MAX_NESTING = 900  # labextension/src/protocol/codec.ts
SKIPPED: dict[str, int] = {}

TELEMETRY = make_identifier("telemetry", topic="plant/+/+/env")
META = {"columns": "plant/{site}/{device}/env", "format": "json"}


def skip(why: str) -> None:
    SKIPPED[why] = SKIPPED.get(why, 0) + 1


# -- literals ------------------------------------------------------------------------------


def literals() -> dict[str, Any]:
    enums = (Subprotocol, CommandName, MessageType, DisconnectReason, BrokerState, ErrorCode)
    out: dict[str, Any] = {e.__name__: {m.name: m.value for m in e} for e in enums}
    out["extended"] = {s.value: s.extended for s in Subprotocol}
    out["batched"] = {s.value: s.batched for s in Subprotocol}
    out["required_reconnect"] = {r.value: r.required_reconnect for r in DisconnectReason}
    out["PREFERENCE"] = [s.value for s in PREFERENCE]
    out["PLAIN_HISTORY_REASON"] = PLAIN_HISTORY_REASON
    out["MAX_CHANNEL_LENGTH"] = MAX_CHANNEL_LENGTH
    return out


# -- identifiers ---------------------------------------------------------------------------


def identifier_cases() -> list[dict[str, Any]]:
    inputs: list[tuple[str, list[tuple[str, str]]]] = [
        ("telemetry", []),
        ("telemetry", [("topic", "plant/+/+/env")]),
        ("télémétrie", [("topic", "usine/é/😀/#")]),
        ("t", [("b", "1"), ("a", "2")]),
        ("t", [("2", "x"), ("topic", "a"), ("1", "y")]),
        ('quote"back\\slash', [("k", 'say "hi"\\')]),
        ("ctl\n\r\t\b\f\x01\x1f\x7f", [("k", "\x00")]),
        ("sep\u2028\u2029", [("k", "\u00a0\ufeff")]),
        ("x" * 200, []),
        ("😀" * 200, []),
        ("x" * 201, []),
        ("😀" * 201, []),
        ("", []),
        ("lone\ud800", []),
        ("ok", [("k\udc00ey", "v")]),
        ("ok", [("key", "va\ud83dlue")]),
        ("ok", [("__proto__", "p"), ("constructor", "c")]),
    ]
    cases = []
    for channel, params in inputs:
        case: dict[str, Any] = {"channel": channel, "params": params}
        try:
            case["identifier"] = make_identifier(channel, **dict(params))
        except ProtocolError as exc:
            case["error"] = str(exc)
        cases.append(case)
    return cases


# -- Python spellings ------------------------------------------------------------------------


def random_double(rng: random.Random) -> float:
    while True:
        value: float = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            return value


def repr_cases(rng: random.Random) -> list[str]:
    fixed = [
        0.1,
        1 / 3,
        2 / 3,
        1e-4,
        1e-5,
        1.5e-5,
        0.00012,
        1e15,
        1e16,
        1.5e16,
        123456789012345678.0,
        1e21,
        1e22,
        1e100,
        1.7976931348623157e308,
        5e-324,
        2.2250738585072014e-308,
        1700000000.0,
        1700000000.1,
        1699996400.0,
        1700000003.25,
        9007199254740993.0,
        100.0,
        -0.0,
        0.0,
        -1.5,
        -1e-7,
        12345.678,
        0.3,
        4.35,
        2.675,
        1e23,
        8.41e21,
    ]
    values = fixed + [random_double(rng) for _ in range(1500)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(300)]
    values += [rng.uniform(1.6e9, 1.8e9) for _ in range(200)]
    values += [round(rng.uniform(0, 100), rng.randint(0, 6)) for _ in range(200)]
    return [repr(v) for v in values]


def describe_cases() -> list[dict[str, Any]]:
    values: list[Any] = [
        None,
        True,
        False,
        0,
        7,
        -3,
        2**53 - 1,
        -(2**53) + 1,
        1.5,
        -2.25,
        1e16,
        1e-5,
        1e300,
        123456789.123,
        0.1,
        "",
        "abc",
        "x" * 100,
        "é😀" * 40,
        "lone \ud800 here",
        [],
        [1, 2],
        {},
        {"a": 1},
        "\ud800" * 20,
        "a" * 57 + "\udfff",
    ]
    return [{"value": v, "describe": describe(v)} for v in values]


def excerpt_cases() -> list[dict[str, Any]]:
    texts = [
        "",
        "short",
        "x" * 60,
        "x" * 61,
        "y" * 1000,
        "😀" * 60,
        "😀" * 61,
        "a" * 55 + "\ud800" + "b" * 10,
        "a" * 50 + "\udc00",
        "\ud800" * 11,
        "a" * 58 + "😀😀",
    ]
    cases: list[dict[str, Any]] = [{"text": t, "limit": 60, "excerpt": excerpt(t)} for t in texts]
    cases += [{"text": t, "limit": 10, "excerpt": excerpt(t, 10)} for t in texts]
    return cases


# -- loads ---------------------------------------------------------------------------------

HANDCRAFTED = [
    "<html>",
    "",
    " ",
    "\n\n  x",
    "{",
    "}",
    "[",
    "]",
    "[1,]",
    '{"a":1,}',
    '{"a" 1}',
    "[1 2]",
    '"abc',
    '"a\\x"',
    '"\\u12"',
    '"\\u12',
    '"\\u123"',
    '"\\u1234',
    '"\\u1234"',
    '"\\ud83d\\ude00"',
    '"\\ud83d\\ude00',
    '"\\ud83d\\u0041"',
    '"\\ud83d\\uZZ00"',
    '"\\ud83d\\',
    '"\\ud83d\\u',
    '"\\ud800"',
    '"\\udc00"',
    '"\\ud800x"',
    '{"\\ud800":1}',
    '["ok","\\ud800"]',
    '"\\uDBFF\\uDFFF"',
    "nul",
    "null",
    "nulll",
    "NaN",
    "[NaN]",
    "Infinity",
    "[-Infinity]",
    "-Inf",
    "1 2",
    '"\x01"',
    '"\x1f"',
    '"\x7f"',
    "{1:2}",
    "-",
    "01",
    "1.",
    "1e",
    "1e+",
    "1e5",
    "1E-5",
    "-0",
    "-0.0",
    "1.5e",
    "\ufeff{}",
    "[1e400]",
    "[-1e400, NaN]",
    "1e400",
    "-1e400",
    "1e308",
    "1.8e308",
    "9" * 308,
    "9" * 309,
    "9" * 310,
    "9" * 311,
    "-" + "9" * 309,
    "1" + "0" * 308,
    "1" + "0" * 309,
    "[" + "1" * 400 + "]",
    "1.5e-400",
    "tru",
    "true",
    "falsee",
    "fals",
    '{"a":}',
    '{"a":1 "b":2}',
    '{"a":1,"a":2}',
    "[1,2,,3]",
    "[\n1,\n\n x]",
    '{"😀":1, x}',
    '"😀😀\x01"',
    '["😀", 01]',
    "\t[]\r\n",
    '{"__proto__":{"x":1}}',
    '"\\/\\b\\f\\n\\r\\t"',
    '"\\a"',
    '"\\u00e9\\u00E9"',
    " 1 ",
    "1 ]",
    "[] []",
    '"\\"',
    '"\\\\"',
    "[1e999999]",
    "[0.0000000000000000000000001e-400]",
    '{"a":[1,{"b":[2,{"c":3e400}]}]}',
    '{"type":"welcome","sid":"sid-1"}',
    "[" * 50 + "]" * 50,
    "[" * 50 + "]" * 49,
    "[\u2028]",
    "[\u00a01]",
    "[1\u3000]",
]

MUTATION_ALPHABET = [*'"\\{}[],:0123456789eE-+.u ntfNIa\n\x01\x1f', "é", "😀", "\u2028"]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        pos = rng.randint(0, len(text))
        if choice < 0.35 and text:
            text = text[:pos] + text[pos + 1 :]
        elif choice < 0.75:
            text = text[:pos] + rng.choice(MUTATION_ALPHABET) + text[pos:]
        elif choice < 0.9:
            text = text[:pos]
        else:
            token = rng.choice(["1e400", "-1e400", "NaN", "Infinity", "\\ud800", "\\u12", "1e"])
            text = text[:pos] + token + text[pos:]
    return text


_NUMBER = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')


def beyond_mirror(text: str, *, numbers: bool) -> str | None:
    """Why the mirror cannot give Python's answer for this text, if it cannot.

    ``numbers``: whether integer-ness matters (frames check offsets are integers; a
    decoded value compares equal either way once it has gone through JSON).
    """
    for match in _NUMBER.finditer(text if numbers else ""):
        token = match.group(0)
        if token.startswith('"'):
            continue
        if any(c in token for c in ".eE"):
            try:
                value = float(token)
            except OverflowError:
                continue
            if math.isfinite(value) and value == int(value) and value != 0:
                return "an integral float literal"
        elif len(token) <= 310 and abs(int(token)) > 2**53:
            return "an integer beyond 2**53"
    depth = deepest = 0
    for char in text:  # rough: brackets inside strings count too, which only skips more
        depth += char in "[{"
        depth -= char in "]}"
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING - 10:
        return "nesting near the limit"
    return None


def loads_case(text: str) -> dict[str, Any] | None:
    why = beyond_mirror(text, numbers=False)
    if why is not None:
        skip(f"loads: {why}")
        return None
    try:
        value = JSON_CODEC.loads(text)
    except (ValueError, RecursionError) as exc:
        return {"text": text, "error": explain_decode_error(exc)}
    return {"text": text, "value": value}


def loads_cases(rng: random.Random, seeds: list[str]) -> list[dict[str, Any]]:
    texts = list(HANDCRAFTED)
    for _ in range(1500):
        texts.append(mutate(rng, rng.choice(seeds)))
    cases = []
    seen: set[str] = set()
    for text in texts:
        if text in seen:
            continue
        seen.add(text)
        case = loads_case(text)
        if case is not None:
            cases.append(case)
    return cases


# -- history requests ------------------------------------------------------------------------

HISTORY_VALUES: list[Any] = [
    {"since": 1699996400.5},
    {"since": 0},
    {"since": 1700000000},
    {"streams": {"telemetry": {"offset": 41, "epoch": "e1"}}},
    {
        "since": 1.5,
        "streams": {"a": {"offset": -1, "epoch": "x"}, "b": {"offset": 0, "epoch": "y"}},
    },
    {"since": -1},
    {"since": "1h"},
    {"since": True},
    {"since": None},
    {},
    {"streams": {}},
    {"streams": []},
    {"streams": None},
    {"streams": {"s": []}},
    {"streams": {"s": {"offset": -2, "epoch": "e"}}},
    {"streams": {"s": {"offset": 1.5, "epoch": "e"}}},
    {"streams": {"s": {"offset": True, "epoch": "e"}}},
    {"streams": {"s": {"offset": 1, "epoch": ""}}},
    {"streams": {"s": {"offset": 1, "epoch": 5}}},
    {"streams": {"s": {"offset": 1}}},
    {"streams": {"s\ud800": {"offset": 1, "epoch": 5}}},
    [],
    "since",
    None,
    3.5,
]


def history_cases() -> list[dict[str, Any]]:
    cases = []
    for value in HISTORY_VALUES:
        case: dict[str, Any] = {"value": value}
        try:
            wire = HistoryRequest.from_wire(value).to_wire()
            case["wire"] = wire
            case["frame"] = JSON_CODEC.dumps(wire)
        except ProtocolError as exc:
            case["error"] = str(exc)
        cases.append(case)
    return cases


# -- malformed and odd server frames ----------------------------------------------------------

SUBSTITUTES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    7,
    1.5,
    1e300,
    "",
    "x",
    [],
    [1, 2],
    {},
    {"a": 1},
]
ABSENT = object()


def base_frames(subprotocol: Subprotocol) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = [
        {"type": "welcome", "sid": "sid-9", "restored": True, "restored_ids": [TELEMETRY]},
        {"type": "ping", "message": 1700000003},
        {"type": "confirm_subscription", "identifier": TELEMETRY, "meta": META},
        {"type": "reject_subscription", "identifier": TELEMETRY, "reason": "no"},
        {"type": "confirm_history", "identifier": TELEMETRY},
        {
            "type": "reject_history",
            "identifier": TELEMETRY,
            "reason": "gone",
            "stream_id": "telemetry",
            "epoch": "e1",
            "available_from": 100,
        },
        {"type": "disconnect", "reason": "server_restart", "reconnect": True},
        {"type": "broker", "state": "connected", "detail": "mqtt://x"},
        {"type": "error", "reason": "publish_failed", "message": "broker down"},
        {"identifier": TELEMETRY, "message": {"action": "publish_result", "ref": "1"}},
        {
            "identifier": TELEMETRY,
            "message": {"topic": "plant/lyon/pump1/env", "time": NOW + 0.5, "payload": {"t": 1}},
            "stream_id": "telemetry",
            "epoch": "e1",
            "offset": 5,
            "dropped": 2,
        },
        {
            "identifier": TELEMETRY,
            "batch": [
                [5, NOW + 0.5, "plant/lyon/pump1/env", {"t": 1}],
                [6, NOW + 0.25, "t", "raw", "bad"],
            ],
            "stream_id": "telemetry",
            "epoch": "e1",
            "dropped": 1,
        },
    ]
    return frames


def variants(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The frame with each member replaced by each substitute, or removed."""
    out = []
    for key in frame:
        for substitute in [ABSENT, *SUBSTITUTES]:
            changed = {k: v for k, v in frame.items() if k != key}
            if substitute is not ABSENT:
                changed[key] = substitute
            out.append(changed)
        if isinstance(frame[key], dict):
            for inner in frame[key]:
                for substitute in [ABSENT, *SUBSTITUTES]:
                    nested = {k: v for k, v in frame[key].items() if k != inner}
                    if substitute is not ABSENT:
                        nested[inner] = substitute
                    out.append({**frame, key: nested})
        if key == "batch":
            for index in range(5):
                for substitute in SUBSTITUTES:
                    row = list(frame["batch"][0])
                    if index < len(row):
                        row[index] = substitute
                    else:
                        row.append(substitute)
                    out.append({**frame, "batch": [row]})
    return out


def subscribed_client(subprotocol: Subprotocol) -> ClientConnection:
    client = ClientConnection(subprotocol=subprotocol, backoff=Backoff(rng=random.Random(0)))
    client.connection_opened(NOW)
    client.receive_text('{"type":"welcome","sid":"sid-1"}', NOW)
    client.subscribe("telemetry", topic="plant/+/+/env")
    client.receive_text(
        json.dumps({"type": "confirm_subscription", "identifier": TELEMETRY, "meta": META}), NOW
    )
    client.receive_text(
        json.dumps(
            {
                "identifier": TELEMETRY,
                "batch": [[1, NOW, "plant/lyon/pump1/env", {"t": 0}]],
                "stream_id": "telemetry",
                "epoch": "e1",
            }
        ),
        NOW,
    )
    client.events_received()
    client.data_to_send()
    return client


def frame_cases(rng: random.Random) -> list[dict[str, Any]]:
    cases = []
    for subprotocol in Subprotocol:
        texts: list[str] = []
        for frame in base_frames(subprotocol):
            texts.append(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))
            for changed in variants(frame):
                texts.append(json.dumps(changed, separators=(",", ":"), ensure_ascii=False))
        texts += ["[]", '"x"', "3", "null", "<html>", '{"type":7}', '{"type":"x\ud800y"}']
        texts += [mutate(rng, rng.choice(texts)) for _ in range(150)]
        seen: set[str] = set()
        for text in texts:
            if text in seen:
                continue
            seen.add(text)
            why = beyond_mirror(text, numbers=True)
            if why is not None:
                skip(f"frames: {why}")
                continue
            client = subscribed_client(subprotocol)
            client.receive_text(text, NOW)
            cases.append(
                {
                    "subprotocol": subprotocol.value,
                    "frame": text,
                    "events": [to_json(e) for e in client.events_received()],
                    "sent": client.data_to_send(),
                }
            )
    return cases


# -- random conversations ---------------------------------------------------------------------


class Conversation:
    """Drives a ClientConnection with random server frames; records transcript steps."""

    def __init__(self, rng: random.Random, subprotocol: Subprotocol, name: str) -> None:
        self.rng = rng
        self.subprotocol = subprotocol
        self.name = name
        self.client = ClientConnection(
            subprotocol=subprotocol, backoff=Backoff(rng=random.Random(0))
        )
        self.client.connection_opened(NOW)
        self.steps: list[dict[str, Any]] = []
        self.epoch = "e1"
        self.next_offset = 1
        self.sids = 1
        self.identifiers: list[str] = []

    def drain(self) -> None:
        for frame in self.client.data_to_send():
            self.steps.append({"from": "client", "frame": frame})
        for event in self.client.events_received():
            self.steps.append({"client_event": to_json(event)})

    def server(self, frame: dict[str, Any]) -> None:
        text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        self.steps.append({"from": "server", "frame": text})
        self.client.receive_text(text, NOW)
        self.drain()

    def does(self, method: str, **args: Any) -> None:
        self.steps.append({"client_does": method, "args": args})
        if method == "subscribe":
            history = args.get("history")
            self.client.subscribe(
                args["channel"],
                history=HistoryRequest.from_wire(history) if history is not None else None,
                **args.get("params", {}),
            )
        else:
            getattr(self.client, method)(**args)
        self.drain()

    def reconnect(self) -> None:
        self.sids += 1
        self.steps.append({"reconnect": {"sid": f"sid-{self.sids}"}})
        self.client.connection_lost(NOW)
        self.client.connection_opened(NOW)

    def confirmed(self) -> list[str]:
        return [i for i, s in self.client.subscriptions.items() if s.state.value == "confirmed"]

    def rows(self, identifier: str) -> None:
        rng = self.rng
        mode = rng.random()
        if mode < 0.5:  # live: the next offsets, with jumps
            start = self.next_offset
            offsets = sorted({start + rng.randint(0, 3) * k for k in range(rng.randint(1, 4))})
        elif mode < 0.75:  # a resend of offsets already sent
            top = max(self.next_offset - 1, 1)
            low = rng.randint(max(1, top - 8), top)
            offsets = list(range(low, min(top, low + rng.randint(0, 4)) + 1))
        else:  # a backfill below what was sent
            high = rng.randint(-3, 6)
            offsets = list(range(high - rng.randint(0, 3), high + 1))
        self.next_offset = max(self.next_offset, offsets[-1] + 1)
        rows = []
        for offset in offsets:
            topic = f"plant/lyon/pump{1 + offset % 2}/env"
            row: list[Any] = [offset, NOW + offset / 10, topic, {"temp": 20 + offset / 10}]
            if offset % 7 == 0:
                row = [offset, NOW + offset / 10, topic, "23,4", "payload is not JSON"]
            rows.append(row)
        dropped = rng.choice([0, 0, 0, 2])
        if self.subprotocol.batched:
            frame: dict[str, Any] = {
                "identifier": identifier,
                "batch": rows,
                "stream_id": "telemetry",
                "epoch": self.epoch,
            }
            if dropped:
                frame["dropped"] = dropped
            self.server(frame)
            return
        for index, row in enumerate(rows):
            message: dict[str, Any] = {"topic": row[2], "time": row[1], "payload": row[3]}
            if len(row) == 5:
                message["error"] = row[4]
            frame = {
                "identifier": identifier,
                "message": message,
                "stream_id": "telemetry",
                "epoch": self.epoch,
                "offset": row[0],
            }
            if dropped and index == 0:
                frame["dropped"] = dropped
            self.server(frame)

    def welcome(self) -> None:
        restored = self.subprotocol.extended and self.identifiers and self.rng.random() < 0.4
        if restored:
            kept = [i for i in self.identifiers if self.rng.random() < 0.8]
            self.server(
                {
                    "type": "welcome",
                    "sid": f"sid-{self.sids}",
                    "restored": True,
                    "restored_ids": kept,
                }
            )
        else:
            self.server({"type": "welcome", "sid": f"sid-{self.sids}"})

    def answer_subscribes(self) -> None:
        pending = [i for i, s in self.client.subscriptions.items() if s.state.value == "pending"]
        for identifier in pending:
            if self.rng.random() < 0.9:
                self.server(
                    {"type": "confirm_subscription", "identifier": identifier, "meta": META}
                )
            else:
                self.server(
                    {"type": "reject_subscription", "identifier": identifier, "reason": "no"}
                )

    def run(self) -> dict[str, Any]:
        rng = self.rng
        self.welcome()
        history = {"since": NOW - 60} if self.subprotocol.extended and rng.random() < 0.4 else None
        args: dict[str, Any] = {"channel": "telemetry", "params": {"topic": "plant/+/+/env"}}
        if history is not None:
            args["history"] = history
        self.does("subscribe", **args)
        self.identifiers.append(TELEMETRY)
        self.answer_subscribes()
        for _ in range(rng.randint(8, 30)):
            confirmed = self.confirmed()
            roll = rng.random()
            if roll < 0.45 and confirmed:
                self.rows(rng.choice(confirmed))
            elif roll < 0.55 and confirmed and self.subprotocol.extended:
                identifier = rng.choice(confirmed)
                if rng.random() < 0.5 and self.client.positions(identifier):
                    self.does("request_history", identifier=identifier)
                else:
                    self.does("request_history", identifier=identifier, since=NOW - 30.5)
            elif roll < 0.65 and self.identifiers:
                self.server({"type": "confirm_history", "identifier": rng.choice(self.identifiers)})
            elif roll < 0.72 and self.identifiers and self.subprotocol.extended:
                frame: dict[str, Any] = {
                    "type": "reject_history",
                    "identifier": rng.choice(self.identifiers),
                    "reason": "some readings are gone",
                }
                if rng.random() < 0.8:
                    frame["stream_id"] = "telemetry"
                    frame["epoch"] = rng.choice([self.epoch, self.epoch, "e9"])
                    frame["available_from"] = rng.choice(
                        [None, rng.randint(0, self.next_offset + 3)]
                    )
                self.server(frame)
            elif roll < 0.76:
                self.epoch = f"e{int(self.epoch[1:]) + 1}"
                self.next_offset = rng.randint(0, 3)
            elif roll < 0.85:
                if rng.random() < 0.3:
                    self.server(
                        {"type": "disconnect", "reason": "server_restart", "reconnect": True}
                    )
                self.reconnect()
                self.welcome()
                self.answer_subscribes()
            elif roll < 0.9 and "commands" not in str(self.identifiers):
                self.does("subscribe", channel="commands")
                self.identifiers.append(make_identifier("commands"))
                if self.client.connected:
                    self.answer_subscribes()
            elif roll < 0.93 and confirmed:
                identifier = rng.choice(confirmed)
                self.does("unsubscribe", identifier=identifier)
                self.identifiers.remove(identifier)
            elif roll < 0.96 and confirmed:
                self.does(
                    "perform",
                    identifier=rng.choice(confirmed),
                    action="publish",
                    data={"topic": "plant/lyon/pump1/cmd", "payload": {"speed": 40}, "ref": "1"},
                )
            else:
                self.server({"type": "ping", "message": 1700000003})
        transcript = {
            "name": self.name,
            "subprotocol": self.subprotocol.value,
            "sid": "sid-1",
            "description": "random conversation (labextension/test/python_cases.py)",
            "steps": self.steps,
        }
        replay_client(transcript)  # the recording replays against Python itself
        return transcript


def scenario_cases(rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for index in range(240):
        subprotocol = list(Subprotocol)[index % 3]
        out.append(Conversation(rng, subprotocol, f"random-{index}").run())
    return out


def main() -> None:
    rng = random.Random(20240611)
    transcripts = sorted((ROOT / "tests" / "transcripts").glob("*.json"))
    seeds = [
        step["frame"]
        for path in transcripts[:20]
        for step in json.loads(path.read_text())["steps"]
        if "frame" in step
    ]
    cases = {
        "literals": literals(),
        "identifiers": identifier_cases(),
        "repr": repr_cases(rng),
        "describe": describe_cases(),
        "excerpt": excerpt_cases(),
        "loads": loads_cases(rng, seeds),
        "history": history_cases(),
        "frames": frame_cases(rng),
        "scenarios": scenario_cases(rng),
    }
    cases["transcripts"] = sorted(path_for(name, sub).name for name, sub in every_transcript())
    cases["skipped"] = SKIPPED
    # ASCII only: lone surrogates travel as \u escapes, whatever the pipe's encoding.
    sys.stdout.write(json.dumps(cases, ensure_ascii=True, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
