"""Turning a user's publish request into MQTT bytes, or a clear refusal (pure)."""

from __future__ import annotations

import base64
import binascii

import orjson

from ..readings import PayloadFormat
from ..topics import TopicError, validate_topic
from .config import ChannelConfig

#: Largest payload a user may publish through the channels (bytes after encoding).
MAX_PUBLISH_BYTES = 32 * 1024


class PublishRefused(Exception):
    """A publish that must not reach the broker; ``reason`` is shown to the user."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def check_topic(channel: ChannelConfig, topic: object) -> str:
    if not isinstance(topic, str) or not topic:
        raise PublishRefused(
            "publish needs a 'topic' string naming one MQTT topic, e.g. 'plant/lyon/pump3/cmd'",
            status=400,
        )
    try:
        validate_topic(topic)
    except TopicError as e:
        raise PublishRefused(f"topic {topic!r} is not a valid MQTT topic name: {e}", 400) from e
    if not channel.may_publish_to(topic):
        raise PublishRefused(
            f"topic {topic!r} is outside channel {channel.name!r}: it must match one of "
            f"{list(channel.write_topics)}"
        )
    return topic


def _number_text(channel: ChannelConfig, payload: object) -> bytes:
    """The payload as the text of one number, refused unless the channel's own decoder
    takes it back without an error (one grammar for both directions)."""
    if isinstance(payload, bool) or not isinstance(payload, int | float | str):
        raise PublishRefused("channel format is 'number': send a number, e.g. 21.5", 400)
    try:
        text = payload.strip() if isinstance(payload, str) else repr(payload)
    except ValueError:  # an int past Python's int-to-text limit (4300 digits)
        raise PublishRefused(
            "channel format is 'number': the number has too many digits for a 64-bit float", 400
        ) from None
    data = text.encode("utf-8")
    error = channel.decoder.decode("", data, 0.0).error
    if error is not None:
        raise PublishRefused(f"channel format is 'number': {error}", 400)
    return data


def encode_payload(channel: ChannelConfig, payload: object) -> bytes:
    """Encode ``payload`` in the channel's format; refuse what the format cannot carry."""
    fmt = channel.format
    if fmt is PayloadFormat.JSON:
        try:
            data = orjson.dumps(payload)
        except TypeError as e:
            raise PublishRefused(f"payload is not JSON-serializable: {e}", 400) from e
    elif fmt is PayloadFormat.NUMBER:
        data = _number_text(channel, payload)
    elif fmt is PayloadFormat.BYTES:
        if not isinstance(payload, str):
            raise PublishRefused("channel format is 'bytes': send the payload as base64 text", 400)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise PublishRefused(
                "channel format is 'bytes': payload is not valid base64", 400
            ) from None
    else:
        if not isinstance(payload, str):
            raise PublishRefused(f"channel format is {fmt.value!r}: send the payload as text", 400)
        data = payload.encode("utf-8")
    if len(data) > MAX_PUBLISH_BYTES:
        raise PublishRefused(
            f"payload is {len(data)} bytes; the limit is {MAX_PUBLISH_BYTES} bytes", 400
        )
    return data
