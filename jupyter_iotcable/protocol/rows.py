"""Row frames, encoded once per subscriber group and addressed per connection.

The hub fans one run of readings out to many connections. Everything in a row frame
except the ``identifier`` (the exact string each client subscribed with) and the
``dropped`` count (per subscription) is the same for every subscriber of a subprotocol
family, so :class:`EncodedRows` holds the frames' JSON bodies without those two members
and splices them in per connection: a string concatenation instead of a JSON encoding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .codec import JSON_CODEC
from .errors import LocalProtocolError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .codec import Codec
    from .messages import Row, Subprotocol

__all__ = ["ColumnsFor", "EncodedRows"]

ColumnsFor = Callable[[str], Mapping[str, str]]
"""Gives the DataFrame columns a topic fills (``{"site": "lyon", ...}``)."""


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
        to the client, which derives them from the confirm's ``meta``.
        """
        _check_offsets(stream_id, rows)
        try:
            if subprotocol.batched:
                bodies: tuple[str, ...] = (
                    (_batch_body(stream_id, epoch, rows, codec),) if rows else ()
                )
            else:
                bodies = tuple(_data_body(stream_id, epoch, row, columns, codec) for row in rows)
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


def _check_offsets(stream_id: str, rows: Sequence[Row]) -> None:
    previous: int | None = None
    for row in rows:
        offset = row[0]
        if previous is not None and offset <= previous:
            raise LocalProtocolError(
                f"offsets of stream {stream_id!r} must strictly increase: {offset} after {previous}"
            )
        previous = offset


def _members(codec: Codec, obj: dict[str, object]) -> str:
    """An object's JSON text without its braces, ready to be spliced after a head."""
    return codec.dumps(obj)[1:-1]


def _batch_body(stream_id: str, epoch: str, rows: Sequence[Row], codec: Codec) -> str:
    batch = [
        [offset, time, topic, payload] if error is None else [offset, time, topic, payload, error]
        for offset, time, topic, payload, error in rows
    ]
    return _members(codec, {"batch": batch, "stream_id": stream_id, "epoch": epoch})


def _data_body(
    stream_id: str, epoch: str, row: Row, columns: ColumnsFor | None, codec: Codec
) -> str:
    offset, time, topic, payload, error = row
    message: dict[str, object] = {"topic": topic, "time": time, "payload": payload}
    filled = columns(topic) if columns is not None else None
    if filled:
        message["columns"] = dict(filled)
    if error is not None:
        message["error"] = error
    return _members(
        codec, {"message": message, "stream_id": stream_id, "epoch": epoch, "offset": offset}
    )
