"""The Python client against a real ``jupyter server`` subprocess and a real mosquitto.

Readings are published by independent MQTT clients (paho), as devices would; every
payload carries a sequence number so that loss and duplication are visible.

The tests share one server (``live_server`` here is the module's ``shared_live_server``);
each reads and writes topics of its own (``plant/<site>/...``), and starts once the
server holds no subscription left from the test before. 100k readings through the
client's stack are in tests/client/test_volume.py (in memory).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
import pandas as pd
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import jupyter_iotcable as iot
from jupyter_iotcable.client import Reading
from tests.brokers import free_port

if TYPE_CHECKING:
    from collections.abc import Callable

    from jupyter_iotcable.client import Subscription
    from tests.servers import LiveServer


def publish_many(server: LiveServer, messages: list[tuple[str, str]]) -> None:
    """Publish with one paho client at QoS 1 and return once the broker acked them all."""
    broker = server.mosquitto
    assert broker is not None
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(500)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for start in range(0, len(messages), 2000):
            chunk = messages[start : start + 2000]
            infos = [client.publish(topic, payload, qos=1) for topic, payload in chunk]
            for info in infos:
                info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def readings(start: int, stop: int, devices: int = 4, site: str = "lyon") -> list[tuple[str, str]]:
    return [
        (
            f"plant/{site}/pump{n % devices}/env",
            json.dumps({"seq": n, "temperature": 20 + n % 7 / 2, "status": "ok"}),
        )
        for n in range(start, stop)
    ]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def seqs(sub: Subscription) -> list[int]:
    return [int(s) for s in sub.frame["seq"]]


def taken(server: LiveServer, channel: str = "telemetry") -> int:
    """How many readings the server has taken into ``channel``'s stream."""
    return int(server.get("iotcable/api/status")["channels"][channel]["messages_in"])


def ingest(server: LiveServer, messages: list[tuple[str, str]], channel: str = "telemetry") -> None:
    """Publish ``messages`` and return once the server has taken them all (a history
    request made afterwards finds every one, none of them arrives live)."""
    before = taken(server, channel)
    publish_many(server, messages)
    wait_until(
        lambda: taken(server, channel) >= before + len(messages), 30, "the server to take them"
    )


@pytest.fixture
def live_server(shared_live_server: LiveServer) -> LiveServer:
    """The module's server, once it holds no subscription from an earlier test (a closed
    cable's subscriptions end when the server sees its socket close)."""
    wait_until(
        lambda: all(
            c["subscribers"] == 0
            for c in shared_live_server.get("iotcable/api/status")["channels"].values()
        ),
        20,
        "the subscriptions of the test before to end",
    )
    return shared_live_server


def test_sync_connect_subscribe_and_frame(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        assert cable.state == "connected"
        assert live_server.token not in repr(cable)
        assert live_server.token not in cable._repr_html_()
        sub = cable.subscribe("telemetry", "plant/sync/+/env")
        assert sub.meta["columns"] == "plant/{site}/{device}/env"
        publish_many(live_server, readings(0, 20, site="sync"))
        wait_until(lambda: len(sub) == 20, 20, "20 readings")
        frame = sub.frame
        assert frame.index.name == "time"
        assert str(frame.index.dtype) == "datetime64[ns, UTC]"
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            "topic": "str",
            "site": "str",
            "device": "str",
            "seq": "Int64",
            "temperature": "float64",
            "status": "str",
        }
        assert seqs(sub) == list(range(20))
        assert set(frame["site"]) == {"sync"}
        assert frame.attrs["gaps"] == []
        latest = sub.latest
        assert sorted(latest.index) == [f"plant/sync/pump{d}/env" for d in range(4)]
        assert latest.loc["plant/sync/pump3/env", "seq"] == 19
        assert "rows" in sub._repr_html_()
    assert repr(cable).startswith(f"<Cable {live_server.url} closed")
    assert sub.state == "closed"


