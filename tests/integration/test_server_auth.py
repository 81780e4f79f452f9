"""Every endpoint authenticated; cross-origin cookie sockets refused; the kernel token is
scoped to iotcable. The suite runs with allow_unauthenticated_access=False and turns any
JupyterServerAuthWarning into an error (pyproject.toml)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_iotcable.protocol import make_identifier
from tests.integration.conftest import CableFactory, rest_publish
from tests.servers import TEST_CHANNELS

NO_TOKEN = {"Authorization": ""}


async def test_websocket_without_token_is_403(cable: CableFactory) -> None:
    with pytest.raises(HTTPClientError) as info:
        await cable(headers=NO_TOKEN)
    assert info.value.code == 403


@pytest.mark.parametrize("path", [("status",), ("channels",)])
async def test_rest_without_token_is_403(
    jp_fetch: Any, iotcable: Any, path: tuple[str, ...]
) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("iotcable", "api", *path, headers=NO_TOKEN)
    assert info.value.code == 403


async def test_rest_publish_without_token_is_403(jp_fetch: Any, iotcable: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        await rest_publish(
            jp_fetch, "commands", {"topic": "plant/a/b/cmd", "payload": 1}, headers=NO_TOKEN
        )
    assert info.value.code == 403


async def _login_cookie(port: int, base_url: str, token: str) -> str:
    """Log in through Jupyter's login form, as a browser does, and return the cookies."""
    client = AsyncHTTPClient()
    url = f"http://localhost:{port}{base_url}login"
    first = await client.fetch(url, raise_error=False)
    xsrf = re.search(r"_xsrf=([^;]+)", first.headers.get("Set-Cookie", ""))
    assert xsrf, "login page did not set an _xsrf cookie"
    response = await client.fetch(
        HTTPRequest(
            url,
            method="POST",
            body=f"password={token}&_xsrf={xsrf.group(1)}",
            headers={"Cookie": f"_xsrf={xsrf.group(1)}"},
            follow_redirects=False,
        ),
        raise_error=False,
    )
    assert response.code == 302, response.code
    cookies = [c.split(";")[0] for c in response.headers.get_list("Set-Cookie")]
    login = [c for c in cookies if c.startswith("username-")]
    assert login, f"no login cookie in {cookies}"
    return "; ".join([*login, f"_xsrf={xsrf.group(1)}"])


async def test_cookie_socket_from_a_foreign_origin_is_refused(
    cable: CableFactory, jp_serverapp: Any, jp_http_port: int, jp_base_url: str
) -> None:
    cookie = await _login_cookie(jp_http_port, jp_base_url, jp_serverapp.identity_provider.token)
    # The same cookie from the server's own origin works: so the refusal is the Origin.
    same = await cable(
        headers={**NO_TOKEN, "Cookie": cookie, "Origin": f"http://localhost:{jp_http_port}"}
    )
    assert same.subprotocol == "iotcable-v1-json"
    with pytest.raises(HTTPClientError) as info:
        await cable(headers={**NO_TOKEN, "Cookie": cookie, "Origin": "http://evil.example"})
    assert info.value.code == 403


async def test_unreadable_channel_is_rejected_with_a_reason(cable: CableFactory) -> None:
    ws = await cable()
    reply = await ws.subscribe(make_identifier("secret"))
    assert reply["type"] == "reject_subscription"
    assert "may not read or publish to channel 'secret'" in reply["reason"]


@pytest.mark.parametrize(
    ("identifier", "reason"),
    [
        (make_identifier("telemetry", topic="plant/#"), "outside channel 'telemetry'"),
        (make_identifier("telemetry", topic="factory/+/+/env"), "outside channel 'telemetry'"),
        (make_identifier("telemetry", topic="plant/a+/x/env"), "not a valid MQTT filter"),
        (make_identifier("nope"), "unknown channel 'nope'"),
    ],
)
async def test_topic_outside_the_channel_is_rejected(
    cable: CableFactory, identifier: str, reason: str
) -> None:
    ws = await cable()
    reply = await ws.subscribe(identifier)
    assert reply["type"] == "reject_subscription"
    assert reason in reply["reason"]


