"""Lost continuity is a reported gap (issue 12, finding 7), in memory.

When the bridge comes back without its broker session (CONNACK "session present" 0 where
it had one), what devices published during the outage is gone. Every stream then goes on
in a new epoch (offsets go on), as AnyCable signals lost continuity: each frame holds rows
of one epoch, so every client sees the change between the last reading before the outage
and the first after, live and in history answers, and the Python client turns it into a
``Gap`` (cause ``continuity_lost``) in ``sub.gaps``. The engine runs over a
``MemoryBridge``; the client is the real ``ClientSession`` reading the server session's
frames.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from jupyter_iotcable.client.gaps import GapCause
from jupyter_iotcable.client.inbox import Inbox
from jupyter_iotcable.client.session import ClientSession
from jupyter_iotcable.protocol import GapReported, make_identifier
from jupyter_iotcable.protocol.client import continuity_lost
from jupyter_iotcable.protocol.messages import epoch_run
from jupyter_iotcable.server import metrics
from jupyter_iotcable.server.engine import CableEngine
from tests.core.sessions import EXT, IOTCABLE, Client, Clock, bridge, engine

# Device clocks ahead of the engines' start (history keeps readings by age and by time).
T0 = float(int(time.time())) + 1000.0
TELEMETRY = make_identifier("telemetry")


class Wire:
    """The real Python client session reading one server session's frames, in memory."""

    def __init__(self, server_engine: CableEngine) -> None:
        self.server = Client(server_engine, clock=Clock(T0))
        self.session = ClientSession("http://memory/", clock=lambda: self.server.clock.now)
        self.session.transport_state("connecting")
        self.session.connection_opened(self.server.clock.now)
        self.server.open()
        self.pump()

    def pump(self) -> None:
        while True:
            moved = False
            self.server.advance()  # the session sends what the hub queued meanwhile
            for frame in self.server.take():
                self.session.receive_text(json.dumps(frame), self.server.clock.now)
                moved = True
            for text in self.session.data_to_send():
                self.server.send(text)
                moved = True
            if not moved:
                return

    def subscribe(self, since: float | None = None) -> Inbox:
        inbox = Inbox("telemetry", None, max_rows=10_000, window=None)
        self.session.subscribe(inbox, since)
        self.pump()
        return inbox


def device(eng: CableEngine, n: int, first: int = 1) -> None:
    """``n`` readings of one device, one a second from T0 + first (the device's clock)."""
    for i in range(first, first + n):
        payload = json.dumps({"seq": i})
        assert bridge(eng).deliver("plant/lyon/pump1/env", payload, received_at=T0 + i)


def outage(eng: CableEngine, *, session_present: bool) -> None:
    bridge(eng).go_down()
    bridge(eng).come_back(session_present=session_present)


def test_a_lost_session_is_a_gap_from_the_last_reading_before_to_the_first_after() -> None:
    eng = engine()
    wire = Wire(eng)
    inbox = wire.subscribe()
    device(eng, 5)  # T0+1 .. T0+5
    wire.pump()
    gaps_before = metrics.CONTINUITY_GAPS.per_channel.labels("telemetry")._value.get()
    outage(eng, session_present=False)
    device(eng, 3, first=10)  # T0+10 .. : what came between was lost with the session
    wire.pump()

    assert inbox.received == 8
    [gap] = inbox.gaps.gaps()
    assert gap.cause is GapCause.CONTINUITY_LOST
    assert gap.start is not None and gap.end is not None
    assert (gap.start.timestamp(), gap.end.timestamp()) == (T0 + 5, T0 + 10)
    assert "lost its MQTT broker session" in gap.reason
    assert "lost continuity" in gap.detail

    # The server counts it, says where it is, and the stream went on in a new epoch.
    stream = eng.hub.streams["telemetry"]
    assert stream.epoch == f"{eng.epoch}.2" and epoch_run(stream.epoch) == eng.epoch
    assert [e.offset for e in stream.ring] == list(range(1, 9)), "offsets go on"
    status: Any = eng.status()
    assert status["broker"]["sessions_lost"] == 1
    continuity = status["channels"]["telemetry"]["continuity"]
    assert continuity["gaps"] == 1
    assert continuity["last"]["start"] == T0 + 5
    assert continuity["last"]["end"] == T0 + 10
    assert continuity["last"]["after_offset"] == 5
    assert status["channels"]["telemetry"]["epoch"] == stream.epoch
    # Every stream lost its readings, quiet ones too (their gap opens at nothing).
    assert status["channels"]["numbers"]["continuity"]["gaps"] == 1
    after = metrics.CONTINUITY_GAPS.per_channel.labels("telemetry")._value.get()
    assert after - gaps_before == 1


def test_a_kept_session_is_no_gap() -> None:
    eng = engine()
    wire = Wire(eng)
    inbox = wire.subscribe()
    device(eng, 3)
    outage(eng, session_present=True)  # the broker queued what came meanwhile
    device(eng, 3, first=3)
    wire.pump()
    assert inbox.received == 6
    assert inbox.gaps.gaps() == []
    assert eng.hub.streams["telemetry"].epoch == eng.epoch
    assert eng.status()["broker"]["sessions_lost"] == 0  # type: ignore[index]


