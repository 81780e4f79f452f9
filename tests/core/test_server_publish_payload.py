"""What a publish may put on the broker: the channel's format decides, and a refusal says why.

The rule is ``protocol/payloads.py``, shared with the client (which checks the same before
sending). A 'number' channel must refuse exactly what its own decoder would flag, or a user
could publish readings that every subscriber then receives as decode errors.
"""

from __future__ import annotations

import math

import pytest

from jupyter_iotcable.server.config import ChannelConfig, parse_channels
from jupyter_iotcable.server.publish import Refusal, encode_payload

JSON_ADVICE = (
    "Pass a dict, list, number, bool or None, or JSON text such as '{\"setpoint\": 25}'; "
    "to send the text itself, pass json.dumps(text)"
)


def channel(fmt: str, **options: object) -> ChannelConfig:
    config = {"c": {"topics": ["dev/#"], "format": fmt, "read": ["*"], "write": ["*"], **options}}
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
        (True, "not a bool (True)"),
        ([1], "not a list"),
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
    with pytest.raises(Refusal) as refused:
        encode_payload(channel("number"), payload)
    assert refused.value.status == 400
    assert refused.value.reason.startswith("channel 'c' takes one number")
    assert says in refused.value.reason


@pytest.mark.parametrize(
    ("payload", "wire"),
    [
        ({"setpoint": 25}, b'{"setpoint":25}'),
        ('{"setpoint": 25}', b'{"setpoint": 25}'),  # JSON text goes out as written
        ('"on"', b'"on"'),  # the JSON text of a string
        ([1, 2.5, None, True], b"[1,2.5,null,true]"),
        (2**70, b"1180591620717411303424"),
    ],
)
def test_a_json_channel_publishes_json_values_and_json_text(payload: object, wire: bytes) -> None:
    assert encode_payload(channel("json"), payload) == wire


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            "not json {",
            "channel 'c' takes JSON, and this text is not JSON: Expecting value: line 1 "
            f"column 1 (char 0). {JSON_ADVICE}",
        ),
        (
            '{"setpoint": 25',
            "channel 'c' takes JSON, and this text is not JSON: Expecting ',' delimiter: "
            f"line 1 column 16 (char 15). {JSON_ADVICE}",
        ),
        (
            '{"t": NaN}',
            "channel 'c' takes JSON, and this text is not JSON: NaN is not valid JSON. "
            + JSON_ADVICE,
        ),
        (
            "1e400",
            "channel 'c' takes JSON, and this text is not usable JSON: the number 1e400 does "
            f"not fit a 64-bit float. {JSON_ADVICE}",
        ),
        (
            {"t": math.nan},
            "channel 'c' takes JSON, and this payload is not: "
            "Out of range float values are not JSON compliant",  # Python 3.12 adds ": nan"
        ),
        (
            {"t": {1, 2}},
            "channel 'c' takes JSON, and this payload is not: "
            "Object of type set is not JSON serializable",
        ),
        (
            "x" * 40_000,
            "channel 'c' takes JSON, and this text is not JSON: Expecting value: line 1 "
            f"column 1 (char 0). {JSON_ADVICE}",
        ),
        (
            '"' + "x" * 40_000 + '"',
            "channel 'c' takes payloads of at most 32,768 bytes; this one is 40,002",
        ),
    ],
    ids=["text", "unclosed", "nan-text", "huge", "nan", "set", "long-text", "too-big"],
)
def test_a_json_channel_refuses_what_is_not_json(payload: object, reason: str) -> None:
    with pytest.raises(Refusal) as refused:
        encode_payload(channel("json"), payload)
    assert refused.value.status == 400
    assert refused.value.reason.removesuffix(": nan") == reason


@pytest.mark.parametrize(
    ("fmt", "options", "payload", "reason"),
    [
        ("text", {}, 5, "channel 'c' takes text, not an int"),
        ("text", {}, None, "channel 'c' takes text, not None"),
        (
            "csv",
            {"csv_columns": ["a", "b", "c"]},
            "1,2",
            "channel 'c' takes csv lines: payload has 2 fields; format 'csv' expects one line "
            "of 3 fields (a, b, c)",
        ),
        (
            "influx",
            {},
            "garbage line",
            "channel 'c' takes influx lines: invalid line protocol: field at column 9 is not "
            "key=value; expected measurement[,tag=value...] field=value[,field=value...] "
            "[timestamp]",
        ),
        (
            "bytes",
            {},
            {"a": 1},
            "channel 'c' takes bytes as base64 text (base64.b64encode(data).decode()), not a dict",
        ),
        ("bytes", {}, "***", "channel 'c' takes bytes as base64 text, and this text is not base64"),
    ],
    ids=["text-int", "text-none", "csv-fields", "influx", "bytes-dict", "bytes-not-base64"],
)
def test_text_formats_refuse_what_their_decoder_would_flag(
    fmt: str, options: dict[str, object], payload: object, reason: str
) -> None:
    with pytest.raises(Refusal) as refused:
        encode_payload(channel(fmt, **options), payload)
    assert (refused.value.status, refused.value.reason) == (400, reason)


def test_a_csv_command_need_not_carry_the_channels_time_field() -> None:
    csv = channel("csv", csv_columns=["ts", "v"], time_field="ts")
    assert encode_payload(csv, ",on") == b",on"
