"""Buffer snapshots -> DataFrames: index, dtypes as pandas 3 gives them, names, attrs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from jupyter_iotcable.client.buffer import ReadingBuffer, Row
from jupyter_iotcable.frames import build_frame
from jupyter_iotcable.topics import TopicTemplate

T0 = 1_700_000_000.0
TEMPLATE = TopicTemplate("plant/{site}/{device}/env")


def build_frame_with(rows: list[Row], time_field: str | None = None) -> pd.DataFrame:
    buffer = ReadingBuffer(max_rows=100)
    buffer.extend(rows)
    return build_frame(
        buffer.snapshot(), template=TEMPLATE, time_field=time_field, attrs={"gaps": ["a gap"]}
    )


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in frame.dtypes.items()}


def test_index_and_dtypes() -> None:
    rows: list[Row] = [
        (1, T0, "plant/lyon/p1/env", {"t": 20, "ok": True, "s": "a", "l": [1], "m": 1}, None),
        (2, T0 + 0.25, "plant/lyon/p2/env", {"t": 20.5, "ok": False, "s": None, "m": "x"}, None),
    ]
    frame = build_frame_with(rows)
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert frame.index.name == "time"
    assert frame.index[1].value - frame.index[0].value == 250_000_000
    assert dtypes(frame) == {
        "topic": "str",
        "site": "str",
        "device": "str",
        "t": "float64",  # an int and a float: numbers with fractions
        "ok": "boolean",
        "s": "str",
        "l": "object",
        "m": "object",
    }
    assert frame["l"].iloc[0] == [1]
    assert frame["l"].iloc[1] is None
    assert frame["m"].tolist() == [1, "x"]
    assert frame["s"].isna().tolist() == [False, True]
    assert frame["device"].tolist() == ["p1", "p2"]


def test_integers_are_nullable_int64_and_fractions_are_float64() -> None:
    frame = build_frame_with(
        [
            (1, T0, "plant/a/b/env", {"seq": 1, "t": 1.5, "big": 2**70}, None),
            (2, T0 + 1, "plant/a/b/env", {"seq": 2, "h": 2}, None),
            (3, T0 + 2, "plant/a/b/env", {"t": 2.0, "h": 3}, None),
        ]
    )
    assert dtypes(frame) == {
        "topic": "str",
        "site": "str",
        "device": "str",
        "seq": "Int64",
        "t": "float64",
        "big": "object",  # beyond 64 bits: kept exact, as Python ints
        "h": "Int64",
    }
    assert frame["seq"].tolist() == [1, 2, pd.NA]
    assert math.isnan(frame["t"].iloc[1])
    assert frame["big"].iloc[0] == 2**70
    assert frame["h"].sum() == 5
    assert frame.attrs["gaps"] == ["a gap"]


def test_the_time_field_is_the_index_and_not_a_column() -> None:
    # The server already made the payload's "ts" the reading's time.
    frame = build_frame_with(
        [(1, T0 + 0.5, "plant/a/b/env", {"ts": T0 + 0.5, "seq": 7, "t": 21.5}, None)],
        time_field="ts",
    )
    assert list(frame.columns) == ["topic", "site", "device", "seq", "t"]
    assert frame.index[0] == pd.Timestamp(T0 + 0.5, unit="s", tz="UTC")


def test_payload_keys_named_like_frame_columns_get_a_prefix() -> None:
    frame = build_frame_with(
        [
            (1, T0, "plant/paris/p2/env", {"t": 21, "site": "x", "topic": 1, "time": "noon"}, None),
            (2, T0 + 1, "other/topic", "raw text", "payload is not JSON"),
        ]
    )
    assert list(frame.columns) == [
        "topic",
        "site",
        "device",
        "t",
        "payload.site",
        "payload.topic",
        "payload.time",
        "value",
        "error",
    ]
    assert frame["site"].tolist()[0] == "paris"
    assert frame["site"].isna().tolist() == [False, True]  # no level in "other/topic"
    assert frame["error"].tolist()[1] == "payload is not JSON"


def test_a_column_types_by_the_values_still_in_the_window() -> None:
    # One string in a numeric column makes it mixed only while that string is kept.
    buffer = ReadingBuffer(max_rows=10)
    buffer.extend([(0, T0, "a", {"v": "broken"}, None)])
    buffer.extend([(n, T0 + n, "a", {"v": n / 2}, None) for n in range(1, 6)])
    assert str(build_frame(buffer.snapshot())["v"].dtype) == "object"
    buffer.extend([(n, T0 + n, "a", {"v": n / 2}, None) for n in range(6, 11)])
    frame = build_frame(buffer.snapshot())
    assert frame["v"].tolist() == [n / 2 for n in range(1, 11)]
    assert str(frame["v"].dtype) == "float64"


def test_a_field_no_row_has_is_not_a_column() -> None:
    buffer = ReadingBuffer(max_rows=3)
    buffer.extend([(0, T0, "a", {"old": 1, "v": 0}, None)])
    buffer.extend([(n, T0 + n, "a", {"v": n, "none": None}, None) for n in range(1, 4)])
    assert list(build_frame(buffer.snapshot()).columns) == ["topic", "v"]


def test_empty_frame_has_the_fixed_columns() -> None:
    frame = build_frame(ReadingBuffer(max_rows=10).snapshot(), template=TEMPLATE)
    assert list(frame.columns) == ["topic", "site", "device"]
    assert len(frame) == 0
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"


def test_100k_rows_build_one_frame() -> None:
    buffer = ReadingBuffer(max_rows=100_000)
    for start in range(0, 120_000, 1000):
        buffer.extend(
            [
                (n, T0 + n / 100, f"plant/s{n % 3}/d{n % 5}/env", {"seq": n, "v": n / 2}, None)
                for n in range(start, start + 1000)
            ]
        )
    frame = build_frame(buffer.snapshot(), template=TEMPLATE)
    assert len(frame) == 100_000
    assert np.array_equal(frame["seq"].to_numpy(), np.arange(20_000, 120_000))
    assert frame.index.is_monotonic_increasing
    assert frame["site"].iloc[0] == "s2"  # 20000 % 3
    assert frame["device"].iloc[1] == "d1"  # 20001 % 5
