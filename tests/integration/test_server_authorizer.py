"""The server's Authorizer decides for every credential: server token and kernel token alike.

The server runs with a real custom Authorizer class (``ServerApp.authorizer_class``) that
refuses ``write`` on the ``iotcable`` resource, as a JupyterHub custom scope granting only
read access would. Neither the websocket nor REST may publish, whichever token is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import User
from tornado.httpclient import HTTPClientError

from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.integration.conftest import CableFactory, rest_publish
from tests.integration.test_server_publish import Sniffer, _perform


class ReadOnlyIoTCable(Authorizer):
    """Everything allowed, except writing to iotcable; remembers who asked for what."""

    calls: ClassVar[list[tuple[str, str, str]]] = []

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        ReadOnlyIoTCable.calls.append((user.username, action, resource))
        return not (resource == "iotcable" and action == "write")


class NoIoTCable(Authorizer):
    """Everything allowed except iotcable."""

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        return resource != "iotcable"


@pytest.fixture
def authorizer_class() -> type[Authorizer]:
    return ReadOnlyIoTCable


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], authorizer_class: type[Authorizer]
) -> dict[str, Any]:
    server = dict(jp_server_config["ServerApp"])
    server["authorizer_class"] = f"{__name__}.{authorizer_class.__name__}"
    return {**jp_server_config, "ServerApp": server}


@pytest.fixture
def iotcable_config() -> dict[str, Any]:
    return {"owner": "ann"}


@pytest.fixture
def sniffer(mosquitto: Mosquitto) -> Iterator[Sniffer]:
    s = Sniffer(mosquitto, "#")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def forget_calls() -> Iterator[None]:
    ReadOnlyIoTCable.calls.clear()
    yield
    ReadOnlyIoTCable.calls.clear()


@pytest.fixture(params=["server token", "kernel token"])
def token(request: pytest.FixtureRequest, kernel_token: str, jp_serverapp: Any) -> str:
    if request.param == "kernel token":
        return kernel_token
    server_token: str = jp_serverapp.identity_provider.token
    return server_token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def assert_the_authorizer_was_asked(token: str, kernel_token: str) -> None:
    """The Authorizer decided on write; for the kernel token, about the owner it acts as."""
    writes = [user for user, action, resource in ReadOnlyIoTCable.calls if action == "write"]
    assert writes, ReadOnlyIoTCable.calls
    if token == kernel_token:
        assert set(writes) == {"ann"}
    else:
        assert "ann" not in writes  # the server token's own (random) Jupyter user


async def test_rest_publish_is_refused_by_the_authorizer(
    jp_fetch: Any, kernel_token: str, sniffer: Sniffer, token: str
) -> None:
    with pytest.raises(HTTPClientError) as info:
        await rest_publish(
            jp_fetch,
            "commands",
            {"topic": "plant/a/b/cmd", "payload": 1},
            headers=auth(token),
        )
    assert info.value.code == 403
    assert info.value.response is not None
    assert json.loads(info.value.response.body) == {
        "ok": False,
        "reason": "you may not publish to channel 'commands'",
    }
    sniffer.assert_nothing()
    assert_the_authorizer_was_asked(token, kernel_token)
    # Reading is still allowed, and the channel list says what is what.
    listed = json.loads((await jp_fetch("iotcable", "api", "channels", headers=auth(token))).body)
    commands = next(c for c in listed["channels"] if c["name"] == "commands")
    assert (commands["read"], commands["write"]) == (True, False)


async def test_websocket_perform_is_refused_by_the_authorizer(
    cable: CableFactory, kernel_token: str, sniffer: Sniffer, token: str
) -> None:
    ws = await cable(headers=auth(token))
    identifier = make_identifier("commands")
    reply = await ws.subscribe(identifier)
    assert reply["type"] == "confirm_subscription"
    assert (reply["meta"]["read"], reply["meta"]["write"]) == (True, False)
    result = await _perform(
        ws, identifier, {"action": "publish", "topic": "plant/a/b/cmd", "payload": 1, "ref": "1"}
    )
    assert result["ok"] is False
    assert "may not publish to channel 'commands'" in result["reason"]
    sniffer.assert_nothing()
    assert_the_authorizer_was_asked(token, kernel_token)


@pytest.mark.parametrize("authorizer_class", [NoIoTCable])
async def test_an_authorizer_refusing_iotcable_closes_every_door(
    jp_fetch: Any, cable: CableFactory, token: str
) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("iotcable", "api", "status", headers=auth(token))
    assert info.value.code == 403
    # The channel list answers what this user may use: nothing.
    listed = await jp_fetch("iotcable", "api", "channels", headers=auth(token))
    assert json.loads(listed.body)["channels"] == []
    with pytest.raises(HTTPClientError) as info:
        await cable(headers=auth(token))
    assert info.value.code == 403
