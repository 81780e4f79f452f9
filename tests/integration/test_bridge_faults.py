"""The bridge through broker faults (issue 12): a lost session is reported, before anything
of the new connection; a restarting broker is retried at once; a publish that makes the
broker drop the bridge is refused at once, not after the acknowledgement timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jupyter_iotcable.bridge import BridgeError, BrokerState, MqttBridge, MqttMessage
from jupyter_iotcable.bridge.mqtt import RESTART_RETRY, _connection_refused
from tests.brokers import Mosquitto
from tests.integration.test_bridge import eventually, running, settings_for


class Recorder:
    """What the bridge reported, in the order it did: messages and lost sessions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.states: list[tuple[BrokerState, str]] = []

    def message(self, message: MqttMessage) -> None:
        self.events.append(("message", message.payload))

    def session_lost(self, detail: str) -> None:
        self.events.append(("session lost", detail))

    @property
    def payloads(self) -> list[object]:
        return [value for kind, value in self.events if kind == "message"]


def bridge_for(broker: Mosquitto, recorder: Recorder, **settings: object) -> MqttBridge:
    return MqttBridge(
        settings_for(broker, **settings),
        ["plant/#"],
        recorder.message,
        lambda state, detail: recorder.states.append((state, detail)),
        on_session_lost=recorder.session_lost,
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_broker_back_without_the_session_is_reported_before_its_messages(
    mosquitto: Mosquitto, protocol: str
) -> None:
    recorder = Recorder()
    bridge = bridge_for(mosquitto, recorder, protocol=protocol)
    async with running(bridge):
        assert await bridge.wait_connected(10)
        assert bridge.status()["session_present"] is False  # a new session: nothing lost
        await asyncio.to_thread(mosquitto.publish, "plant/a/b/env", b"before")
        await eventually(lambda: recorder.payloads == [b"before"])
        mosquitto.kill()
        mosquitto.persistence_path.unlink(missing_ok=True)  # a crash without persistence
        await eventually(lambda: bridge.state is BrokerState.RECONNECTING)
        await asyncio.to_thread(mosquitto.start)
        assert await bridge.wait_connected(10)
        await asyncio.to_thread(mosquitto.publish, "plant/a/b/env", b"after")
        await eventually(lambda: len(recorder.payloads) == 2)
        status = bridge.status()
    [(_, before), (lost, detail), (_, after)] = recorder.events
    assert (before, lost, after) == (b"before", "session lost", b"after")
    assert "without its MQTT session" in str(detail)
    assert f"127.0.0.1:{mosquitto.port}" in str(detail)
    assert (status["session_present"], status["sessions_lost"]) == (False, 1)
    # What clients are told in the broker frame when the bridge is back.
    back = [d for state, d in recorder.states if state is BrokerState.CONNECTED]
    assert "no longer had the bridge's session" not in back[0]
    assert "no longer had the bridge's session" in back[1]


@pytest.mark.asyncio
async def test_a_broker_back_with_the_session_loses_nothing(mosquitto: Mosquitto) -> None:
    recorder = Recorder()
    bridge = bridge_for(mosquitto, recorder)
    async with running(bridge):
        assert await bridge.wait_connected(10)
        await asyncio.to_thread(mosquitto.save)  # the session is on disk
        mosquitto.kill()
        await eventually(lambda: bridge.state is BrokerState.RECONNECTING)
        await asyncio.to_thread(mosquitto.start)
        assert await bridge.wait_connected(10)
        status = bridge.status()
    assert (status["session_present"], status["sessions_lost"]) == (True, 0)
    assert all(kind == "message" for kind, _ in recorder.events)


def test_a_refusing_port_is_retried_within_restart_retry() -> None:
    """A restarting broker refuses connections: the bridge then retries at most every
    RESTART_RETRY seconds, whatever the number of failures, and is back within a second
    of the broker (bench/broker_restart.py measures it); other failures back off."""
    bridge = MqttBridge(
        settings_for(Mosquitto(Path("/nonexistent"))), ["a/#"], lambda _m: None, backoff_cap=30
    )
    assert RESTART_RETRY < 1.0
    for failures in range(40):
        assert bridge._backoff(failures, refused=True) <= RESTART_RETRY
    assert max(bridge._backoff(20) for _ in range(20)) > RESTART_RETRY
    assert _connection_refused(ConnectionRefusedError(111, "Connection refused"))
    from aiomqtt import MqttError

    assert _connection_refused(MqttError("[Errno 111] Connection refused"))
    assert not _connection_refused(MqttError("Operation timed out"))


@pytest.fixture
def small_packet_mosquitto(tmp_path: Path) -> object:
    broker = Mosquitto(tmp_path / "small", extra_config="max_packet_size 2000")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.mark.asyncio
async def test_a_publish_the_broker_drops_the_bridge_for_is_refused_at_once(
    small_packet_mosquitto: Mosquitto,
) -> None:
    """mosquitto drops a client whose packet is over its max_packet_size (an MQTT 3.1.1
    client is not told the limit). aiomqtt would wait for the acknowledgement until its
    timeout (here 60 s, 10 s by default); the bridge fails the publish when the
    connection goes, and comes back."""
    broker = small_packet_mosquitto
    recorder = Recorder()
    bridge = bridge_for(broker, recorder, protocol="3.1.1", timeout=60.0)
    async with running(bridge):
        assert await bridge.wait_connected(10)
        with pytest.raises(BridgeError, match="closed the connection first") as refused:
            await bridge.publish("plant/a/b/cmd", b"x" * 5000)
        assert "plant/a/b/cmd" in str(refused.value)
        assert await bridge.wait_connected(10)
        await bridge.publish("plant/a/b/cmd", b"small")  # the bridge works again
        await eventually(lambda: b"small" in recorder.payloads)
        assert bridge.status()["disconnects"] == 1
