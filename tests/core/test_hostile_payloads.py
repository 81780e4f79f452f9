"""Hostile device payloads against the sans-I/O layers (#12): one definition of a decodable
payload (protocol/limits.py), max_reading_bytes, frames within the clients' frame cap.

What a device sends can never cost another reading: a payload outside the limits becomes
a reading flagged with the reason, live and in history, and both Python codecs (and the
TypeScript client, labextension/test/hostile.test.ts, on the same frames) read every row.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_iotcable.client.cable import Cable
from jupyter_iotcable.client.codec import FRAME_CODEC
from jupyter_iotcable.client.discovery import Endpoint
from jupyter_iotcable.client.errors import InvalidPayload
from jupyter_iotcable.client.payloads import publishable
from jupyter_iotcable.hub import ChannelSpec, Hub, Outbox
from jupyter_iotcable.protocol import JSON_CODEC, Subprotocol, make_identifier
from jupyter_iotcable.protocol.limits import (
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    MAX_FRAME_DEPTH,
    MAX_READING_BYTES,
    depth_problem,
    nesting_depth,
    number_problem,
    text_depth,
    typescript,
)
from jupyter_iotcable.protocol.payloads import PayloadRefused, publish_bytes
from jupyter_iotcable.readings import make_decoder
from jupyter_iotcable.server import metrics
from jupyter_iotcable.server.codec import orjson_bytes
from jupyter_iotcable.server.config import ConfigError, parse_channel
from tests.core.hostile import (
    EDGE,
    MAX_READING,
    POISON,
    RawClient,
    check_delivery,
    mixed,
    nested,
    python_rows,
    random_payloads,
    server_frames,
)
from tests.core.sessions import bridge, engine

ROOT = Path(__file__).resolve().parents[2]
JSON = make_decoder("json")


def test_the_typescript_limits_are_generated_from_the_python_ones() -> None:
    generated = ROOT / "labextension" / "src" / "protocol" / "limits.ts"
    assert generated.read_text() == typescript(), (
        "run: python -m jupyter_iotcable.protocol.limits > labextension/src/protocol/limits.ts"
    )


def test_the_frame_depth_is_within_what_both_python_codecs_decode() -> None:
    frame = b'{"batch":[[1,1.0,"t",' + nested(MAX_DEPTH) + b"]]}"
    assert nesting_depth(json.loads(frame), stop_after=1000) == MAX_FRAME_DEPTH
    assert FRAME_CODEC.loads(frame) == JSON_CODEC.loads(frame)


# -- the definition ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1.7976931348623157e308, None),
        (10**308, None),
        (2**1023, None),
        (10**309, "an integer of 310 digits does not fit a 64-bit float"),
        (-(10**400), "an integer of 401 digits does not fit a 64-bit float"),
        (float("inf"), "the number inf is not finite"),
        (float("nan"), "the number nan is not finite"),
    ],
)
def test_number_range(value: int | float, problem: str | None) -> None:
    assert number_problem(value) == problem


def test_depth() -> None:
    assert nesting_depth(1) == 0
    assert nesting_depth({"a": [1, {"b": []}]}) == 4
    assert depth_problem(json.loads(nested(MAX_DEPTH))) is None
    assert depth_problem(json.loads(nested(MAX_DEPTH + 1))) == (
        f"it nests arrays or objects more than {MAX_DEPTH} deep"
    )
    # The text's brackets spare the walk: too few to nest that deep.
    assert depth_problem(object(), "[" * MAX_DEPTH) is None


@pytest.mark.parametrize("name", sorted(POISON))
def test_a_poison_payload_is_a_flagged_reading_that_every_codec_reads(name: str) -> None:
    hub = Hub([ChannelSpec("t", ("#",), JSON, max_reading_bytes=MAX_READING)], "e1")
    hub.ingest("dev/1", POISON[name], 1.0, 1.0)
    (entry,) = hub.streams["t"].ring
    assert entry.error is not None
    assert len(entry.payload) <= MAX_READING
    row = b"[1,1.0," + entry.topic_json + b"," + entry.payload + b"]"
    assert FRAME_CODEC.loads(row) == JSON_CODEC.loads(row)


def test_what_the_user_reads_for_each_kind_of_poison() -> None:
    hub = Hub([ChannelSpec("t", ("#",), JSON, max_reading_bytes=MAX_READING)], "e1")
    for name in ("integer of 401 digits", "arrays 975 deep", "over max_reading_bytes"):
        hub.ingest("dev/1", POISON[name], 1.0, 1.0)
    errors = [e.error for e in hub.streams["t"].ring]
    assert errors == [
        "payload is not strict JSON (an integer of 401 digits is too large for a 64-bit "
        "float); format 'json' expects finite numbers, without NaN or Infinity",
        "payload is not usable JSON (it nests arrays or objects more than 100 deep); "
        "format 'json' expects one JSON value nested at most 100 deep",
        "payload of 65,548 bytes is larger than the channel's max_reading_bytes (65,536); "
        "the reading is kept without it",
    ]
    stream = hub.streams["t"]
    assert (stream.flagged, stream.oversize) == (3, 1)


@pytest.mark.parametrize("name", sorted(EDGE))
def test_a_payload_just_inside_the_limits_arrives_as_it_is(name: str) -> None:
    hub = Hub([ChannelSpec("t", ("#",), JSON, max_reading_bytes=MAX_READING)], "e1")
    hub.ingest("dev/1", EDGE[name], 1.0, 1.0)
    (entry,) = hub.streams["t"].ring
    assert entry.error is None
    assert json.loads(entry.payload) == json.loads(EDGE[name].decode("utf-8-sig"))


def test_csv_integers_beyond_a_float_are_missing_values() -> None:
    decoder = make_decoder("csv", csv_columns=["a", "b"])
    reading = decoder.decode("t", b"9" * 400 + b",1", 0.0)
    assert reading.payload == {"a": None, "b": 1}
    assert reading.error is None


def test_the_client_refuses_to_publish_what_the_server_would_flag() -> None:
    publishable(json.loads(nested(MAX_DEPTH)))
    with pytest.raises(InvalidPayload, match="nested more than 100 levels deep"):
        publishable(json.loads(nested(MAX_DEPTH + 1)))


# -- through the server's layers, to the Python client ----------------------------------------


@pytest.mark.parametrize("subprotocol", [Subprotocol.IOTCABLE, Subprotocol.EXT])
def test_poison_among_good_readings_live_and_through_history(subprotocol: Subprotocol) -> None:
    rng = random.Random(1)
    readings = mixed({**POISON, **EDGE, **random_payloads(rng, 100)}, rng)
    run = server_frames(readings, subprotocol)
    for texts in (run.live, run.history):
        for codec in (FRAME_CODEC, JSON_CODEC):
            rows, errors = python_rows(run, texts, codec)
            assert errors == []
            check_delivery(run, rows)


def test_a_20_mb_reading_then_100_small_ones() -> None:
    """The big one is flagged with its size, every small one arrives, status counts it."""
    eng = engine({"telemetry": {"topics": ["plant/+/+/env"], "read": ["*"]}})
    client = RawClient(eng)
    client.open()
    identifier = make_identifier("telemetry")
    client.subscribe(identifier)
    client.take()
    big = b'{"blob": "' + b"x" * (20 << 20) + b'"}'
    assert bridge(eng).deliver("plant/a/big/env", big)
    for i in range(100):
        assert bridge(eng).deliver("plant/a/small/env", json.dumps({"seq": i}))
    client.advance()
    rows = client.rows(identifier)
    assert len(rows) == 101
    assert rows[0][3] is None
    assert [r[3]["seq"] for r in rows[1:]] == list(range(100))
    assert all(len(t) <= MAX_FRAME_BYTES for t in client.texts)
    channel = eng.status()["channels"]["telemetry"]  # type: ignore[index]
    assert channel["oversize"] == 1
    assert channel["flagged"] == 1
    assert channel["max_reading_bytes"] == 1 << 20
    eng._export_stream_metrics()
    exported = metrics.channel_metrics(["telemetry"]).decode()
    assert 'iotcable_readings_oversize_total{channel="telemetry"}' in exported
    assert 'iotcable_history_bytes{channel="telemetry"}' in exported
    (entry,) = [e for e in eng.hub.streams["telemetry"].ring if e.error]
    assert entry.error == (
        "payload of 20,971,532 bytes is larger than the channel's max_reading_bytes "
        "(1,048,576); the reading is kept without it"
    )


def test_batch_frames_stay_within_the_frame_cap() -> None:
    """Many large readings in one flush are split into frames the clients accept."""
    spec = ChannelSpec("t", ("#",), JSON, max_reading_bytes=MAX_READING_BYTES)
    hub = Hub([spec], "e1", dumps=orjson_bytes)
    outbox = Outbox(1 << 40)
    sub = hub.subscribe(outbox, make_identifier("t"), "t", None, rows_per_frame=500)
    payload = b'"' + b"z" * (3 << 20) + b'"'
    for _ in range(12):
        hub.ingest("dev/1", payload, 1.0, 1.0)
    (batch,) = outbox.take()
    frames = hub.streams["t"].frames(sub, batch.entries, 0)
    assert len(frames) == 3
    assert all(len(f) <= MAX_FRAME_BYTES for f in frames)
    rows = [row for f in frames for row in orjson.loads(f)["batch"]]
    assert [r[0] for r in rows] == list(range(1, 13))


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        (
            {"max_reading_bytes": MAX_READING_BYTES + 1},
            "c.IoTCableApp.channels['t']['max_reading_bytes'] is 15,728,641; at most "
            "15,728,640 bytes, so that one reading always fits the largest frame every "
            "client accepts",
        ),
        (
            {"max_reading_bytes": 0},
            "c.IoTCableApp.channels['t']['max_reading_bytes'] must be a positive integer "
            "(bytes), got 0",
        ),
        (
            {"history_bytes": "1GB"},
            "c.IoTCableApp.channels['t']['history_bytes'] must be a positive integer (bytes), "
            "got '1GB'",
        ),
    ],
)
def test_bad_byte_settings_say_what_is_expected(settings_: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_channel("t", {"topics": ["#"], **settings_})
    assert str(caught.value) == message


def test_byte_settings_reach_the_hub() -> None:
    spec = parse_channel("t", {"topics": ["#"], "max_reading_bytes": 10, "history_bytes": 99})
    assert (spec.spec().max_reading_bytes, spec.spec().history_bytes) == (10, 99)


# -- properties -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**330), max_value=10**330)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _deep(value: object, depth: int, as_object: bool) -> object:
    for _ in range(depth):
        value = {"k": value} if as_object else [value]
    return value


def _encoded(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _row_is_readable(hub: Hub) -> tuple[Any, str | None]:
    entry = hub.streams["t"].ring[-1]
    row = b"[" + b",".join([b"1", b"1.0", entry.topic_json, entry.payload]) + b"]"
    decoded = FRAME_CODEC.loads(row)
    assert decoded == JSON_CODEC.loads(row)
    return decoded[3], entry.error  # type: ignore[index]


@settings(max_examples=300, deadline=None)
@given(value=json_values, depth=st.integers(0, 130), as_object=st.booleans())
def test_any_json_a_device_sends_is_a_row_every_client_reads(
    value: object, depth: int, as_object: bool
) -> None:
    value = _deep(value, depth, as_object)
    hub = Hub([ChannelSpec("t", ("#",), JSON)], "e1", dumps=orjson_bytes)
    hub.ingest("dev/1", _encoded(value), 1.0, 1.0)
    payload, error = _row_is_readable(hub)
    inside = (
        nesting_depth(value, MAX_DEPTH + 1) <= MAX_DEPTH
        and all(number_problem(n) is None for n in _numbers(value))
        and _is_text(value)
    )
    assert (error is None) == inside, error
    if inside:
        assert payload == value


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300), fmt=st.sampled_from(["json", "text", "number", "bytes"]))
def test_any_bytes_a_device_sends_are_a_row_every_client_reads(payload: bytes, fmt: str) -> None:
    hub = Hub([ChannelSpec("t", ("#",), make_decoder(fmt), max_reading_bytes=200)], "e1")
    hub.ingest("dev/1", payload, 1.0, 1.0)
    _payload, error = _row_is_readable(hub)
    if len(payload) > 200:
        assert error is not None and "max_reading_bytes" in error


@settings(max_examples=300, deadline=None)
@given(value=json_values, depth=st.integers(0, 130), as_object=st.booleans())
def test_the_depth_read_from_the_text_is_the_depth_of_the_value(
    value: object, depth: int, as_object: bool
) -> None:
    value = _deep(value, depth, as_object)
    text = json.dumps(value).encode()  # ensure_ascii: brackets and quotes in strings stay
    assert text_depth(text) == nesting_depth(value, stop_after=10_000)


def test_the_depth_of_a_megabyte_of_nesting_is_read_from_its_brackets() -> None:
    text = b"[" + b",".join([b"[" * 100 + b'"]]{"' + b"]" * 100] * 5000) + b"]"
    assert text_depth(text) == 101
    assert text_depth(b"[" + b"{}," * 300_000 + b"{}]") == 2


def _numbers(value: object) -> list[int | float]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, int | float):
        return [value]
    assert isinstance(value, dict | list)
    items = value.values() if isinstance(value, dict) else value
    return [n for item in items for n in _numbers(item)]


def _is_text(value: object) -> bool:
    """No lone surrogate anywhere (hypothesis' text() may generate one)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_a_client_cannot_be_made_to_refuse_frames_the_server_may_send() -> None:
    """A smaller frame limit would close the socket with 1009 on a large reading, and
    again after every reconnect: the client refuses it up front."""
    endpoint = Endpoint("http://127.0.0.1:9/", "token", "test")
    with pytest.raises(ValueError, match="max_message_size") as caught:
        Cable(endpoint, max_message_size=1 << 20)
    assert str(caught.value) == (
        "max_message_size must be at least 16,777,216 bytes, the largest frame the server "
        "sends; got 1,048,576"
    )


def test_a_row_that_cannot_be_encoded_costs_no_other_row_nor_the_history_cursor() -> None:
    """The RecursionError-in-flush case: the payload is encoded once, when it comes, and a
    failure there is a flagged row; live and history subscribers get every other row and
    the history answer ends with confirm_history."""
    eng = engine({"telemetry": {"topics": ["plant/+/+/env"], "read": ["*"]}})
    encode = eng.hub._dumps

    def dumps(value: object) -> bytes:
        if value == {"poison": True}:
            raise RecursionError("maximum recursion depth exceeded while encoding")
        return encode(value)

    eng.hub._dumps = dumps
    identifier = make_identifier("telemetry")
    live = RawClient(eng)
    live.open()
    live.subscribe(identifier)
    live.take()
    for i in range(40):
        payload = {"poison": True} if i == 20 else {"seq": i}
        assert bridge(eng).deliver("plant/a/b/env", json.dumps(payload))
    live.advance()
    later = RawClient(eng, sid="sid-2")
    later.open()
    history = {"streams": {"telemetry": {"epoch": eng.epoch, "offset": 0}}}
    later.take()
    later.send({"command": "subscribe", "identifier": identifier, "history": history})
    later.advance()
    frames = later.frames
    assert frames[-1]["type"] == "confirm_history"
    flagged = (
        '"payload cannot be encoded as JSON (maximum recursion depth exceeded while '
        'encoding); it is sent as null"'
    )
    assert all(any(flagged in t for t in c.texts) for c in (live, later))
    for rows in (live.rows(identifier), later.rows(identifier)):
        assert [r[0] for r in rows] == list(range(1, 41))
        assert rows[20][3] is None
        assert [r[3] for r in rows if r[3] is not None] == [
            {"seq": i} for i in range(40) if i != 20
        ]


@pytest.mark.parametrize(
    "payload",
    [json.loads(nested(MAX_DEPTH + 1)), nested(MAX_DEPTH + 1).decode()],
    ids=["value", "json text"],
)
def test_a_publish_nested_deeper_than_a_reading_may_be_is_refused(payload: object) -> None:
    with pytest.raises(PayloadRefused) as caught:
        publish_bytes("json", payload)
    assert str(caught.value) == (
        "takes JSON nested at most 100 deep (arrays and objects); this payload nests deeper"
    )
    assert publish_bytes("json", json.loads(nested(MAX_DEPTH))) == nested(MAX_DEPTH)


def test_a_publish_with_a_number_beyond_a_float_is_refused() -> None:
    with pytest.raises(PayloadRefused, match="does not fit a 64-bit float"):
        publish_bytes("json", "[" + "9" * 400 + "]")


def test_a_publish_of_an_integer_beyond_a_float_is_refused() -> None:
    with pytest.raises(PayloadRefused) as caught:
        publish_bytes("json", {"v": [1, 10**400]})
    assert str(caught.value) == (
        "takes JSON whose numbers fit a 64-bit float; in this payload an integer of 401 "
        "digits does not fit a 64-bit float"
    )
