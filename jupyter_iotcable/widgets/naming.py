"""What the live chart draws: which fields (``y``) and how series are named (``by``).

Series are named by the channel's topic-level columns, not by full topic paths:
with the template ``plant/{site}/{device}/env`` a reading of ``plant/lyon/pump1/env`` is
the series ``lyon/pump1``. By default only the levels that vary within the subscription
count: subscribed to ``plant/lyon/+/env``, every site is ``lyon``, so the series is
``pump1``. ``by="device"`` (or a list of columns, or ``"topic"``) chooses the levels;
a payload text field (``by="sensor"``) works too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from ..client.subscription import Reading

_COUNTERS = frozenset(
    {"seq", "sequence", "n", "id", "index", "offset", "count", "counter", "ts", "time"}
    | {"timestamp", "epoch", "at", "date", "datetime"}
)
_COUNTER_SUFFIXES = ("_id", "_seq", "_ts", "_time", "_at", "_index", "_count")

#: The frame columns that are never payload fields.
_NOT_FIELDS = frozenset({"topic", "error"})

MISSING = "?"
"""A series name part when a reading lacks the level or field it is named by."""


def template_levels(pattern: str | None) -> list[tuple[int, str]]:
    """``(position, name)`` of each ``{name}`` level of a columns template."""
    if not pattern:
        return []
    return [
        (position, level[1:-1])
        for position, level in enumerate(pattern.split("/"))
        if level.startswith("{") and level.endswith("}")
    ]


def varying_levels(pattern: str | None, topic_filter: str | None) -> list[str]:
    """The template's level names that the subscription's filter leaves open.

    A level is fixed when the filter has a literal at its position (``plant/lyon/+/env``
    fixes ``site``); with no filter (the whole channel) every level varies. If every
    level is fixed (a single topic), all are returned, so a series still has a name.
    """
    levels = template_levels(pattern)
    if topic_filter is None:
        return [name for _, name in levels]
    parts = topic_filter.split("/")
    varying = []
    for position, name in levels:
        if "#" in parts[: position + 1] or position >= len(parts) or parts[position] == "+":
            varying.append(name)
    return varying or [name for _, name in levels]


def wildcard_positions(topic_filter: str | None) -> tuple[list[int], int | None]:
    """Positions of a filter's ``+`` levels, and where its ``#`` starts (or None)."""
    if topic_filter is None:
        return [], 0
    parts = topic_filter.split("/")
    plus = [i for i, part in enumerate(parts) if part == "+"]
    hash_at = parts.index("#") if "#" in parts else None
    return plus, hash_at


def series_namer(
    by: Sequence[str], pattern: str | None, topic_filter: str | None
) -> Callable[[Reading], str]:
    """A function naming a reading's series.

    ``by`` names topic-level columns, ``"topic"``, or payload fields. With an empty ``by``
    (a channel without a columns template), the topic's levels under the filter's
    wildcards name it (``plant/lyon/+/env`` -> ``pump1``), or the whole topic.
    """
    if by:
        names = tuple(by)

        def named(reading: Reading) -> str:
            return "/".join(_part(reading, name) for name in names)

        return named
    plus, hash_at = wildcard_positions(topic_filter)
    if topic_filter is None or (not plus and hash_at is None):
        return lambda reading: reading.topic

    def by_wildcards(reading: Reading) -> str:
        levels = reading.topic.split("/")
        picked = [levels[i] for i in plus if i < len(levels)]
        if hash_at is not None:
            picked.extend(levels[hash_at:])
        return "/".join(picked) or reading.topic

    return by_wildcards


def _part(reading: Reading, name: str) -> str:
    if name == "topic":
        return reading.topic
    if name in reading.columns:
        return reading.columns[name]
    value = field_value(reading.payload, name)
    return MISSING if value is None else str(value)


def field_value(payload: object, name: str) -> object:
    """A payload's field as ``sub.frame`` names it (``a.b`` for nested; ``value`` for a
    payload that is not an object); None when it is absent."""
    if not isinstance(payload, dict):
        return payload if name == "value" else None
    if name in payload:
        value = payload[name]
        return None if isinstance(value, dict) else value
    node: object = payload
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return None if isinstance(node, dict) else node


def as_number(value: object) -> float:
    """A field value as a float for the chart; NaN when it is not a number (bools are not)."""
    kind = type(value)
    if kind is float or kind is int:
        return float(value)  # type: ignore[arg-type]
    return float("nan")


def is_counter(name: str) -> bool:
    """Is this field a counter or a timestamp (numbers, but charting them shows a ramp)?"""
    last = name.rsplit(".", 1)[-1].lower()
    return last in _COUNTERS or last.endswith(_COUNTER_SUFFIXES)


def numeric_fields(frame: pd.DataFrame, levels: Sequence[str] = ()) -> list[str]:
    """The payload fields of a subscription's frame that hold numbers (``float64``, and the
    nullable ``Int64`` of integer fields; not booleans)."""
    skip = _NOT_FIELDS | set(levels)
    return [
        str(name)
        for name, dtype in frame.dtypes.items()
        if name not in skip and dtype.kind in "iuf"
    ]


def pick_y(frame: pd.DataFrame, levels: Sequence[str] = ()) -> str | None:
    """The field to chart by default: the first measurement with fractional values, else the
    first numeric one; never a counter or a timestamp (``seq``, ``ts``, ``*_id``...)."""
    measures = [name for name in numeric_fields(frame, levels) if not is_counter(name)]
    for name in measures:
        column = frame[name].dropna()
        if len(column) and bool((column % 1 != 0).any()):
            return name
    return measures[0] if measures else None


def pick_y_from_payload(payload: object) -> str | None:
    """``pick_y`` for one reading (before any frame has data)."""
    if not isinstance(payload, dict):
        return "value" if type(payload) in (int, float) else None
    flat: dict[str, object] = {}
    _flatten(flat, "", payload)
    numbers = [k for k, v in flat.items() if type(v) in (int, float) and not is_counter(k)]
    floats = [k for k in numbers if type(flat[k]) is float]
    candidates = floats or numbers
    return candidates[0] if candidates else None


def _flatten(flat: dict[str, object], prefix: str, obj: Mapping[object, object]) -> None:
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            _flatten(flat, f"{prefix}{key}.", value)
        else:
            flat[f"{prefix}{key}"] = value