async def test_kernel_token_opens_iotcable_and_nothing_else(
    jp_fetch: Any, cable: CableFactory, kernel_token: str
) -> None:
    token = kernel_token
    assert os.environ["IOTCABLE_TOKEN"] == token
    assert os.environ["IOTCABLE_URL"].startswith("http")
    header = {"Authorization": f"token {token}"}
    status = await jp_fetch("iotcable", "api", "status", headers=header)
    assert json.loads(status.body)["broker"]["state"] == "connected"
    ws = await cable(headers=header)
    reply = await ws.subscribe(make_identifier("telemetry"))
    assert reply["type"] == "confirm_subscription"
    for path in (("api", "kernels"), ("api", "contents"), ("api", "sessions")):
        response = await jp_fetch(*path, headers=header, raise_error=False, follow_redirects=False)
        # Refused: 403, or the redirect to the login page a browser would get.
        location = response.headers.get("Location", "")
        refused = response.code == 403 or (response.code == 302 and "/login" in location)
        assert refused, (path, response.code)
    # And a wrong token opens nothing.
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("iotcable", "api", "status", headers={"Authorization": "token wrong"})
    assert info.value.code == 403


# -- principals that let people in --------------------------------------------------------

# The owner is ann; the ops group is configured for the server (no hub here).
PRINCIPAL_CHANNELS = {
    **TEST_CHANNELS,
    "mine": {"topics": ["mine/#"], "read": ["user:ann"]},
    "ops": {"topics": ["ops/#"], "read": ["group:ops"], "write": ["group:ops"]},
    "others": {"topics": ["others/#"], "read": ["group:others", "user:bob"]},
}


@pytest.fixture
def iotcable_config() -> dict[str, Any]:
    return {
        "owner": "ann",
        "groups": {"ops": ["carl", "ann"], "others": ["bob"]},
        "channels": json.loads(json.dumps(PRINCIPAL_CHANNELS)),
    }


@pytest.mark.parametrize(
    ("channel", "read", "write"),
    [("mine", True, False), ("ops", True, True), ("telemetry", True, False)],
)
@pytest.mark.parametrize("credential", ["server token", "kernel token"])
async def test_user_and_group_principals_let_their_members_in(
    cable: CableFactory,
    kernel_token: str,
    jp_serverapp: Any,
    credential: str,
    channel: str,
    read: bool,
    write: bool,
) -> None:
    token = kernel_token if credential == "kernel token" else jp_serverapp.identity_provider.token
    ws = await cable(headers={"Authorization": f"token {token}"})
    reply = await ws.subscribe(make_identifier(channel))
    assert reply["type"] == "confirm_subscription", reply
    assert (reply["meta"]["read"], reply["meta"]["write"]) == (read, write)
    refused = await ws.subscribe(make_identifier("others"))
    assert refused["type"] == "reject_subscription"
    assert "may not read or publish to channel 'others'" in refused["reason"]


async def test_channel_list_and_status_show_only_what_the_user_may_use(
    jp_fetch: Any, iotcable: Any
) -> None:
    listed = json.loads((await jp_fetch("iotcable", "api", "channels")).body)
    assert listed["user"] == "ann"
    access = {c["name"]: (c["read"], c["write"]) for c in listed["channels"]}
    assert access == {
        "telemetry": (True, False),
        "commands": (True, True),
        "numbers": (True, False),
        "mine": (True, False),
        "ops": (True, True),
    }
    status = json.loads((await jp_fetch("iotcable", "api", "status")).body)
    # Counters of channels this user may not read ('secret', 'others') are not shown.
    assert set(status["channels"]) == {"telemetry", "commands", "numbers", "mine", "ops"}
