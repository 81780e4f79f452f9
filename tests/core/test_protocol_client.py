"""ClientConnection: bookkeeping, dedupe, gaps, reconnects, and robustness to bad frames."""

from __future__ import annotations

import json
import random
import re

import pytest

from jupyter_iotcable.protocol import (
    Backoff,
    BrokerStatus,
    ClientConnection,
    Disconnected,
    GapReported,
    HistoryConfirmed,
    HistoryRequest,
    LocalProtocolError,
    ReconnectDecision,
    RowsReceived,
    ServerError,
    StreamPosition,
    Subprotocol,
    SubscriptionConfirmed,
    SubscriptionRejected,
    SubscriptionState,
    Transmission,
    Welcomed,
    make_identifier,
)

ID = make_identifier("telemetry", topic="plant/+/+/env")
T0 = 1_700_000_000.0


def client(subprotocol: Subprotocol = Subprotocol.IOTCABLE, seed: int = 3) -> ClientConnection:
    conn = ClientConnection(subprotocol=subprotocol, backoff=Backoff(rng=random.Random(seed)))
    conn.connection_opened(T0)
    return conn


def receive(conn: ClientConnection, **frame: object) -> None:
    conn.receive_text(json.dumps(frame), T0)


def commands(conn: ClientConnection) -> list[dict[str, object]]:
    return [json.loads(frame) for frame in conn.data_to_send()]


def welcomed(subprotocol: Subprotocol = Subprotocol.IOTCABLE) -> ClientConnection:
    conn = client(subprotocol)
    receive(conn, type="welcome", sid="s1")
    conn.events_received()
    return conn


def live(subprotocol: Subprotocol = Subprotocol.IOTCABLE, **meta: object) -> ClientConnection:
    conn = welcomed(subprotocol)
    conn.subscribe("telemetry", topic="plant/+/+/env")
    conn.data_to_send()
    confirm: dict[str, object] = {"type": "confirm_subscription", "identifier": ID}
    if meta:
        confirm["meta"] = meta
    conn.receive_text(json.dumps(confirm), T0)
    conn.events_received()
    return conn


def batch(conn: ClientConnection, offsets: list[int], epoch: str = "e1", dropped: int = 0) -> None:
    rows = [[o, T0 + o, "plant/a/b/env", {"t": o}] for o in offsets]
    frame: dict[str, object] = {
        "identifier": ID,
        "batch": rows,
        "stream_id": "telemetry",
        "epoch": epoch,
    }
    if dropped:
        frame["dropped"] = dropped
    conn.receive_text(json.dumps(frame), T0)


def row(offset: int) -> tuple[int, float, str, object, None]:
    return (offset, T0 + offset, "plant/a/b/env", {"t": offset}, None)


# -- subscribing ---------------------------------------------------------------------------------


def test_subscriptions_wait_for_the_welcome() -> None:
    conn = client()
    identifier = conn.subscribe("telemetry", topic="plant/+/+/env")
    assert identifier == ID
    assert conn.data_to_send() == []
    assert conn.subscriptions[ID].state is SubscriptionState.PENDING
    assert conn.resume_query() == {}
    receive(conn, type="welcome", sid="s1")
    assert conn.connected
    assert conn.events_received() == [Welcomed("s1", False, ())]
    assert conn.data_to_send() == [
        '{"command":"subscribe","identifier":"{\\"channel\\":\\"telemetry\\",\\"topic\\":\\"plant/+/+/env\\"}"}'
    ]
    assert conn.resume_query() == {"sid": "s1"}


def test_a_welcome_without_sid_gives_no_resume_query() -> None:
    conn = client()
    receive(conn, type="welcome")
    assert conn.events_received() == [Welcomed("", False, ())]
    assert conn.resume_query() == {}


def test_subscribe_with_history_after_the_welcome() -> None:
    conn = welcomed()
    conn.subscribe("telemetry", history=HistoryRequest(since=T0 - 3600), topic="plant/+/+/env")
    assert commands(conn) == [
        {"command": "subscribe", "identifier": ID, "history": {"since": T0 - 3600}}
    ]


def test_subscribe_misuse() -> None:
    with pytest.raises(
        LocalProtocolError, match="history needs an extended subprotocol, not actioncable-v1-json"
    ):
        client(Subprotocol.PLAIN).subscribe("telemetry", history=HistoryRequest(since=1.0))
    conn = live()
    with pytest.raises(LocalProtocolError, match="already subscribed to"):
        conn.subscribe("telemetry", topic="plant/+/+/env")


def test_confirm_and_meta() -> None:
    conn = welcomed()
    conn.subscribe("telemetry", topic="plant/+/+/env")
    receive(
        conn,
        type="confirm_subscription",
        identifier=ID,
        meta={"columns": "plant/{site}/{device}/env"},
    )
    assert conn.events_received() == [
        SubscriptionConfirmed(ID, {"columns": "plant/{site}/{device}/env"})
    ]
    status = conn.subscriptions[ID]
    assert status.state is SubscriptionState.CONFIRMED
    assert status.meta == {"columns": "plant/{site}/{device}/env"}
    receive(conn, type="confirm_subscription", identifier=ID)  # a duplicate's confirm
    receive(conn, type="confirm_subscription", identifier=make_identifier("other"))
    assert conn.events_received() == []


