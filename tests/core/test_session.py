"""The server session in memory: delivery and policy without sockets, brokers or sleeps.

Each test runs an engine over a MemoryBridge and drives sessions as the tornado adapter
does (tests/core/sessions.py), with a clock it moves and a socket whose progress it
decides. Sequence numbers in the payloads are the ground truth: every reading published
arrives exactly once and in order, or is covered by a gap or a drop count the server
reported. The real-socket, real-broker versions of a few of these live in
tests/integration/test_delivery.py, one per path.
"""

from __future__ import annotations

import json

import pytest

from jupyter_iotcable.protocol import DisconnectReason, make_identifier
from jupyter_iotcable.server.access import Identity, PrincipalAccess
from jupyter_iotcable.server.session import MAX_WAITING_HISTORY
from tests.core.sessions import EXT, IOTCABLE, PLAIN, Client, bridge, engine

TELEMETRY = make_identifier("telemetry")


def publish_seq(client: Client, topic: str, start: int, stop: int) -> None:
    for i in range(start, stop):
        assert bridge(client.engine).deliver(topic, json.dumps({"seq": i}))


def seqs(rows: list[list[object]]) -> list[int]:
    return [row[3]["seq"] for row in rows]  # type: ignore[index]


def closed_with(client: Client) -> tuple[int | None, str]:
    """How the session asked the socket to close."""
    return client.session.close_code, client.session.close_reason


def position(epoch: str, offset: int, stream: str = "telemetry") -> dict[str, object]:
    return {"streams": {stream: {"epoch": epoch, "offset": offset}}}


# -- opening and subscribing ------------------------------------------------------------------


def test_welcome_then_the_brokers_state() -> None:
    client = Client(engine())
    assert client.open() == {"type": "welcome", "sid": "sid-1"}
    assert client.frames[1] == {
        "type": "broker",
        "state": "connected",
        "detail": "connected to the memory broker",
    }


def test_confirm_carries_the_channels_facts() -> None:
    client = Client(engine())
    client.open()
    confirm = client.subscribe(make_identifier("commands"))
    assert confirm == {
        "type": "confirm_subscription",
        "identifier": make_identifier("commands"),
        "meta": {
            "columns": None,
            "format": "json",
            "units": {},
            "time_field": None,
            "topics": {"seen": 0, "matching": 0, "examples": []},
            "read": True,
            "write": True,
            "stream_id": "commands",
            "epoch": client.engine.epoch,
        },
    }


def test_confirm_says_whether_the_filter_matches_a_topic_the_stream_holds() -> None:
    # So that the client can tell a filter that matches nothing from a quiet device.
    client = Client(engine())
    client.open()
    for device in ("p1", "p2", "p1"):
        publish_seq(client, f"plant/lyon/{device}/env", 0, 1)
    paris = client.subscribe(make_identifier("telemetry", topic="plant/paris/+/env"))
    assert paris["meta"]["topics"] == {
        "seen": 2,
        "matching": 0,
        "examples": ["plant/lyon/p1/env", "plant/lyon/p2/env"],
    }
    lyon = client.subscribe(make_identifier("telemetry", topic="plant/lyon/p2/env"))
    assert lyon["meta"]["topics"]["matching"] == 1


@pytest.mark.parametrize(
    ("identifier", "reason"),
    [
        (make_identifier("nope"), "unknown channel 'nope'; see GET iotcable/api/channels"),
        (
            make_identifier("telemetry", topic="factory/#"),
            "topic 'factory/#' is outside channel 'telemetry'; it must be inside one of "
            "['plant/+/+/env']",
        ),
        (
            make_identifier("telemetry", topic="plant/#/env"),
            "topic 'plant/#/env' is not a valid MQTT filter",
        ),
        (make_identifier("secret"), "you may not read or publish to channel 'secret'"),
        (
            make_identifier("telemetry", note="n" * 2000),
            "identifier is 2033 bytes; this server accepts identifiers of up to 1024 bytes",
        ),
    ],
)
def test_a_subscription_is_rejected_with_the_reason(identifier: str, reason: str) -> None:
    client = Client(engine())
    client.open()
    reply = client.subscribe(identifier)
    assert reply["type"] == "reject_subscription"
    assert reply["reason"].startswith(reason)
    publish_seq(client, "plant/a/b/env", 0, 1)
    client.advance()
    assert client.rows() == [], "nothing for a rejected subscription"


