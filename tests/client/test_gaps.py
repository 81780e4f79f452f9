"""``Gap``: times as times, a cause, a count when known, a reason a person reads."""

from __future__ import annotations

from datetime import UTC, datetime

from jupyter_iotcable.client.gaps import Gap, GapCause, GapLog, describe_span, gap_reason

NOON = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC).timestamp()


def test_times_of_today_read_as_times_and_others_as_dates() -> None:
    assert describe_span(NOON - 300, NOON, NOON) == "from 11:55:00 to 12:00:00 UTC"
    assert describe_span(NOON - 86_400, NOON, NOON) == (
        "from 2026-12-04 12:00:00 UTC to 12:00:00 UTC"
    )
    assert describe_span(NOON - 60, None, NOON) == "after 11:59:00 UTC"
    assert describe_span(None, NOON, NOON) == "before 12:00:00 UTC"
    assert describe_span(None, None, NOON) == "at an unknown time"


def test_each_cause_in_words() -> None:
    assert gap_reason(GapCause.NOT_KEPT, NOON - 300, NOON, None, NOON) == (
        "readings from 11:55:00 to 12:00:00 UTC are unknown: the server did not keep them"
    )
    assert gap_reason(GapCause.NOT_KEPT, NOON - 300, NOON, 1, NOON) == (
        "1 reading from 11:55:00 to 12:00:00 UTC is unknown: the server did not keep them"
    )
    assert gap_reason(GapCause.SERVER_RESTARTED, NOON - 5, NOON, None, NOON) == (
        "the server restarted: readings from 11:59:55 to 12:00:00 UTC may be missing"
    )
    assert gap_reason(GapCause.TOO_SLOW, NOON - 5, NOON, 1200, NOON) == (
        "1,200 readings from 11:59:55 to 12:00:00 UTC were dropped by the server because "
        "this client read too slowly (it kept the latest reading of each topic)"
    )


def test_an_open_gap_is_closed_by_the_first_reading_after_it() -> None:
    log = GapLog()
    log.report(GapCause.SERVER_RESTARTED, start=NOON, end=None, readings=None, detail="d", now=NOON)
    assert log.has_open
    (gap,) = log.gaps(now=NOON)
    assert gap.end is None
    log.close_open([NOON - 1, NOON + 7, NOON + 8])
    (gap,) = log.gaps(now=NOON)
    assert gap.end == datetime(2026, 12, 5, 12, 0, 7, tzinfo=UTC)
    assert not log.has_open


def test_a_stretch_of_slowness_is_one_gap_and_the_log_is_bounded() -> None:
    log = GapLog(limit=3)
    for n in range(5):
        log.report(
            GapCause.TOO_SLOW,
            start=NOON + n,
            end=NOON + n + 0.5,
            readings=10,
            detail="",
            now=NOON + n,
        )
    (gap,) = log.gaps(now=NOON)
    assert gap.readings == 50
    for n in range(5):
        log.report(GapCause.NOT_KEPT, start=NOON, end=NOON, readings=None, detail=str(n), now=NOON)
    assert [g.detail for g in log.gaps(now=NOON)] == ["2", "3", "4"]


def test_a_gap_prints_its_reason_and_reprs_its_span() -> None:
    gap = Gap(
        start=datetime(2026, 12, 5, 11, 55, tzinfo=UTC),
        end=None,
        cause=GapCause.NOT_KEPT,
        readings=None,
        reason="readings after 11:55:00 UTC are unknown: the server did not keep them",
        detail="",
        reported=datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
    )
    assert str(gap) == gap.reason
    assert repr(gap) == "<Gap 2026-12-05 11:55:00 UTC to ?: not_kept>"