def test_reject_then_subscribe_again() -> None:
    conn = welcomed()
    conn.subscribe("telemetry", topic="plant/+/+/env")
    receive(
        conn,
        type="reject_subscription",
        identifier=ID,
        reason="you may not read channel 'telemetry'",
    )
    assert conn.events_received() == [
        SubscriptionRejected(ID, "you may not read channel 'telemetry'")
    ]
    assert conn.subscriptions[ID].state is SubscriptionState.REJECTED
    assert conn.subscriptions[ID].reason == "you may not read channel 'telemetry'"
    conn.data_to_send()
    conn.subscribe("telemetry", topic="plant/+/+/env")
    receive(conn, type="reject_subscription", identifier=ID)  # @rails-style: no reason
    assert conn.events_received() == [
        SubscriptionRejected(ID, "the server rejected the subscription without a reason")
    ]


def test_unsubscribe() -> None:
    conn = client()
    early = conn.subscribe("early")
    conn.unsubscribe(early)  # never sent: nothing to withdraw
    assert conn.data_to_send() == []
    conn = live()
    conn.unsubscribe(ID)
    assert commands(conn) == [{"command": "unsubscribe", "identifier": ID}]
    assert ID not in conn.subscriptions
    batch(conn, [1])  # rows still in flight are dropped quietly
    receive(conn, identifier=ID, message={"late": True})
    assert conn.events_received() == []
    with pytest.raises(LocalProtocolError, match=r"unsubscribe\(.*\): no such subscription"):
        conn.unsubscribe(ID)


def test_unsubscribing_a_rejected_subscription_sends_nothing() -> None:
    conn = welcomed()
    conn.subscribe("telemetry", topic="plant/+/+/env")
    receive(conn, type="reject_subscription", identifier=ID, reason="no")
    conn.data_to_send()
    conn.unsubscribe(ID)
    assert conn.data_to_send() == []


# -- perform and transmissions ---------------------------------------------------------------------


def test_perform_puts_the_action_first_in_data() -> None:
    conn = live()
    conn.perform(ID, "publish", {"topic": "plant/a/b/cmd", "payload": {"speed": 40}, "ref": "7"})
    assert conn.data_to_send() == [
        '{"command":"message","identifier":"{\\"channel\\":\\"telemetry\\",\\"topic\\":\\"plant/+/+/env\\"}",'
        '"data":"{\\"action\\":\\"publish\\",\\"topic\\":\\"plant/a/b/cmd\\",\\"payload\\":{\\"speed\\":40},\\"ref\\":\\"7\\"}"}'
    ]


def test_perform_misuse() -> None:
    conn = welcomed()
    conn.subscribe("telemetry", topic="plant/+/+/env")
    with pytest.raises(LocalProtocolError, match="the subscription is pending, not confirmed"):
        conn.perform(ID, "publish", {})
    conn = live()
    with pytest.raises(LocalProtocolError, match='perform data must not hold "action"'):
        conn.perform(ID, "publish", {"action": "x"})
    with pytest.raises(LocalProtocolError, match="perform data cannot be encoded as JSON"):
        conn.perform(ID, "publish", {"payload": float("nan")})


def test_transmission() -> None:
    conn = live()
    receive(
        conn,
        identifier=ID,
        message={"action": "publish_result", "ref": "7", "ok": True, "topic": "a"},
    )
    assert conn.events_received() == [
        Transmission(ID, {"action": "publish_result", "ref": "7", "ok": True, "topic": "a"})
    ]


# -- rows ------------------------------------------------------------------------------------------


def test_batch_rows_and_positions() -> None:
    conn = live()
    receive(
        conn,
        identifier=ID,
        batch=[[1, T0, "plant/a/b/env", {"t": 1}], [5, T0 + 1, "plant/a/c/env", "?", "not JSON"]],
        stream_id="telemetry",
        epoch="e1",
        dropped=2,
    )
    assert conn.events_received() == [
        RowsReceived(
            ID,
            "telemetry",
            "e1",
            (
                (1, T0, "plant/a/b/env", {"t": 1}, None),
                (5, T0 + 1, "plant/a/c/env", "?", "not JSON"),
            ),
            2,
        )
    ]
    assert conn.positions(ID) == {"telemetry": StreamPosition("e1", 5)}


