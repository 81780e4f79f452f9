"""Row frames: each reading encoded once, frames assembled from the encoded pieces.

A reading's payload is turned into JSON once, when it enters a stream
(:func:`encode_payload`: the one place where a value can fail to encode, and where that
failure becomes a flagged row instead of an error). A row's other members (offset, time,
topic) are as cheap to write as they are to copy, so frames are assembled from bytes
(:func:`batch_row`, :func:`data_body`, :func:`batch_frame`, :func:`data_frame`): the
server shares one frame among every subscriber with the same identifier, and splices a
subscriber's ``dropped`` count into the end of a copy when it has one.

:class:`EncodedRows` is the same assembly for decoded :data:`~.messages.Row` tuples, used
by :meth:`~.server.ServerConnection.send_rows` (the transcripts and the protocol tests).
The output is byte for byte what the stdlib codec writes for the whole frame.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .codec import JSON_CODEC
from .errors import LocalProtocolError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .codec import Codec
    from .messages import Row, Subprotocol

__all__ = [
    "ColumnsFor",
    "EncodedRows",
    "JsonBytes",
    "batch_frame",
    "batch_row",
    "data_body",
    "data_frame",
    "encode_payload",
    "json_bytes",
    "with_dropped",
]

ColumnsFor = Callable[[str], Mapping[str, str]]
"""Gives the DataFrame columns a topic fills (``{"site": "lyon", ...}``)."""

JsonBytes = Callable[[object], bytes]
"""Compact, strict JSON as UTF-8: raises ``TypeError``, ``ValueError`` or
``RecursionError`` for what JSON cannot carry (the server passes orjson's)."""


def json_bytes(value: object) -> bytes:
    """The standard library's compact, strict JSON, as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode_payload(
    dumps: JsonBytes, payload: object, error: str | None
) -> tuple[bytes, str | None]:
    """A payload's JSON and its row's error: the one place a row can fail to encode.

    A value that cannot be encoded goes out as ``null``, flagged with the reason, so that
    nothing about one reading costs another reading, a frame or a history cursor.
    """
    try:
        return dumps(payload), error
    except (TypeError, ValueError, RecursionError) as exc:
        reason = f"payload cannot be encoded as JSON ({_one_line(exc)}); it is sent as null"
        return b"null", reason if error is None else f"{error}; {reason}"


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _time(value: float) -> bytes:
    # float.__repr__ is what json.dumps writes for a finite float (decoded times are).
    if not math.isfinite(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return repr(float(value)).encode()


def batch_row(
    offset: int, time: float, topic_json: bytes, payload_json: bytes, error_json: bytes | None
) -> bytes:
    """``[offset, time, topic, payload]``, or with ``error`` last, as in a batch frame."""
    head = b"[%d,%s,%s,%s" % (offset, _time(time), topic_json, payload_json)
    return head + b"]" if error_json is None else head + b"," + error_json + b"]"


def data_body(
    stream_json: bytes,
    epoch_json: bytes,
    offset: int,
    time: float,
    topic_json: bytes,
    payload_json: bytes,
    columns_json: bytes | None,
    error_json: bytes | None,
) -> bytes:
    """A data frame without its ``identifier``: the part every subscriber shares."""
    parts = [b'"message":{"topic":', topic_json, b',"time":', _time(time)]
    parts += [b',"payload":', payload_json]
    if columns_json is not None:
        parts += [b',"columns":', columns_json]
    if error_json is not None:
        parts += [b',"error":', error_json]
    parts += [b'},"stream_id":', stream_json, b',"epoch":', epoch_json, b',"offset":%d' % offset]
    return b"".join(parts)


def batch_frame(
    identifier_json: bytes, rows: Iterable[bytes], stream_json: bytes, epoch_json: bytes
) -> bytes:
    """A ``batch`` frame (``iotcable-v1-json``) of encoded rows, without ``dropped``."""
    return b"".join(
        [
            b'{"identifier":',
            identifier_json,
            b',"batch":[',
            b",".join(rows),
            b'],"stream_id":',
            stream_json,
            b',"epoch":',
            epoch_json,
            b"}",
        ]
    )


def data_frame(identifier_json: bytes, body: bytes) -> bytes:
    """A data frame (the ActionCable subprotocols), without ``dropped``."""
    return b'{"identifier":' + identifier_json + b"," + body + b"}"


def with_dropped(frame: bytes, dropped: int) -> bytes:
    """The frame with ``"dropped": N`` as its last member (a copy; 0 returns it as is)."""
    if dropped < 0:
        raise LocalProtocolError(f"dropped must be >= 0, got {dropped}")
    return frame[:-1] + b',"dropped":%d}' % dropped if dropped else frame


@dataclass(frozen=True)
class EncodedRows:
    """The frames for one run of rows of one stream, minus identifier and drop count.

    ``batched`` says which subprotocol family the bodies are for: one ``batch`` frame
    (``iotcable-v1-json``) or one data frame per row (the two ActionCable ones).
    """

    batched: bool
    bodies: tuple[str, ...]

    @classmethod
    def encode(
        cls,
        subprotocol: Subprotocol,
        stream_id: str,
        epoch: str,
        rows: Sequence[Row],
        *,
        columns: ColumnsFor | None = None,
        codec: Codec = JSON_CODEC,
    ) -> EncodedRows:
        """Encode ``rows`` (offsets strictly increasing) for ``subprotocol``.

        ``columns`` fills ``message.columns`` of data frames; batch frames leave columns
        to the client, which derives them from the confirm's ``meta``. A payload that
        cannot be encoded becomes a flagged row (see :func:`encode_payload`).
        """
        _check_offsets(stream_id, rows)

        def dumps(value: object) -> bytes:
            return codec.dumps(value).encode()

        try:
            stream_json, epoch_json = dumps(stream_id), dumps(epoch)
            rows_json: list[bytes] = []
            bodies: tuple[str, ...] = ()
            for offset, time, topic, payload, error in rows:
                payload_json, error = encode_payload(dumps, payload, error)
                error_json = None if error is None else dumps(error)
                topic_json = dumps(topic)
                if subprotocol.batched:
                    rows_json.append(batch_row(offset, time, topic_json, payload_json, error_json))
                    continue
                body = data_body(
                    stream_json,
                    epoch_json,
                    offset,
                    time,
                    topic_json,
                    payload_json,
                    _columns_json(columns, topic, dumps),
                    error_json,
                )
                bodies += (body.decode(),)
            if rows_json:
                frame = batch_frame(b"0", rows_json, stream_json, epoch_json)
                bodies = (frame[len(b'{"identifier":0,') : -1].decode(),)
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(
                f"rows of stream {stream_id!r} cannot be encoded as JSON: {exc}"
            ) from exc
        return cls(batched=subprotocol.batched, bodies=bodies)

    def frames(self, identifier: str, dropped: int = 0) -> list[str]:
        """The frames for the subscription ``identifier``; ``dropped`` rides on the first."""
        if dropped < 0:
            raise LocalProtocolError(f"dropped must be >= 0, got {dropped}")
        if dropped and not self.bodies:
            raise LocalProtocolError("dropped readings must be reported with at least one row")
        head = '{"identifier":' + json.dumps(identifier, ensure_ascii=False) + ","
        frames = [head + body + "}" for body in self.bodies]
        if dropped:
            frames[0] = f'{head}{self.bodies[0]},"dropped":{dropped}}}'
        return frames


def _columns_json(columns: ColumnsFor | None, topic: str, dumps: JsonBytes) -> bytes | None:
    filled = columns(topic) if columns is not None else None
    return dumps(dict(filled)) if filled else None


def _check_offsets(stream_id: str, rows: Sequence[Row]) -> None:
    previous: int | None = None
    for row in rows:
        offset = row[0]
        if previous is not None and offset <= previous:
            raise LocalProtocolError(
                f"offsets of stream {stream_id!r} must strictly increase: {offset} after {previous}"
            )
        previous = offset
