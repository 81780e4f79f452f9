"""When the server session sends: as soon as the socket is free, never on a timer.

In memory (tests/core/sessions.py): the test decides when the socket takes what it was
given, and reads what the session asked of its transport (``Client.wakes``: the delays of
the wake-ups it wanted). No clock moves in these tests: nothing waits for time to pass.
"""

from __future__ import annotations

import json

import pytest

from jupyter_iotcable.protocol import make_identifier
from tests.core.sessions import EXT, IOTCABLE, PLAIN, Client, bridge, engine

TELEMETRY = make_identifier("telemetry")
STRICT = make_identifier("strict")
TOPIC = "plant/lyon/p1/env"


def publish(client: Client, topic: str, seq: int, pad: int = 0) -> None:
    payload = {"seq": seq, "pad": "x" * pad} if pad else {"seq": seq}
    assert bridge(client.engine).deliver(topic, json.dumps(payload))


def subscribed(subprotocol: object, identifier: str = TELEMETRY, **settings: object) -> Client:
    client = Client(engine(**settings), subprotocol)  # type: ignore[arg-type]
    client.open()
    client.subscribe(identifier)
    client.take()
    client.wakes.clear()
    return client


def data_frames(client: Client) -> list[dict[str, object]]:
    return [f for f in client.take() if "batch" in f or "offset" in f]


def seqs(frames: list[dict[str, object]]) -> list[int]:
    out: list[int] = []
    for frame in frames:
        if "batch" in frame:
            out += [row[3]["seq"] for row in frame["batch"]]  # type: ignore[attr-defined]
        else:
            out.append(frame["message"]["payload"]["seq"])  # type: ignore[index]
    return out


@pytest.mark.parametrize("subprotocol", [IOTCABLE, EXT, PLAIN])
def test_a_reading_to_an_idle_connection_goes_at_once(subprotocol: object) -> None:
    client = subscribed(subprotocol)
    publish(client, TOPIC, 0)
    assert client.wakes == [0.0], "no batching delay when the socket is idle"
    client.advance(0.0)  # the wake-up it asked for, with no time passing
    assert seqs(data_frames(client)) == [0]
    for seq in range(1, 4):  # each on its own, the socket taking each one
        client.wakes.clear()
        publish(client, TOPIC, seq)
        assert client.wakes == [0.0]
        client.advance(0.0)
        assert seqs(data_frames(client)) == [seq]


@pytest.mark.parametrize("subprotocol", [IOTCABLE, EXT])
def test_readings_gather_while_a_write_is_pending_and_go_when_it_completes(
    subprotocol: object,
) -> None:
    client = subscribed(subprotocol)
    client.stall()  # the socket has not taken the next write yet
    publish(client, TOPIC, 0)
    client.advance(0.0)
    assert seqs(data_frames(client)) == [0], "written at once"
    client.wakes.clear()
    for seq in range(1, 40):
        publish(client, TOPIC, seq)
    assert client.wakes == [], "nothing to do until the socket is free"
    assert data_frames(client) == []
    assert client.session.outbox.pending_rows == 39
    client.drain(client.unwritten)  # the write completed: what gathered goes, in one go
    frames = data_frames(client)
    assert seqs(frames) == list(range(1, 40))
    if subprotocol is IOTCABLE:
        assert len(frames) == 1, "one batch frame"
    else:
        assert len(frames) == 39, "one data frame per reading, written together"


def test_a_write_completing_with_nothing_queued_sends_nothing() -> None:
    client = subscribed(IOTCABLE)
    client.stall()
    publish(client, TOPIC, 0)
    client.advance(0.0)
    client.take()
    client.drain(client.unwritten)
    assert client.take() == [] and client.session.outbox.in_flight == 0


def test_a_partial_write_keeps_the_readings_gathering() -> None:
    client = subscribed(IOTCABLE)
    client.stall()
    publish(client, TOPIC, 0)
    client.advance(0.0)
    client.take()
    publish(client, TOPIC, 1)
    client.drain(client.unwritten - 1)  # not all of it yet
    assert data_frames(client) == []
    publish(client, TOPIC, 2)
    client.drain(1)
    assert seqs(data_frames(client)) == [1, 2]