@pytest.mark.parametrize("subprotocol", [Subprotocol.PLAIN, Subprotocol.EXT])
def test_data_frames_are_rows(subprotocol: Subprotocol) -> None:
    conn = live(subprotocol)
    receive(
        conn,
        identifier=ID,
        message={
            "topic": "plant/a/b/env",
            "time": 1700000000,
            "payload": 20.5,
            "columns": {"site": "a"},
        },
        stream_id="telemetry",
        epoch="e1",
        offset=7,
        dropped=1,
    )
    receive(
        conn,
        identifier=ID,
        message={"topic": "plant/a/b/env", "time": T0 + 1, "payload": "x", "error": "not a number"},
        stream_id="telemetry",
        epoch="e1",
        offset=8,
    )
    assert conn.events_received() == [
        RowsReceived(ID, "telemetry", "e1", ((7, T0, "plant/a/b/env", 20.5, None),), 1),
        RowsReceived(
            ID, "telemetry", "e1", ((8, T0 + 1, "plant/a/b/env", "x", "not a number"),), 0
        ),
    ]


def test_duplicates_are_dropped_and_jumps_are_not_gaps() -> None:
    conn = live()
    batch(conn, [1, 2, 3])
    batch(conn, [2, 3, 10, 40])  # 4..9 went to other topics: not a gap
    batch(conn, [10, 40])
    assert conn.events_received() == [
        RowsReceived(ID, "telemetry", "e1", (row(1), row(2), row(3)), 0),
        RowsReceived(ID, "telemetry", "e1", (row(10), row(40)), 0),
    ]
    batch(conn, [40], dropped=3)  # duplicates only, but the drop count still matters
    assert conn.events_received() == [RowsReceived(ID, "telemetry", "e1", (), 3)]


def test_an_epoch_change_is_a_gap_then_accepted() -> None:
    conn = live()
    batch(conn, [50])
    batch(conn, [1, 2], epoch="e2")
    batch(conn, [3], epoch="e2")
    assert conn.events_received() == [
        RowsReceived(ID, "telemetry", "e1", (row(50),), 0),
        GapReported(
            ID,
            "telemetry",
            "stream telemetry restarted (epoch e1 -> e2): "
            "readings after offset 50 of the old epoch may be missing",
            True,
            50,
            None,
            "e2",
        ),
        RowsReceived(ID, "telemetry", "e2", (row(1), row(2)), 0),
        RowsReceived(ID, "telemetry", "e2", (row(3),), 0),
    ]


# -- history ---------------------------------------------------------------------------------------


def test_request_history() -> None:
    conn = live()
    with pytest.raises(LocalProtocolError, match="no row received yet, so pass since"):
        conn.request_history(ID)
    conn.request_history(ID, since=T0 - 60)
    batch(conn, [4])
    conn.request_history(ID)
    assert commands(conn) == [
        {"command": "history", "identifier": ID, "history": {"since": T0 - 60}},
        {
            "command": "history",
            "identifier": ID,
            "history": {"streams": {"telemetry": {"offset": 4, "epoch": "e1"}}},
        },
    ]
    receive(conn, type="confirm_history", identifier=ID)
    assert conn.events_received()[-1] == HistoryConfirmed(ID)
    with pytest.raises(LocalProtocolError, match="history needs an extended subprotocol"):
        live(Subprotocol.PLAIN).request_history(ID, since=1.0)


def test_reject_history_is_a_gap_then_what_remains_is_asked_for() -> None:
    conn = live()
    batch(conn, [10])
    conn.request_history(ID)  # from offset 10
    conn.data_to_send()
    conn.events_received()
    receive(
        conn,
        type="reject_history",
        identifier=ID,
        reason="offsets up to 99 are gone",
        stream_id="telemetry",
        epoch="e1",
        available_from=100,
    )
    assert conn.events_received() == [
        GapReported(ID, "telemetry", "offsets up to 99 are gone", False, 10, 100, "e1")
    ]
    assert commands(conn) == [
        {
            "command": "history",
            "identifier": ID,
            "history": {"streams": {"telemetry": {"offset": 99, "epoch": "e1"}}},
        }
    ]
    # The same reject for that request again: report it, but do not loop.
    receive(
        conn,
        type="reject_history",
        identifier=ID,
        reason="gone",
        stream_id="telemetry",
        epoch="e1",
        available_from=100,
    )
    assert [type(e) for e in conn.events_received()] == [GapReported]
    assert conn.data_to_send() == []


def test_reject_history_from_a_new_epoch() -> None:
    conn = live()
    batch(conn, [70])
    conn.request_history(ID)
    conn.data_to_send()
    conn.events_received()
    receive(
        conn,
        type="reject_history",
        identifier=ID,
        reason="the server restarted",
        stream_id="telemetry",
        epoch="e2",
        available_from=0,
    )
    assert conn.events_received() == [
        GapReported(ID, "telemetry", "the server restarted", True, 70, 0, "e2")
    ]
    assert commands(conn) == [
        {
            "command": "history",
            "identifier": ID,
            "history": {"streams": {"telemetry": {"offset": -1, "epoch": "e2"}}},
        }
    ]
    assert conn.positions(ID) == {"telemetry": StreamPosition("e2", -1)}
    batch(conn, [0, 1], epoch="e2")  # no second gap for the same change
    assert conn.events_received() == [RowsReceived(ID, "telemetry", "e2", (row(0), row(1)), 0)]