@pytest.mark.asyncio
async def test_async_connect_and_async_for(live_server: LiveServer) -> None:
    cable = await iot.connect_async(live_server.url, token=live_server.token)
    async with cable:
        sub = await cable.subscribe_async("telemetry", "plant/async/+/env", window=None)
        received: list[Reading] = []

        async def consume() -> None:
            async for reading in sub:
                received.append(reading)
                if len(received) == 10:
                    return

        consumer = asyncio.ensure_future(consume())
        await asyncio.get_running_loop().run_in_executor(
            None,
            publish_many,
            live_server,
            readings(0, 10, site="async"),
        )
        await asyncio.wait_for(consumer, 20)
        assert [r.payload["seq"] for r in received] == list(range(10))  # type: ignore[index]
        assert received[0].columns == {"site": "async", "device": "pump0"}
        result = await cable.publish_async("commands", {"speed": 40}, topic="plant/lyon/p3/cmd")
        assert result.ok
        assert result.topic == "plant/lyon/p3/cmd"


EXPECTED_DTYPES = {
    "topic": "str",
    "site": "str",
    "device": "str",
    "seq": "Int64",
    "temperature": "float64",
    "status": "str",
}


def test_readings_land_in_bounded_and_unbounded_frames(live_server: LiveServer) -> None:
    """The whole path, broker to frames, at a few thousand readings; 100k readings and the
    memory they leave behind are tests/client/test_volume.py (the same client stack, in
    memory: 150k through a real broker took two minutes of a shared machine)."""
    total, topic = 5_000, "plant/volume/+/env"
    with iot.connect(live_server.url, token=live_server.token, timeout=30) as cable:
        whole = cable.subscribe("telemetry", topic, window=None, max_rows=total)
        by_rows = cable.subscribe("telemetry", topic, window=None, max_rows=1_000)
        by_time = cable.subscribe("telemetry", topic, window="2s")
        publish_in_thread(live_server, readings(0, total, site="volume"))
        subs = (whole, by_rows, by_time)
        deadline = time.monotonic() + 60
        while any(sub.received < total for sub in subs):
            assert time.monotonic() < deadline, (
                f"of {total} readings: {[sub.received for sub in subs]} arrived; gaps "
                f"{[sub.gaps for sub in subs]}; cable {cable!r}; server "
                f"{live_server.get('iotcable/api/status')['channels']['telemetry']}"
            )
            time.sleep(0.05)

        frame = whole.frame
        assert len(frame) == total
        assert seqs(whole) == list(range(total))  # no reading lost, none twice
        assert str(frame.index.dtype) == "datetime64[ns, UTC]"
        assert frame.index.is_monotonic_increasing
        assert {c: str(t) for c, t in frame.dtypes.items()} == EXPECTED_DTYPES
        assert whole.gaps == []
        assert seqs(by_rows) == list(range(total - 1_000, total))
        timed = by_time.frame
        assert {c: str(t) for c, t in timed.dtypes.items()} == EXPECTED_DTYPES
        assert timed.index[-1] - timed.index[0] <= pd.Timedelta(seconds=2)
        assert seqs(by_time) == list(range(total - len(timed), total))  # the newest, in full


def publish_in_thread(server: LiveServer, messages: list[tuple[str, str]]) -> None:
    """Publish from another thread, as an independent device would, and wait for it."""
    publisher = threading.Thread(target=publish_many, args=(server, messages))
    publisher.start()
    publisher.join(120)
    assert not publisher.is_alive(), "publishing did not finish"