def test_a_write_only_subscription_gets_no_rows_and_its_history_is_refused() -> None:
    client = Client(engine())
    client.open()
    drop = make_identifier("drop")
    frames = client.subscribe(drop, history={"since": 0})
    assert [f["type"] for f in frames[-2:]] == ["confirm_subscription", "reject_history"]
    assert frames[-2]["meta"]["read"] is False
    assert frames[-1]["reason"] == "you may not read channel 'drop'"
    bridge(client.engine).deliver("drop/x", "1")
    client.advance()
    assert client.rows() == []


# -- live rows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", [IOTCABLE, EXT, PLAIN])
def test_live_rows_arrive_once_in_order(subprotocol: object) -> None:
    client = Client(engine(), subprotocol)  # type: ignore[arg-type]
    client.open()
    client.subscribe(TELEMETRY)
    client.take()
    publish_seq(client, "plant/lyon/p1/env", 0, 50)
    client.advance()
    rows = client.rows(TELEMETRY)
    assert seqs(rows) == list(range(50))
    assert [row[0] for row in rows] == list(range(1, 51))


def test_data_frames_carry_the_columns_and_batches_leave_them_to_the_client() -> None:
    ext = Client(engine(), EXT)
    ext.open()
    ext.subscribe(TELEMETRY)
    batched = Client(ext.engine, IOTCABLE, sid="sid-2")
    batched.open()
    batched.subscribe(TELEMETRY)
    ext.take()
    batched.take()
    bridge(ext.engine).deliver("plant/lyon/p1/env", '{"t": 1}', received_at=1700000000.5)
    ext.advance()
    batched.advance()
    assert ext.take() == [
        {
            "identifier": TELEMETRY,
            "message": {
                "topic": "plant/lyon/p1/env",
                "time": 1700000000.5,
                "payload": {"t": 1},
                "columns": {"site": "lyon", "device": "p1"},
            },
            "stream_id": "telemetry",
            "epoch": ext.engine.epoch,
            "offset": 1,
        }
    ]
    assert batched.take() == [
        {
            "identifier": TELEMETRY,
            "batch": [[1, 1700000000.5, "plant/lyon/p1/env", {"t": 1}]],
            "stream_id": "telemetry",
            "epoch": ext.engine.epoch,
        }
    ]


def test_a_narrow_topic_gets_only_its_readings() -> None:
    client = Client(engine())
    client.open()
    lyon = make_identifier("telemetry", topic="plant/lyon/+/env")
    client.subscribe(lyon)
    client.take()
    for i in range(10):
        site = "lyon" if i % 2 else "porto"
        bridge(client.engine).deliver(f"plant/{site}/p1/env", json.dumps({"seq": i}))
    client.advance()
    rows = client.rows(lyon)
    assert seqs(rows) == [1, 3, 5, 7, 9]
    assert [row[0] for row in rows] == [2, 4, 6, 8, 10], "offsets jump: not a gap"


def test_unsubscribe_stops_the_rows() -> None:
    client = Client(engine())
    client.open()
    client.subscribe(TELEMETRY)
    client.send({"command": "unsubscribe", "identifier": TELEMETRY})
    client.take()
    publish_seq(client, "plant/a/b/env", 0, 3)
    client.advance()
    assert client.rows() == []
    assert client.engine.hub.streams["telemetry"].subscriber_count == 0


def test_broker_events_reach_every_session() -> None:
    client = Client(engine())
    client.open()
    client.take()
    bridge(client.engine).go_down("lost the connection to memory")
    client.advance()
    assert client.take() == [
        {"type": "broker", "state": "reconnecting", "detail": "lost the connection to memory"}
    ]


def test_pings_go_out_unless_the_client_is_behind() -> None:
    client = Client(engine(outbox_bytes=64 * 1024))
    client.open()
    client.take()
    client.session.ping(1_700_000_003.4)
    client.advance()
    assert client.take() == [{"type": "ping", "message": 1_700_000_003}]
    client.stall()
    client.subscribe(make_identifier("numbers"))
    for i in range(5000):
        bridge(client.engine).deliver(f"num/{i}", str(i))
        client.advance()
    client.take()
    client.session.ping(1_700_000_006.0)
    client.advance()
    assert [f for f in client.take() if f.get("type") == "ping"] == []


