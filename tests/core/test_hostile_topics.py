"""Topics a broker would take as a malformed packet never leave the server (issue 12).

A publish topic or subscribe filter holding a control character or a Unicode non-character
made mosquitto drop the bridge's connection, and with it every channel. They are refused
with the reason, over the cable (``publish_result`` / ``reject_subscription``) as over REST
(tests/integration/test_hostile.py), and nothing reaches the broker.
"""

from __future__ import annotations

import json

import pytest

from jupyter_iotcable.protocol import make_identifier
from tests.core.sessions import Client, bridge, engine

HOSTILE = {
    "TAB": "\t",
    "LF": "\n",
    "U+0001": "\x01",
    "U+007F": "\x7f",
    "U+0085": "\x85",
    "U+FDD0": "\ufdd0",
    "U+FFFF": "\uffff",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", HOSTILE)
async def test_a_hostile_publish_topic_is_refused_and_never_sent(name: str) -> None:
    client = Client(engine())
    client.open()
    commands = make_identifier("commands")
    client.subscribe(commands)
    client.take()
    topic = f"plant/a{HOSTILE[name]}/pump/cmd"
    data = {"action": "publish", "topic": topic, "payload": 1, "ref": 1}
    client.send({"command": "message", "identifier": commands, "data": json.dumps(data)})
    await client.perform()
    [result] = client.take()
    message = result["message"]
    assert message["ok"] is False
    code = name if name.startswith("U+") else f"U+{ord(HOSTILE[name]):04X}"
    assert code in message["reason"]
    assert "drop the connection" in message["reason"]
    assert bridge(client.engine).published == []
    assert client.engine.publishes_refused == 1


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_subscribe_filter_is_rejected_with_the_reason(name: str) -> None:
    client = Client(engine())
    client.open()
    identifier = make_identifier("telemetry", topic=f"plant/+/a{HOSTILE[name]}/env")
    reply = client.subscribe(identifier)
    assert reply["type"] == "reject_subscription"
    assert reply["reason"].startswith(f"topic {f'plant/+/a{HOSTILE[name]}/env'!r} is not a valid")
    code = name if name.startswith("U+") else f"U+{ord(HOSTILE[name]):04X}"
    assert code in reply["reason"]