def test_readings_arrive_while_the_main_thread_is_busy(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", "plant/busy/+/env")
        arrived = threading.Event()
        sub.on(lambda r: arrived.set() if r.payload["seq"] == 199 else None)  # type: ignore[index]
        publish_many(live_server, readings(0, 200, site="busy"))
        # A cell computing: no client method is called while the readings come in.
        assert arrived.wait(20), "the last reading did not arrive"
        assert len(sub) == 200


def test_dropped_websocket_resumes_with_every_reading_exactly_once(
    live_server: LiveServer,
) -> None:
    total = 6000
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", "plant/drops/+/env", window=None)
        first_sid = cable.sid
        welcomes: list[str | None] = []

        def publish_and_drop() -> None:
            for start in range(0, total, 1000):
                publish_many(live_server, readings(start, start + 1000, site="drops"))
                cable.drop_connection()
                welcomes.append(cable.sid)

        worker = threading.Thread(target=publish_and_drop)
        worker.start()
        worker.join(120)
        wait_until(lambda: len(sub) == total, 60, f"{total} readings after drops")
        assert seqs(sub) == list(range(total))
        assert sub.gaps == []
        # The last drop may still be in its backoff: the cable says so until it is back.
        wait_until(lambda: cable.state == "connected", 30, "the reconnection after the drop")
        assert first_sid is not None and welcomes


def test_history_backfill_at_subscribe(live_server: LiveServer) -> None:
    ingest(live_server, readings(0, 50, site="atsub"))
    with iot.connect(live_server.url, token=live_server.token) as cable:
        probe = cable.subscribe("telemetry", "plant/atsub/+/env", history="1h", window=None)
        assert seqs(probe) == list(range(50))
        publish_many(live_server, readings(50, 60, site="atsub"))
        wait_until(lambda: len(probe) == 60, 20, "live readings after the backfill")
        assert seqs(probe) == list(range(60))


def test_history_backfill_on_a_live_subscription(live_server: LiveServer) -> None:
    # The server must hold the first 50 before the subscription starts, or some would
    # arrive live (this test once waited in vain for exactly 10 live readings).
    ingest(live_server, readings(0, 50, site="onlive"))
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", "plant/onlive/+/env", window=None)
        publish_many(live_server, readings(50, 60, site="onlive"))
        wait_until(lambda: len(sub) == 10, 20, "live readings")
        sub.history("1h")
        assert seqs(sub) == list(range(60))


def test_a_backfill_larger_than_one_frame_arrives_whole(live_server: LiveServer) -> None:
    # The server sends a long history answer in several batch frames (as the socket
    # drains); every frame lies below the live rows the subscription already holds.
    ingest(live_server, readings(0, 3000, site="large"))
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", "plant/large/+/env", window=None)
        publish_many(live_server, readings(3000, 3010, site="large"))
        wait_until(lambda: len(sub) == 10, 20, "live readings")
        sub.history("1h")
        assert seqs(sub) == list(range(3010))


def test_wrong_url_says_nothing_listens(live_server: LiveServer) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(iot.ConnectionFailed) as info:
        iot.connect(url, token=live_server.token, timeout=5)
    assert str(info.value) == (
        f"could not connect to {url}: connection refused. Is the Jupyter server running "
        "at this address and port?"
    )


def test_wrong_base_url_says_where_the_endpoint_should_be(live_server: LiveServer) -> None:
    with pytest.raises(iot.ConnectionFailed) as info:
        iot.connect(live_server.url + "nothing/here", token=live_server.token, timeout=5)
    assert str(info.value) == (
        f"{live_server.url}nothing/here/ has no iotcable endpoint (HTTP 404). Give the Jupyter "
        "server's base URL (like http://127.0.0.1:8888/, not a page such as .../lab), and "
        "check that the extension is enabled: jupyter server extension list"
    )


def test_a_page_url_says_to_give_the_base_url(live_server: LiveServer) -> None:
    with pytest.raises(iot.ConnectionFailed) as info:
        iot.connect(live_server.url + "lab", token=live_server.token, timeout=5)
    ws_url = live_server.url.replace("http://", "ws://") + "lab/iotcable/cable"
    assert str(info.value) == (
        f"{ws_url} answered with a web page, not a websocket. Give the Jupyter server's base "
        "URL (like http://127.0.0.1:8888/, not a page such as .../lab)"
    )


def test_wrong_token_says_the_token_was_refused(live_server: LiveServer) -> None:
    with pytest.raises(iot.AuthenticationFailed) as info:
        iot.connect(live_server.url, token="not-the-token", timeout=5)
    message = str(info.value)
    assert message.startswith(f"the server at {live_server.url} refused the token (HTTP 403")
    assert 'connect(url, token="...")' in message
    assert "not-the-token" not in message
    with pytest.raises(iot.AuthenticationFailed, match="requires a token"):
        iot.connect(live_server.url, timeout=5)


CHANNELS = "The channels you may read or write are 'commands', 'numbers' and 'telemetry'."


@pytest.mark.parametrize(
    ("channel", "topic", "message"),
    [
        ("telemtry", None, f"unknown channel 'telemtry': did you mean 'telemetry'? {CHANNELS}"),
        ("nope", None, f"unknown channel 'nope'. {CHANNELS}"),
        (
            "secret",
            None,
            "subscription to channel 'secret' was rejected: you may not read or publish to channel "
            f"'secret'. {CHANNELS}",
        ),
        (
            "telemetry",
            "plant/lyon/pump1/cmd",
            "subscription to channel 'telemetry' with topic 'plant/lyon/pump1/cmd' was "
            "rejected: topic 'plant/lyon/pump1/cmd' is outside channel 'telemetry'; it must "
            "be inside one of ['plant/+/+/env']. cable.channels() lists the channels you may "
            "read or write and their topics.",
        ),
    ],
    ids=["typo", "unknown channel", "forbidden channel", "topic outside the channel"],
)
def test_rejected_subscriptions_say_why_from_the_users_call(
    live_server: LiveServer, channel: str, topic: str | None, message: str
) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        with pytest.raises(iot.SubscriptionRejected) as info:
            cable.subscribe(channel, topic)
        error = info.value
        assert str(error) == message
        assert error.channel == channel
        # Raised from the call the user made: this test's frame, then cable.subscribe;
        # no concurrent.futures, no cable thread, no chained cause.
        assert [frame.name for frame in traceback.extract_tb(info.tb)] == [
            "test_rejected_subscriptions_say_why_from_the_users_call",
            "subscribe",
        ]
        assert error.__cause__ is None and error.__suppress_context__
        assert cable.subscriptions == []
        # The cable is still usable after a rejection.
        assert cable.subscribe("telemetry").state == "live"


def test_publish_refused_raises_or_returns_a_falsy_result(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        with pytest.raises(iot.PublishRefused) as info:
            cable.publish("telemetry", {"x": 1}, topic="plant/lyon/p1/env")
        assert info.value.result.reason
        assert str(info.value).startswith(
            "publish to 'plant/lyon/p1/env' on channel 'telemetry' was refused: "
        )
        result = cable.publish("telemetry", {"x": 1}, topic="plant/lyon/p1/env", check=False)
        assert not result
        assert result.reason == info.value.result.reason


def test_published_commands_reach_mqtt_and_subscribers(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        commands = cable.subscribe("commands", "plant/echo/+/cmd")
        assert cable.publish("commands", {"speed": 40}, topic="plant/echo/pump3/cmd")
        wait_until(lambda: len(commands) == 1, 20, "the command echoed back")
        assert commands.frame["speed"].tolist() == [40.0]
        names = {c.name: c for c in cable.channels()}
        assert set(names) == {"telemetry", "commands", "numbers"}
        assert names["commands"].write
        assert not names["telemetry"].write


def test_readings_iterator_and_callbacks(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", "plant/iter/+/env")
        called: list[int] = []
        sub.on(lambda r: called.append(r.offset))
        iterator = sub.readings(timeout=5)
        publish_many(live_server, readings(0, 30, site="iter"))
        # range first: zip stops at 30 without asking the iterator (and its timeout) again
        got = [r.payload["seq"] for _, r in zip(range(30), iterator, strict=False)]  # type: ignore[index]
        assert got == list(range(30))
        wait_until(lambda: len(called) == 30, 10, "callbacks")
        sub.unsubscribe()
        assert sub.state == "unsubscribed"
        assert list(sub.readings(timeout=1)) == []


def server_subscribers(server: LiveServer, channel: str) -> int:
    """How many subscriptions the server holds on ``channel`` (its status endpoint)."""
    count = server.get("iotcable/api/status")["channels"][channel]["subscribers"]
    assert isinstance(count, int)
    return count


def test_a_second_subscription_with_history_gets_its_whole_backfill(
    live_server: LiveServer,
) -> None:
    # The quickstart cell ``sub = cable.subscribe(..., history="5min")``, run twice.
    topic = "plant/rerun/+/env"
    ingest(live_server, [("plant/rerun/d/env", json.dumps({"seq": n})) for n in range(50)])
    with iot.connect(live_server.url, token=live_server.token) as cable:
        first = cable.subscribe("telemetry", topic=topic, window="15min", history="5min")
        again = cable.subscribe("telemetry", topic=topic, window="15min", history="5min")
        assert seqs(first) == list(range(50))
        assert seqs(again) == list(range(50))
        # The same answer, down to the gap the server reports before its own start.
        assert [g.detail for g in again.gaps] == [g.detail for g in first.gaps]
        # One without history, then one with: each gets exactly what it asked for.
        live_only = cable.subscribe("telemetry", topic=topic, window=None)
        publish_many(live_server, [("plant/rerun/d/env", json.dumps({"seq": 50}))])
        wait_until(lambda: len(live_only) == 1 and len(first) == 51, 20, "the live reading")
        backfilled = cable.subscribe("telemetry", topic=topic, window=None, history="1h")
        assert seqs(backfilled) == list(range(51))
        assert seqs(live_only) == [50]  # no backfill it never asked for
        assert len({s.identifier for s in cable.subscriptions}) == 4
        assert server_subscribers(live_server, "telemetry") == 4
        # Unsubscribing one leaves the others streaming.
        first.unsubscribe()
        publish_many(live_server, [("plant/rerun/d/env", json.dumps({"seq": 51}))])
        wait_until(lambda: len(backfilled) == 52, 20, "the next live reading")
        assert seqs(again) == list(range(52))
        assert seqs(live_only) == [50, 51]
        assert seqs(first) == list(range(51))


def test_a_callback_may_unsubscribe_without_stopping_the_cable(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        hot = cable.subscribe("telemetry", topic="plant/hot/+/env")
        other = cable.subscribe("telemetry", topic="plant/cold/+/env")
        seen: list[int] = []

        @hot.on
        def stop_when_hot(reading: Reading) -> None:
            seen.append(reading.payload["seq"])  # type: ignore[index]
            if reading.payload["seq"] == 2:  # type: ignore[index]
                hot.unsubscribe()

        publish_many(live_server, [("plant/hot/d/env", json.dumps({"seq": n})) for n in range(5)])
        wait_until(lambda: hot.state == "unsubscribed", 20, "the callback's unsubscribe")
        publish_many(live_server, [("plant/cold/d/env", json.dumps({"seq": 0}))])
        wait_until(lambda: len(other) == 1, 20, "the other subscription's reading")
        assert seen == [0, 1, 2]
        assert cable.publish("commands", {"speed": 1}, topic="plant/a/b/cmd")
        assert cable.state == "connected"
        wait_until(lambda: server_subscribers(live_server, "telemetry") == 1, 20, "unsubscribe")


def test_a_callback_may_drop_the_connection_and_nothing_is_lost(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", "plant/cbdrop/+/env", window=None)
        first_sid = cable.sid
        dropped: list[int] = []

        @sub.on
        def drop_once(reading: Reading) -> None:
            if reading.payload["seq"] == 10 and not dropped:  # type: ignore[index]
                dropped.append(reading.offset)
                cable.drop_connection()

        publish_many(live_server, readings(0, 100, site="cbdrop"))
        wait_until(lambda: len(sub) == 100, 30, "every reading after the drop")
        wait_until(lambda: cable.state == "connected", 30, "the reconnection")
        assert dropped
        assert seqs(sub) == list(range(100))
        assert sub.gaps == []
        assert cable.sid != first_sid  # a new websocket, which resumed the session


def test_a_callback_that_publishes_gets_a_clear_error_and_nothing_is_sent(
    live_server: LiveServer,
) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        commands = cable.subscribe("commands", "plant/cbpub/+/cmd")
        sub = cable.subscribe("telemetry", "plant/cbpub/+/env")
        errors: list[Exception] = []

        @sub.on
        def publish_from_callback(reading: Reading) -> None:
            try:
                cable.publish("commands", {"speed": 1}, topic="plant/cbpub/b/cmd")
            except iot.IoTCableError as exc:
                errors.append(exc)

        publish_many(live_server, readings(0, 1, site="cbpub"))
        wait_until(lambda: len(errors) == 1, 20, "the callback's publish")
        error = errors[0]
        assert isinstance(error, iot.BlockingCallInCallback)
        assert isinstance(error, RuntimeError)
        assert "threading.Thread(target=cable.publish" in str(error)
        # The refused publish did not half happen, and the cable still publishes.
        assert cable.publish("commands", {"speed": 2}, topic="plant/cbpub/b/cmd")
        wait_until(lambda: len(commands) >= 1, 20, "the main thread's publish")
        time.sleep(0.5)  # let a stray first publish arrive if one was sent
        assert commands.frame["speed"].tolist() == [2.0]


def test_a_callback_may_close_the_cable_and_iterators_end(live_server: LiveServer) -> None:
    cable = iot.connect(live_server.url, token=live_server.token)
    sub = cable.subscribe("telemetry", "plant/cbclose/+/env", window=None)
    ended = threading.Event()

    def consume() -> None:
        for _ in sub.readings():
            pass
        ended.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()

    @sub.on
    def close_at_two(reading: Reading) -> None:
        if reading.payload["seq"] == 2:  # type: ignore[index]
            cable.close()

    publish_many(live_server, readings(0, 5, site="cbclose"))
    assert ended.wait(20), "the readings() iterator did not end when the cable closed"
    assert cable.state == "closed"
    assert sub.state == "closed"
    cable.close()  # idempotent, and waits for the callback's close to finish
    assert cable._loop.loop.is_closed()
    with pytest.raises(iot.CableClosed, match="is closed"):
        cable.subscribe("telemetry")
    wait_until(lambda: server_subscribers(live_server, "telemetry") == 0, 20, "the server")


def test_latest_works_when_payloads_carry_a_time_field(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", "plant/timed/+/env", window=None)
        publish_many(
            live_server,
            [
                ("plant/timed/d1/env", json.dumps({"time": "2024-01-01T00:00:00Z", "v": 1.5})),
                ("plant/timed/d2/env", json.dumps({"time": 1704067200, "v": 2.5})),
            ],
        )
        wait_until(lambda: len(sub) == 2, 20, "two readings")
        assert list(sub.frame.columns) == ["topic", "site", "device", "payload.time", "v"]
        latest = sub.latest
        assert latest.loc["plant/timed/d1/env", "payload.time"] == "2024-01-01T00:00:00Z"
        assert latest.loc["plant/timed/d2/env", "v"] == 2.5
        assert str(latest["time"].dtype) == "datetime64[ns, UTC]"


def test_values_taken_from_pandas_can_be_published(live_server: LiveServer) -> None:
    import numpy as np
    import pandas as pd

    with iot.connect(live_server.url, token=live_server.token) as cable:
        commands = cable.subscribe("commands", "plant/pandas/+/cmd", window=None)
        frame = pd.DataFrame({"speed": [1, 40]})
        when = pd.Timestamp("2024-05-01 14:00:00.25", tz="Europe/Paris")
        payload = {
            "speed": frame["speed"].max(),
            "ratio": np.float32(0.5),
            "on": np.bool_(True),
            "at": when,
            "values": frame["speed"].to_numpy(),
        }
        assert cable.publish("commands", payload, topic="plant/pandas/b/cmd")
        wait_until(lambda: len(commands) == 1, 20, "the published command")
        reading = commands.latest.iloc[0]
        assert reading["speed"] == 40
        assert reading["ratio"] == 0.5
        assert bool(reading["on"]) is True
        assert reading["at"] == "2024-05-01T12:00:00.250000Z"
        assert reading["values"] == [1, 40]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "payload['speed'] is nan, which JSON cannot carry: send a finite number"),
        (float("inf"), "payload['speed'] is inf, which JSON cannot carry"),
        (object(), "payload['speed'] is a builtins.object, which JSON cannot carry"),
    ],
    ids=["nan", "infinity", "object"],
)
def test_unpublishable_values_are_refused_before_anything_is_sent(
    live_server: LiveServer, value: object, message: str
) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        with pytest.raises(
            iot.InvalidPayload, match=message.replace("[", r"\[").replace("]", r"\]")
        ):
            cable.publish("commands", {"speed": value}, topic="plant/a/b/cmd")
        assert issubclass(iot.InvalidPayload, ValueError)
        assert cable.last_server_error is None
        assert cable.publish("commands", {"speed": 3}, topic="plant/a/b/cmd")
        assert cable.state == "connected"


def test_publishing_leaves_no_subscription_on_the_server(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        for speed in range(3):
            assert cable.publish("commands", {"speed": speed}, topic="plant/a/b/cmd")
        wait_until(lambda: server_subscribers(live_server, "commands") == 0, 20, "unsubscribe")
        assert cable._session.identifiers == []
        # A publish on a channel already subscribed uses that subscription and keeps it.
        commands = cable.subscribe("commands")
        assert cable.publish("commands", {"speed": 9}, topic="plant/a/b/cmd")
        wait_until(lambda: len(commands) == 1, 20, "the echo of the publish")
        assert server_subscribers(live_server, "commands") == 1
        assert commands.state == "live"


def test_https_to_an_http_server_says_the_scheme_may_be_wrong(live_server: LiveServer) -> None:
    url = live_server.url.replace("http://", "https://")
    # The client's wait or tornado's connect timeout: whichever fires first says it.
    with pytest.raises((iot.IoTCableTimeout, iot.ConnectionFailed)) as info:
        iot.connect(url, token=live_server.token, timeout=2)
    message = str(info.value)
    assert "the URL has the wrong scheme" in message
    assert f"so try {live_server.url}" in message
    assert live_server.token not in message


SCRIPT_WITH_A_READER_THREAD = """
import sys, threading
import jupyter_iotcable as iot

cable = iot.connect(sys.argv[1], token=sys.argv[2])
sub = cable.subscribe("telemetry")

def worker():
    for reading in sub.readings():  # blocks: nothing is published
        pass
    print("worker ended", flush=True)

threading.Thread(target=worker).start()  # not a daemon
print("main done", flush=True)
"""


def test_a_script_exits_while_a_thread_waits_in_readings(live_server: LiveServer) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT_WITH_A_READER_THREAD, live_server.url, live_server.token],
        capture_output=True,
        text=True,
        timeout=60,  # before the fix the script never exits; this only bounds the hang
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main done", "worker ended"]
    assert live_server.token not in done.stderr


def test_a_channel_or_topic_that_cannot_be_sent_is_a_value_error(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        with pytest.raises(ValueError, match="channel must be 1 to 200 characters, got 0"):
            cable.publish("", {"speed": 1}, topic="plant/a/b/cmd")
        with pytest.raises(ValueError, match="lone surrogate"):
            cable.publish("commands", {"speed": 1}, topic="plant/a/\ud800/cmd")
        with pytest.raises(ValueError, match="got 201"):
            cable.subscribe("x" * 201)
        assert cable.publish("commands", {"speed": 1}, topic="plant/a/b/cmd")
        assert cable.state == "connected"


def test_a_drop_before_any_reading_resumes_without_a_false_gap(live_server: LiveServer) -> None:
    # Nothing has arrived yet, so the catch-up after the drop asks for what came "since the
    # subscription went live": that time must be unix time, or the server sees a request
    # for 1970 and the client records a gap that never happened.
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", "plant/early/+/env", window=None)
        cable.drop_connection()
        wait_until(lambda: cable.state == "connected", 30, "the reconnection after the drop")
        publish_many(live_server, readings(0, 5, site="early"))
        wait_until(lambda: len(sub) == 5, 20, "readings after the reconnection")
        assert seqs(sub) == list(range(5))
        assert sub.gaps == []


# -- what the user sees, against one shared server --------------------------------------------


def test_the_cables_repr_says_the_brokers_state_and_tells_subscriptions_apart(
    shared_live_server: LiveServer,
) -> None:
    server = shared_live_server
    with iot.connect(server.url, token=server.token) as cable:
        # The server says how its broker link is right after the welcome ("broker
        # unknown" while the sidebar said connected, before).
        wait_until(lambda: cable.broker is not None, 10, "the broker's state")
        assert cable.broker is not None and cable.broker.state == "connected"
        cable.subscribe("telemetry", "plant/repr/+/env")
        cable.subscribe("telemetry", "plant/repr/pump1/env")
        assert repr(cable) == (
            f"<Cable {server.url} connected, broker connected, 2 subscriptions: "
            "'telemetry' plant/repr/+/env (0 rows, 0.0/s), 'telemetry' plant/repr/pump1/env "
            "(0 rows, 0.0/s)>"
        )
        html = cable._repr_html_()
        assert "<td style='text-align:left'>plant/repr/+/env</td>" in html
        assert "broker connected, as of " in html
    assert repr(cable) == f"<Cable {server.url} closed, no subscriptions>"


def test_channels_print_as_a_table(shared_live_server: LiveServer) -> None:
    server = shared_live_server
    with iot.connect(server.url, token=server.token) as cable:
        channels = cable.channels()
        assert repr(channels) == (
            "channel    access      format  topics\n"
            "telemetry  read        json    plant/+/+/env\n"
            "commands   read+write  json    plant/+/+/cmd\n"
            "numbers    read        number  num/#"
        )
        assert channels["telemetry"].units == {"temperature": "°C", "humidity": "%"}
        assert channels.to_frame().loc["commands", "write"]


def test_a_malformed_json_publish_is_refused_where_it_was_made(
    shared_live_server: LiveServer,
) -> None:
    server = shared_live_server
    with iot.connect(server.url, token=server.token) as cable:
        with pytest.raises(iot.InvalidPayload) as refused:
            cable.publish("commands", '{"setpoint": 25', topic="plant/a/b/cmd")
        assert str(refused.value) == (
            "channel 'commands' takes JSON, and this text is not JSON: Expecting ',' "
            "delimiter: line 1 column 16 (char 15). Pass a dict, list, number, bool or None, "
            """or JSON text such as '{"setpoint": 25}'; to send the text itself, pass """
            "json.dumps(text)"
        )
        assert [frame.name for frame in traceback.extract_tb(refused.tb)] == [
            "test_a_malformed_json_publish_is_refused_where_it_was_made",
            "publish",
        ]
        assert refused.value.__cause__ is None and refused.value.__suppress_context__
        # JSON text is JSON: the object goes out; a number channel refuses text at once.
        assert cable.publish("commands", '{"setpoint": 25}', topic="plant/a/b/cmd")
        with pytest.raises(iot.PublishRefused, match="you may not publish to channel 'numbers'"):
            cable.publish("numbers", 21.5, topic="num/a")
        assert cable.state == "connected"


def test_a_publish_to_an_unknown_channel_says_did_you_mean(
    shared_live_server: LiveServer,
) -> None:
    server = shared_live_server
    with iot.connect(server.url, token=server.token) as cable:
        with pytest.raises(iot.PublishRefused) as refused:
            cable.publish("comands", {"setpoint": 25}, topic="plant/a/b/cmd")
        assert str(refused.value) == (
            "unknown channel 'comands': did you mean 'commands'? The channels you may read or "
            "write are 'commands', 'numbers' and 'telemetry'."
        )
        assert cable._session.identifiers == []


def test_a_filter_that_matches_no_topic_says_so_in_its_status(
    shared_live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = shared_live_server
    monkeypatch.setattr("jupyter_iotcable.client.subscription.QUIET_AFTER", 0.0)
    publish_many(server, [("plant/lyon/quiet/env", json.dumps({"seq": 0}))])
    with iot.connect(server.url, token=server.token) as cable:
        lyon = cable.subscribe("telemetry", "plant/lyon/quiet/env", history="1h")
        assert len(lyon) >= 1
        paris = cable.subscribe("telemetry", "plant/paris/+/env")
        status = paris.status
        assert status.startswith("live, but no new reading for 0 s: 'plant/paris/+/env' matches")
        assert "the server has seen recently on 'telemetry', e.g. " in status
        assert "plant/lyon/quiet/env" in status
        assert repr(paris).endswith(f": {status}, 0 rows>")
