"""What a publish may carry on a channel of each format: one rule for client and server.

The Python client checks a payload with it before anything leaves the process, and the
server again before anything reaches the broker (a browser or a script of its own may
publish too), so both refuse the same payloads with the same words.

- ``json``: any JSON value; a ``str`` is JSON *text* (``'{"setpoint": 25}'`` publishes that
  object), refused with the parse error's position when it is not JSON. To publish a JSON
  string, pass its JSON text (``json.dumps("on")`` gives ``'"on"'``).
- ``number``: an int or a float (not a bool), or the text of one number.
- ``text``, ``csv``, ``influx``: a ``str``; a csv or influx payload must also decode with
  the channel's decoder, as a device's reading would (the server checks that part: it
  knows the channel's csv columns).
- ``bytes``: the payload as base64 text.

The encoded payload is at most ``MAX_PUBLISH_BYTES``; a JSON one nests at most
``MAX_DEPTH`` deep and holds no number beyond a 64-bit float (protocol/limits.py: what a
device's reading may be, so that a command published here reads back unflagged).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from ..readings import Decoder, PayloadFormat
from .codec import JSON_CODEC, explain_decode_error
from .limits import MAX_DEPTH, depth_problem, number_problem

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .codec import Codec

__all__ = ["MAX_PUBLISH_BYTES", "PayloadRefused", "publish_bytes"]

MAX_PUBLISH_BYTES = 32 * 1024
"""Largest payload a user may publish through the channels (bytes after encoding)."""

_NUMBER = Decoder(PayloadFormat.NUMBER)


class PayloadRefused(ValueError):
    """A payload the channel's format cannot carry.

    The message is what follows a channel's name (``f"channel {name!r} {message}"``):
    what the channel takes, and why this payload is not that.
    """


def publish_bytes(
    format: PayloadFormat | str,
    payload: object,
    *,
    codec: Codec = JSON_CODEC,
    decoder: Decoder | None = None,
) -> bytes:
    """The MQTT payload for ``payload`` on a channel of ``format``; ``PayloadRefused`` if none.

    ``decoder`` (the channel's) checks csv and influx payloads as readings would decode.
    """
    try:
        fmt = PayloadFormat(format)
    except ValueError:
        raise PayloadRefused(
            f"has the format {format!r}, which this version does not know"
        ) from None
    if fmt is PayloadFormat.JSON:
        data = _json(payload, codec)
        if depth_problem(None, data) is not None:
            # What a device's reading may be, a user's publish may be too (limits.py).
            raise PayloadRefused(
                f"takes JSON nested at most {MAX_DEPTH} deep (arrays and objects); this "
                "payload nests deeper"
            )
    elif fmt is PayloadFormat.NUMBER:
        data = _number(payload)
    elif fmt is PayloadFormat.BYTES:
        data = _base64(payload)
    else:
        data = _text(fmt, payload, decoder)
    if len(data) > MAX_PUBLISH_BYTES:
        raise PayloadRefused(
            f"takes payloads of at most {MAX_PUBLISH_BYTES:,} bytes; this one is {len(data):,}"
        )
    return data


def _json(payload: object, codec: Codec) -> bytes:
    if isinstance(payload, str):
        try:
            codec.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise PayloadRefused(
                f"takes JSON, and this text is {explain_decode_error(exc)}. "
                "Pass a dict, list, number, bool or None, or JSON text such as "
                """'{"setpoint": 25}'; to send the text itself, pass json.dumps(text)"""
            ) from None
        return payload.encode("utf-8")
    try:
        data = codec.dumps(payload).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadRefused(f"takes JSON, and this payload is not: {exc}") from None
    problem = _number_beyond_a_float(payload)
    if problem is not None:
        raise PayloadRefused(
            f"takes JSON whose numbers fit a 64-bit float; in this payload {problem}"
        )
    return data


def _number_beyond_a_float(value: object, depth: int = 0) -> str | None:
    """The first integer of ``value`` that no 64-bit float holds, said in words."""
    if isinstance(value, int) and not isinstance(value, bool):
        return number_problem(value)
    if depth > MAX_DEPTH:  # refused for its depth anyway
        return None
    items: Iterable[object]
    if isinstance(value, dict):
        items = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return None
    for item in items:
        problem = _number_beyond_a_float(item, depth + 1)
        if problem is not None:
            return problem
    return None


def _number(payload: object) -> bytes:
    if isinstance(payload, bool) or not isinstance(payload, int | float | str):
        raise PayloadRefused(f"takes one number, e.g. 21.5, not {_kind(payload)}")
    try:
        text = payload.strip() if isinstance(payload, str) else repr(payload)
    except ValueError:  # an int past Python's int-to-text limit (4300 digits)
        raise PayloadRefused(
            "takes one number, e.g. 21.5, and this one has too many digits for a 64-bit float"
        ) from None
    data = text.encode("utf-8", "surrogatepass")
    error = _NUMBER.decode("", data, 0.0).error
    if error is not None:
        raise PayloadRefused(f"takes one number: {error}")
    return data


def _base64(payload: object) -> bytes:
    if not isinstance(payload, str):
        raise PayloadRefused(
            f"takes bytes as base64 text (base64.b64encode(data).decode()), not {_kind(payload)}"
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadRefused("takes bytes as base64 text, and this text is not base64") from None


def _text(fmt: PayloadFormat, payload: object, decoder: Decoder | None) -> bytes:
    if not isinstance(payload, str):
        what = "text" if fmt is PayloadFormat.TEXT else f"{fmt.value} text"
        raise PayloadRefused(f"takes {what}, not {_kind(payload)}")
    try:
        data = payload.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadRefused(
            "takes text, and this text holds a lone surrogate (not UTF-8)"
        ) from None
    if decoder is not None and fmt in (PayloadFormat.CSV, PayloadFormat.INFLUX):
        # As a reading would decode, but without the time field: a command need not carry one.
        check = Decoder(fmt, csv_columns=decoder.csv_columns)
        error = check.decode("", data, 0.0).error
        if error is not None:
            raise PayloadRefused(f"takes {fmt.value} lines: {error}")
    return data


def _kind(payload: object) -> str:
    if payload is None:
        return "None"
    if isinstance(payload, bool):
        return f"a bool ({payload})"
    name = type(payload).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
