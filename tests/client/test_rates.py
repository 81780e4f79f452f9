"""``sub.rate``: live arrivals per second over a sliding window, never a backfill."""

from __future__ import annotations

import pytest

from jupyter_iotcable.client.rates import RateMeter

from .memory import memory_subscription, reading_rows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_arrivals_over_the_window() -> None:
    clock = Clock()
    meter = RateMeter(window=10.0, clock=clock)
    for _ in range(40):  # 4 a second for 10 seconds
        clock.now += 0.25
        meter.arrived(1)
    assert meter.rate() == pytest.approx(4.0, abs=0.15)
    clock.now += 5  # half the window quiet
    assert meter.rate() == pytest.approx(2.0, abs=0.15)
    clock.now += 10
    assert meter.rate() == 0.0
    assert meter.total == 40


def test_a_young_meter_divides_by_the_time_watched_and_at_least_a_second() -> None:
    clock = Clock()
    meter = RateMeter(window=10.0, clock=clock)
    clock.now += 0.1
    meter.arrived(1)
    assert meter.rate() == 1.0  # not 10/s after a tenth of a second
    clock.now += 1.9
    meter.arrived(3)
    assert meter.rate() == 2.0  # 4 readings in 2 seconds


def test_the_rate_after_a_backfill_counts_only_what_arrives_live() -> None:
    # Issue 10: 70,646 then 1,782 readings/s after a history backfill at 4 arrivals a second.
    clock = Clock()
    sub, inbox = memory_subscription(max_rows=100_000, clock=clock)
    inbox.receive(reading_rows(1, 70_001), 0, backfill=True)
    assert sub.rate == 0.0
    assert len(sub) == 70_000
    for n in range(70_001, 70_041):  # then 4 a second for 10 seconds
        clock.now += 0.25
        inbox.receive(reading_rows(n, n + 1), 0, backfill=False)
    assert sub.rate == pytest.approx(4.0, abs=0.15)
    assert sub.received == 70_040
    assert sub.status == "live, 4.0 readings/s"


def test_a_silent_window_of_buckets_stays_small() -> None:
    clock = Clock()
    meter = RateMeter(window=10.0, clock=clock)
    for _ in range(100_000):
        clock.now += 0.0001
        meter.arrived(1)
    assert len(meter._buckets) <= 101
