"""What a decodable payload is: one definition for the server's decoders and both clients.

Devices are trusted less than users, and a reading that the server accepts but a client
cannot decode used to cost that client the whole frame (other devices' readings with it).
So the server decodes every device payload under these limits, and every client decodes
every frame that the server can write under them:

- **numbers**: each one fits a 64-bit float (finite; an integer literal of 309 digits or
  more does not). Integers beyond 2**53 keep their digits in Python and become the
  nearest double in JavaScript, as ``JSON.parse`` reads them.
- **nesting**: a payload nests arrays and objects at most :data:`MAX_DEPTH` deep; a frame
  adds :data:`FRAME_DEPTH` levels around it (``{"batch": [[..., payload]]}``), so every
  frame nests at most :data:`MAX_FRAME_DEPTH` deep. Both clients decode at least that
  (Python's ``json`` about 950, orjson 1024, the TypeScript mirror ``MAX_NESTING``).
- **size**: a reading's payload, as the JSON it is sent as, is at most the channel's
  ``max_reading_bytes``, itself at most :data:`MAX_READING_BYTES`, so that one reading
  with its topic, identifier and error always fits one frame of :data:`MAX_FRAME_BYTES`,
  the largest frame a client accepts. A string is bounded by the payload that holds it
  (a long text payload is a legitimate reading), not by a smaller limit of its own.

What falls outside becomes a reading flagged with the reason (``Reading.error``), without
the payload when the payload itself is the problem, never a row that a client refuses.
``labextension/src/protocol/limits.ts`` is generated from this module
(``python -m jupyter_iotcable.protocol.limits > labextension/src/protocol/limits.ts``;
a test checks it is up to date).

Standard library only.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Iterable
from itertools import accumulate

__all__ = [
    "DEFAULT_MAX_READING_BYTES",
    "FRAME_DEPTH",
    "FRAME_RESERVE",
    "MAX_DEPTH",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_DEPTH",
    "MAX_READING_BYTES",
    "depth_problem",
    "number_problem",
]

MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The largest frame the server writes and the least every client accepts (bytes)."""

FRAME_RESERVE = 1024 * 1024
"""Bytes of a one-reading frame besides its payload, at most: the topic (an MQTT topic is at
most 65,535 bytes, up to six times that as escaped JSON) and its columns, the identifier,
the error, the keys."""

MAX_READING_BYTES = MAX_FRAME_BYTES - FRAME_RESERVE
"""The largest ``max_reading_bytes`` a channel may set: one such reading fits one frame."""

DEFAULT_MAX_READING_BYTES = 1024 * 1024
"""A channel's ``max_reading_bytes`` unless it says otherwise (well under the frame cap)."""

MAX_DEPTH = 100
"""Deepest nesting of arrays and objects in a payload (``[[1]]`` is 2 deep, ``1`` is 0)."""

FRAME_DEPTH = 3
"""Levels a frame adds around a payload: the frame, its ``batch`` array, the row array (a
data frame adds two: the frame and its ``message``)."""

MAX_FRAME_DEPTH = MAX_DEPTH + FRAME_DEPTH
"""Deepest nesting of a frame the server writes; every client decodes at least this."""

_MAX_FLOAT = sys.float_info.max


def number_problem(value: int | float) -> str | None:
    """Why a decoded number is outside the limits (not a 64-bit float), or None."""
    if isinstance(value, float):
        return None if -_MAX_FLOAT <= value <= _MAX_FLOAT else f"the number {value} is not finite"
    if value.bit_length() <= 1023:  # below 2**1023: surely a finite float
        return None
    try:
        float(value)
    except OverflowError:
        return f"an integer of {len(str(abs(value)))} digits does not fit a 64-bit float"
    return None


def nesting_depth(value: object, stop_after: int = MAX_DEPTH) -> int:
    """How deep ``value`` nests arrays and objects; counting stops past ``stop_after``."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


# A JSON string (escapes included): brackets inside one are text, not structure.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_AS_PARENS = bytes.maketrans(b"[]{}", b"()()")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_AS_SIGNS = bytes.maketrans(b"()", b"\x01\xff")  # +1 and -1 as signed bytes


def text_depth(text: bytes) -> int:
    """How deep the JSON ``text`` (known to decode) nests arrays and objects.

    Works on the text's brackets alone, at C speed: strings removed, brackets kept; a few
    passes each remove every innermost ``()`` pair (one level of nesting: a megabyte of
    ``[{},{},...]`` is gone after two), and what remains is counted as the running sum
    of its brackets. Linear in the text, where walking the decoded value took 900 ms for
    that megabyte.
    """
    if b'"' in text:
        text = _STRING.sub(b"", text)
    brackets = text.translate(_AS_PARENS, _NOT_BRACKETS)
    passes = 0
    while brackets and passes < 4:
        shorter = brackets.replace(b"()", b"")
        if len(shorter) == len(brackets):  # unbalanced: not JSON that decoded
            break
        brackets = shorter
        passes += 1
    if not brackets:
        return passes
    return passes + max(0, *accumulate(array("b", brackets.translate(_AS_SIGNS))))


def depth_problem(value: object, text: str | bytes | None = None) -> str | None:
    """Why a decoded payload nests too deeply (over :data:`MAX_DEPTH`), or None.

    ``text``, the JSON it was decoded from, spares the walk over the value: nearly always
    it holds too few brackets to nest that deep, else its brackets tell the depth.
    """
    if text is not None:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
            return None
        depth = text_depth(data)
    else:
        depth = nesting_depth(value)
    if depth <= MAX_DEPTH:
        return None
    return f"it nests arrays or objects more than {MAX_DEPTH} deep"


def typescript() -> str:
    """``labextension/src/protocol/limits.ts``: these constants for the TypeScript client."""
    constants = {
        "MAX_FRAME_BYTES": (MAX_FRAME_BYTES, "The largest frame a client must accept (bytes)."),
        "FRAME_RESERVE": (FRAME_RESERVE, "Bytes of a one-reading frame besides its payload."),
        "MAX_READING_BYTES": (MAX_READING_BYTES, "The largest max_reading_bytes of a channel."),
        "DEFAULT_MAX_READING_BYTES": (DEFAULT_MAX_READING_BYTES, "The default max_reading_bytes."),
        "MAX_DEPTH": (MAX_DEPTH, "Deepest nesting of arrays and objects in a payload."),
        "FRAME_DEPTH": (FRAME_DEPTH, "Levels a frame adds around a payload."),
        "MAX_FRAME_DEPTH": (MAX_FRAME_DEPTH, "Deepest nesting of a frame the server writes."),
    }
    lines = [
        "/**",
        " * What a decodable payload is (jupyter_iotcable/protocol/limits.py): generated by",
        " * `python -m jupyter_iotcable.protocol.limits`; do not edit. A Python test checks that",
        " * this file is up to date.",
        " */",
        "",
    ]
    for name, (value, doc) in constants.items():
        lines += [f"/** {doc} */", f"export const {name} = {value};", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(typescript(), end="")
