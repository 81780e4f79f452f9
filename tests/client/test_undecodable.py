"""A frame the client cannot decode (an older or foreign server) costs no other row: its
readings are asked again from history once, and become a gap in ``sub.gaps`` (cause
``undecodable``) only if that fails too; a frame it cannot even attribute shows in the
cable's status. Driven in memory: a real server machine, the real client session."""

from __future__ import annotations

import json

from jupyter_iotcable.client.gaps import GapCause
from jupyter_iotcable.client.inbox import Inbox
from jupyter_iotcable.protocol import HistoryRequested, SubscribeRequested

from .memory import T0, MemoryServer, reading_rows

POISON = "1" + "0" * 400  # an integer no 64-bit float holds: no client decodes it


def poison_batch(identifier: str, offsets: range) -> str:
    """One batch frame of ``offsets`` as an older server sent it: one payload undecodable."""
    rows = ",".join(
        f'[{n},{T0 + n},"plant/lyon/p{n % 2}/env",{POISON if n == offsets[0] else "{}"}]'
        for n in offsets
    )
    return (
        f'{{"identifier":{json.dumps(identifier)},"batch":[{rows}],'
        '"stream_id":"telemetry","epoch":"e1"}'
    )


def offsets(inbox: Inbox) -> list[int]:
    """The readings held, by offset (reading_rows times them T0 + offset)."""
    return [round(t - T0) for t in inbox.buffer.snapshot().times]


def live(wire: MemoryServer) -> tuple[Inbox, str]:
    inbox = Inbox("telemetry", None, max_rows=10_000, window=None)
    wire.session.subscribe(inbox)
    (asked,) = [e for e in wire.pump() if isinstance(e, SubscribeRequested)]
    wire.confirm(asked.identifier)
    wire.rows(asked.identifier, reading_rows(1, 6))
    wire.pump()
    return inbox, asked.identifier


def test_readings_history_brings_again_are_no_gap() -> None:
    wire = MemoryServer()
    inbox, identifier = live(wire)
    wire.session.receive_text(poison_batch(identifier, range(6, 9)), T0)
    (asked,) = [e for e in wire.pump() if isinstance(e, HistoryRequested)]
    assert asked.request.streams["telemetry"].offset == 5
    wire.rows(identifier, reading_rows(9, 10))  # live, before the answer
    wire.rows(identifier, reading_rows(6, 10))  # the answer, decodable this time
    wire.server.confirm_history(identifier)
    wire.pump()
    assert offsets(inbox) == list(range(1, 10))
    assert len(inbox.gaps) == 0
    assert wire.session.last_server_error is None


def test_readings_no_frame_can_carry_are_one_gap_and_later_ones_arrive() -> None:
    wire = MemoryServer()
    inbox, identifier = live(wire)
    wire.session.receive_text(poison_batch(identifier, range(6, 9)), T0)
    assert [e for e in wire.pump() if isinstance(e, HistoryRequested)]
    wire.session.receive_text(poison_batch(identifier, range(6, 9)), T0)  # the answer too
    wire.server.confirm_history(identifier)
    wire.rows(identifier, reading_rows(9, 11))
    assert not [e for e in wire.pump() if isinstance(e, HistoryRequested)], "asked once only"
    assert offsets(inbox) == [1, 2, 3, 4, 5, 9, 10]
    [gap] = inbox.gaps.gaps()
    assert gap.cause is GapCause.UNDECODABLE
    assert gap.start is not None and gap.end is not None
    assert (gap.start.timestamp(), gap.end.timestamp()) == (T0 + 5, T0 + 9)
    assert "could not be decoded by this client" in gap.reason
    assert "does not fit a 64-bit float" in gap.detail
    assert "nor when asked again from history" in gap.detail
    assert wire.session.last_server_error is None


def test_a_frame_no_subscription_can_own_is_a_cable_warning() -> None:
    wire = MemoryServer()
    inbox, _ = live(wire)
    gone = '{"identifier":"{\\"channel\\":\\"gone\\"}","batch":[[1,'
    wire.session.receive_text(gone + POISON, T0)
    wire.session.receive_text("<html>", T0)
    assert wire.session.last_server_error == (
        "malformed_frame: frame is not JSON: Expecting value: line 1 column 1 (char 0)"
    )
    assert len(inbox.gaps) == 0
    wire.rows(inbox_identifier(wire), reading_rows(6, 7))
    wire.pump()
    assert inbox.received == 6


def inbox_identifier(wire: MemoryServer) -> str:
    (identifier,) = wire.session.connection.subscriptions
    return identifier