def test_a_new_epoch_from_reject_history_forgets_the_old_epochs_lowest_offset() -> None:
    # /tmp/audit2/floors.py: rows 5..10 of e1 made 5 the lowest offset held; after the
    # restart, a backfill of e2 below the live rows must not be cut at that old 5.
    conn = live()
    batch(conn, list(range(5, 11)))
    conn.request_history(ID)
    conn.data_to_send()
    receive(
        conn,
        type="reject_history",
        identifier=ID,
        reason="restarted",
        stream_id="telemetry",
        epoch="e2",
        available_from=None,
    )
    batch(conn, [20, 21], epoch="e2")  # live rows of the new epoch
    conn.request_history(ID, since=0.0)
    batch(conn, list(range(22)), epoch="e2")  # the backfill: 0..19 are new, 20, 21 held
    events = conn.events_received()
    assert events[-1] == RowsReceived(ID, "telemetry", "e2", tuple(row(o) for o in range(20)), 0)
    assert conn.positions(ID) == {"telemetry": StreamPosition("e2", 21)}


def test_a_backfill_in_several_frames_keeps_every_frame() -> None:
    # The server sends a history answer in chunks as the socket drains (500 rows a batch),
    # with live rows in between. Each chunk lies below the rows held live; lowering the
    # lowest-held offset at the first chunk would make the next chunks look held already.
    conn = live()
    batch(conn, list(range(1000, 1010)))
    conn.request_history(ID, since=0.0)
    conn.data_to_send()
    conn.events_received()
    batch(conn, list(range(0, 500)))
    batch(conn, [1010])  # a live row between two chunks
    batch(conn, list(range(500, 1000)))
    batch(conn, list(range(995, 1005)))  # a chunk that overlaps what is held: dropped
    receive(conn, type="confirm_history", identifier=ID)
    received = [r[0] for e in conn.events_received() if isinstance(e, RowsReceived) for r in e.rows]
    assert received == [*range(0, 500), 1010, *range(500, 1000)]
    assert conn.positions(ID) == {"telemetry": StreamPosition("e1", 1010)}
    batch(conn, [3, 999, 1010])  # after the answer everything held is a duplicate
    batch(conn, [1011])
    assert conn.events_received() == [RowsReceived(ID, "telemetry", "e1", (row(1011),), 0)]


def test_a_restart_whose_kept_rows_come_before_the_reject_is_one_gap() -> None:
    # The jupyter-iotcable server sends the rows it keeps, then reject_history: the rows
    # of the new epoch report the restart, and the reject must not report it again (with
    # an after_offset taken from those new rows).
    conn = live()
    batch(conn, [10])
    conn.connection_lost(T0)
    conn.connection_opened(T0)
    receive(conn, type="welcome", sid="s2")
    assert commands(conn)[0]["history"] == {"streams": {"telemetry": {"offset": 10, "epoch": "e1"}}}
    receive(conn, type="confirm_subscription", identifier=ID)
    batch(conn, [3, 4], epoch="e2")
    receive(
        conn,
        type="reject_history",
        identifier=ID,
        reason="epoch e1 is gone",
        stream_id="telemetry",
        epoch="e2",
        available_from=3,
    )
    events = conn.events_received()
    gaps = [event for event in events if isinstance(event, GapReported)]
    assert gaps == [
        GapReported(
            ID,
            "telemetry",
            "stream telemetry restarted (epoch e1 -> e2): "
            "readings after offset 10 of the old epoch may be missing",
            True,
            10,
            None,
            "e2",
        )
    ]
    assert events[-1] == RowsReceived(ID, "telemetry", "e2", (row(3), row(4)), 0)
    assert conn.positions(ID) == {"telemetry": StreamPosition("e2", 4)}


def test_a_gap_starts_where_the_request_asked_even_if_kept_rows_came_first() -> None:
    conn = live()
    batch(conn, [10])
    conn.request_history(ID)  # from offset 10
    conn.request_history(ID, since=T0 - 60)
    conn.data_to_send()
    batch(conn, [100, 101])  # what the server still keeps, sent before its answers
    for _ in range(2):
        receive(
            conn,
            type="reject_history",
            identifier=ID,
            reason="offsets up to 99 are gone",
            stream_id="telemetry",
            epoch="e1",
            available_from=100,
        )
    # Each gap also says which time its request asked from (the first asked from offsets).
    assert [event for event in conn.events_received() if isinstance(event, GapReported)] == [
        GapReported(ID, "telemetry", "offsets up to 99 are gone", False, 10, 100, "e1"),
        GapReported(ID, "telemetry", "offsets up to 99 are gone", False, 10, 100, "e1", T0 - 60),
    ]


