"""The protocol vocabulary: subprotocol choice, codec, identifiers, history, rows, backoff."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from jupyter_iotcable.protocol import (
    JSON_CODEC,
    Backoff,
    ChannelRef,
    DisconnectReason,
    EncodedRows,
    HistoryRequest,
    LocalProtocolError,
    RemoteProtocolError,
    StreamPosition,
    Subprotocol,
    choose_subprotocol,
    make_identifier,
    parse_identifier,
)
from jupyter_iotcable.protocol.commands import decode_action, decode_command
from jupyter_iotcable.protocol.messages import decode_json

# -- subprotocols ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([], Subprotocol.PLAIN),
        (["actioncable-v1-json"], Subprotocol.PLAIN),
        (["actioncable-v1-json", "actioncable-unsupported"], Subprotocol.PLAIN),
        (["actioncable-v1-ext-json", "actioncable-v1-json"], Subprotocol.EXT),
        (
            ["actioncable-v1-json", "actioncable-v1-ext-json", "iotcable-v1-json"],
            Subprotocol.IOTCABLE,
        ),
        (["iotcable-v1-json"], Subprotocol.IOTCABLE),
        (["actioncable-unsupported"], None),
        (["graphql-ws", "mqtt"], None),
    ],
)
def test_choose_subprotocol(offered: list[str], chosen: Subprotocol | None) -> None:
    assert choose_subprotocol(offered) is chosen


def test_subprotocol_capabilities() -> None:
    assert [p.extended for p in Subprotocol] == [True, True, False]
    assert [p.batched for p in Subprotocol] == [True, False, False]


def test_disconnect_reasons_fix_reconnect_where_the_spec_does() -> None:
    assert {r.value: r.required_reconnect for r in DisconnectReason} == {
        "unauthorized": False,
        "invalid_request": None,
        "server_restart": True,
        "too_slow": True,
        "token_expired": False,
    }


# -- codec -------------------------------------------------------------------------------------


def test_json_codec_is_compact_and_keeps_non_ascii() -> None:
    assert JSON_CODEC.dumps({"a": [1, 2.5, None], "t": "é\n"}) == '{"a":[1,2.5,null],"t":"é\\n"}'


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_json_codec_refuses_nan(value: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        JSON_CODEC.dumps({"x": value})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{",
            "frame is not JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        ("", "frame is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ("NaN", "frame is not JSON: NaN is not valid JSON"),
        ('{"a":Infinity}', "frame is not JSON: Infinity is not valid JSON"),
        (b'{"a":"\xff"}', "frame is not valid UTF-8: invalid start byte at byte 6"),
        ('"\\ud800"', "frame is not valid UTF-8: it holds a lone surrogate"),
        ('"\ud800"', "frame is not valid UTF-8: it holds a lone surrogate"),
        ("[" * 100_000 + "]" * 100_000, "frame is nested too deeply"),
    ],
)
def test_decode_json_says_why(text: str | bytes, expected: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_json(text, JSON_CODEC)
    assert (info.value.code, info.value.message) == ("malformed_json", expected)


HUGE = "1" + "0" * 400  # beyond the largest 64-bit float (about 1.8e308)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (HUGE, HUGE[:17] + "..."),
        ("[-" + HUGE + "]", "-" + HUGE[:16] + "..."),
        ('{"since":1e400}', "1e400"),
        ("-1E+400", "-1E+400"),
        ("9" * 400 + ".5", "9" * 17 + "..."),
    ],
)
def test_json_codec_refuses_numbers_a_64_bit_float_cannot_hold(text: str, shown: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_json(text, JSON_CODEC)
    assert (info.value.code, info.value.message) == (
        "malformed_json",
        f"frame is not usable JSON: the number {shown} does not fit a 64-bit float",
    )
    # orjson, which the server injects, refuses the same texts: both codecs agree.
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)


@pytest.mark.parametrize(
    "text", ["9" * 308, "-" + "9" * 308, str(2**64), "1e308", "-1.7976931348623157e308", "1e-400"]
)
def test_json_codec_keeps_numbers_that_fit(text: str) -> None:
    value = decode_json(text, JSON_CODEC)
    assert value == json.loads(text)
    assert type(value) is type(json.loads(text))  # integers stay integers


def test_decode_json_accepts_utf8_bytes_and_surrogate_pairs() -> None:
    assert decode_json('"\\ud83d\\ude00"', JSON_CODEC) == "😀"
    assert decode_json('{"t":"é"}'.encode(), JSON_CODEC) == {"t": "é"}


# -- identifiers -------------------------------------------------------------------------------


def test_make_identifier_matches_json_stringify() -> None:
    # JSON.stringify({channel: "telemetry", topic: "plant/é/+/env"})
    assert (
        make_identifier("telemetry", topic="plant/é/+/env")
        == '{"channel":"telemetry","topic":"plant/é/+/env"}'
    )
    assert make_identifier("c", b="1", a="2") == '{"channel":"c","b":"1","a":"2"}'


@pytest.mark.parametrize("channel", ["", "x" * 201])
def test_make_identifier_checks_the_channel(channel: str) -> None:
    with pytest.raises(
        LocalProtocolError, match=f"channel must be 1 to 200 characters, got {len(channel)}"
    ):
        make_identifier(channel)


@pytest.mark.parametrize(
    ("channel", "params", "message"),
    [
        (
            "a\ud800",
            {},
            'channel "a\\ud800" holds a lone surrogate (\\ud800 at character 1), which '
            "cannot be sent as UTF-8; pass valid Unicode text",
        ),
        (
            "telemetry",
            {"topic": "plant/\udcff/env"},
            'param "topic" ("plant/\\udcff/env") holds a lone surrogate (\\udcff at '
            "character 6), which cannot be sent as UTF-8; pass valid Unicode text",
        ),
        (
            "telemetry",
            {"\udc80": "x"},
            'param name "\\udc80" holds a lone surrogate (\\udc80 at character 0), which '
            "cannot be sent as UTF-8; pass valid Unicode text",
        ),
    ],
)
def test_make_identifier_refuses_lone_surrogates(
    channel: str, params: dict[str, str], message: str
) -> None:
    # Refused here, not later when the subscribe frame fails to reach the socket.
    with pytest.raises(LocalProtocolError) as info:
        make_identifier(channel, **params)
    assert str(info.value) == message


def test_make_identifier_keeps_surrogate_pairs_as_their_character() -> None:
    assert make_identifier("t\U0001f600") == '{"channel":"t\U0001f600"}'


def test_parse_identifier_reads_channel_and_params() -> None:
    ref = parse_identifier('{"channel":"telemetry","topic":"a/+","window":"15min"}')
    assert ref == ChannelRef("telemetry", {"topic": "a/+", "window": "15min"})
    assert ref.topic == "a/+"
    assert parse_identifier('{"channel":"telemetry"}').topic is None


def test_channel_ref_is_hashable_and_immutable() -> None:
    params = {"topic": "a/+"}
    ref = ChannelRef("telemetry", params)
    params["topic"] = "changed"
    assert ref.topic == "a/+"
    assert {ref: 1}[ChannelRef("telemetry", {"topic": "a/+"})] == 1
    with pytest.raises(TypeError):
        ref.params["topic"] = "x"  # type: ignore[index]


EXAMPLE = '{"channel":"telemetry","topic":"plant/+/+/env"}'


@pytest.mark.parametrize(
    ("identifier", "message"),
    [
        (
            "telemetry",
            f"identifier must be a JSON object string like {EXAMPLE}, "
            "got telemetry (not JSON: Expecting value: line 1 column 1 (char 0))",
        ),
        ('["telemetry"]', f"identifier must be a JSON object string like {EXAMPLE}, got an array"),
        (
            '{"chanel":"telemetry"}',
            'identifier needs a "channel" string of 1 to 200 characters, got null',
        ),
        (
            '{"channel":""}',
            'identifier needs a "channel" string of 1 to 200 characters, got an empty string',
        ),
        ('{"channel":7}', 'identifier needs a "channel" string of 1 to 200 characters, got 7'),
        (
            '{"channel":"' + "x" * 201 + '"}',
            'identifier needs a "channel" string of 1 to 200 characters, got the string "'
            + "x" * 57
            + '..."',
        ),
        (
            '{"channel":"t","topic":["a"]}',
            'identifier param "topic" must be a string, got an array',
        ),
        ('{"channel":"t","n":true}', 'identifier param "n" must be a string, got true'),
        (
            '{"channel":"\\udc00"}',
            f"identifier must be a JSON object string like {EXAMPLE}, "
            'got {"channel":"\\udc00"} (not valid UTF-8: it holds a lone surrogate)',
        ),
    ],
)
def test_parse_identifier_errors(identifier: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_identifier(identifier)
    assert (info.value.code, info.value.message) == ("bad_identifier", message)


# -- history -----------------------------------------------------------------------------------


def test_history_request_round_trips_in_spec_key_order() -> None:
    request = HistoryRequest(since=1700000000.5, streams={"telemetry": StreamPosition("e1", 41)})
    wire = request.to_wire()
    assert (
        json.dumps(wire)
        == '{"since": 1700000000.5, "streams": {"telemetry": {"offset": 41, "epoch": "e1"}}}'
    )
    assert HistoryRequest.from_wire(wire) == request
    assert HistoryRequest.from_wire({"since": 5}) == HistoryRequest(since=5.0)
    assert HistoryRequest.from_wire({"streams": {"s": {"epoch": "e", "offset": -1}}}).streams == {
        "s": StreamPosition("e", -1)
    }


@pytest.mark.parametrize("since", [float("nan"), float("inf"), -1.0])
def test_history_request_refuses_a_since_that_is_not_unix_seconds(since: float) -> None:
    with pytest.raises(LocalProtocolError) as info:
        HistoryRequest(since=since)
    assert str(info.value) == (
        f"history since must be unix seconds (a finite number >= 0), got {since!r}"
    )


H_EXAMPLE = '{"since": 1700000000} or {"streams": {"telemetry": {"offset": 41, "epoch": "e1"}}}'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, f"history must be an object like {H_EXAMPLE}, got null"),
        ("1h", f'history must be an object like {H_EXAMPLE}, got the string "1h"'),
        ({}, f'history needs "since" and/or non-empty "streams", e.g. {H_EXAMPLE}'),
        ({"streams": {}}, f'history needs "since" and/or non-empty "streams", e.g. {H_EXAMPLE}'),
        (
            {"since": "yesterday"},
            'history "since" must be unix seconds (a finite number >= 0), '
            'got the string "yesterday"',
        ),
        ({"since": -1}, 'history "since" must be unix seconds (a finite number >= 0), got -1'),
        ({"since": True}, 'history "since" must be unix seconds (a finite number >= 0), got true'),
        # A codec other than ours may let these through; the check must not overflow.
        (
            {"since": 10**400},
            f'history "since" must be unix seconds (a finite number >= 0), got {"1" + "0" * 56}...',
        ),
        (
            {"since": -(10**5000)},
            'history "since" must be unix seconds (a finite number >= 0), '
            "got an integer of 16,610 bits",
        ),
        (
            {"since": float("inf")},
            'history "since" must be unix seconds (a finite number >= 0), got inf',
        ),
        (
            {"since": float("nan")},
            'history "since" must be unix seconds (a finite number >= 0), got nan',
        ),
        (
            {"streams": [1]},
            'history "streams" must be an object {STREAM_ID: {"offset": int, "epoch": str}}, '
            "got an array",
        ),
        (
            {"streams": {"s": 4}},
            'history "streams"["s"] must be an object {"offset": int, "epoch": str}, got 4',
        ),
        (
            {"streams": {"s": {"epoch": "e"}}},
            'history "streams"["s"]["offset"] must be an integer >= -1, got null',
        ),
        (
            {"streams": {"s": {"epoch": "e", "offset": 1.5}}},
            'history "streams"["s"]["offset"] must be an integer >= -1, got 1.5',
        ),
        (
            {"streams": {"s": {"epoch": "e", "offset": -2}}},
            'history "streams"["s"]["offset"] must be an integer >= -1, got -2',
        ),
        (
            {"streams": {"s": {"offset": 3, "epoch": ""}}},
            'history "streams"["s"]["epoch"] must be a non-empty string, got an empty string',
        ),
    ],
)
def test_history_request_errors(value: object, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        HistoryRequest.from_wire(value)
    assert (info.value.code, info.value.message) == ("bad_history", message)


# -- command envelopes -------------------------------------------------------------------------

FRAME_EXAMPLE = '{"command":"subscribe","identifier":"{\\"channel\\":\\"telemetry\\"}"}'
COMMANDS = "subscribe, unsubscribe, message, history, pong"
ID_EXAMPLE = '"{\\"channel\\":\\"telemetry\\"}"'


@pytest.mark.parametrize(
    ("frame", "code", "message"),
    [
        (
            [],
            "invalid_command",
            f"every frame must be a JSON object like {FRAME_EXAMPLE}, got an array",
        ),
        (
            "subscribe",
            "invalid_command",
            f'every frame must be a JSON object like {FRAME_EXAMPLE}, got the string "subscribe"',
        ),
        ({}, "invalid_command", f'frame needs a "command" string (one of {COMMANDS}), got null'),
        (
            {"command": 1},
            "invalid_command",
            f'frame needs a "command" string (one of {COMMANDS}), got 1',
        ),
        (
            {"command": "SUBSCRIBE"},
            "unknown_command",
            f'unknown command "SUBSCRIBE"; expected one of {COMMANDS}',
        ),
        (
            {"command": "subscribe"},
            "bad_identifier",
            f'"subscribe" needs an "identifier" string like {ID_EXAMPLE}, got null',
        ),
        (
            {"command": "message", "identifier": {"channel": "t"}},
            "bad_identifier",
            f'"message" needs an "identifier" string like {ID_EXAMPLE}, got an object',
        ),
    ],
)
def test_decode_command_errors(frame: object, code: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_command(frame)
    assert (info.value.code, info.value.message) == (code, message)


DATA_HELP = (
    '"message" needs "data": a JSON string encoding an object with a string "action", '
    'like "{\\"action\\":\\"publish\\",\\"topic\\":\\"a/b\\",\\"payload\\":1}"; '
)


@pytest.mark.parametrize(
    ("data", "got"),
    [
        (None, "got null"),
        ({"action": "publish"}, "got an object"),
        ("publish", "got a string that is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ('["publish"]', "got a string encoding an array"),
        ('{"topic":"a"}', 'got an object whose "action" is null'),
        ('{"action":""}', 'got an object whose "action" is an empty string'),
        ('{"action":3}', 'got an object whose "action" is 3'),
    ],
)
def test_decode_action_errors(data: object, got: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_action(data, JSON_CODEC)
    assert (info.value.code, info.value.message) == ("invalid_data", DATA_HELP + got)


def test_decode_action_splits_action_from_fields() -> None:
    assert decode_action('{"action":"publish","topic":"a/b","ref":"7"}', JSON_CODEC) == (
        "publish",
        {"topic": "a/b", "ref": "7"},
    )


# -- encoded rows ------------------------------------------------------------------------------

ROWS = [(4, 10.5, "p/a/env", {"t": 1}, None), (9, 11.0, "p/b/env", "x", "not JSON")]


def test_batch_encoding_is_one_frame_with_dropped_last() -> None:
    encoded = EncodedRows.encode(Subprotocol.IOTCABLE, "telemetry", "e1", ROWS)
    assert encoded.frames('{"channel":"telemetry"}', dropped=2) == [
        '{"identifier":"{\\"channel\\":\\"telemetry\\"}","batch":[[4,10.5,"p/a/env",{"t":1}],'
        '[9,11.0,"p/b/env","x","not JSON"]],"stream_id":"telemetry","epoch":"e1","dropped":2}'
    ]


@pytest.mark.parametrize("subprotocol", [Subprotocol.EXT, Subprotocol.PLAIN])
def test_data_frames_one_per_row_with_columns_and_dropped_on_the_first(
    subprotocol: Subprotocol,
) -> None:
    def columns(topic: str) -> dict[str, str]:
        return {"site": topic.split("/")[1]} if topic.endswith("env") else {}

    encoded = EncodedRows.encode(
        subprotocol, "telemetry", "e1", [*ROWS, (12, 12.0, "p/c/x", 1, None)], columns=columns
    )
    assert encoded.frames("I", dropped=5) == [
        '{"identifier":"I","message":{"topic":"p/a/env","time":10.5,"payload":{"t":1},"columns":{"site":"a"}},'
        '"stream_id":"telemetry","epoch":"e1","offset":4,"dropped":5}',
        '{"identifier":"I","message":{"topic":"p/b/env","time":11.0,"payload":"x","columns":{"site":"b"},'
        '"error":"not JSON"},"stream_id":"telemetry","epoch":"e1","offset":9}',
        '{"identifier":"I","message":{"topic":"p/c/x","time":12.0,"payload":1},'
        '"stream_id":"telemetry","epoch":"e1","offset":12}',
    ]


@pytest.mark.parametrize("subprotocol", list(Subprotocol))
def test_encoded_rows_address_any_identifier_like_a_fresh_encoding(
    subprotocol: Subprotocol,
) -> None:
    encoded = EncodedRows.encode(subprotocol, "s", "e", ROWS)
    for identifier in ['{"channel":"a"}', '{"channel":"b","topic":"é/\\"q\\""}']:
        for frame in encoded.frames(identifier, dropped=1):
            decoded = json.loads(frame)
            assert decoded["identifier"] == identifier
            assert next(iter(decoded)) == "identifier"


def test_encoded_rows_refuse_misuse() -> None:
    with pytest.raises(
        LocalProtocolError, match="offsets of stream 's' must strictly increase: 4 after 4"
    ):
        EncodedRows.encode(Subprotocol.IOTCABLE, "s", "e", [ROWS[0], ROWS[0]])
    with pytest.raises(
        LocalProtocolError, match="rows of stream 's' cannot be encoded as JSON: Out of range float"
    ):
        EncodedRows.encode(Subprotocol.PLAIN, "s", "e", [(1, float("nan"), "t", 1, None)])
    # A payload that cannot be encoded is not an error: its row goes out flagged.
    (frame,) = EncodedRows.encode(
        Subprotocol.PLAIN, "s", "e", [(1, 1.0, "t", float("nan"), None)]
    ).frames("I")
    message = json.loads(frame)["message"]
    assert message["payload"] is None
    assert message["error"].startswith("payload cannot be encoded as JSON (Out of range float")
    empty = EncodedRows.encode(Subprotocol.IOTCABLE, "s", "e", [])
    assert empty.frames("I") == []
    with pytest.raises(
        LocalProtocolError, match="dropped readings must be reported with at least one row"
    ):
        empty.frames("I", dropped=3)
    with pytest.raises(LocalProtocolError, match="dropped must be >= 0, got -1"):
        EncodedRows.encode(Subprotocol.IOTCABLE, "s", "e", ROWS).frames("I", dropped=-1)


# -- backoff -----------------------------------------------------------------------------------


def test_backoff_full_jitter_under_a_growing_capped_ceiling() -> None:
    backoff = Backoff(rng=random.Random(7))
    reference = random.Random(7)
    ceilings = [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    for attempt, ceiling in enumerate(ceilings, start=1):
        assert backoff.next_delay() == reference.uniform(0.0, ceiling)
        assert backoff.attempts == attempt
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() == reference.uniform(0.0, 0.5)


def test_backoff_survives_a_very_long_outage() -> None:
    backoff = Backoff(rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(5000)]
    assert max(delays) <= 30.0
    assert backoff.attempts == 5000


@pytest.mark.parametrize(("base", "factor", "cap"), [(0, 2, 30), (1, 0.5, 30), (2, 2, 1)])
def test_backoff_refuses_nonsense(base: float, factor: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff needs base > 0, factor >= 1 and cap >= base"):
        Backoff(base=base, factor=factor, cap=cap)
