"""The engine over the bridge seam, with a broker in memory (no mosquitto, no sockets)."""

from __future__ import annotations

import pytest

from jupyter_iotcable import bridge, protocol
from jupyter_iotcable.bridge import MemoryBridge
from jupyter_iotcable.protocol import BrokerState
from jupyter_iotcable.server.config import parse_channels
from jupyter_iotcable.server.engine import CableEngine, EngineSettings
from jupyter_iotcable.server.publish import Refusal

CHANNELS = {
    "telemetry": {"topics": ["plant/+/+/env"], "read": ["*"]},
    "commands": {"topics": ["plant/+/+/cmd"], "read": ["*"], "write": ["*"]},
    "numbers": {"topics": ["num/#"], "format": "number", "read": ["*"]},
}


def memory_engine(**settings: object) -> tuple[CableEngine, MemoryBridge]:
    engine = CableEngine(parse_channels(CHANNELS), EngineSettings(**settings), MemoryBridge)  # type: ignore[arg-type]
    assert isinstance(engine.bridge, MemoryBridge)
    return engine, engine.bridge


def test_one_broker_state_vocabulary() -> None:
    assert bridge.BrokerState is protocol.BrokerState
    assert [s.value for s in BrokerState] == [
        "connecting",
        "connected",
        "reconnecting",
        "disconnected",
    ]


def test_the_bridge_is_built_for_the_channels_filters() -> None:
    _engine, memory = memory_engine()
    assert memory.filters == ("plant/+/+/env", "plant/+/+/cmd", "num/#")


@pytest.mark.asyncio
async def test_messages_reach_their_streams_in_order() -> None:
    engine, memory = memory_engine()
    await engine.start()
    try:
        for i in range(3):
            assert memory.deliver("plant/lyon/p1/env", f'{{"seq": {i}}}')
        assert memory.deliver("num/a", "1.5")
        assert not memory.deliver("elsewhere/x", "1"), "no filter of the bridge matches"
        telemetry = engine.hub.streams["telemetry"]
        assert [e.offset for e in telemetry.ring] == [1, 2, 3]
        assert engine.hub.streams["numbers"].offset == 1
        assert engine.status()["channels"]["telemetry"]["messages_in"] == 3  # type: ignore[index]
    finally:
        await engine.stop()


@pytest.mark.asyncio
async def test_broker_health_follows_the_bridge() -> None:
    engine, memory = memory_engine()
    assert engine.health.state is BrokerState.CONNECTING
    await engine.start()
    assert engine.status()["broker"]["state"] == "connected"  # type: ignore[index]
    memory.go_down("lost the connection to memory")
    broker = engine.status()["broker"]
    assert broker["state"] == "reconnecting"  # type: ignore[index]
    assert broker["detail"] == "lost the connection to memory"  # type: ignore[index]
    assert broker["outages"] == 1  # type: ignore[index]
    assert broker["embedded"] is False  # type: ignore[index]
    assert not memory.deliver("num/a", "1"), "nothing arrives while the link is down"
    memory.come_back()
    assert engine.status()["broker"]["state"] == "connected"  # type: ignore[index]
    await engine.stop()
    assert engine.status()["broker"]["state"] == "disconnected"  # type: ignore[index]


@pytest.mark.asyncio
async def test_a_lost_broker_session_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    engine, memory = memory_engine()
    await engine.start()
    memory.go_down()
    memory.come_back(session_present=False)
    await engine.stop()
    assert "no longer had the bridge's session" in caplog.text


@pytest.mark.asyncio
async def test_publish_goes_through_the_bridge_and_comes_back() -> None:
    engine, memory = memory_engine()
    await engine.start()
    commands = engine.channels["commands"]
    topic = await engine.publish(commands, "plant/lyon/p1/cmd", {"speed": 40})
    assert topic == "plant/lyon/p1/cmd"
    assert memory.published == [("plant/lyon/p1/cmd", b'{"speed":40}', 1, False)]
    assert engine.hub.streams["commands"].offset == 1, "the broker echoes it to our filter"
    assert engine.publishes_ok == 1
    await engine.stop()


@pytest.mark.asyncio
async def test_a_publish_the_bridge_cannot_send_is_refused_with_503() -> None:
    engine, memory = memory_engine()
    commands = engine.channels["commands"]
    with pytest.raises(Refusal) as before_start:
        await engine.publish(commands, "plant/lyon/p1/cmd", 1)
    assert before_start.value.status == 503
    assert "unreachable (bridge disconnected)" in before_start.value.reason
    await engine.start()
    memory.refuse_publish = "Operation timed out"
    with pytest.raises(Refusal) as refused:
        await engine.publish(commands, "plant/lyon/p1/cmd", 1)
    assert refused.value.reason == "the publish to 'plant/lyon/p1/cmd' failed (Operation timed out)"
    assert engine.publishes_refused == 2
    await engine.stop()