def test_reject_history_with_nothing_kept_asks_nothing() -> None:
    conn = live()
    conn.request_history(ID, since=T0 - 10)
    conn.data_to_send()
    receive(
        conn,
        type="reject_history",
        identifier=ID,
        reason="nothing kept",
        stream_id="telemetry",
        epoch="e1",
        available_from=None,
    )
    assert conn.events_received() == [
        GapReported(ID, "telemetry", "nothing kept", False, None, None, "e1", T0 - 10)
    ]
    assert conn.data_to_send() == []


def test_reject_history_not_about_a_stream() -> None:
    conn = live(Subprotocol.EXT)
    conn.request_history(ID, since=T0)
    conn.data_to_send()
    receive(
        conn,
        type="reject_history",
        identifier=ID,
        reason="history needs the actioncable-v1-ext-json or iotcable-v1-json subprotocol",
    )
    assert conn.events_received() == [
        GapReported(
            ID,
            None,
            "history needs the actioncable-v1-ext-json or iotcable-v1-json subprotocol",
            False,
            None,
            None,
            None,
            T0,
        )
    ]
    assert conn.data_to_send() == []


# -- disconnects and reconnects -------------------------------------------------------------


@pytest.mark.parametrize("reason", ["unauthorized", "token_expired"])
def test_no_reconnect_after_a_final_disconnect(reason: str) -> None:
    conn = live()
    receive(conn, type="disconnect", reason=reason, reconnect=False)
    assert conn.events_received() == [Disconnected(reason, False)]
    assert not conn.connected
    assert conn.connection_lost(T0 + 1) == ReconnectDecision(False, 0.0, reason)


def test_reconnect_delays_grow_until_a_connection_lasts() -> None:
    conn = live()
    receive(conn, type="disconnect", reason="server_restart", reconnect=True)
    reference = random.Random(3)
    assert conn.healthy_after == 6.0  # two ping intervals
    assert conn.connection_lost(T0 + 100) == ReconnectDecision(
        True, reference.uniform(0, 0.5), "server_restart"
    )
    for ceiling in (1.0, 2.0, 4.0):
        conn.connection_opened(T0)
        assert conn.connection_lost(T0) == ReconnectDecision(
            True, reference.uniform(0, ceiling), "connection_lost"
        )
    # A server that welcomes and drops each connection at once: the delays keep growing.
    for ceiling in (8.0, 16.0, 30.0, 30.0):
        conn.connection_opened(T0)
        receive(conn, type="welcome", sid="s2")
        assert conn.connection_lost(T0 + 5.9).delay == reference.uniform(0, ceiling)
    # A welcomed connection that lasted the stale window was healthy: start over.
    conn.connection_opened(T0)
    receive(conn, type="welcome", sid="s3")
    assert conn.connection_lost(T0 + 6).delay == reference.uniform(0, 0.5)
    assert conn.backoff.attempts == 1
    # Lasting without a welcome proves nothing.
    conn.connection_opened(T0)
    assert conn.connection_lost(T0 + 60).delay == reference.uniform(0, 1.0)


def test_healthy_after_can_be_set() -> None:
    conn = ClientConnection(healthy_after=0.0, backoff=Backoff(rng=random.Random(1)))
    for _ in range(3):
        conn.connection_opened(T0)
        conn.receive_text('{"type":"welcome"}', T0)
        conn.connection_lost(T0)
        assert conn.backoff.attempts == 1


def test_plain_welcome_after_a_reconnect_resubscribes_from_the_positions() -> None:
    conn = live()
    conn.subscribe("backfilled", history=HistoryRequest(since=T0 - 3600))
    conn.subscribe("quiet")
    conn.subscribe("refused")
    conn.subscribe("never_answered")
    for name in ("backfilled", "quiet"):
        conn.receive_text(
            json.dumps({"type": "confirm_subscription", "identifier": make_identifier(name)}),
            T0 + 5,
        )
    receive(conn, type="reject_subscription", identifier=make_identifier("refused"), reason="no")
    batch(conn, [41])
    conn.connection_lost(T0 + 10)
    assert {i: s.state for i, s in conn.subscriptions.items()} == {
        ID: "pending",
        '{"channel":"backfilled"}': "pending",
        '{"channel":"quiet"}': "pending",
        '{"channel":"refused"}': "rejected",
        '{"channel":"never_answered"}': "pending",
    }
    conn.connection_opened(T0 + 11)
    assert conn.resume_query() == {"sid": "s1"}
    conn.data_to_send()
    receive(conn, type="welcome", sid="s2")
    assert commands(conn) == [
        {
            "command": "subscribe",
            "identifier": ID,
            "history": {"streams": {"telemetry": {"offset": 41, "epoch": "e1"}}},
        },
        {
            "command": "subscribe",
            "identifier": '{"channel":"backfilled"}',
            "history": {"since": T0 - 3600},
        },
        {"command": "subscribe", "identifier": '{"channel":"quiet"}', "history": {"since": T0 + 5}},
        {"command": "subscribe", "identifier": '{"channel":"never_answered"}'},
    ]