def test_a_full_batch_is_split_into_frames_of_batch_max() -> None:
    client = subscribed(IOTCABLE, batch_max=10)
    client.stall()
    publish(client, TOPIC, 0)
    client.advance(0.0)
    client.take()
    for seq in range(1, 26):
        publish(client, TOPIC, seq)
    client.drain(client.unwritten)
    frames = data_frames(client)
    assert [len(f["batch"]) for f in frames] == [10, 10, 5]  # type: ignore[arg-type]
    assert seqs(frames) == list(range(1, 26))


# -- a reading larger than the outbox (issue #12, item 3) ---------------------------------------

BOUND = 8 * 1024
BIG = 20 * 1024  # the reading alone is over the bound
POLICIES = {
    "conflate": {"topics": ["c/#"], "read": ["*"], "policy": "conflate"},
    "disconnect": {"topics": ["d/#"], "read": ["*"], "policy": "disconnect"},
}


def policy_client(subprotocol: object, policy: str) -> tuple[Client, str]:
    client = Client(engine(POLICIES, outbox_bytes=BOUND), subprotocol)  # type: ignore[arg-type]
    client.open()
    client.subscribe(make_identifier(policy))
    client.take()
    return client, policy[0]


@pytest.mark.parametrize("subprotocol", [IOTCABLE, EXT])
@pytest.mark.parametrize("policy", ["conflate", "disconnect"])
def test_a_reading_larger_than_the_outbox_reaches_a_reader_on_its_own(
    subprotocol: object, policy: str
) -> None:
    """Not counted as overflow, not conflated away by the next small reading."""
    client, prefix = policy_client(subprotocol, policy)
    client.stall()  # a write is pending: the big one waits in the outbox for its turn
    publish(client, f"{prefix}/a", 0)
    client.advance(0.0)
    publish(client, f"{prefix}/big", 1, pad=BIG)
    publish(client, f"{prefix}/a", 2)  # the next small readings, while the big one waits
    publish(client, f"{prefix}/b", 3)
    client.drain()
    frames = data_frames(client)
    assert seqs(frames) == [0, 1, 2, 3], "the big one and the small ones after it, in order"
    assert all("dropped" not in f for f in frames)
    assert not client.session.closing and client.session.close_code is None
    # Readings after it are not refused while it is in flight, and the bound comes back.
    client.stall()
    publish(client, f"{prefix}/big", 4, pad=BIG)
    client.advance(0.0)
    publish(client, f"{prefix}/a", 5)
    assert client.session.outbox.allowance > BOUND
    client.drain()
    assert seqs(data_frames(client)) == [4, 5]
    outbox = client.session.outbox
    assert (outbox.allowance, outbox.used) == (0, 0), "the bound is what it was"


@pytest.mark.parametrize("subprotocol", [IOTCABLE, EXT])
def test_big_readings_to_a_client_that_does_not_read_stay_bounded(subprotocol: object) -> None:
    """One big reading waits outside the bound; the next big one replaces it (conflate)."""
    client, _ = policy_client(subprotocol, "conflate")
    client.stall()
    publish(client, "c/a", 0)
    client.advance(0.0)
    for seq in range(1, 50):
        publish(client, "c/big", seq, pad=BIG)
        client.advance(0.0)
    outbox = client.session.outbox
    assert outbox.used <= BOUND + 2 * (BIG + 1024), "at most one in flight and one queued"
    client.drain()
    frames = data_frames(client)
    got = seqs(frames)
    assert got[0] == 0 and got[-1] == 49 and got == sorted(got)
    assert len(got) + sum(f.get("dropped", 0) for f in frames) == 50  # type: ignore[misc]


def test_big_readings_to_a_client_that_does_not_read_end_in_too_slow() -> None:
    client, _ = policy_client(EXT, "disconnect")
    client.stall()
    publish(client, "d/a", 0)
    client.advance(0.0)
    for seq in range(1, 4):
        publish(client, "d/big", seq, pad=BIG)
        client.advance(0.0)
    assert client.session.closing, "a second big reading queued behind one is too much"
    client.drain()
    assert client.take()[-1] == {"type": "disconnect", "reason": "too_slow", "reconnect": True}
