"""The client's session in memory, against the server's real protocol machine.

Policy lives here: what a subscribe, a history request and a publish wait for, which rows
are arrivals and which a backfill, what a gap says, what a payload the channel's format
cannot carry does (nothing leaves), what a lost connection does to waiting publishes.
"""

from __future__ import annotations

import concurrent.futures
import json

import pytest

from jupyter_iotcable.client.errors import (
    CableClosed,
    ConnectionFailed,
    InvalidPayload,
    SubscriptionRejected,
)
from jupyter_iotcable.client.gaps import GapCause
from jupyter_iotcable.client.inbox import Inbox
from jupyter_iotcable.client.session import PublishResult
from jupyter_iotcable.protocol import (
    HistoryRequested,
    PerformRequested,
    SubscribeRequested,
)

from .memory import T0, MemoryServer, reading_rows

SINCE = T0 - 300


def inbox(topic: str | None = None) -> Inbox:
    return Inbox("telemetry", topic, max_rows=10_000, window=None)


def subscribe(
    server: MemoryServer, box: Inbox, since: float | None = None
) -> concurrent.futures.Future[None]:
    answer = server.session.subscribe(box, since)
    events = server.pump()
    assert [type(e) for e in events] == [SubscribeRequested]
    return answer


def test_a_subscribe_is_answered_by_the_confirm_and_rows_are_arrivals() -> None:
    server = MemoryServer()
    box = inbox()
    answer = subscribe(server, box)
    assert not answer.done()
    server.confirm(box.identifier)
    server.pump()
    assert answer.result(0) is None
    assert box.state == "live"
    server.rows(box.identifier, reading_rows(1, 11))
    server.pump()
    assert len(box.buffer) == 10
    assert box.rate.total == 10  # live rows count as arrivals
    assert box.received == 10


def test_a_backfill_is_not_counted_as_arrivals() -> None:
    # Issue 10: sub.rate read 70,646 then 1,782 after a backfill while 4 a second arrived.
    server = MemoryServer()
    box = inbox()
    answer = subscribe(server, box, since=SINCE)
    server.confirm(box.identifier)
    server.pump()
    assert not answer.done(), "the subscribe waits for its backfill"
    server.rows(box.identifier, reading_rows(1, 5001))  # the history answer
    server.pump()
    assert not answer.done()
    server.server.confirm_history(box.identifier)
    server.pump()
    assert answer.result(0) is None
    assert len(box.buffer) == 5000
    assert box.rate.total == 0
    server.rows(box.identifier, reading_rows(5001, 5005))  # then 4 live readings
    server.pump()
    assert box.rate.total == 4


def test_history_on_a_live_subscription_waits_for_the_whole_answer() -> None:
    server = MemoryServer()
    box = inbox()
    subscribe(server, box)
    server.confirm(box.identifier)
    server.rows(box.identifier, reading_rows(100, 110))
    server.pump()
    answer = server.session.history(box, SINCE)
    assert [type(e) for e in server.pump()] == [HistoryRequested]
    server.rows(box.identifier, reading_rows(1, 100))  # older rows: a backfill
    server.server.confirm_history(box.identifier)
    server.pump()
    assert answer.result(0) is None
    assert len(box.buffer) == 109
    assert box.rate.total == 10
    # The latest reading per topic stays the newest one, not the backfill's.
    latest = {row[2]: row[0] for row in box.latest_rows()}
    assert latest == {"plant/lyon/p0/env": 108, "plant/lyon/p1/env": 109}


def test_history_asked_while_reconnecting_is_sent_once_confirmed_again() -> None:
    server = MemoryServer()
    box = inbox()
    subscribe(server, box)
    server.confirm(box.identifier)
    server.rows(box.identifier, reading_rows(1, 3))
    server.pump()
    server.session.connection_lost(T0)
    answer = server.session.history(box, SINCE)
    assert server.session.data_to_send() == []
    # A new socket: welcome, the machine resubscribes from its positions.
    events = server.reconnect()
    assert [type(e) for e in events] == [SubscribeRequested]
    server.confirm(box.identifier)
    events = server.pump()
    # The catch-up from the positions rode on the subscribe; the user's request follows.
    assert [type(e) for e in events] == [HistoryRequested]
    server.server.confirm_history(box.identifier)
    server.pump()
    assert not answer.done(), "the catch-up is answered, the request is still in flight"
    server.server.confirm_history(box.identifier)
    server.pump()
    assert answer.result(0) is None


def test_a_gap_before_the_servers_start_reads_as_times() -> None:
    server = MemoryServer()
    box = inbox()
    answer = subscribe(server, box, since=SINCE)
    server.confirm(box.identifier)
    server.rows(box.identifier, reading_rows(1, 4, t0=T0 - 60))  # kept since the start
    server.server.reject_history(
        box.identifier,
        "readings of stream 'telemetry' before 1699999940.000 are not kept",
        stream_id="telemetry",
        epoch="e1",
        available_from=1,
    )
    # The client asks again for what is kept (from offset 1), and the server answers.
    (again,) = server.pump()
    assert isinstance(again, HistoryRequested)
    assert not answer.done()
    server.server.confirm_history(box.identifier)
    server.pump()
    assert answer.result(0) is None
    (gap,) = box.gaps.gaps(now=T0)
    assert (gap.start.timestamp(), gap.end.timestamp()) == (SINCE, T0 - 59)  # type: ignore[union-attr]
    assert gap.cause is GapCause.NOT_KEPT
    assert gap.readings is None
    assert (
        str(gap)
        == "readings from 22:08:20 to 22:12:21 UTC are unknown: the server did not keep them"
    )
    assert gap.detail == "readings of stream 'telemetry' before 1699999940.000 are not kept"
    assert repr(gap) == "<Gap 2023-11-14 22:08:20 UTC to 2023-11-14 22:12:21 UTC: not_kept>"


