"""Property tests: no input makes a machine raise, and every subscribe gets one answer."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_iotcable.protocol import (
    JSON_CODEC,
    ClientConnection,
    HistoryRequest,
    HistoryRequested,
    ProtocolError,
    ServerConnection,
    Subprotocol,
    SubscribeRequested,
    make_identifier,
    parse_identifier,
)
from jupyter_iotcable.protocol.codec import Codec
from jupyter_iotcable.protocol.commands import decode_action, decode_command
from jupyter_iotcable.protocol.messages import decode_json

FAST = settings(max_examples=150, deadline=None)

# Numbers of every size: past 64 bits, past what a float holds (10**400, whose float()
# overflows), infinities and NaN (json.dumps writes them as Infinity/NaN, which a strict
# codec refuses but a permissive one hands to the machines).
numbers = (
    st.integers()
    | st.integers(min_value=10**300, max_value=10**320)
    | st.integers(min_value=-(10**320), max_value=-(10**300))
    | st.floats()
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
identifiers = st.sampled_from(
    [make_identifier("telemetry"), make_identifier("a", topic="x/#"), '{"channel":""}', "junk"]
) | st.text(max_size=30)
histories = (
    st.none()
    | json_values
    | st.fixed_dictionaries({"since": numbers})
    | st.builds(
        lambda offset, epoch: {"streams": {"telemetry": {"offset": offset, "epoch": epoch}}},
        st.integers(-3, 5),
        st.text(max_size=3),
    )
)
commands = st.fixed_dictionaries(
    {"command": st.sampled_from(["subscribe", "unsubscribe", "message", "history", "pong", "x"])},
    optional={
        "identifier": identifiers | json_values,
        "data": st.sampled_from(['{"action":"publish","topic":"a"}', "{}", "[]"]) | json_values,
        "history": histories,
    },
)
# Commands that get past the envelope checks, so that each example reaches the history
# checks (the subscribed identifier, and one that is not subscribed yet).
history_commands = st.fixed_dictionaries(
    {
        "command": st.sampled_from(["subscribe", "history"]),
        "identifier": st.sampled_from([make_identifier("telemetry"), make_identifier("other")]),
        "history": histories,
    }
)
texts = st.text() | st.binary() | json_values.map(json.dumps)


class PermissiveCodec:
    """The stdlib's json as is: lets NaN, Infinity and 400-digit integers through.

    Our codecs refuse those, but a machine must not rely on its codec for that: it checks
    every number it uses (a client may inject any codec).
    """

    def dumps(self, obj: object) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    def loads(self, text: str | bytes) -> object:
        return json.loads(text)


CODECS: list[Codec] = [JSON_CODEC, PermissiveCodec()]
codecs = st.sampled_from(CODECS)


def server(subprotocol: Subprotocol, codec: Codec = JSON_CODEC) -> ServerConnection:
    """A welcomed connection with one confirmed subscription and nothing pending."""
    conn = ServerConnection(subprotocol, "s", codec=codec)
    conn.welcome()
    conn.receive_text(
        json.dumps({"command": "subscribe", "identifier": make_identifier("telemetry")})
    )
    conn.events_received()
    conn.confirm_subscription(make_identifier("telemetry"))
    conn.data_to_send()
    return conn


def check_answered(conn: ServerConnection, text: str | bytes) -> None:
    conn.receive_text(text)
    frames = conn.data_to_send()
    events = conn.events_received()
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        decoded = None
    # A pong is the one command accepted without any answer.
    silent_ok = isinstance(decoded, dict) and decoded.get("command") == "pong"
    assert frames or events or silent_ok, f"no answer to {text!r}"
    for frame in frames:
        frame.encode("utf-8")  # always writable to the socket
        decoded = json.loads(frame)
        assert isinstance(decoded, dict)
        if decoded.get("type") == "error":
            assert "identifier" not in decoded
            assert decoded["reason"] and decoded["message"]


@FAST
@given(st.sampled_from(list(Subprotocol)), codecs, texts)
def test_server_answers_any_text_and_never_raises(
    subprotocol: Subprotocol, codec: Codec, text: str | bytes
) -> None:
    check_answered(server(subprotocol, codec), text)


@FAST
@given(st.sampled_from(list(Subprotocol)), codecs, commands | history_commands)
def test_server_answers_any_command_and_never_raises(
    subprotocol: Subprotocol, codec: Codec, command: dict[str, Any]
) -> None:
    check_answered(server(subprotocol, codec), json.dumps(command))


@FAST
@given(json_values | st.text() | histories, codecs)
def test_decode_helpers_raise_only_protocol_errors(value: Any, codec: Codec) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    decoders: list[Callable[[], object]] = [
        lambda: parse_identifier(text),
        lambda: HistoryRequest.from_wire(value),
        lambda: decode_command(value),
        lambda: decode_action(value, codec),
        lambda: decode_action(text, codec),
        lambda: decode_json(text, codec),
    ]
    for decode in decoders:
        with contextlib.suppress(ProtocolError):
            decode()


batch_rows = st.builds(
    lambda offset, time, payload: [offset, time, "plant/a/b/env", payload],
    st.integers(-2, 5),
    numbers,
    json_values,
)
data_messages = st.fixed_dictionaries(
    {"topic": st.just("plant/a/b/env"), "time": numbers, "payload": json_values}
)
server_frames = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            [
                "welcome",
                "ping",
                "confirm_subscription",
                "reject_subscription",
                "disconnect",
                "confirm_history",
                "reject_history",
                "broker",
                "error",
                "other",
            ]
        )
        | json_values,
        "identifier": st.just(make_identifier("telemetry")) | json_values,
        # Well-shaped rows and messages too, so that the checks of their fields are reached.
        "batch": st.lists(batch_rows, max_size=3)
        | st.lists(st.lists(json_values, max_size=6), max_size=3)
        | json_values,
        "message": data_messages | json_values,
        "stream_id": st.just("telemetry") | json_values,
        "epoch": st.sampled_from(["e1", "e2"]) | json_values,
        "offset": st.integers(-2, 5) | json_values,
        "available_from": st.integers(-2, 5) | json_values,
        "dropped": st.integers(-1, 3) | json_values,
        "sid": json_values,
        "restored": json_values,
        "restored_ids": json_values,
        "reason": json_values,
        "reconnect": json_values,
        "meta": json_values,
    },
)


# Row frames for the subscribed identifier with every required field, so that each
# example reaches the checks of the rows themselves.
row_frames = st.fixed_dictionaries(
    {
        "identifier": st.just(make_identifier("telemetry")),
        "stream_id": st.just("telemetry"),
        "epoch": st.sampled_from(["e1", "e2"]),
    }
).flatmap(
    lambda head: st.one_of(
        st.builds(lambda rows: {**head, "batch": rows}, st.lists(batch_rows, max_size=3)),
        st.builds(
            lambda message, offset: {**head, "message": message, "offset": offset},
            data_messages,
            st.integers(-2, 5),
        ),
    )
)


@FAST
@given(
    st.sampled_from(list(Subprotocol)),
    codecs,
    texts | server_frames.map(json.dumps) | row_frames.map(json.dumps),
)
def test_client_never_raises_on_what_the_server_sends(
    subprotocol: Subprotocol, codec: Codec, text: str | bytes
) -> None:
    conn = ClientConnection(subprotocol=subprotocol, codec=codec)
    conn.connection_opened(0.0)
    conn.subscribe("telemetry")
    conn.receive_text('{"type":"welcome","sid":"s"}', 0.0)
    conn.receive_text(
        json.dumps({"type": "confirm_subscription", "identifier": make_identifier("telemetry")}),
        0.0,
    )
    conn.receive_text(text, 1.0)
    conn.events_received()
    for frame in conn.data_to_send():
        frame.encode("utf-8")


operations = st.lists(
    st.tuples(
        st.sampled_from(["subscribe", "unsubscribe", "confirm", "reject"]),
        st.sampled_from([make_identifier(c) for c in "abc"]),
    ),
    max_size=30,
)


@FAST
@given(st.sampled_from(list(Subprotocol)), operations)
def test_every_subscribe_gets_exactly_one_answer(
    subprotocol: Subprotocol, ops: list[tuple[str, str]]
) -> None:
    conn = ServerConnection(subprotocol, "s", max_subscriptions=2)
    conn.welcome()
    conn.data_to_send()
    waiting: list[str] = []  # SubscribeRequested not yet decided, in order
    subscribes: dict[str, int] = {}
    for op, identifier in ops:
        if op in ("subscribe", "unsubscribe"):
            subscribes[identifier] = subscribes.get(identifier, 0) + (op == "subscribe")
            conn.receive_text(json.dumps({"command": op, "identifier": identifier}))
            waiting += [
                e.identifier for e in conn.events_received() if isinstance(e, SubscribeRequested)
            ]
        elif waiting:
            decided = waiting.pop(0)
            if op == "confirm":
                conn.confirm_subscription(decided)
            else:
                conn.reject_subscription(decided, "no")
    for decided in waiting:
        conn.confirm_subscription(decided)
    answers: dict[str, int] = {}
    for frame in conn.data_to_send():
        decoded = json.loads(frame)
        if decoded.get("type") in ("confirm_subscription", "reject_subscription"):
            answers[decoded["identifier"]] = answers.get(decoded["identifier"], 0) + 1
    assert answers == {i: n for i, n in subscribes.items() if n}


history_operations = st.lists(
    st.tuples(
        st.sampled_from(["subscribe", "subscribe_history", "unsubscribe", "history", "decide"]),
        st.sampled_from([make_identifier(c) for c in "ab"]),
        st.booleans(),
    ),
    max_size=30,
)


@FAST
@given(st.sampled_from([Subprotocol.EXT, Subprotocol.IOTCABLE]), history_operations)
def test_every_history_request_the_application_sees_can_be_answered(
    subprotocol: Subprotocol, ops: list[tuple[str, str, bool]]
) -> None:
    """An application like the websocket handler never misuses the machine: it may take
    its time to decide subscriptions, and answers each HistoryRequested when it sees it;
    that request then always belongs to a confirmed subscription."""
    conn = ServerConnection(subprotocol, "s", max_subscriptions=2)
    conn.welcome()
    undecided: list[SubscribeRequested] = []
    history = {"since": 1.0}
    for op, identifier, confirm in ops:
        if op == "decide":
            if undecided:
                decide(conn, undecided.pop(0), confirm)
        else:
            command: dict[str, object] = {"command": op.partition("_")[0], "identifier": identifier}
            if op in ("subscribe_history", "history"):
                command["history"] = history
            conn.receive_text(json.dumps(command))
        undecided += handle_history(conn)
    while undecided:
        decide(conn, undecided.pop(0), True)
        undecided += handle_history(conn)


def handle_history(conn: ServerConnection) -> list[SubscribeRequested]:
    """Answer every HistoryRequested now (raises if the machine refuses the answer); return
    the subscriptions still to decide."""
    undecided = []
    for event in conn.events_received():
        if isinstance(event, HistoryRequested):
            assert conn.confirm_history(event.identifier)
        elif isinstance(event, SubscribeRequested):
            undecided.append(event)
    return undecided


def decide(conn: ServerConnection, event: SubscribeRequested, confirm: bool) -> None:
    if not confirm:
        conn.reject_subscription(event.identifier, "no")
    elif conn.confirm_subscription(event.identifier) and event.history is not None:
        assert conn.confirm_history(event.identifier)