# -- publishing ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_publish_reaches_the_broker_and_is_answered() -> None:
    client = Client(engine())
    client.open()
    commands = make_identifier("commands")
    client.subscribe(commands)
    client.take()
    data = {"action": "publish", "topic": "plant/a/b/cmd", "payload": {"on": True}, "ref": 7}
    client.send({"command": "message", "identifier": commands, "data": json.dumps(data)})
    assert client.take() == [], "answered once the broker acknowledged it"
    await client.perform()
    result = client.take()
    assert result[0] == {
        "identifier": commands,
        "message": {"action": "publish_result", "ref": 7, "topic": "plant/a/b/cmd", "ok": True},
    }
    assert bridge(client.engine).published == [("plant/a/b/cmd", b'{"on":true}', 1, False)]


@pytest.mark.asyncio
async def test_publish_refusals_say_why() -> None:
    client = Client(engine(publish_rate=1.0, publish_burst=1))
    client.open()
    telemetry, commands = TELEMETRY, make_identifier("commands")
    client.subscribe(telemetry)
    client.subscribe(commands)
    client.take()

    def publish(identifier: str, topic: str) -> None:
        data = {"action": "publish", "topic": topic, "payload": 1, "ref": "r"}
        client.send({"command": "message", "identifier": identifier, "data": json.dumps(data)})

    publish(telemetry, "plant/a/b/env")
    publish(commands, "elsewhere/x")
    await client.perform()
    publish(commands, "plant/a/b/cmd")  # the bucket's one token went on the refused topic
    await client.perform()
    reasons = [f["message"]["reason"] for f in client.take()]
    assert reasons == [
        "you may not publish to channel 'telemetry'",
        "topic 'elsewhere/x' is outside channel 'commands': it must match one of ['plant/+/+/cmd']",
        "publish rate limit reached (1/s); retry in 1.0s",
    ]
    client.send({"command": "message", "identifier": commands, "data": '{"action": "delete"}'})
    assert client.take()[0]["reason"] == "unknown_action"


# -- history and resume -------------------------------------------------------------------------


def test_resume_restores_the_subscriptions_and_delivers_what_was_missed_once() -> None:
    shared = engine(session_ttl=60.0)
    first = Client(shared, EXT)
    first.open()
    identifier = make_identifier("telemetry", topic="plant/lyon/+/env")
    first.subscribe(identifier)
    publish_seq(first, "plant/lyon/p1/env", 0, 20)
    first.advance()
    got = first.rows(identifier)
    assert seqs(got) == list(range(20))
    first.session.closed_by_peer()  # the socket drops
    assert list(shared.sessions) == ["sid-1"]
    publish_seq(first, "plant/lyon/p1/env", 20, 60)  # published while away

    again = Client(shared, EXT, sid="sid-2")
    welcome = again.open(resume="sid-1")
    assert welcome == {
        "type": "welcome",
        "sid": "sid-2",
        "restored": True,
        "restored_ids": [identifier],
    }
    publish_seq(again, "plant/lyon/p1/env", 60, 65)
    again.advance()
    assert again.rows(identifier) == [], "live rows wait for the client's history request"
    history = position(shared.epoch, got[-1][0])
    again.send({"command": "history", "identifier": identifier, "history": history})
    publish_seq(again, "plant/lyon/p1/env", 65, 70)
    again.advance()
    frames = again.take()
    assert {"type": "confirm_history", "identifier": identifier} in frames
    again.frames = frames
    assert seqs(again.rows(identifier)) == list(range(20, 70)), "every reading once, in order"


