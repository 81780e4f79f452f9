"""Columnar reading buffers -> pandas DataFrames (a leaf: the only client module with pandas).

The frame is time-indexed (``time``, ``datetime64[ns, UTC]``): the reading's time, which
is the payload's own timestamp when the channel names a ``time_field`` (that field is then
the index and not repeated as a column). Then come ``topic``, the topic levels named by
the channel's ``columns`` template (``site``, ``device``), the payload's fields and
``error`` while a reading that failed to decode is in the frame.

Dtypes follow the values the frame holds (not every value the subscription ever saw):

- only integers -> nullable ``Int64`` (a reading may always lack a field, so integer
  columns are nullable whether or not one does now: the dtype stays put as rows come
  and go; ``seq`` counters and the like stay integers);
- numbers with a fraction (or integers mixed with them) -> ``float64``, missing as NaN;
- only strings (and ``topic`` and the topic levels) -> pandas' ``str`` dtype;
- only booleans -> nullable ``boolean``;
- anything else (lists, mixed kinds, integers beyond 64 bits) -> ``object``;
- a field no row in the frame has a value for is not a column.

A payload field named like a frame column (``time``, ``topic``, ``error`` or a topic
level) is stored as ``payload.<name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype, is_bool_dtype, is_numeric_dtype

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .client.buffer import Columns
    from .topics import TopicTemplate

Frame: TypeAlias = pd.DataFrame
"""The frame type, for modules that must not import pandas themselves (the client)."""

_RESERVED = ("time", "topic", "error")
"""Frame names a payload key cannot take (it becomes ``payload.<key>`` instead)."""


def build_frame(
    snapshot: Columns,
    *,
    template: TopicTemplate | None = None,
    time_field: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """One DataFrame from a buffer snapshot; ``attrs`` (e.g. ``{"gaps": [...]}``) is attached."""
    index = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(snapshot.times, dtype="float64"), unit="s", utc=True),
        name="time",
    ).as_unit("ns")
    data: dict[str, Any] = {"topic": pd.array(snapshot.topics, dtype="str")}
    levels = template.names if template is not None else ()
    if template is not None and levels:
        data.update(_level_columns(snapshot.topics, template))
    reserved = {*_RESERVED, *levels}
    for key, values in snapshot.fields.items():
        if key == time_field:
            continue  # it is the index
        column = _column(values)
        if column is not None:
            data[f"payload.{key}" if key in reserved else key] = column
    if snapshot.errors is not None:
        data["error"] = pd.array(snapshot.errors, dtype="str")
    frame = pd.DataFrame(data, index=index)
    frame.attrs.update(attrs or {})
    return frame


def records_frame(
    records: Sequence[dict[str, Any]], columns: Sequence[str], *, index: str
) -> pd.DataFrame:
    """A small table (``cable.channels().to_frame()``) with these columns, indexed by one."""
    return pd.DataFrame.from_records(list(records), columns=list(columns)).set_index(index)


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that hold numbers (``Int64`` and ``float64``; booleans are not numbers)."""
    return [
        str(name)
        for name, dtype in frame.dtypes.items()
        if is_numeric_dtype(dtype) and not is_bool_dtype(dtype)
    ]


def _level_columns(topics: Sequence[str], template: TopicTemplate) -> dict[str, Any]:
    """The topic-level columns, extracted once per distinct topic (not per row)."""
    codes, uniques = pd.factorize(np.asarray(topics, dtype=object))
    extracted = [template.extract(topic) or {} for topic in uniques]
    columns = {}
    for name in template.names:
        per_topic = np.asarray([levels.get(name) for levels in extracted] + [None], dtype=object)
        # factorize gives -1 for nothing; the extra None at the end answers it.
        columns[name] = pd.array(per_topic[codes], dtype="str")
    return columns


def _column(values: Sequence[Any]) -> Any:
    """The array for one payload column, typed by the values it holds (see module doc)."""
    kind = infer_dtype(values, skipna=True)
    if kind == "empty":
        return None
    if kind == "integer":
        try:
            return pd.array(values, dtype="Int64")
        except (OverflowError, TypeError, ValueError):  # beyond 64 bits
            return _objects(values)
    if kind in ("floating", "mixed-integer-float"):
        return np.asarray(values, dtype="float64")  # None -> NaN
    if kind == "string":
        return pd.array(values, dtype="str")
    if kind == "boolean":
        return pd.array(values, dtype="boolean")
    return _objects(values)


def _objects(values: Sequence[Any]) -> Any:
    # fromiter, not asarray: a column of lists must stay one object per row.
    return np.fromiter(values, dtype=object, count=len(values))
