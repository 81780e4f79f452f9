"""How ``iotcable tail`` prints readings: an aligned table, JSON lines, or CSV.

``tail`` streams, so no format can see all the rows before printing the first one:

- ``table`` takes its columns from the first reading and widens as readings bring wider
  values or new fields; whenever the layout changes it prints the header again, so every
  block of rows under a header is aligned with it. Numbers are right-aligned, text left;
  long text is cut at ``MAX_CELL`` characters (``jsonl`` has it whole).
- ``csv`` cannot change its header once written: the payload fields of the first reading
  become columns, and fields first seen later go into the ``other`` column as a JSON
  object, so that nothing is lost and every row has the header's columns.
- ``jsonl`` is one JSON object per reading, the payload as the device sent it.

Every writer flushes per reading: ``tail`` is often piped into another program.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from .client.buffer import flatten_payload

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .client.subscription import Reading

FORMATS = ("table", "jsonl", "csv")
MAX_CELL = 40
"""Longest table cell, in characters; longer text ends with an ellipsis."""
GAP = "  "
"""Between table columns."""


def writer(fmt: str, levels: Sequence[str], out: TextIO) -> Callable[[Reading], None]:
    """A function printing one reading in ``fmt``; ``levels`` are the topic levels the
    channel's template names (``site``, ``device``), shown instead of the topic."""
    if fmt == "jsonl":
        return JsonLinesWriter(out).write
    if fmt == "csv":
        return CsvWriter(out, levels).write
    if fmt == "table":
        return TableWriter(out, levels).write
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def iso_time(seconds: float) -> str:
    """``2024-05-01T12:00:00.250Z``: UTC, milliseconds."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def payload_fields(reading: Reading, taken: Sequence[str]) -> dict[str, object]:
    """The payload as columns (nested keys as ``a.b``, a non-object payload as ``value``); a
    key named like one of the ``taken`` columns becomes ``payload.<key>``."""
    return {
        (f"payload.{name}" if name in taken else name): value
        for name, value in flatten_payload(reading.payload).items()
    }


def cell(value: object) -> str:
    """A value as CSV or a table shows it: JSON's spelling for literals and containers,
    numbers in their shortest exact form, missing values empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class JsonLinesWriter:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, reading: Reading) -> None:
        record: dict[str, Any] = {
            "time": iso_time(reading.time),
            "topic": reading.topic,
            "offset": reading.offset,
            **reading.columns,
            "payload": reading.payload,
        }
        if reading.error is not None:
            record["error"] = reading.error
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.out.flush()


class CsvWriter:
    """``time, topic, <levels>, <payload fields of the first reading>, other, error``."""

    def __init__(self, out: TextIO, levels: Sequence[str]) -> None:
        self.out = out
        self.levels = tuple(levels)
        self.rows = csv.writer(out, lineterminator="\n")
        self.fields: list[str] | None = None

    def write(self, reading: Reading) -> None:
        taken = ("time", "topic", *self.levels, "other", "error")
        fields = payload_fields(reading, taken)
        if self.fields is None:
            self.fields = list(fields)
            self.rows.writerow([*taken[: 2 + len(self.levels)], *self.fields, "other", "error"])
        other = {name: value for name, value in fields.items() if name not in self.fields}
        self.rows.writerow(
            [
                iso_time(reading.time),
                reading.topic,
                *(reading.columns.get(name, "") for name in self.levels),
                *(cell(fields.get(name)) for name in self.fields),
                json.dumps(other, ensure_ascii=False, separators=(",", ":")) if other else "",
                reading.error or "",
            ]
        )
        self.out.flush()


class TableWriter:
    """Aligned columns: ``time``, the topic levels (or ``topic``), the payload fields."""

    def __init__(self, out: TextIO, levels: Sequence[str]) -> None:
        self.out = out
        self.levels = tuple(levels)
        self.widths: dict[str, int] = {}
        self.numeric: dict[str, bool] = {}

    def write(self, reading: Reading) -> None:
        front = ("time", *(self.levels or ("topic",)))
        cells = {"time": iso_time(reading.time)}
        if self.levels:
            cells.update({name: reading.columns.get(name, "") for name in self.levels})
        else:
            cells["topic"] = reading.topic
        values = payload_fields(reading, (*front, "error"))
        cells.update({name: _clipped(cell(value)) for name, value in values.items()})
        if self._fit(cells, values):
            self._line({name: name for name in self.widths})
        self._line(cells, error=reading.error)
        self.out.flush()

    def _fit(self, cells: dict[str, str], values: dict[str, object]) -> bool:
        """Make room for ``cells``; True when the layout changed (a new or wider column)."""
        changed = False
        for name, text in cells.items():
            width = self.widths.get(name)
            if width is None:
                self.widths[name] = max(len(name), len(text))
                changed = True
            elif len(text) > width:
                self.widths[name] = len(text)
                changed = True
            if name not in values:  # time and the topic levels
                self.numeric[name] = False
            elif values[name] is not None:
                was = self.numeric.get(name)
                self.numeric[name] = (was is None or was) and _is_number(values[name])
                changed = changed or (was is not None and was != self.numeric[name])
        return changed

    def _line(self, cells: dict[str, str], error: str | None = None) -> None:
        parts = []
        for name, width in self.widths.items():
            text = cells.get(name, "")
            parts.append(text.rjust(width) if self.numeric.get(name) else text.ljust(width))
        line = GAP.join(parts).rstrip()
        if error:
            line += f"{GAP}! {error}"
        self.out.write(line + "\n")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clipped(text: str) -> str:
    if not text.isprintable():
        text = json.dumps(text, ensure_ascii=False)[1:-1]  # \n, \t, ... as escapes
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