def test_a_resume_hold_ends_by_itself() -> None:
    shared = engine(resume_hold=0.2)
    first = Client(shared, EXT)
    first.open()
    identifier = make_identifier("telemetry", topic="plant/late/+/env")
    first.subscribe(identifier)
    publish_seq(first, "plant/late/p1/env", 0, 20)
    first.advance()
    got = first.rows(identifier)
    first.session.closed_by_peer()
    publish_seq(first, "plant/late/p1/env", 20, 40)  # published while away

    again = Client(shared, EXT, sid="sid-2", clock=first.clock)
    assert again.open(resume="sid-1")["restored"] is True
    assert 0.2 in again.wakes, "the session asked to be woken when the hold ends"
    publish_seq(again, "plant/late/p1/env", 40, 60)
    again.advance(0.1)
    assert again.rows(identifier) == []
    again.advance(0.15)  # the hold is over: these go out live
    assert seqs(again.rows(identifier)) == list(range(40, 60))
    history = position(shared.epoch, got[-1][0])
    again.send({"command": "history", "identifier": identifier, "history": history})
    again.advance()
    frames = again.take()
    assert frames[-1]["type"] == "confirm_history"
    again.frames = frames
    # What it missed comes as a backfill below what it holds; nothing twice.
    assert seqs(again.rows(identifier)) == list(range(20, 40))


def test_a_session_is_resumed_once_and_only_by_its_user() -> None:
    shared = engine()
    first = Client(shared, EXT)
    first.open()
    first.subscribe(TELEMETRY)
    first.session.closed_by_peer()
    bob = PrincipalAccess(Identity("bob", frozenset()))
    assert "restored" not in Client(shared, EXT, access=bob, sid="s2").open(resume="sid-1")
    assert Client(shared, EXT, sid="s3").open(resume="sid-1")["restored"] is True
    assert "restored" not in Client(shared, EXT, sid="s4").open(resume="sid-1")


def test_a_plain_client_cannot_resume() -> None:
    shared = engine()
    first = Client(shared, PLAIN)
    first.open()
    first.subscribe(TELEMETRY)
    first.session.closed_by_peer()
    assert "restored" not in Client(shared, PLAIN, sid="s2").open(resume="sid-1")


@pytest.mark.parametrize("cap", ["max_sessions_per_user", "max_sessions"])
def test_sessions_kept_for_resume_are_capped_oldest_first(cap: str) -> None:
    shared = engine(**{cap: 5})
    sids = [f"sid-{i}" for i in range(8)]
    for i, sid in enumerate(sids):
        client = Client(shared, EXT, sid=sid)
        client.open()
        client.subscribe(make_identifier("numbers", topic=f"num/{i}"))
        client.session.closed_by_peer()
    assert list(shared.sessions) == sids[3:], "the newest five"
    assert "restored" not in Client(shared, EXT, sid="x").open(resume=sids[0])
    restored = Client(shared, EXT, sid="y").open(resume=sids[-1])
    assert restored["restored_ids"] == [make_identifier("numbers", topic="num/7")]


def test_history_after_eviction_sends_what_is_kept_then_the_gap() -> None:
    channels = {"commands": {"topics": ["plant/+/+/cmd"], "read": ["*"], "history_limit": 100}}
    client = Client(engine(channels), EXT)
    publish_seq(client, "plant/a/b/cmd", 0, 150)
    client.open()
    commands = make_identifier("commands")
    client.subscribe(commands)
    client.take()
    history = position(client.engine.epoch, 10, "commands")
    client.send({"command": "history", "identifier": commands, "history": history})
    client.advance()
    frames = client.take()
    assert [f["offset"] for f in frames if "offset" in f] == list(range(51, 151))
    reject = frames[-1]
    assert reject["type"] == "reject_history"
    assert reject["available_from"] == 51
    assert "no longer kept" in reject["reason"]


def test_reject_history_sends_nothing_the_client_did_not_ask_for() -> None:
    client = Client(engine(), EXT)
    publish_seq(client, "plant/a/b/env", 0, 30)
    client.open()
    client.subscribe(TELEMETRY)
    epoch = client.engine.epoch
    for history in (position(epoch, 10_000), position(epoch, 0, "numbers")):
        client.take()
        client.send({"command": "history", "identifier": TELEMETRY, "history": history})
        client.advance()
        frames = client.take()
        assert [f for f in frames if "offset" in f] == [], f"rows sent for {history}"
        assert frames[-1]["type"] == "reject_history"
        assert frames[-1]["available_from"] == 1
    publish_seq(client, "plant/a/b/env", 30, 31)  # the subscription goes on
    client.advance()
    assert seqs(client.rows(TELEMETRY)) == [30]


