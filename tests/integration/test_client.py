"""The Python client against a real ``jupyter server`` subprocess and a real mosquitto.

Readings are published by independent MQTT clients (paho), as devices would; every
payload carries a sequence number so that loss and duplication are visible.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
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


def readings(start: int, stop: int, devices: int = 4) -> list[tuple[str, str]]:
    return [
        (
            f"plant/lyon/pump{n % devices}/env",
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


def test_sync_connect_subscribe_and_frame(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        assert cable.state == "connected"
        assert live_server.token not in repr(cable)
        assert live_server.token not in cable._repr_html_()
        sub = cable.subscribe("telemetry")
        assert sub.meta["columns"] == "plant/{site}/{device}/env"
        publish_many(live_server, readings(0, 20))
        wait_until(lambda: len(sub) == 20, 20, "20 readings")
        frame = sub.frame
        assert frame.index.name == "time"
        assert str(frame.index.dtype) == "datetime64[ns, UTC]"
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            "topic": "str",
            "site": "str",
            "device": "str",
            "seq": "float64",
            "temperature": "float64",
            "status": "str",
        }
        assert seqs(sub) == list(range(20))
        assert set(frame["site"]) == {"lyon"}
        assert frame.attrs["gaps"] == []
        latest = sub.latest
        assert sorted(latest.index) == [f"plant/lyon/pump{d}/env" for d in range(4)]
        assert latest.loc["plant/lyon/pump3/env", "seq"] == 19
        assert "rows" in sub._repr_html_()
    assert repr(cable).startswith(f"<Cable {live_server.url} closed")
    assert sub.state == "closed"


@pytest.mark.asyncio
async def test_async_connect_and_async_for(live_server: LiveServer) -> None:
    cable = await iot.connect_async(live_server.url, token=live_server.token)
    async with cable:
        sub = await cable.subscribe_async("telemetry", "plant/lyon/+/env", window=None)
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
            readings(0, 10),
        )
        await asyncio.wait_for(consumer, 20)
        assert [r.payload["seq"] for r in received] == list(range(10))  # type: ignore[index]
        assert received[0].columns == {"site": "lyon", "device": "pump0"}
        result = await cable.publish_async("commands", {"speed": 40}, topic="plant/lyon/p3/cmd")
        assert result.ok
        assert result.topic == "plant/lyon/p3/cmd"


def test_100k_readings_land_in_the_frame(live_server: LiveServer) -> None:
    total = 100_000
    with iot.connect(live_server.url, token=live_server.token, timeout=30) as cable:
        bounded = cable.subscribe("telemetry", window=None, max_rows=60_000)
        whole = cable.subscribe("telemetry", window=None, max_rows=total)
        publisher = threading.Thread(target=publish_many, args=(live_server, readings(0, total)))
        publisher.start()
        publisher.join(90)
        assert not publisher.is_alive()
        wait_until(lambda: whole.received == total, 60, f"{total} readings")
        frame = whole.frame
        assert len(frame) == total
        assert seqs(whole) == list(range(total))
        assert str(frame["temperature"].dtype) == "float64"
        assert str(frame["status"].dtype) == "str"
        # The bounded one kept exactly the newest 60k.
        assert bounded.received == total
        assert seqs(bounded) == list(range(total - 60_000, total))
        assert whole.gaps == []


def test_readings_arrive_while_the_main_thread_is_busy(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry")
        publish_many(live_server, readings(0, 200))
        time.sleep(3)  # a cell computing: no client method is called meanwhile
        assert len(sub) == 200


def test_dropped_websocket_resumes_with_every_reading_exactly_once(
    live_server: LiveServer,
) -> None:
    total = 6000
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", window=None)
        first_sid = cable.sid
        welcomes: list[str | None] = []

        def publish_and_drop() -> None:
            for start in range(0, total, 1000):
                publish_many(live_server, readings(start, start + 1000))
                cable.drop_connection()
                welcomes.append(cable.sid)

        worker = threading.Thread(target=publish_and_drop)
        worker.start()
        worker.join(120)
        wait_until(lambda: len(sub) == total, 60, f"{total} readings after drops")
        assert seqs(sub) == list(range(total))
        assert sub.gaps == []
        assert cable.state == "connected"
        assert first_sid is not None and welcomes


def test_history_backfill_at_subscribe(live_server: LiveServer) -> None:
    publish_many(live_server, readings(0, 50))
    with iot.connect(live_server.url, token=live_server.token) as cable:
        # Make sure the server has them before asking.
        probe = cable.subscribe("telemetry", history="1h", window=None)
        assert seqs(probe) == list(range(50))
        publish_many(live_server, readings(50, 60))
        wait_until(lambda: len(probe) == 60, 20, "live readings after the backfill")
        assert seqs(probe) == list(range(60))


def test_history_backfill_on_a_live_subscription(live_server: LiveServer) -> None:
    publish_many(live_server, readings(0, 50))
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", window=None)
        publish_many(live_server, readings(50, 60))
        wait_until(lambda: len(sub) == 10, 20, "live readings")
        sub.history("1h")
        assert seqs(sub) == list(range(60))


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


@pytest.mark.parametrize(
    ("channel", "topic", "reason_part"),
    [
        ("nope", None, "nope"),
        ("secret", None, "secret"),
        ("telemetry", "plant/lyon/pump1/cmd", "plant/lyon/pump1/cmd"),
    ],
    ids=["unknown channel", "forbidden channel", "topic outside the channel"],
)
def test_rejected_subscriptions_carry_the_servers_reason(
    live_server: LiveServer, channel: str, topic: str | None, reason_part: str
) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        with pytest.raises(iot.SubscriptionRejected) as info:
            cable.subscribe(channel, topic)
        error = info.value
        assert error.channel == channel
        assert reason_part in error.reason
        assert str(error).startswith(f"subscription to channel {channel!r}")
        assert str(error).endswith(
            "cable.channels() lists the channels you may read or write and their topics."
        )
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
        commands = cable.subscribe("commands")
        assert cable.publish("commands", {"speed": 40}, topic="plant/lyon/pump3/cmd")
        wait_until(lambda: len(commands) == 1, 20, "the command echoed back")
        assert commands.frame["speed"].tolist() == [40.0]
        names = {c.name: c for c in cable.channels()}
        assert set(names) == {"telemetry", "commands", "numbers"}
        assert names["commands"].write
        assert not names["telemetry"].write


def test_readings_iterator_and_callbacks(live_server: LiveServer) -> None:
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry")
        called: list[int] = []
        sub.on(lambda r: called.append(r.offset))
        iterator = sub.readings(timeout=5)
        publish_many(live_server, readings(0, 30))
        got = [r.payload["seq"] for r, _ in zip(iterator, range(30), strict=False)]  # type: ignore[index]
        assert got == list(range(30))
        wait_until(lambda: len(called) == 30, 10, "callbacks")
        sub.unsubscribe()
        assert sub.state == "unsubscribed"
        assert list(sub.readings(timeout=1)) == []
