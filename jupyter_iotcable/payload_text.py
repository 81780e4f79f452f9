"""A publish payload typed by a person (an ``iotcable publish`` argument, a ``%iot publish``
line or cell): JSON, or the text itself when asked for (``--text``).

Malformed JSON is refused with where it broke, rather than sent as a string: a payload
``{"setpoint": 25`` that went out as text reached the devices as garbage and came back
in frames as a ``value`` column. Standard library only, so the CLI and the IPython
extension share it without loading the client.
"""

from __future__ import annotations

import json
import math

__all__ = ["PayloadSyntaxError", "as_json_string", "parse_payload"]

_EXCERPT = 60
"""Characters of the payload shown on each side of the position of a syntax error."""


class PayloadSyntaxError(ValueError):
    """The payload is not JSON a publish can carry; the message says where and why, as
    the predicate of a sentence whose subject the caller names ("PAYLOAD is not valid
    JSON: ...", "the payload holds NaN, which ...").

    ``position`` is the 0-based index in the text where the parser stopped (None when
    the problem is a value rather than a place: ``NaN``, ``1e999``).
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


def parse_payload(text: str, *, as_text: bool = False) -> object:
    """``text`` as a JSON value (``'{"speed": 40}'``, ``40``, ``'"on"'``), or as the string
    itself with ``as_text``. Raises ``PayloadSyntaxError`` for malformed JSON and for
    numbers no other JSON reader takes (NaN, Infinity, beyond float64)."""
    if as_text:
        return text
    try:
        return json.loads(text, parse_constant=_no_json_constant, parse_float=_finite_float)
    except _NotJson as exc:
        raise PayloadSyntaxError(
            f"holds {exc.text}, which {exc.problem}, so it cannot be published: send a finite "
            f"number, null, or the text itself in quotes ('\"{exc.text}\"')"
        ) from None
    except json.JSONDecodeError as exc:
        raise PayloadSyntaxError(_located(text, exc), exc.pos) from None


def as_json_string(text: str, fmt: str) -> str:
    """A string to publish as the string it is, on a channel of format ``fmt``.

    On a json channel the client reads a ``str`` as JSON text, so text meant as a value
    (``--text on``, or the JSON string ``'"on"'`` once parsed) goes out as a JSON string;
    other formats (text, csv, influx, number, bytes) take the text as it is.
    """
    return json.dumps(text, ensure_ascii=False) if fmt == "json" else text


def _located(text: str, error: json.JSONDecodeError) -> str:
    """``is not valid JSON: <problem> at line L, column C``, the line with a caret under the
    place, and what to do."""
    if not text.strip():
        return "is empty: give a JSON value (e.g. '{\"setpoint\": 25}'), or text with --text"
    where = (
        f"line {error.lineno}, column {error.colno}" if "\n" in text else f"column {error.colno}"
    )
    lines = text.splitlines()
    line = lines[error.lineno - 1] if error.lineno <= len(lines) else ""
    start = max(0, error.colno - 1 - _EXCERPT)
    prefix = "…" if start else ""
    shown = prefix + line[start : error.colno - 1 + _EXCERPT]
    caret = " " * (len(prefix) + error.colno - 1 - start) + "^"
    return (
        f"is not valid JSON: {error.msg[0].lower()}{error.msg[1:]} at {where}\n"
        f"    {shown}\n"
        f"    {caret}\n"
        "(to send it as text rather than JSON, add --text)"
    )


class _NotJson(ValueError):
    """A number that Python's json reads but no JSON reader elsewhere can (NaN, 1e999)."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"{text} {problem}")
        self.text = text
        self.problem = problem


def _no_json_constant(name: str) -> object:
    raise _NotJson(name, "has no JSON form")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotJson(text, "is too large for a 64-bit number")
    return value