def test_history_from_an_old_epoch_is_gone() -> None:
    client = Client(engine(), EXT)
    client.open()
    history = position("an-old-epoch", 1)
    client.subscribe(TELEMETRY, history=history)
    client.advance()
    reject = next(f for f in client.take() if f.get("type") == "reject_history")
    assert reject["stream_id"] == "telemetry"
    assert reject["epoch"] == client.engine.epoch
    assert "epoch 'an-old-epoch'" in reject["reason"]
    assert "is gone" in reject["reason"]


def test_a_history_storm_from_a_client_that_never_reads_stays_within_the_bound() -> None:
    bound = 256 * 1024
    shared = engine(outbox_bytes=bound)
    pad = "x" * 500
    for i in range(2000):
        bridge(shared).deliver("plant/a/b/env", json.dumps({"seq": i, "pad": pad}))
    sleeper = Client(shared, EXT)
    sleeper.open()
    sleeper.subscribe(TELEMETRY)
    sleeper.stall()
    requests = 200
    history = position(shared.epoch, 0)
    peak = 0
    for _ in range(requests):
        sleeper.send({"command": "history", "identifier": TELEMETRY, "history": history})
        sleeper.advance()
        peak = max(peak, sleeper.session.outbox.used)
    assert peak <= 2 * bound
    assert sleeper.unwritten <= 2 * bound
    # Meanwhile another client keeps receiving.
    watcher = Client(shared, IOTCABLE, sid="sid-2")
    watcher.open()
    watcher.subscribe(make_identifier("numbers"))
    watcher.take()
    for i in range(2000):
        bridge(shared).deliver("num/w", str(i))
    watcher.advance()
    assert len(watcher.rows()) == 2000
    # Once the sleeper reads, every request has its answer and no row came twice.
    sleeper.drain()
    frames = [f for f in sleeper.take() if f.get("identifier") == TELEMETRY]
    offsets = [f["offset"] for f in frames if "offset" in f]
    assert offsets == list(range(1, 2001)), "the ring once, in order"
    confirmed = [f for f in frames if f.get("type") == "confirm_history"]
    refused = [f for f in frames if f.get("type") == "reject_history"]
    assert len(confirmed) == 1 + MAX_WAITING_HISTORY, "one sent, four waiting"
    assert len(refused) == requests - 1 - MAX_WAITING_HISTORY
    assert all("already waiting" in f["reason"] for f in refused)


# -- slow consumers -----------------------------------------------------------------------------


def test_a_conflating_client_is_told_how_many_readings_it_missed() -> None:
    client = Client(engine(outbox_bytes=64 * 1024), EXT)
    client.open()
    numbers = make_identifier("numbers")
    client.subscribe(numbers)
    client.take()
    client.stall()  # nobody reads while the readings come in
    total, topics = 30_000, 20
    for i in range(total):
        bridge(client.engine).deliver(f"num/t{i % topics}", str(i))
        if i % 1000 == 0:
            client.advance()
    client.drain()
    frames = [f for f in client.take() if f.get("identifier") == numbers]
    offsets = [f["offset"] for f in frames]
    dropped = sum(f.get("dropped", 0) for f in frames)
    assert offsets == sorted(set(offsets)), "in order, none twice"
    assert dropped > 0, "the client fell behind"
    assert len(frames) + dropped == total, "every reading arrived or was counted"
    latest = {f["message"]["topic"]: f["message"]["payload"] for f in frames}
    assert latest == {f"num/t{t}": float(total - topics + t) for t in range(topics)}


def test_memory_stays_bounded_for_a_client_that_never_reads() -> None:
    bound = 256 * 1024
    shared = engine(outbox_bytes=bound)
    sleeper = Client(shared, EXT)
    sleeper.open()
    # A long identifier: every data frame of this subscription repeats it.
    sleeper.subscribe(make_identifier("numbers", note="n" * 900))
    sleeper.stall()
    watcher = Client(shared, IOTCABLE, sid="sid-2")
    watcher.open()
    numbers = make_identifier("numbers")
    watcher.subscribe(numbers)
    watcher.take()
    rows = dropped = peak = 0
    total = 20_000
    for i in range(total):
        bridge(shared).deliver(f"num/load/{i % 2000}", str(i))
        if i % 500 == 0:
            sleeper.advance()
            watcher.advance()
            peak = max(peak, sleeper.session.outbox.used)
    sleeper.advance()
    watcher.advance()
    for frame in watcher.take():
        rows += len(frame.get("batch", ()))
        dropped += frame.get("dropped", 0)
    assert peak <= 2 * bound, peak
    assert sleeper.unwritten <= 2 * bound
    assert (rows, dropped) == (total, 0), "the reader got everything"


