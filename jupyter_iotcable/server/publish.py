"""Turning a user's publish request into MQTT bytes, or a clear refusal (pure).

What a payload may be on a channel of each format is one rule shared with the Python
client (``protocol/payloads.py``): the client checks before sending, the server again
here, for every publisher (websocket, REST, a browser).
"""

from __future__ import annotations

from ..protocol.payloads import MAX_PUBLISH_BYTES, PayloadRefused, publish_bytes
from ..topics import TopicError, validate_topic
from .config import ChannelConfig

__all__ = ["MAX_PUBLISH_BYTES", "Refusal", "check_topic", "encode_payload"]


class Refusal(Exception):
    """A publish that must not reach the broker; ``reason`` is shown to the user.

    (The client raises ``PublishRefused`` when it receives one.)
    """

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def check_topic(channel: ChannelConfig, topic: object) -> str:
    if not isinstance(topic, str) or not topic:
        raise Refusal(
            "publish needs a 'topic' string naming one MQTT topic, e.g. 'plant/lyon/pump3/cmd'",
            status=400,
        )
    try:
        validate_topic(topic)
    except TopicError as e:
        raise Refusal(f"topic {topic!r} is not a valid MQTT topic name: {e}", 400) from e
    if not channel.may_publish_to(topic):
        raise Refusal(
            f"topic {topic!r} is outside channel {channel.name!r}: it must match one of "
            f"{list(channel.write_topics)}"
        )
    return topic


def encode_payload(channel: ChannelConfig, payload: object) -> bytes:
    """Encode ``payload`` in the channel's format; refuse what the format cannot carry."""
    try:
        # The standard codec: the same words as the client's check (publishes are few).
        return publish_bytes(channel.format, payload, decoder=channel.decoder)
    except PayloadRefused as e:
        raise Refusal(f"channel {channel.name!r} {e}", 400) from None
