"""Under JupyterHub, the kernel token carries the owner's hub groups.

No real hub here: a small HTTP server answers ``GET {JUPYTERHUB_API_URL}/user`` the way
the hub does for the server's own API token, and the server runs with the environment a
hub-spawned server has. A browser request authenticated by the hub is not simulated.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from tornado import web
from tornado.httpserver import HTTPServer

from jupyter_iotcable.protocol import make_identifier
from jupyter_iotcable.server.app import IoTCableApp
from jupyter_iotcable.server.auth import fetch_hub_user
from tests.integration.conftest import CableFactory
from tests.servers import TEST_CHANNELS

HUB_TOKEN = "hub-api-token-for-the-test"
ANN = {
    "kind": "user",
    "name": "ann",
    "groups": ["ops"],
    "scopes": ["access:servers!server=ann/", "read:users:groups!user=ann"],
}


class UserHandler(web.RequestHandler):
    """The hub's ``GET /hub/api/user``: the model of the token's owner."""

    def initialize(self, model: dict[str, Any], seen: list[str]) -> None:
        self.model = model
        self.seen = seen

    def get(self) -> None:
        self.seen.append(self.request.headers.get("Authorization", ""))
        if self.request.headers.get("Authorization") != f"token {HUB_TOKEN}":
            raise web.HTTPError(403)
        self.write(json.dumps(self.model))


@pytest.fixture
def hub_requests() -> list[str]:
    return []


@pytest.fixture
def hub_api(hub_requests: list[str]) -> Iterator[str]:
    """The hub API's URL, served on a free loopback port for the test."""
    app = web.Application([(r"/hub/api/user", UserHandler, {"model": ANN, "seen": hub_requests})])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    server = HTTPServer(app)
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hub/api"
    server.stop()


@pytest.fixture
def under_hub(monkeypatch: pytest.MonkeyPatch, hub_api: str) -> str:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", HUB_TOKEN)
    monkeypatch.setenv("JUPYTERHUB_API_URL", hub_api)
    monkeypatch.setenv("JUPYTERHUB_USER", "ann")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "")
    return hub_api


@pytest.fixture
def iotcable_config(under_hub: str) -> dict[str, Any]:
    channels = json.loads(json.dumps(TEST_CHANNELS))
    channels["ops"] = {"topics": ["ops/#"], "read": ["group:ops"]}
    return {"channels": channels}


async def test_kernel_token_gets_the_owners_hub_groups(
    iotcable: IoTCableApp, cable: CableFactory, jp_serverapp: Any, hub_requests: list[str]
) -> None:
    assert iotcable.engine is not None
    hub_owner = iotcable.settings["iotcable_hub_owner"]
    for _ in range(100):  # the hub is asked in the background at start
        if hub_owner.groups:
            break
        await asyncio.sleep(0.05)
    assert hub_owner.groups == frozenset({"ops"})
    assert hub_requests == [f"token {HUB_TOKEN}"]
    # Under a hub, the default client id comes from the hub, user and server name.
    assert str(iotcable.engine.bridge.status()["client_id"]).startswith("jupyter-iotcable-ann-")

    kernel = await cable(headers={"Authorization": f"token {iotcable.kernel_token.value}"})
    reply = await kernel.subscribe(make_identifier("ops"))
    assert reply["type"] == "confirm_subscription", reply
    # The server's own token is not a hub user in this test: it has no hub groups.
    token = jp_serverapp.identity_provider.token
    other = await cable(headers={"Authorization": f"token {token}"})
    refused = await other.subscribe(make_identifier("ops"))
    assert refused["type"] == "reject_subscription"


async def test_a_hub_refusing_the_token_is_a_reason_without_the_token(hub_api: str) -> None:
    model, problem = await fetch_hub_user(hub_api, "not-the-token")
    assert model is None
    assert problem == "HTTPClientError: HTTP 403: Forbidden"
    model, problem = await fetch_hub_user(hub_api, HUB_TOKEN)
    assert (model, problem) == (ANN, None)