def test_plain_subprotocol_resubscribes_without_history() -> None:
    conn = live(Subprotocol.PLAIN)
    receive(
        conn,
        identifier=ID,
        message={"topic": "a", "time": T0, "payload": 1},
        stream_id="telemetry",
        epoch="e1",
        offset=3,
    )
    conn.connection_lost(T0)
    conn.connection_opened(T0)
    receive(conn, type="welcome", sid="s2")
    assert commands(conn) == [{"command": "subscribe", "identifier": ID}]


def test_restored_welcome_asks_history_for_restored_and_resubscribes_the_rest() -> None:
    conn = live(columns="plant/{site}/{device}/env")
    conn.subscribe("fresh")
    batch(conn, [41])
    gone = make_identifier("dropped_meanwhile")
    conn.connection_lost(T0)
    conn.connection_opened(T0)
    conn.events_received()
    receive(
        conn,
        type="welcome",
        sid="s1",
        restored=True,
        restored_ids=[ID, '{"channel":"fresh"}', gone],
    )
    assert conn.events_received() == [
        Welcomed("s1", True, (ID, '{"channel":"fresh"}', gone)),
        SubscriptionConfirmed(ID, {"columns": "plant/{site}/{device}/env"}),
    ]
    assert commands(conn) == [
        {
            "command": "history",
            "identifier": ID,
            "history": {"streams": {"telemetry": {"offset": 41, "epoch": "e1"}}},
        },
        # restored, but we never saw its confirm (nor its meta): subscribe again
        {"command": "subscribe", "identifier": '{"channel":"fresh"}'},
        {"command": "unsubscribe", "identifier": gone},
    ]
    assert conn.subscriptions[ID].state is SubscriptionState.CONFIRMED
    batch(conn, [41, 42])
    assert conn.events_received() == [RowsReceived(ID, "telemetry", "e1", (row(42),), 0)]


def test_is_stale_after_two_silent_ping_intervals() -> None:
    conn = ClientConnection(ping_interval=3.0)
    assert not conn.is_stale(T0 + 100)
    conn.connection_opened(T0)
    assert not conn.is_stale(T0 + 6)
    assert conn.is_stale(T0 + 6.01)
    conn.receive_text(json.dumps({"type": "ping", "message": int(T0 + 6)}), T0 + 6)
    assert not conn.is_stale(T0 + 12)
    assert conn.is_stale(T0 + 12.5)
    conn.connection_lost(T0 + 13)
    assert not conn.is_stale(T0 + 100)


def test_lifecycle_misuse() -> None:
    conn = ClientConnection()
    with pytest.raises(
        LocalProtocolError, match="receive_text\\(\\) before connection_opened\\(\\)"
    ):
        conn.receive_text("{}", T0)
    conn.connection_opened(T0)
    with pytest.raises(
        LocalProtocolError, match="connection_opened\\(\\) twice without connection_lost\\(\\)"
    ):
        conn.connection_opened(T0)


# -- server events and garbage --------------------------------------------------------------


