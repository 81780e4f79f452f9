"""Windows and history starts as users type them, and the errors for what does not parse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jupyter_iotcable.client.durations import parse_duration, since_timestamp, window_bounds

FORMS = "a string like '30s', '15min', '2h' or '1h30min' (units: ms, s, min, h, d, w)"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15min", 900.0),
        ("1h30min", 5400.0),
        ("2 h", 7200.0),
        ("500ms", 0.5),
        ("1.5d", 129600.0),
        ("1w", 604800.0),
        ("10 Seconds", 10.0),
        ("3m", 180.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "fifteen minutes", "15 lightyears", "1h-2min"])
def test_unreadable_durations(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read the duration") as info:
        parse_duration(text)
    assert str(info.value) == f"cannot read the duration {text!r}: expected {FORMS}"


def test_zero_duration() -> None:
    with pytest.raises(ValueError, match=r"^the duration '0s' is not positive$"):
        parse_duration("0s")


def test_window_bounds() -> None:
    assert window_bounds("15min", 100_000) == (100_000, 900.0)
    assert window_bounds(timedelta(minutes=2), 10) == (10, 120.0)
    assert window_bounds(500, 100_000) == (500, None)
    assert window_bounds(500_000, 100_000) == (100_000, None)
    assert window_bounds(None, 7) == (7, None)


@pytest.mark.parametrize(
    ("window", "max_rows", "error", "message"),
    [
        (
            1.5,
            10,
            TypeError,
            f"window must be {FORMS}, a timedelta, a row count (int) or None; got float 1.5",
        ),
        (
            True,
            10,
            TypeError,
            f"window must be {FORMS}, a timedelta, a row count (int) or None; got bool True",
        ),
        (0, 10, ValueError, "window as a row count must be at least 1, got 0"),
        (
            timedelta(0),
            10,
            ValueError,
            "window must be a positive duration, got datetime.timedelta(0)",
        ),
        (None, 0, ValueError, "max_rows must be a positive int, got 0"),
    ],
)
def test_bad_windows(window: object, max_rows: int, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        window_bounds(window, max_rows)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_since() -> None:
    now = 1_700_000_000.0
    assert since_timestamp("1h", now) == now - 3600
    assert since_timestamp(timedelta(minutes=5), now) == now - 300
    assert since_timestamp(datetime(2024, 1, 1, tzinfo=UTC), now) == 1_704_067_200.0
    assert since_timestamp(1_600_000_000, now) == 1_600_000_000.0


def test_since_refuses_naive_datetimes_and_other_types() -> None:
    with pytest.raises(ValueError, match="has no timezone") as info:
        since_timestamp(datetime(2024, 1, 1), 0.0)
    assert str(info.value) == (
        "since=datetime.datetime(2024, 1, 1, 0, 0) has no timezone; pass an aware datetime, "
        "e.g. datetime(..., tzinfo=timezone.utc), or a duration like '1h'"
    )
    with pytest.raises(TypeError) as type_info:
        since_timestamp([1], 0.0)  # type: ignore[arg-type]
    assert str(type_info.value) == (
        f"since must be {FORMS}, a timedelta, an aware datetime or unix seconds; got list [1]"
    )