def test_outages_in_a_row_without_a_reading_between_are_one_gap() -> None:
    eng = engine()
    wire = Wire(eng)
    inbox = wire.subscribe()
    device(eng, 2)
    outage(eng, session_present=False)
    outage(eng, session_present=False)
    device(eng, 1, first=20)
    outage(eng, session_present=False)
    device(eng, 1, first=30)
    wire.pump()
    stream = eng.hub.streams["telemetry"]
    assert stream.continuity_gaps == 2
    assert len({stream.epoch_of(o)[0] for o in (1, 3, 4)}) == 3, "each epoch its own name"
    spans = [(g.start.timestamp(), g.end.timestamp()) for g in inbox.gaps.gaps()]  # type: ignore[union-attr]
    assert spans == [(T0 + 2, T0 + 20), (T0 + 20, T0 + 30)]
    assert eng.status()["broker"]["sessions_lost"] == 3  # type: ignore[index]


def test_history_shows_the_gap_to_a_client_that_comes_later() -> None:
    eng = engine()
    device(eng, 4)
    outage(eng, session_present=False)
    device(eng, 4, first=10)
    late = Wire(eng)
    inbox = late.subscribe(since=T0 - 1)
    assert inbox.received == 8
    [gap] = inbox.gaps.gaps()
    assert gap.cause is GapCause.CONTINUITY_LOST
    assert (gap.start.timestamp(), gap.end.timestamp()) == (T0 + 4, T0 + 10)  # type: ignore[union-attr]


def test_history_from_inside_the_lost_interval_is_rejected_with_why() -> None:
    eng = engine()
    device(eng, 4)
    outage(eng, session_present=False)
    device(eng, 2, first=10)
    client = Client(eng)
    client.open()
    client.take()
    frames = client.subscribe(TELEMETRY, history={"since": T0 + 5})
    reject = next(f for f in frames if f.get("type") == "reject_history")
    assert "are lost" in reject["reason"]
    assert "no longer had the bridge's session" in reject["reason"]
    rows = [r for f in frames if "batch" in f for r in f["batch"]]
    assert [r[0] for r in rows] == [5, 6]


@pytest.mark.parametrize("subprotocol", [IOTCABLE, EXT])
def test_every_frame_holds_rows_of_one_epoch(subprotocol: Any) -> None:
    eng = engine()
    device(eng, 3)
    outage(eng, session_present=False)
    device(eng, 3, first=10)
    client = Client(eng, subprotocol)
    client.open()
    frames = client.subscribe(TELEMETRY, history={"since": T0 - 1})
    epochs = {}
    for frame in frames:
        if "batch" in frame:
            for row in frame["batch"]:
                epochs[row[0]] = frame["epoch"]
        elif "offset" in frame:
            epochs[frame["offset"]] = frame["epoch"]
    run = eng.epoch
    assert epochs == {1: run, 2: run, 3: run, 4: f"{run}.2", 5: f"{run}.2", 6: f"{run}.2"}


def test_a_resume_from_the_old_epoch_gets_the_rest_then_the_change() -> None:
    eng = engine()
    device(eng, 3)
    old = eng.hub.streams["telemetry"].epoch
    outage(eng, session_present=False)
    device(eng, 2, first=10)
    client = Client(eng)
    client.open()
    client.take()
    position = {"streams": {"telemetry": {"epoch": old, "offset": 2}}}
    frames = client.subscribe(TELEMETRY, history=position)
    batches = [(f["epoch"], [r[0] for r in f["batch"]]) for f in frames if "batch" in f]
    assert batches == [(old, [3]), (f"{old}.2", [4, 5])]
    assert any(f.get("type") == "confirm_history" for f in frames)


def test_a_resume_from_an_epoch_no_longer_kept_is_rejected_as_lost_continuity() -> None:
    eng = engine({"telemetry": {"topics": ["plant/+/+/env"], "read": ["*"], "history_limit": 2}})
    device(eng, 3)
    old = eng.hub.streams["telemetry"].epoch
    outage(eng, session_present=False)
    device(eng, 3, first=10)  # the ring keeps offsets 5 and 6 of the new epoch only
    client = Client(eng)
    client.open()
    client.take()
    frames = client.subscribe(
        TELEMETRY, history={"streams": {"telemetry": {"epoch": old, "offset": 3}}}
    )
    reject = next(f for f in frames if f.get("type") == "reject_history")
    assert "lost continuity" in reject["reason"]
    assert reject["epoch"] == f"{old}.2"


def test_the_client_names_a_new_server_run_a_restart_and_a_continuation_a_loss() -> None:
    def gap(old: str, new: str) -> GapReported:
        return GapReported("i", "telemetry", "r", True, 3, None, new)

    assert continuity_lost(gap("a1", "a1.2"))
    assert continuity_lost(gap("a1.2", "a1.3"))
    assert not continuity_lost(gap("a1", "b7")), "another run: the server restarted"
    assert not continuity_lost(GapReported("i", "telemetry", "r", False, 3, 9, "a1.2"))


def test_a_confirm_names_the_streams_current_epoch() -> None:
    eng = engine()
    outage(eng, session_present=False)
    client = Client(eng)
    client.open()
    client.take()
    confirm = client.subscribe(TELEMETRY)
    assert confirm["meta"]["epoch"] == f"{eng.epoch}.2"
