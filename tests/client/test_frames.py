"""Buffer snapshots -> DataFrames: index, dtypes as pandas 3 gives them, attrs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from jupyter_iotcable.client.buffer import ReadingBuffer, Row
from jupyter_iotcable.frames import build_frame
from jupyter_iotcable.topics import TopicTemplate

T0 = 1_700_000_000.0
TEMPLATE = TopicTemplate("plant/{site}/{device}/env")


def build_frame_with(rows: list[Row]) -> pd.DataFrame:
    buffer = ReadingBuffer(max_rows=100, template=TEMPLATE)
    buffer.add("e1", rows)
    return build_frame(buffer.snapshot(), attrs={"gaps": [{"reason": "conflated"}]})


def test_index_and_dtypes() -> None:
    rows: list[Row] = [
        (1, T0, "plant/lyon/p1/env", {"t": 20, "ok": True, "s": "a", "l": [1], "m": 1}, None),
        (2, T0 + 0.25, "plant/lyon/p2/env", {"t": 20.5, "ok": False, "s": None, "m": "x"}, None),
    ]
    frame = build_frame_with(rows)
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert frame.index.name == "time"
    assert frame.index[1].value - frame.index[0].value == 250_000_000
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        "topic": "str",
        "site": "str",
        "device": "str",
        "t": "float64",
        "ok": "boolean",
        "s": "str",
        "l": "object",
        "m": "object",
    }
    assert frame["l"].iloc[0] == [1]
    assert frame["l"].iloc[1] is None
    assert frame["m"].tolist() == [1, "x"]
    assert frame["s"].isna().tolist() == [False, True]


def test_missing_numbers_are_nan_and_attrs_are_attached() -> None:
    frame = build_frame_with(
        [(1, T0, "plant/a/b/env", {"t": 1}, None), (2, T0 + 1, "plant/a/b/env", {"h": 2}, None)]
    )
    assert math.isnan(frame["t"].iloc[1])
    assert math.isnan(frame["h"].iloc[0])
    assert frame.attrs["gaps"] == [{"reason": "conflated"}]


def test_empty_frame_has_the_fixed_columns() -> None:
    buffer = ReadingBuffer(max_rows=10, template=TEMPLATE)
    frame = build_frame(buffer.snapshot())
    assert list(frame.columns) == ["topic", "site", "device"]
    assert len(frame) == 0
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"


def test_100k_rows_build_one_frame() -> None:
    buffer = ReadingBuffer(max_rows=100_000, template=TEMPLATE)
    for start in range(0, 120_000, 1000):
        buffer.add(
            "e1",
            [
                (n, T0 + n / 100, f"plant/s{n % 3}/d{n % 5}/env", {"seq": n, "v": n / 2}, None)
                for n in range(start, start + 1000)
            ],
        )
    frame = build_frame(buffer.snapshot())
    assert len(frame) == 100_000
    assert np.array_equal(frame["seq"].to_numpy(), np.arange(20_000, 120_000, dtype="float64"))
    assert frame.index.is_monotonic_increasing
    assert frame["site"].iloc[0] == "s2"  # 20000 % 3
