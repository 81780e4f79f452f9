"""Columnar reading buffers -> pandas DataFrames (a leaf: the only client module with pandas).

The frame is time-indexed (``time``, ``datetime64[ns, UTC]``). Dtypes follow what a
column has held since the subscription started: only numbers -> ``float64`` (missing
values are NaN); only strings (and ``topic`` and the topic-level columns) -> pandas'
``str`` dtype; only booleans -> nullable ``boolean``; anything else (mixed kinds, lists)
-> ``object``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from .client.buffer import Kind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .client.buffer import Columns

Frame: TypeAlias = pd.DataFrame
"""The frame type, for modules that must not import pandas themselves (the client)."""


def build_frame(snapshot: Columns, *, attrs: dict[str, Any] | None = None) -> pd.DataFrame:
    """One DataFrame from a buffer snapshot; ``attrs`` (e.g. ``{"gaps": [...]}``) is attached."""
    index = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(snapshot.times, dtype="float64"), unit="s", utc=True),
        name="time",
    ).as_unit("ns")
    data = {
        name: _column(values, snapshot.kinds.get(name, Kind(0)))
        for name, values in snapshot.columns.items()
    }
    frame = pd.DataFrame(data, index=index)
    frame.attrs.update(attrs or {})
    return frame


def _column(values: Sequence[Any], kind: Kind) -> Any:
    """The array for one column, typed by the kinds of values it held (see module doc)."""
    if kind == Kind.NUMBER:
        return np.asarray(values, dtype="float64")
    if kind == Kind.TEXT:
        return pd.array(values, dtype="str")
    if kind == Kind.BOOL:
        return pd.array(values, dtype="boolean")
    # fromiter, not asarray: a column of lists must stay one object per row.
    return np.fromiter(values, dtype=object, count=len(values))
