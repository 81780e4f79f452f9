"""A hub grant taken away while a connection is open (HubAccess over a session, in memory).

The hub service gives each connection a :class:`HubAccess` that asks the hub again who
its credential is (``refresh``); the session re-asks it at each publish, and
``recheck_access`` stops the readings of a channel the user may no longer read and closes
the connection, so that the client resumes what is still allowed and is told why the rest
is refused. The real hub is in tests/hub (the same, end to end).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from jupyter_iotcable.hubservice.access import HubAccess
from jupyter_iotcable.hubservice.app import with_scope_principals
from jupyter_iotcable.protocol import make_identifier
from jupyter_iotcable.server.access import Identity
from jupyter_iotcable.server.engine import CableEngine
from tests.core.sessions import EXT, Client, bridge, engine

COMMANDS = make_identifier("commands")
TELEMETRY = make_identifier("telemetry")
WRITE = "custom:iotcable:write:commands"
READ = "custom:iotcable:read:commands"
CHANNELS: dict[str, dict[str, Any]] = {
    "telemetry": {"topics": ["plant/+/+/env"], "read": ["*"]},
    "commands": {
        "topics": ["plant/+/+/cmd"],
        "read": ["group:operators"],
        "write": ["group:operators"],
    },
}


class Hub:
    """What the hub answers about bob's credential, changed by the test."""

    def __init__(self) -> None:
        self.scopes = {WRITE, READ}  # the hub expands write's subscope
        self.accepts = True
        self.asked = 0

    async def lookup(self) -> Identity | None:
        self.asked += 1
        if not self.accepts:
            return None
        return Identity("bob", frozenset(), False, frozenset(self.scopes))


def hub_engine() -> CableEngine:
    built = engine(CHANNELS)
    built.channels = {name: with_scope_principals(c) for name, c in built.channels.items()}
    return built


def bob(hub: Hub) -> HubAccess:
    identity = Identity("bob", frozenset(), False, frozenset(hub.scopes))
    return HubAccess(identity, hub.lookup, interval=0.0)


def refresh(access: HubAccess) -> None:
    asyncio.run(access.refresh())


def publish(client: Client, ref: str) -> dict[str, Any]:
    client.send(
        {
            "command": "message",
            "identifier": COMMANDS,
            "data": json.dumps(
                {"action": "publish", "topic": "plant/a/b/cmd", "payload": 1, "ref": ref}
            ),
        }
    )
    asyncio.run(client.perform())
    results = [f for f in client.take() if f.get("message", {}).get("action") == "publish_result"]
    assert results, "no publish_result"
    message: dict[str, Any] = results[-1]["message"]
    return message


def test_a_withdrawn_scope_refuses_the_next_publish_on_the_open_connection() -> None:
    hub, shared = Hub(), hub_engine()
    access = bob(hub)
    client = Client(shared, EXT, access=access)  # type: ignore[arg-type]
    client.open()
    assert client.subscribe(COMMANDS)["type"] == "confirm_subscription"
    assert publish(client, "1")["ok"] is True

    hub.scopes = set()
    refresh(access)
    assert publish(client, "2") == {
        "action": "publish_result",
        "ref": "2",
        "topic": "plant/a/b/cmd",
        "ok": False,
        "reason": "you may not publish to channel 'commands' "
        f"(a hub admin can grant it with the scope {WRITE})",
    }
    assert client.session.close_code is None  # not yet rechecked: the socket is open


def test_a_withdrawn_read_stops_the_readings_and_closes_so_the_client_learns_why() -> None:
    hub, shared = Hub(), hub_engine()
    access = bob(hub)
    client = Client(shared, EXT, access=access)  # type: ignore[arg-type]
    client.open()
    client.subscribe(COMMANDS)
    client.subscribe(TELEMETRY)
    client.take()
    assert not client.session.recheck_access(), "nothing changed: nothing happens"

    hub.scopes = set()
    refresh(access)
    assert client.session.recheck_access()
    assert (client.session.close_code, client.session.close_reason) == (
        1008,
        "your access to channel 'commands' was withdrawn",
    )
    bridge(shared).deliver("plant/a/b/cmd", '{"setpoint": 2}')
    client.advance()
    assert client.rows(COMMANDS) == [], "no command readings once the grant is gone"
    client.session.closed_by_peer()

    # The client reconnects: the resume keeps telemetry, not commands; subscribing
    # again, it is told why and which scope would grant it.
    again = Client(shared, EXT, access=bob(hub), sid="sid-2")  # type: ignore[arg-type]
    assert again.open(resume="sid-1")["restored_ids"] == [TELEMETRY]
    rejected = again.subscribe(COMMANDS)
    assert rejected == {
        "type": "reject_subscription",
        "identifier": COMMANDS,
        "reason": "you may not read or publish to channel 'commands' (a hub admin can grant "
        f"reading with the scope {READ}, publishing with {WRITE})",
    }


def test_a_credential_the_hub_no_longer_accepts_leaves_nothing() -> None:
    hub, shared = Hub(), hub_engine()
    access = bob(hub)
    client = Client(shared, EXT, access=access)  # type: ignore[arg-type]
    client.open()
    client.subscribe(TELEMETRY)
    hub.accepts = False
    refresh(access)
    assert not access.valid
    assert client.session.recheck_access()
    assert client.session.close_reason == "your access to channel 'telemetry' was withdrawn"


def test_refresh_asks_the_hub_at_most_every_interval_and_keeps_the_answer_if_it_fails() -> None:
    hub = Hub()
    access = dataclasses.replace(bob(hub), interval=3600.0)
    refresh(access)
    assert hub.asked == 0, "asked within the interval of the connection's own lookup"

    access = bob(hub)

    async def unreachable() -> Identity | None:
        raise OSError("connection refused")

    access.lookup = unreachable
    refresh(access)
    assert access.valid and WRITE in access.identity.scopes
