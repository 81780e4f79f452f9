"""ServerConnection: every rule of the server role, frame by frame."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import orjson
import pytest

from jupyter_iotcable.protocol import (
    PLAIN_HISTORY_REASON,
    ChannelRef,
    DisconnectReason,
    EncodedRows,
    HistoryRequest,
    HistoryRequested,
    LocalProtocolError,
    PerformRequested,
    ServerConnection,
    StreamPosition,
    Subprotocol,
    SubscribeRequested,
    UnsubscribeRequested,
    make_identifier,
)

if TYPE_CHECKING:
    from jupyter_iotcable.protocol import Row

ID = make_identifier("telemetry", topic="plant/+/+/env")
OTHER = make_identifier("commands")
ROWS: list[Row] = [
    (1, 100.0, "plant/a/b/env", {"t": 20.5}, None),
    (3, 101.0, "plant/a/c/env", "?", "bad"),
]


def connection(
    subprotocol: Subprotocol = Subprotocol.IOTCABLE, max_subscriptions: int = 100
) -> ServerConnection:
    conn = ServerConnection(subprotocol, "sid-1", max_subscriptions=max_subscriptions)
    conn.welcome()
    conn.data_to_send()
    return conn


def send(conn: ServerConnection, **command: object) -> None:
    conn.receive_text(json.dumps(command))


def sent(conn: ServerConnection) -> list[dict[str, object]]:
    return [json.loads(frame) for frame in conn.data_to_send()]


def subscribed(
    subprotocol: Subprotocol = Subprotocol.IOTCABLE, identifier: str = ID
) -> ServerConnection:
    conn = connection(subprotocol)
    send(conn, command="subscribe", identifier=identifier)
    conn.events_received()
    assert conn.confirm_subscription(identifier)
    conn.data_to_send()
    return conn


def error(code: str, message: str) -> dict[str, object]:
    return {"type": "error", "reason": code, "message": message}


# -- welcome, ping, ordering ---------------------------------------------------------------------


def test_welcome_is_the_first_frame() -> None:
    conn = ServerConnection(Subprotocol.PLAIN, "abc")
    assert not conn.welcomed
    conn.welcome()
    assert conn.welcomed
    assert conn.data_to_send() == ['{"type":"welcome","sid":"abc"}']
    assert conn.data_to_send() == []


@pytest.mark.parametrize("subprotocol", [Subprotocol.EXT, Subprotocol.IOTCABLE])
def test_restored_welcome_counts_restored_ids_as_confirmed(subprotocol: Subprotocol) -> None:
    conn = ServerConnection(subprotocol, "abc")
    conn.welcome([ID, OTHER, ID], meta={ID: {"format": "json"}})
    assert conn.data_to_send() == [
        json.dumps(
            {"type": "welcome", "sid": "abc", "restored": True, "restored_ids": [ID, OTHER]},
            separators=(",", ":"),
        )
    ]
    assert conn.subscriptions == {
        ID: ChannelRef("telemetry", {"topic": "plant/+/+/env"}),
        OTHER: ChannelRef("commands", {}),
    }
    # A client that did not notice the resume subscribes again: confirmed, app not bothered.
    send(conn, command="subscribe", identifier=ID)
    assert conn.events_received() == []
    expected: dict[str, object] = {"type": "confirm_subscription", "identifier": ID}
    if subprotocol is Subprotocol.IOTCABLE:
        expected["meta"] = {"format": "json"}
    assert sent(conn) == [expected]


def test_restored_welcome_takes_refs_the_caller_already_holds() -> None:
    conn = ServerConnection(Subprotocol.IOTCABLE, "abc")
    ref = ChannelRef("telemetry", {"topic": "plant/+/+/env"})
    conn.welcome({ID: ref})
    assert conn.subscriptions == {ID: ref}
    assert json.loads(conn.data_to_send()[0])["restored_ids"] == [ID]


def test_restored_welcome_misuse() -> None:
    with pytest.raises(
        LocalProtocolError,
        match="a restored welcome needs an extended subprotocol, not actioncable-v1-json",
    ):
        ServerConnection(Subprotocol.PLAIN, "abc").welcome([ID])
    with pytest.raises(
        LocalProtocolError, match='restored identifier is invalid: identifier needs a "channel"'
    ):
        ServerConnection(Subprotocol.EXT, "abc").welcome(["{}"])
    conn = connection()
    with pytest.raises(
        LocalProtocolError, match="welcome\\(\\) was already sent on this connection"
    ):
        conn.welcome()


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda c: c.ping(1.0), "ping"),
        (lambda c: c.receive_text("{}"), "receive_text"),
        (lambda c: c.broker_event("connected", "ok"), "broker_event"),
        (lambda c: c.error("oops", "x"), "error"),
        (lambda c: c.transmit(ID, {}), "transmit"),
        (lambda c: c.confirm_subscription(ID), "confirm_subscription"),
    ],
)
def test_nothing_before_the_welcome(call: object, name: str) -> None:
    conn = ServerConnection(Subprotocol.EXT, "abc")
    with pytest.raises(
        LocalProtocolError, match=f"{name}\\(\\) before welcome\\(\\): the welcome comes first"
    ):
        call(conn)  # type: ignore[operator]


def test_a_connection_can_be_refused_without_a_welcome() -> None:
    conn = ServerConnection(Subprotocol.PLAIN, "abc")
    conn.disconnect(DisconnectReason.UNAUTHORIZED, reconnect=False)
    assert conn.data_to_send() == [
        '{"type":"disconnect","reason":"unauthorized","reconnect":false}'
    ]
    assert conn.closed


def test_ping_carries_whole_unix_seconds() -> None:
    conn = connection()
    conn.ping(1700000000.987)
    assert conn.data_to_send() == ['{"type":"ping","message":1700000000}']


def test_pong_is_accepted_and_ignored() -> None:
    conn = connection()
    send(conn, command="pong")
    assert conn.data_to_send() == []
    assert conn.events_received() == []


# -- subscribe -----------------------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", list(Subprotocol))
def test_subscribe_then_confirm(subprotocol: Subprotocol) -> None:
    conn = connection(subprotocol)
    send(conn, command="subscribe", identifier=ID)
    assert conn.events_received() == [
        SubscribeRequested(ID, ChannelRef("telemetry", {"topic": "plant/+/+/env"}), None)
    ]
    assert conn.data_to_send() == []
    assert conn.subscriptions == {}
    assert conn.confirm_subscription(ID, {"columns": "plant/{site}/{device}/env"}) is True
    expected: dict[str, object] = {"type": "confirm_subscription", "identifier": ID}
    if subprotocol is Subprotocol.IOTCABLE:  # meta is an iotcable addition
        expected["meta"] = {"columns": "plant/{site}/{device}/env"}
    assert sent(conn) == [expected]
    assert list(conn.subscriptions) == [ID]


def test_the_identifier_is_echoed_byte_for_byte() -> None:
    odd = '{ "topic" : "a/\\u00e9",\n"channel":"telemetry" }'
    conn = connection()
    send(conn, command="subscribe", identifier=odd)
    conn.confirm_subscription(odd)
    assert sent(conn) == [{"type": "confirm_subscription", "identifier": odd}]
    assert conn.subscriptions[odd] == ChannelRef("telemetry", {"topic": "a/é"})


def test_reject_subscription_with_a_reason() -> None:
    conn = connection()
    send(conn, command="subscribe", identifier=ID)
    conn.reject_subscription(ID, "channel telemetry: you may not read plant/+/+/env")
    assert sent(conn) == [
        {
            "type": "reject_subscription",
            "identifier": ID,
            "reason": "channel telemetry: you may not read plant/+/+/env",
        }
    ]
    assert conn.subscriptions == {}
    send(conn, command="subscribe", identifier=ID)
    with pytest.raises(LocalProtocolError, match="reject_subscription needs a human reason"):
        conn.reject_subscription(ID, "")


def test_a_bad_identifier_is_rejected_without_bothering_the_application() -> None:
    conn = connection()
    send(conn, command="subscribe", identifier='{"chanel":"telemetry"}')
    assert conn.events_received() == []
    assert sent(conn) == [
        {
            "type": "reject_subscription",
            "identifier": '{"chanel":"telemetry"}',
            "reason": 'identifier needs a "channel" string of 1 to 200 characters, got null',
        }
    ]


def test_duplicate_of_a_confirmed_subscription_is_confirmed_again() -> None:
    conn = connection()
    send(conn, command="subscribe", identifier=ID)
    conn.events_received()
    conn.confirm_subscription(ID, {"format": "json"})
    conn.data_to_send()
    send(conn, command="subscribe", identifier=ID)
    assert conn.events_received() == []
    assert sent(conn) == [
        {"type": "confirm_subscription", "identifier": ID, "meta": {"format": "json"}}
    ]


@pytest.mark.parametrize("answer", ["confirm", "reject"])
def test_duplicates_of_a_pending_subscribe_are_answered_with_it(answer: str) -> None:
    conn = connection(Subprotocol.PLAIN)
    for _ in range(3):  # @rails/actioncable retries every 500 ms until it hears back
        send(conn, command="subscribe", identifier=ID)
    assert len(conn.events_received()) == 1
    assert conn.data_to_send() == []
    if answer == "confirm":
        conn.confirm_subscription(ID)
        assert sent(conn) == [{"type": "confirm_subscription", "identifier": ID}] * 3
    else:
        conn.reject_subscription(ID, "no")
        assert sent(conn) == [{"type": "reject_subscription", "identifier": ID, "reason": "no"}] * 3


def test_answering_a_subscribe_nobody_sent_is_a_local_error() -> None:
    conn = subscribed()
    with pytest.raises(LocalProtocolError, match="no subscribe for it is waiting for an answer"):
        conn.confirm_subscription(ID)
    with pytest.raises(LocalProtocolError, match="no subscribe for it is waiting for an answer"):
        conn.reject_subscription(OTHER, "no")


def test_max_subscriptions_rejects_the_extra_one_but_not_duplicates() -> None:
    conn = connection(max_subscriptions=2)
    for channel in ("a", "b"):
        send(conn, command="subscribe", identifier=make_identifier(channel))
    send(conn, command="subscribe", identifier=make_identifier("a"))  # duplicate: waits
    send(conn, command="subscribe", identifier=make_identifier("c"))
    assert [e.ref.channel for e in conn.events_received() if isinstance(e, SubscribeRequested)] == [
        "a",
        "b",
    ]
    assert sent(conn) == [
        {
            "type": "reject_subscription",
            "identifier": '{"channel":"c"}',
            "reason": "too many subscriptions on this connection (the limit is 2)",
        }
    ]


# -- unsubscribe ---------------------------------------------------------------------------------


def test_unsubscribe_gets_no_reply() -> None:
    conn = subscribed()
    send(conn, command="unsubscribe", identifier=ID)
    assert conn.events_received() == [UnsubscribeRequested(ID)]
    assert conn.data_to_send() == []
    assert conn.subscriptions == {}
    assert conn.send_rows(ID, "telemetry", "e1", ROWS) is False
    assert conn.data_to_send() == []


def test_unsubscribe_while_pending_still_gets_the_answer_but_no_subscription() -> None:
    conn = connection()
    send(conn, command="subscribe", identifier=ID)
    send(conn, command="unsubscribe", identifier=ID)
    assert conn.events_received() == [
        SubscribeRequested(ID, ChannelRef("telemetry", {"topic": "plant/+/+/env"}), None)
    ]
    assert conn.data_to_send() == []
    assert conn.confirm_subscription(ID) is False  # do not register the subscriber
    assert sent(conn) == [{"type": "confirm_subscription", "identifier": ID}]
    assert conn.subscriptions == {}


def test_subscribe_again_before_the_answer_undoes_the_unsubscribe() -> None:
    conn = connection()
    send(conn, command="subscribe", identifier=ID)
    send(conn, command="unsubscribe", identifier=ID)
    send(conn, command="subscribe", identifier=ID)
    assert len(conn.events_received()) == 1
    assert conn.confirm_subscription(ID) is True
    assert sent(conn) == [{"type": "confirm_subscription", "identifier": ID}] * 2
    assert list(conn.subscriptions) == [ID]


NOT_SUBSCRIBED = "is not subscribed on this connection; send it after confirm_subscription"
STILL_PENDING = "is still waiting for confirm_subscription; send it after confirm_subscription"
NOTHING_TO_UNSUBSCRIBE = (
    "is not subscribed on this connection; there is nothing to unsubscribe "
    "(it was never subscribed here, or is unsubscribed already)"
)


@pytest.mark.parametrize("command", ["message", "history"])
def test_commands_for_unknown_identifiers_are_errors(command: str) -> None:
    conn = connection()
    send(conn, command=command, identifier=OTHER, data='{"action":"x"}', history={"since": 1})
    assert sent(conn) == [
        error("not_subscribed", f'"{command}" for identifier "{OTHER}", which {NOT_SUBSCRIBED}')
    ]
    assert conn.events_received() == []


def test_unsubscribing_what_is_not_subscribed_says_there_is_nothing_to_unsubscribe() -> None:
    conn = connection()
    send(conn, command="unsubscribe", identifier=OTHER)
    send(conn, command="subscribe", identifier=ID)
    send(conn, command="unsubscribe", identifier=ID)  # withdrawn while pending: accepted
    send(conn, command="unsubscribe", identifier=ID)  # twice: nothing left to withdraw
    unsubscribe_error = '"unsubscribe" for identifier "{}", which ' + NOTHING_TO_UNSUBSCRIBE
    assert sent(conn) == [
        error("not_subscribed", unsubscribe_error.format(OTHER)),
        error("not_subscribed", unsubscribe_error.format(ID)),
    ]


@pytest.mark.parametrize("command", ["message", "history"])
def test_commands_for_pending_identifiers_are_errors(command: str) -> None:
    conn = connection()
    send(conn, command="subscribe", identifier=ID)
    conn.events_received()
    send(conn, command=command, identifier=ID, data='{"action":"x"}', history={"since": 1})
    assert sent(conn) == [
        error("not_subscribed", f'"{command}" for identifier "{ID}", which {STILL_PENDING}')
    ]
    assert conn.events_received() == []


def test_long_identifiers_are_cut_in_error_messages() -> None:
    conn = connection()
    long_id = make_identifier("x" * 100)
    send(conn, command="unsubscribe", identifier=long_id)
    assert sent(conn) == [
        error(
            "not_subscribed",
            f'"unsubscribe" for identifier "{long_id[:57]}...", which {NOTHING_TO_UNSUBSCRIBE}',
        )
    ]


# -- message -------------------------------------------------------------------------------------


def test_message_becomes_perform_requested() -> None:
    conn = subscribed()
    data = {"action": "publish", "topic": "plant/a/b/cmd", "payload": {"speed": 40}, "ref": "7"}
    send(conn, command="message", identifier=ID, data=json.dumps(data))
    assert conn.events_received() == [
        PerformRequested(
            ID, "publish", {"topic": "plant/a/b/cmd", "payload": {"speed": 40}, "ref": "7"}
        )
    ]
    assert conn.data_to_send() == []


def test_message_with_bad_data_is_an_invalid_data_error() -> None:
    conn = subscribed()
    send(conn, command="message", identifier=ID, data={"action": "publish"})
    assert sent(conn) == [
        error(
            "invalid_data",
            '"message" needs "data": a JSON string encoding an object with a string "action", '
            'like "{\\"action\\":\\"publish\\",\\"topic\\":\\"a/b\\",\\"payload\\":1}"; '
            "got an object",
        )
    ]
    assert conn.events_received() == []


def test_transmit_answers_one_subscription() -> None:
    conn = subscribed()
    assert conn.transmit(ID, {"action": "publish_result", "ref": "7", "ok": True, "topic": "a/b"})
    assert conn.data_to_send() == [
        '{"identifier":"{\\"channel\\":\\"telemetry\\",\\"topic\\":\\"plant/+/+/env\\"}",'
        '"message":{"action":"publish_result","ref":"7","ok":true,"topic":"a/b"}}'
    ]
    assert conn.transmit(OTHER, {"x": 1}) is False


# -- history -------------------------------------------------------------------------------------

HISTORY = {"streams": {"telemetry": {"offset": 41, "epoch": "e1"}}}
REQUEST = HistoryRequest(streams={"telemetry": StreamPosition("e1", 41)})


@pytest.mark.parametrize("subprotocol", [Subprotocol.EXT, Subprotocol.IOTCABLE])
def test_subscribe_with_history_then_rows_then_confirm_history(subprotocol: Subprotocol) -> None:
    conn = connection(subprotocol)
    send(conn, command="subscribe", identifier=ID, history=HISTORY)
    [event] = conn.events_received()
    assert event == SubscribeRequested(
        ID, ChannelRef("telemetry", {"topic": "plant/+/+/env"}), REQUEST
    )
    with pytest.raises(
        LocalProtocolError,
        match="before confirm_subscription: the client must see the confirm first",
    ):
        conn.confirm_history(ID)
    conn.confirm_subscription(ID)
    conn.send_rows(ID, "telemetry", "e1", ROWS)
    assert conn.confirm_history(ID) is True
    frames = sent(conn)
    assert frames[0]["type"] == "confirm_subscription"
    assert frames[-1] == {"type": "confirm_history", "identifier": ID}
    with pytest.raises(LocalProtocolError, match="no history request is waiting for an answer"):
        conn.confirm_history(ID)


@pytest.mark.parametrize("subprotocol", [Subprotocol.EXT, Subprotocol.IOTCABLE])
def test_history_command(subprotocol: Subprotocol) -> None:
    conn = subscribed(subprotocol)
    send(conn, command="history", identifier=ID, history={"since": 1700000000})
    assert conn.events_received() == [HistoryRequested(ID, HistoryRequest(since=1700000000.0))]
    assert conn.reject_history(
        ID,
        "offsets 42..99 of stream telemetry are gone",
        stream_id="telemetry",
        epoch="e2",
        available_from=100,
    )
    assert sent(conn) == [
        {
            "type": "reject_history",
            "identifier": ID,
            "reason": "offsets 42..99 of stream telemetry are gone",
            "stream_id": "telemetry",
            "epoch": "e2",
            "available_from": 100,
        }
    ]


def test_reject_history_about_an_empty_stream_says_null() -> None:
    conn = subscribed(Subprotocol.EXT)
    send(conn, command="history", identifier=ID, history={"since": 1})
    conn.reject_history(ID, "nothing kept", stream_id="telemetry", epoch="e2")
    assert conn.data_to_send() == [
        '{"type":"reject_history","identifier":"{\\"channel\\":\\"telemetry\\",\\"topic\\":\\"plant/+/+/env\\"}",'
        '"reason":"nothing kept","stream_id":"telemetry","epoch":"e2","available_from":null}'
    ]


def test_reject_history_argument_rules() -> None:
    conn = subscribed(Subprotocol.EXT)
    with pytest.raises(
        LocalProtocolError, match="reject_history takes stream_id and epoch together"
    ):
        conn.reject_history(ID, "x", stream_id="telemetry")
    with pytest.raises(
        LocalProtocolError, match="reject_history takes available_from only with stream_id"
    ):
        conn.reject_history(ID, "x", available_from=3)
    with pytest.raises(LocalProtocolError, match="reject_history needs a human reason"):
        conn.reject_history(ID, "")


def test_plain_clients_get_reject_history() -> None:
    conn = subscribed(Subprotocol.PLAIN)
    send(conn, command="history", identifier=ID, history=HISTORY)
    send(conn, command="subscribe", identifier=OTHER, history=HISTORY)
    events = conn.events_received()
    assert events == [SubscribeRequested(OTHER, ChannelRef("commands", {}), None)]
    conn.confirm_subscription(OTHER)
    assert sent(conn) == [
        {"type": "reject_history", "identifier": ID, "reason": PLAIN_HISTORY_REASON},
        {"type": "confirm_subscription", "identifier": OTHER},
        {"type": "reject_history", "identifier": OTHER, "reason": PLAIN_HISTORY_REASON},
    ]
    assert (
        PLAIN_HISTORY_REASON
        == "history needs the actioncable-v1-ext-json or iotcable-v1-json subprotocol"
    )


def test_bad_history_is_rejected_by_the_machine() -> None:
    conn = subscribed(Subprotocol.EXT)
    send(conn, command="history", identifier=ID, history={"since": "1h"})
    send(conn, command="subscribe", identifier=OTHER, history=[])
    assert conn.events_received() == [SubscribeRequested(OTHER, ChannelRef("commands", {}), None)]
    conn.confirm_subscription(OTHER)
    example = '{"since": 1700000000} or {"streams": {"telemetry": {"offset": 41, "epoch": "e1"}}}'
    assert sent(conn) == [
        {
            "type": "reject_history",
            "identifier": ID,
            "reason": 'history "since" must be unix seconds (a finite number >= 0), '
            'got the string "1h"',
        },
        {"type": "confirm_subscription", "identifier": OTHER},
        {
            "type": "reject_history",
            "identifier": OTHER,
            "reason": f"history must be an object like {example}, got an array",
        },
    ]


class PermissiveCodec:
    """A codec that lets through what ours refuse (NaN, Infinity, 400-digit integers)."""

    def dumps(self, obj: object) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    def loads(self, text: str | bytes) -> object:
        return json.loads(text)


HUGE = "1" + "0" * 400  # beyond the largest 64-bit float


def test_a_number_beyond_a_float_in_history_is_answered_not_raised() -> None:
    conn = subscribed(Subprotocol.EXT)
    conn.receive_text(
        f'{{"command":"history","identifier":{json.dumps(ID)},"history":{{"since":{HUGE}}}}}'
    )
    conn.receive_text(
        f'{{"command":"subscribe","identifier":{json.dumps(OTHER)},"history":{{"since":1e400}}}}'
    )
    assert conn.events_received() == []
    assert [frame["message"] for frame in sent(conn)] == [
        f"frame is not usable JSON: the number {HUGE[:17]}... does not fit a 64-bit float",
        "frame is not usable JSON: the number 1e400 does not fit a 64-bit float",
    ]


@pytest.mark.parametrize("number", [HUGE, "1e400", "-Infinity", "NaN"])
def test_a_codec_that_lets_huge_numbers_through_still_gets_reject_history(number: str) -> None:
    conn = ServerConnection(Subprotocol.EXT, "sid-1", codec=PermissiveCodec())
    conn.welcome()
    send(conn, command="subscribe", identifier=ID)
    conn.events_received()
    conn.confirm_subscription(ID)
    conn.data_to_send()
    conn.receive_text(
        f'{{"command":"history","identifier":{json.dumps(ID)},"history":{{"since":{number}}}}}'
    )
    conn.receive_text(
        f'{{"command":"subscribe","identifier":{json.dumps(OTHER)},"history":{{"since":{number}}}}}'
    )
    assert conn.events_received() == [SubscribeRequested(OTHER, ChannelRef("commands", {}), None)]
    conn.confirm_subscription(OTHER)
    reasons = [frame.get("reason") for frame in sent(conn)]
    shown = {"1e400": "inf", "-Infinity": "-inf", "NaN": "nan"}.get(number, HUGE[:57] + "...")
    reason = f'history "since" must be unix seconds (a finite number >= 0), got {shown}'
    assert reasons == [reason, None, reason]


def test_duplicate_subscribe_with_history_asks_the_application_for_the_history_only() -> None:
    conn = subscribed(Subprotocol.EXT)
    send(conn, command="subscribe", identifier=ID, history=HISTORY)
    assert conn.events_received() == [HistoryRequested(ID, REQUEST)]
    assert sent(conn) == [{"type": "confirm_subscription", "identifier": ID}]
    assert conn.confirm_history(ID)


TELEMETRY_REF = ChannelRef("telemetry", {"topic": "plant/+/+/env"})


def test_a_pending_duplicates_history_is_asked_for_once_confirmed() -> None:
    conn = connection(Subprotocol.EXT)
    send(conn, command="subscribe", identifier=ID)
    send(conn, command="subscribe", identifier=ID, history=HISTORY)
    # The history must not reach the application before the subscription is decided.
    assert conn.events_received() == [SubscribeRequested(ID, TELEMETRY_REF, None)]
    assert conn.confirm_subscription(ID) is True
    assert conn.events_received() == [HistoryRequested(ID, REQUEST)]
    conn.send_rows(ID, "telemetry", "e1", ROWS)
    assert conn.confirm_history(ID) is True
    frames = sent(conn)
    assert frames[:2] == [{"type": "confirm_subscription", "identifier": ID}] * 2
    assert frames[-1] == {"type": "confirm_history", "identifier": ID}


def test_a_pending_duplicates_history_dies_with_a_reject() -> None:
    # /tmp/audit2/stale_hist.py: the history of a rejected subscription outlived it and,
    # after the client subscribed again, its answer hit the new pending subscription.
    conn = connection(Subprotocol.EXT)
    send(conn, command="subscribe", identifier=ID)
    send(conn, command="subscribe", identifier=ID, history=HISTORY)
    assert conn.events_received() == [SubscribeRequested(ID, TELEMETRY_REF, None)]
    conn.reject_subscription(ID, "no")
    send(conn, command="subscribe", identifier=ID)
    assert conn.events_received() == [SubscribeRequested(ID, TELEMETRY_REF, None)]
    assert conn.confirm_subscription(ID) is True
    assert conn.events_received() == []
    with pytest.raises(LocalProtocolError, match="no history request is waiting for an answer"):
        conn.confirm_history(ID)
    assert sent(conn) == [
        {"type": "reject_subscription", "identifier": ID, "reason": "no"},
        {"type": "reject_subscription", "identifier": ID, "reason": "no"},
        {"type": "confirm_subscription", "identifier": ID},
    ]


def test_a_pending_duplicates_history_is_dropped_if_the_client_unsubscribed() -> None:
    conn = connection(Subprotocol.EXT)
    send(conn, command="subscribe", identifier=ID)
    send(conn, command="subscribe", identifier=ID, history=HISTORY)
    send(conn, command="unsubscribe", identifier=ID)
    conn.events_received()
    assert conn.confirm_subscription(ID) is False
    assert conn.events_received() == []
    assert sent(conn) == [{"type": "confirm_subscription", "identifier": ID}] * 2


def test_history_answers_after_an_unsubscribe_are_dropped() -> None:
    conn = subscribed(Subprotocol.EXT)
    send(conn, command="history", identifier=ID, history=HISTORY)
    send(conn, command="unsubscribe", identifier=ID)
    assert conn.confirm_history(ID) is False
    assert conn.reject_history(ID, "gone", stream_id="telemetry", epoch="e1") is False
    assert conn.data_to_send() == []


# -- rows ----------------------------------------------------------------------------------------


def test_rows_on_iotcable_are_one_batch_frame() -> None:
    conn = subscribed(Subprotocol.IOTCABLE)
    assert conn.send_rows(ID, "telemetry", "e1", ROWS, dropped=4)
    assert sent(conn) == [
        {
            "identifier": ID,
            "batch": [
                [1, 100.0, "plant/a/b/env", {"t": 20.5}],
                [3, 101.0, "plant/a/c/env", "?", "bad"],
            ],
            "stream_id": "telemetry",
            "epoch": "e1",
            "dropped": 4,
        }
    ]


@pytest.mark.parametrize("subprotocol", [Subprotocol.PLAIN, Subprotocol.EXT])
def test_rows_on_actioncable_are_data_frames(subprotocol: Subprotocol) -> None:
    conn = subscribed(subprotocol)
    conn.send_rows(
        ID, "telemetry", "e1", ROWS, dropped=4, columns=lambda t: {"site": t.split("/")[1]}
    )
    assert sent(conn) == [
        {
            "identifier": ID,
            "message": {
                "topic": "plant/a/b/env",
                "time": 100.0,
                "payload": {"t": 20.5},
                "columns": {"site": "a"},
            },
            "stream_id": "telemetry",
            "epoch": "e1",
            "offset": 1,
            "dropped": 4,
        },
        {
            "identifier": ID,
            "message": {
                "topic": "plant/a/c/env",
                "time": 101.0,
                "payload": "?",
                "columns": {"site": "a"},
                "error": "bad",
            },
            "stream_id": "telemetry",
            "epoch": "e1",
            "offset": 3,
        },
    ]


@pytest.mark.parametrize("subprotocol", list(Subprotocol))
def test_encode_rows_and_send_encoded_match_send_rows(subprotocol: Subprotocol) -> None:
    conn = subscribed(subprotocol)
    conn.send_rows(ID, "telemetry", "e1", ROWS, dropped=2)
    direct = conn.data_to_send()
    assert conn.encode_rows(ID, "telemetry", "e1", ROWS, dropped=2) == direct
    assert conn.data_to_send() == []  # encode_rows queues nothing
    shared = EncodedRows.encode(subprotocol, "telemetry", "e1", ROWS)
    assert conn.send_encoded(ID, shared, dropped=2)
    assert conn.data_to_send() == direct


def test_send_encoded_refuses_the_other_family() -> None:
    conn = subscribed(Subprotocol.EXT)
    batch = EncodedRows.encode(Subprotocol.IOTCABLE, "telemetry", "e1", ROWS)
    with pytest.raises(
        LocalProtocolError,
        match="rows encoded as a batch cannot go to a actioncable-v1-ext-json connection",
    ):
        conn.send_encoded(ID, batch)


def test_rows_for_a_pending_subscription_are_a_local_error() -> None:
    conn = connection()
    send(conn, command="subscribe", identifier=ID)
    with pytest.raises(LocalProtocolError, match=r"send_rows.* before confirm_subscription"):
        conn.send_rows(ID, "telemetry", "e1", ROWS)


# -- broker, error, disconnect -------------------------------------------------------------------


def test_broker_event() -> None:
    conn = connection()
    conn.broker_event("reconnecting", "connection refused by 127.0.0.1:1883; retry in 2.0 s")
    assert conn.data_to_send() == [
        '{"type":"broker","state":"reconnecting",'
        '"detail":"connection refused by 127.0.0.1:1883; retry in 2.0 s"}'
    ]
    with pytest.raises(
        LocalProtocolError,
        match="broker state must be one of connecting, connected, reconnecting, disconnected, "
        "got 'up'",
    ):
        conn.broker_event("up", "")


def test_application_error_frame() -> None:
    conn = connection()
    conn.error("publish_failed", "the broker is not connected")
    assert sent(conn) == [error("publish_failed", "the broker is not connected")]
    with pytest.raises(LocalProtocolError, match="error code must be snake_case, got 'Bad Code'"):
        conn.error("Bad Code", "x")


@pytest.mark.parametrize(
    ("reason", "reconnect"),
    [
        (DisconnectReason.UNAUTHORIZED, False),
        (DisconnectReason.INVALID_REQUEST, False),
        (DisconnectReason.INVALID_REQUEST, True),
        (DisconnectReason.SERVER_RESTART, True),
        (DisconnectReason.TOO_SLOW, True),
        (DisconnectReason.TOKEN_EXPIRED, False),
    ],
)
def test_disconnect_is_the_last_frame(reason: DisconnectReason, reconnect: bool) -> None:
    conn = subscribed()
    conn.disconnect(reason, reconnect=reconnect)
    assert sent(conn) == [{"type": "disconnect", "reason": reason.value, "reconnect": reconnect}]
    assert conn.closed
    send(conn, command="subscribe", identifier=OTHER)
    conn.receive_text("not json")
    conn.ping(1.0)
    conn.broker_event("connected", "")
    conn.error("x", "y")
    conn.disconnect(DisconnectReason.SERVER_RESTART, reconnect=True)
    assert conn.send_rows(ID, "telemetry", "e1", ROWS) is False
    assert conn.transmit(ID, {}) is False
    assert conn.data_to_send() == []
    assert conn.events_received() == []


@pytest.mark.parametrize(
    ("reason", "reconnect"),
    [
        ("unauthorized", True),
        ("token_expired", True),
        ("server_restart", False),
        ("too_slow", False),
    ],
)
def test_disconnect_reconnect_flag_follows_the_spec(reason: str, reconnect: bool) -> None:
    conn = connection()
    with pytest.raises(
        LocalProtocolError, match=f"disconnect {reason} must say reconnect={not reconnect}"
    ):
        conn.disconnect(DisconnectReason(reason), reconnect=reconnect)
    with pytest.raises(LocalProtocolError, match="disconnect reason must be one of unauthorized, "):
        conn.disconnect("bye", reconnect=True)  # type: ignore[arg-type]
    assert not conn.closed


# -- bad input is answered, never raised -----------------------------------------------------------

COMMANDS = "subscribe, unsubscribe, message, history, pong"
FRAME_EXAMPLE = '{"command":"subscribe","identifier":"{\\"channel\\":\\"telemetry\\"}"}'


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("hello", "malformed_json", "frame is not JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            b"\xc3(",
            "malformed_json",
            "frame is not valid UTF-8: invalid continuation byte at byte 0",
        ),
        (
            "[1]",
            "invalid_command",
            f"every frame must be a JSON object like {FRAME_EXAMPLE}, got an array",
        ),
        (
            '{"identifier":"x"}',
            "invalid_command",
            f'frame needs a "command" string (one of {COMMANDS}), got null',
        ),
        (
            '{"command":"perform"}',
            "unknown_command",
            f'unknown command "perform"; expected one of {COMMANDS}',
        ),
        (
            '{"command":"subscribe","identifier":{"channel":"x"}}',
            "bad_identifier",
            '"subscribe" needs an "identifier" string like "{\\"channel\\":\\"telemetry\\"}", '
            "got an object",
        ),
    ],
)
def test_bad_frames_get_an_error_frame_and_the_connection_goes_on(
    text: str | bytes, code: str, message: str
) -> None:
    conn = subscribed()
    conn.receive_text(text)
    assert conn.data_to_send() == [
        json.dumps(error(code, message), separators=(",", ":"), ensure_ascii=False)
    ]
    assert conn.events_received() == []
    assert conn.transmit(ID, {"still": "alive"})


def test_bytes_frames_are_utf8() -> None:
    conn = connection()
    conn.receive_text(
        json.dumps({"command": "subscribe", "identifier": make_identifier("é")}).encode()
    )
    [event] = conn.events_received()
    assert isinstance(event, SubscribeRequested)
    assert event.ref.channel == "é"


class OrjsonCodec:
    """What the server layer injects; frames must not depend on the codec."""

    def dumps(self, obj: object) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, text: str | bytes) -> object:
        return orjson.loads(text)


@pytest.mark.parametrize("subprotocol", list(Subprotocol))
def test_an_orjson_codec_produces_the_same_frames(subprotocol: Subprotocol) -> None:
    def script(conn: ServerConnection) -> list[str]:
        conn.welcome()
        send(conn, command="subscribe", identifier=make_identifier("télé", topic="a/#"))
        conn.confirm_subscription(make_identifier("télé", topic="a/#"), {"format": "json"})
        conn.send_rows(make_identifier("télé", topic="a/#"), "télé", "e1", ROWS, dropped=1)
        conn.receive_text("{bad")
        conn.ping(5.5)
        conn.disconnect(DisconnectReason.SERVER_RESTART, reconnect=True)
        return conn.data_to_send()

    stdlib = script(ServerConnection(subprotocol, "s"))
    fast = script(ServerConnection(subprotocol, "s", codec=OrjsonCodec()))
    assert fast[:-3] == stdlib[:-3]
    assert json.loads(fast[-3])["reason"] == "malformed_json"  # the wording is orjson's
    assert fast[-2:] == stdlib[-2:]