def test_readings_conflated_away_are_a_gap_with_a_count() -> None:
    server = MemoryServer()
    box = inbox()
    subscribe(server, box)
    server.confirm(box.identifier)
    server.rows(box.identifier, reading_rows(1, 3))
    server.rows(box.identifier, reading_rows(50, 52), dropped=47)
    server.pump()
    assert box.dropped == 47
    (gap,) = box.gaps.gaps(now=T0)
    assert gap.cause is GapCause.TOO_SLOW
    assert gap.readings == 47
    assert str(gap) == (
        "47 readings from 22:13:22 to 22:14:10 UTC were dropped by the server because this "
        "client read too slowly (it kept the latest reading of each topic)"
    )


def test_a_server_restart_is_a_gap_that_the_next_rows_close() -> None:
    server = MemoryServer()
    box = inbox()
    subscribe(server, box)
    server.confirm(box.identifier)
    server.rows(box.identifier, reading_rows(1, 3))
    server.rows(box.identifier, reading_rows(1, 2, t0=T0 + 100), epoch="e2")
    server.pump()
    (gap,) = box.gaps.gaps(now=T0)
    assert gap.cause is GapCause.SERVER_RESTARTED
    assert str(gap) == (
        "the server restarted: readings from 22:13:22 to 22:15:01 UTC may be missing"
    )


def test_a_payload_the_format_cannot_carry_never_leaves() -> None:
    server = MemoryServer()
    answer = server.session.publish("commands", "plant/a/b/cmd", "not json {")
    (subscribe_event,) = server.pump()
    assert isinstance(subscribe_event, SubscribeRequested)
    server.confirm(subscribe_event.identifier, format="json")
    events = server.pump()
    assert not any(isinstance(e, PerformRequested) for e in events), "no publish went out"
    with pytest.raises(InvalidPayload) as refused:
        answer.result(0)
    assert str(refused.value) == (
        "channel 'commands' takes JSON, and this text is not JSON: Expecting value: line 1 "
        "column 1 (char 0). Pass a dict, list, number, bool or None, or JSON text such as "
        """'{"setpoint": 25}'; to send the text itself, pass json.dumps(text)"""
    )
    assert server.session.identifiers == [], "the wire opened to publish is released"


def test_a_publish_goes_out_once_confirmed_and_its_answer_releases_the_wire() -> None:
    server = MemoryServer()
    answer = server.session.publish("commands", "plant/a/b/cmd", {"setpoint": "hot"})
    (subscribe_event,) = server.pump()
    server.confirm(subscribe_event.identifier, format="json")
    (perform,) = server.pump()
    assert isinstance(perform, PerformRequested)
    assert perform.data["payload"] == {"setpoint": "hot"}  # valid JSON: the channel's call
    server.server.transmit(
        perform.identifier,
        {
            "action": "publish_result",
            "ref": perform.data["ref"],
            "ok": True,
            "topic": "plant/a/b/cmd",
        },
    )
    server.pump()
    assert answer.result(0) == PublishResult(True, "plant/a/b/cmd")
    assert server.session.identifiers == []


def test_a_publish_in_flight_when_the_connection_drops_says_it_may_have_gone_out() -> None:
    server = MemoryServer()
    answer = server.session.publish("commands", "plant/a/b/cmd", 1)
    (subscribe_event,) = server.pump()
    server.confirm(subscribe_event.identifier, format="number")
    server.pump()
    server.session.connection_lost(T0)
    with pytest.raises(ConnectionFailed) as lost:
        answer.result(0)
    assert str(lost.value) == (
        "the connection to http://127.0.0.1:8888/ dropped before the server answered this "
        "publish: it may or may not have reached the broker; check, then publish again if needed"
    )


def test_a_rejected_subscribe_fails_its_waiters_and_ends_the_inbox() -> None:
    server = MemoryServer()
    box = inbox()
    answer = subscribe(server, box)
    server.server.reject_subscription(box.identifier, "unknown channel 'telemetry'")
    server.pump()
    with pytest.raises(SubscriptionRejected):
        answer.result(0)
    assert (box.state, box.reason) == ("rejected", "unknown channel 'telemetry'")
    assert server.session.identifiers == []


def test_closing_fails_what_waits_and_ends_every_inbox() -> None:
    server = MemoryServer()
    box = inbox()
    answer = subscribe(server, box)
    server.session.close()
    with pytest.raises(CableClosed) as closed:
        answer.result(0)
    assert str(closed.value) == "the cable to http://127.0.0.1:8888/ is closed"
    assert box.state == "closed"
    later = server.session.publish("commands", "plant/a/b/cmd", 1)
    with pytest.raises(CableClosed):
        later.result(0)


def test_the_brokers_state_is_what_the_server_last_said() -> None:
    server = MemoryServer()
    assert server.session.broker is None
    server.server.broker_event("connected", "mqtt://127.0.0.1:1883")
    server.pump()
    assert server.session.broker is not None
    assert (server.session.broker.state, server.session.broker.since) == ("connected", T0)


def test_a_second_subscription_to_the_same_filter_gets_its_own_identifier() -> None:
    server = MemoryServer()
    first, second = inbox("plant/+/x/env"), inbox("plant/+/x/env")
    subscribe(server, first)
    subscribe(server, second)
    assert first.identifier != second.identifier
    assert json.loads(second.identifier)["instance"] == "2"
