"""What a publish may put on the broker: the channel's format decides, and a refusal says why.

A 'number' channel must refuse exactly what its own decoder would flag, or a user could
publish readings that every subscriber then receives as decode errors.
"""

from __future__ import annotations

import math

import pytest

from jupyter_iotcable.server.config import ChannelConfig, parse_channels
from jupyter_iotcable.server.publish import PublishRefused, encode_payload


def channel(fmt: str) -> ChannelConfig:
    config = {"c": {"topics": ["dev/#"], "format": fmt, "read": ["*"], "write": ["*"]}}
    return parse_channels(config)["c"]


@pytest.mark.parametrize(
    ("payload", "wire"),
    [(21.5, b"21.5"), (42, b"42"), ("-3.25e2", b"-3.25e2"), (" 7 ", b"7")],
)
def test_a_number_channel_publishes_decimal_numbers(payload: object, wire: bytes) -> None:
    data = encode_payload(channel("number"), payload)
    assert data == wire
    reading = channel("number").decoder.decode("dev/x", data, 0.0)
    assert reading.error is None


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ("1_000", "is not a number"),
        ("0x10", "is not a number"),
        ("NaN", "is not a finite number"),
        (math.inf, "is not a finite number"),
        (10**400, "is not a finite number"),
        ("1" + "0" * 400, "is not a finite number"),
        (10**5000, "too many digits"),
        (True, "send a number"),
        ([1], "send a number"),
    ],
    ids=[
        "underscores",
        "hex",
        "nan-text",
        "inf",
        "huge-int",
        "huge-text",
        "5000-digits",
        "bool",
        "list",
    ],
)
def test_a_number_channel_refuses_what_its_decoder_would_flag(payload: object, says: str) -> None:
    with pytest.raises(PublishRefused) as refused:
        encode_payload(channel("number"), payload)
    assert refused.value.status == 400
    assert "channel format is 'number'" in refused.value.reason
    assert says in refused.value.reason