def test_a_slow_reader_on_a_disconnect_channel_is_told_too_slow() -> None:
    client = Client(engine(outbox_bytes=64 * 1024, too_slow_grace=120.0), EXT)
    client.open()
    strict = make_identifier("strict")
    client.subscribe(strict)
    client.take()
    client.stall()
    for i in range(30_000):
        bridge(client.engine).deliver("strict/a", str(i))
        if i % 100 == 0:
            client.advance()
            if client.session.closing:
                break
            client.drain(200)  # it reads, but far more slowly than readings come
    assert client.session.closing, "it fell behind"
    assert client.session.close_code is None, "not told before it read what was written"
    client.drain()  # once it has read everything written, it is told
    frames = client.take()
    rows = [f for f in frames if f.get("identifier") == strict]
    assert 0 < len(rows) < 30_000, "it fell behind, and got what was written before"
    assert frames[-1] == {"type": "disconnect", "reason": "too_slow", "reconnect": True}
    assert closed_with(client) == (1000, "too_slow")


def test_a_too_slow_client_that_reads_nothing_is_dropped_after_the_grace() -> None:
    client = Client(engine(outbox_bytes=64 * 1024, too_slow_grace=0.5), EXT)
    client.open()
    client.subscribe(make_identifier("strict"))
    client.take()
    client.stall()
    for i in range(20_000):
        bridge(client.engine).deliver("strict/a", str(i))
        client.advance()
    assert client.session.closing and not client.session.drop
    assert 0.5 in client.wakes
    client.advance(0.6)
    assert client.session.drop, "the socket is dropped"
    assert client.session.close_code is None, "without the frame it could not read"
    assert [f for f in client.take() if f.get("type") == "disconnect"] == []


def test_a_client_that_does_not_read_is_not_read_either() -> None:
    client = Client(engine(outbox_bytes=64 * 1024), EXT)
    client.open()
    client.stall()
    answered = 0
    while not client.session.backlogged:
        client.send("{not json")
        answered += 1
    # The adapter reads no more until the socket drains; then every frame was answered.
    assert client.unwritten > 64 * 1024
    client.drain()
    assert not client.session.backlogged
    errors = [f for f in client.take() if f.get("reason") == "malformed_json"]
    assert len(errors) == answered


def test_shutdown_says_server_restart_and_closes() -> None:
    client = Client(engine(), EXT)
    client.open()
    client.subscribe(TELEMETRY)
    client.take()
    client.session.shutdown(DisconnectReason.SERVER_RESTART, reconnect=True)
    client.advance()
    assert client.take() == [{"type": "disconnect", "reason": "server_restart", "reconnect": True}]
    assert closed_with(client) == (1001, "server_restart")
    publish_seq(client, "plant/a/b/env", 0, 1)
    client.advance()
    assert client.take() == [], "nothing follows a disconnect"


@pytest.mark.parametrize("subprotocol", [IOTCABLE, EXT])
def test_one_reading_is_encoded_once_for_every_subscriber_of_an_identifier(
    subprotocol: object,
) -> None:
    shared = engine()
    clients = [Client(shared, subprotocol, sid=f"sid-{i}") for i in range(5)]  # type: ignore[arg-type]
    for client in clients:
        client.open()
        client.subscribe(TELEMETRY)
        client.take()
    stream = shared.hub.streams["telemetry"]
    publish_seq(clients[0], "plant/a/b/env", 0, 1)
    written: list[object] = []
    for client in clients:
        client.session.advance(client.clock.now)
        written += client.session.data_to_send()
    assert len(written) == 5
    assert all(frame is written[0] for frame in written), "the same bytes, five writes"
    assert (stream.frames_built, stream.frames_shared) == (1, 4)