def test_broker_and_error_frames() -> None:
    conn = welcomed()
    receive(conn, type="broker", state="reconnecting", detail="retry in 2 s")
    receive(conn, type="error", reason="not_subscribed", message="subscribe first")
    assert conn.events_received() == [
        BrokerStatus("reconnecting", "retry in 2 s"),
        ServerError("not_subscribed", "subscribe first"),
    ]


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("nope", "malformed_frame", "frame is not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"\xff", "malformed_frame", "frame is not valid UTF-8: invalid start byte at byte 0"),
        ("[]", "malformed_frame", "a server frame must be a JSON object, got an array"),
        ('{"type":7}', "malformed_frame", '"type" must be a string, got 7'),
        ('{"type":"stats"}', "unknown_message", 'unknown message type "stats"'),
        (
            '{"type":"confirm_subscription"}',
            "malformed_frame",
            'confirm_subscription frame "identifier" must be a string, got null',
        ),
        (
            '{"type":"confirm_subscription","identifier":"x","meta":[]}',
            "malformed_frame",
            'confirm_subscription "meta" must be an object, got an array',
        ),
        (
            '{"type":"reject_subscription","identifier":"x","reason":1}',
            "malformed_frame",
            'reject_subscription "reason" must be a string, got 1',
        ),
        (
            '{"type":"reject_history","identifier":"x","reason":"r","stream_id":"s"}',
            "malformed_frame",
            'reject_history frame "epoch" must be a string, got null',
        ),
        (
            '{"type":"reject_history","identifier":"x","reason":"r","stream_id":"s","epoch":"e","available_from":"0"}',
            "malformed_frame",
            'reject_history frame "available_from" must be an integer, got the string "0"',
        ),
        (
            '{"type":"disconnect","reason":"too_slow","reconnect":"yes"}',
            "malformed_frame",
            'disconnect "reconnect" must be true or false, got the string "yes"',
        ),
        (
            '{"type":"broker","state":"up"}',
            "malformed_frame",
            'broker frame "detail" must be a string, got null',
        ),
        (
            '{"type":"error","reason":"x"}',
            "malformed_frame",
            'error frame "message" must be a string, got null',
        ),
        ('{"message":{}}', "malformed_frame", 'frame "identifier" must be a string, got null'),
        (
            '{"identifier":"x","message":[1]}',
            "malformed_frame",
            'a transmission "message" must be an object, got an array',
        ),
        (
            '{"identifier":"x","batch":{},"stream_id":"s","epoch":"e"}',
            "malformed_frame",
            '"batch" must be an array of rows, got an object',
        ),
        (
            '{"identifier":"x","batch":[[1,2,"t"]],"stream_id":"s","epoch":"e"}',
            "malformed_frame",
            "batch row 0 must be [offset, time, topic, payload] or "
            "[offset, time, topic, payload, error], got an array",
        ),
        (
            '{"identifier":"x","batch":[[1.5,2,"t",0]],"stream_id":"s","epoch":"e"}',
            "malformed_frame",
            "batch row 0: offset must be an integer, got 1.5",
        ),
        (
            '{"identifier":"x","batch":[[1,"now","t",0]],"stream_id":"s","epoch":"e"}',
            "malformed_frame",
            'batch row 0: time must be unix seconds, got the string "now"',
        ),
        (
            '{"identifier":"x","batch":[[1,2,3,0]],"stream_id":"s","epoch":"e"}',
            "malformed_frame",
            "batch row 0: topic must be a string, got 3",
        ),
        (
            '{"identifier":"x","batch":[[1,2,"t",0,false]],"stream_id":"s","epoch":"e"}',
            "malformed_frame",
            "batch row 0: error must be a string, got false",
        ),
        (
            '{"identifier":"x","batch":[[2,2,"t",0],[2,3,"t",0]],"stream_id":"s","epoch":"e"}',
            "malformed_frame",
            "batch offsets must strictly increase: 2 after 2 (row 1)",
        ),
        (
            '{"identifier":"x","batch":[],"stream_id":"s","epoch":"e","dropped":-1}',
            "malformed_frame",
            '"dropped" must be >= 0, got -1',
        ),
        (
            '{"identifier":"x","batch":[],"epoch":"e"}',
            "malformed_frame",
            'batch frame "stream_id" must be a string, got null',
        ),
        (
            '{"identifier":"x","message":{},"stream_id":"s","epoch":"e","offset":true}',
            "malformed_frame",
            'data frame "offset" must be an integer, got true',
        ),
        (
            '{"identifier":"x","message":3,"stream_id":"s","epoch":"e","offset":1}',
            "malformed_frame",
            'data frame "message" must be an object, got 3',
        ),
        (
            '{"identifier":"x","message":{"topic":"t"},"stream_id":"s","epoch":"e","offset":1}',
            "malformed_frame",
            'data frame "message.time" must be unix seconds, got null',
        ),
        (
            '{"identifier":"x","message":{"topic":"t","time":1},"stream_id":"s","epoch":"e","offset":1}',
            "malformed_frame",
            'data frame "message" needs a "payload"',
        ),
        (
            '{"identifier":"x","message":{"time":1,"payload":0},"stream_id":"s","epoch":"e","offset":1}',
            "malformed_frame",
            'data frame "message.topic" must be a string, got null',
        ),
    ],
)
def test_frames_the_client_cannot_understand_become_server_errors(
    text: str | bytes, code: str, message: str
) -> None:
    conn = live()
    conn.receive_text(text, T0)
    assert conn.events_received() == [ServerError(code, message)]
    assert conn.positions(ID) == {}
    assert conn.subscriptions[ID].state is SubscriptionState.CONFIRMED


HUGE = "1" + "0" * 400  # beyond the largest 64-bit float


def time_frames(time: str) -> list[str]:
    """A batch frame and a data frame whose row time is ``time`` (JSON text)."""
    identifier = json.dumps(ID)
    return [
        f'{{"identifier":{identifier},"batch":[[1,{time},"t",0]],"stream_id":"s","epoch":"e"}}',
        f'{{"identifier":{identifier},"message":{{"topic":"t","time":{time},"payload":0}},'
        '"stream_id":"s","epoch":"e","offset":2}',
    ]


def undecodable_why(event: object) -> str:
    """Why the client could not decode a frame of a subscription, from its gap."""
    assert isinstance(event, GapReported), event
    assert event.undecodable and not event.epoch_changed, event
    match = re.fullmatch(
        r"a frame of stream \S+ could not be decoded by this client \((.*)\): its readings"
        r"( after offset \d+)? up to the next one received are missing",
        event.reason,
    )
    assert match is not None, event.reason
    return match.group(1)


@pytest.mark.parametrize(("time", "shown"), [(HUGE, HUGE[:17] + "..."), ("-1e400", "-1e400")])
def test_a_row_time_beyond_a_float_is_an_undecodable_gap(time: str, shown: str) -> None:
    conn = live()
    for text in time_frames(time):
        conn.receive_text(text, T0)
    error = f"frame is not usable JSON: the number {shown} does not fit a 64-bit float"
    assert [undecodable_why(e) for e in conn.events_received()] == [error] * 2
    assert conn.positions(ID) == {}
    assert conn.subscriptions[ID].state is SubscriptionState.CONFIRMED


