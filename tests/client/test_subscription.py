"""What a subscription says about itself: repr, status, fields; frames as the channel says."""

from __future__ import annotations

import pytest

from jupyter_iotcable.client import Gap, UnknownName
from jupyter_iotcable.client.subscription import QUIET_AFTER

from .memory import COLUMNS, T0, memory_subscription, reading_rows


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_repr_tells_subscriptions_apart() -> None:
    clock = Clock()
    sub, inbox = memory_subscription(topic="plant/lyon/+/env", clock=clock)
    inbox.receive(reading_rows(1, 41), 0, backfill=False)
    clock.now += 5
    assert repr(sub) == (
        "<Subscription 'telemetry' plant/lyon/+/env: live, 8.0 readings/s, 40 rows>"
    )
    whole, _ = memory_subscription()
    assert repr(whole).startswith("<Subscription 'telemetry' (all topics): live, 0.0 readings/s")


def test_status_says_when_a_filter_matches_no_topic_the_server_has_seen() -> None:
    clock = Clock()
    meta = {
        "columns": COLUMNS,
        "format": "json",
        "topics": {
            "seen": 8,
            "matching": 0,
            "examples": ["plant/lyon/pump1/env", "plant/lyon/pump2/env", "plant/porto/fan1/env"],
        },
    }
    sub, _ = memory_subscription(topic="plant/paris/+/env", meta=meta, clock=clock)
    assert sub.status == "live, 0.0 readings/s"
    clock.now += QUIET_AFTER + 20
    assert sub.status == (
        "live, but no new reading for 30 s: 'plant/paris/+/env' matches none of the 8 topics "
        "the server has seen recently on 'telemetry', e.g. plant/lyon/pump1/env, "
        "plant/lyon/pump2/env, plant/porto/fan1/env"
    )
    assert repr(sub) == f"<Subscription 'telemetry' plant/paris/+/env: {sub.status}, 0 rows>"


def test_status_says_when_a_device_went_quiet() -> None:
    clock = Clock()
    sub, inbox = memory_subscription(clock=clock)
    clock.now += QUIET_AFTER + 1
    assert sub.status == "live, but no new reading for 11 s since subscribing"
    inbox.receive(reading_rows(1, 3), 0, backfill=False)
    assert sub.status == "live, 0.2 readings/s"  # 2 readings in the last 10 s
    clock.now += 150
    assert sub.status == "live, but no new reading for 2 min"


def test_status_of_an_ended_subscription() -> None:
    sub, inbox = memory_subscription()
    sub.unsubscribe()
    assert sub.status == "unsubscribed: the frame keeps the readings it has"
    sub, inbox = memory_subscription()
    inbox.ended("rejected", "you may not read channel 'telemetry'")
    assert sub.status == "rejected: you may not read channel 'telemetry'"


def test_the_frame_takes_the_channels_time_field_as_its_index() -> None:
    meta = {"columns": COLUMNS, "format": "json", "time_field": "ts"}
    sub, inbox = memory_subscription(meta=meta)
    inbox.receive(
        [(1, T0 + 0.25, "plant/lyon/p1/env", {"seq": 1, "ts": T0 + 0.25, "t": 20.5}, None)],
        0,
        backfill=False,
    )
    frame = sub.frame
    assert list(frame.columns) == ["topic", "site", "device", "seq", "t"]
    assert {str(c): str(t) for c, t in frame.dtypes.items()}["seq"] == "Int64"
    assert frame.index[0].timestamp() == T0 + 0.25
    assert sub.latest.loc["plant/lyon/p1/env", "seq"] == 1
    assert frame.attrs == {"gaps": [], "channel": "telemetry", "topic": None}


def test_gaps_are_public_gap_values_in_the_frame_too() -> None:
    sub, inbox = memory_subscription()
    inbox.receive(reading_rows(1, 3), 0, backfill=False)
    inbox.receive(reading_rows(10, 12), 7, backfill=False)
    (gap,) = sub.gaps
    assert isinstance(gap, Gap)
    assert gap.readings == 7
    assert sub.frame.attrs["gaps"] == [gap]


def test_a_field_name_that_is_not_there_says_did_you_mean() -> None:
    sub, inbox = memory_subscription()
    inbox.receive(
        [(1, T0, "plant/lyon/p1/env", {"temperature": 20.5, "seq": 3, "status": "ok"}, None)],
        0,
        backfill=False,
    )
    assert sub.fields == ["temperature", "seq", "status"]
    sub.check_fields("temperature", "seq", numeric=True)
    with pytest.raises(UnknownName) as unknown:
        sub.check_fields("temprature")
    assert str(unknown.value) == (
        "unknown field 'temprature': did you mean 'temperature'? The fields of 'telemetry' "
        "now are 'seq', 'status' and 'temperature'."
    )
    with pytest.raises(UnknownName) as text:
        sub.check_fields("status", numeric=True)
    assert str(text.value) == (
        "unknown numeric field 'status'. The numeric fields of 'telemetry' now are 'seq' "
        "and 'temperature'."
    )