class PermissiveCodec:
    """A codec that lets through what ours refuse (NaN, Infinity, 400-digit integers)."""

    def dumps(self, obj: object) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    def loads(self, text: str | bytes) -> object:
        return json.loads(text)


@pytest.mark.parametrize(
    ("time", "shown"),
    [(HUGE, HUGE[:57] + "..."), ("1e400", "inf"), ("-Infinity", "-inf"), ("NaN", "nan")],
)
def test_a_codec_that_lets_huge_times_through_still_reports_gaps(time: str, shown: str) -> None:
    conn = ClientConnection(codec=PermissiveCodec())
    conn.connection_opened(T0)
    conn.subscribe("telemetry", topic="plant/+/+/env")
    receive(conn, type="welcome", sid="s1")
    receive(conn, type="confirm_subscription", identifier=ID)
    conn.events_received()
    for text in time_frames(time):
        conn.receive_text(text, T0)
    assert [undecodable_why(e) for e in conn.events_received()] == [
        f"batch row 0: time must be unix seconds, got {shown}",
        f'data frame "message.time" must be unix seconds, got {shown}',
    ]
    assert conn.positions(ID) == {}


def test_a_second_welcome_is_reported_not_obeyed() -> None:
    conn = live()
    receive(conn, type="welcome", sid="other")
    assert conn.events_received() == [
        ServerError("malformed_frame", "a second welcome on one connection")
    ]
    assert conn.data_to_send() == []
    assert conn.sid == "s1"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"type": "welcome", "sid": 5}, 'welcome "sid" must be a string, got 5'),
        (
            {"type": "welcome", "restored": True, "restored_ids": "a"},
            'welcome "restored_ids" must be an array of strings, got the string "a"',
        ),
        (
            {"type": "welcome", "restored": True, "restored_ids": [1]},
            'welcome "restored_ids" must be an array of strings, got an array',
        ),
    ],
)
def test_a_malformed_welcome_is_reported_and_waited_past(
    frame: dict[str, object], message: str
) -> None:
    conn = client()
    conn.subscribe("telemetry", topic="plant/+/+/env")
    conn.receive_text(json.dumps(frame), T0)
    assert conn.events_received() == [ServerError("malformed_frame", message)]
    assert not conn.connected
    assert conn.data_to_send() == []


# -- frames the client cannot decode ------------------------------------------------------------


def batch_text(offsets: list[int], payload: str = "0", identifier: str = ID) -> str:
    body = ",".join(f'[{o},{T0 + o},"t",{payload if i == 0 else 0}]' for i, o in enumerate(offsets))
    return f'{{"identifier":{json.dumps(identifier)},"batch":[{body}],"stream_id":"s","epoch":"e"}}'


def test_a_huge_undecodable_frame_is_a_gap_of_its_stream_and_history_is_asked_once() -> None:
    conn = live()
    conn.receive_text(batch_text([1, 2]), T0)
    conn.events_received()
    # 2 MB of payload around an integer no float holds: only the ends name the stream.
    poison = "[" + ",".join(["{}"] * 1_000_000) + ",1" + "0" * 400 + "]"
    conn.receive_text(batch_text([3, 4], poison), T0)
    assert conn.events_received() == []  # not yet a gap: history may still bring them
    assert commands(conn) == [
        {
            "command": "history",
            "identifier": ID,
            "history": {"streams": {"s": {"offset": 2, "epoch": "e"}}},
        }
    ]
    assert conn.replaying(ID)
    conn.receive_text(batch_text([3, 4], poison), T0)  # the answer fails as well
    conn.receive_text(batch_text([5]), T0)
    receive(conn, type="confirm_history", identifier=ID)
    events = conn.events_received()
    assert [type(e).__name__ for e in events] == ["GapReported", "RowsReceived", "HistoryConfirmed"]
    gap = events[0]
    assert isinstance(gap, GapReported)
    assert (gap.stream_id, gap.epoch, gap.after_offset, gap.undecodable) == ("s", "e", 2, True)
    assert "nor when asked again from history" in gap.reason
    assert commands(conn) == []  # asked once: no loop
    # A later undecodable frame, with nothing in flight, is asked for again.
    conn.receive_text(batch_text([6], poison), T0)
    assert [c["command"] for c in commands(conn)] == ["history"]


def test_an_undecodable_frame_nobody_subscribed_to_is_a_server_error() -> None:
    conn = live()
    other = make_identifier("telemetry", topic="other")
    conn.receive_text(batch_text([1], "1" + "0" * 400, identifier=other), T0)
    assert conn.events_received() == [
        ServerError(
            "malformed_frame",
            "frame is not usable JSON: the number 10000000000000000... does not fit a 64-bit float",
        )
    ]
    assert conn.subscriptions[ID].state is SubscriptionState.CONFIRMED
