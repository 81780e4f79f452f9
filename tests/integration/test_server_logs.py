"""No token and no broker password in any log line, on any refusal path (issue 12, finding 5).

Tornado logs ``METHOD URI (IP)`` for every ``HTTPError`` raised with a log message, and the
URI holds ``?token=`` when a client authenticates in the query (browsers' websockets can
do nothing else). A real server (a subprocess logging at DEBUG, the broker behind a
password) is driven through every way the iotcable handlers refuse a request, each with a
token in the query: the server's Authorizer refusing ``iotcable`` (the documented way to
gate it by JupyterHub scope), a bad token, the XSRF check of a cookie-authenticated POST,
a cross-site websocket, a REST POST with a wrong ``?token=``. The whole log is then read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import User
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_iotcable.server.base import scrub_uri
from tests.brokers import Mosquitto
from tests.integration.test_server_secrets import (
    PASSWORD_VARIABLE,
    WITH_PASSWORD,
    PasswordServer,
)

REFUSE = "X-Test-Refuse-IoTCable"


class RefuseIoTCableOnHeader(Authorizer):
    """Everything allowed, except iotcable for requests carrying the ``REFUSE`` header:
    one server shows both an authorized and a refused user."""

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        return not (resource == "iotcable" and REFUSE in handler.request.headers)


class RefusingServer(PasswordServer):
    def config(self) -> dict[str, Any]:
        config = super().config()
        config["ServerApp"]["authorizer_class"] = f"{__name__}.{RefuseIoTCableOnHeader.__name__}"
        return config


def test_scrub_uri_keeps_the_path_and_harmless_parameters() -> None:
    assert scrub_uri("/iotcable/cable") == "/iotcable/cable"
    assert scrub_uri("/iotcable/cable?token=abc&sid=s1") == "/iotcable/cable?token=[secret]&sid=s1"
    assert "abc" not in scrub_uri("/x?_xsrf=abc&access_token=abc&Token=abc&x=1")
    assert scrub_uri("/x?token=abc&token=def").count("[secret]") == 2
    # Whatever the query looks like, a secret's value never survives.
    assert "abc" not in scrub_uri("/x?token=abc%zz&&=&token")
    assert "abc" not in scrub_uri("/x?a;token=abc")


async def _status(client: AsyncHTTPClient, request: HTTPRequest) -> int:
    try:
        response = await client.fetch(request)
    except HTTPClientError as e:
        return e.code
    return response.code


async def _ws_status(url: str, headers: dict[str, str]) -> int | None:
    """The HTTP status a websocket upgrade was refused with (None: it was accepted)."""
    try:
        ws = await websocket_connect(
            HTTPRequest(url, headers=headers), subprotocols=["iotcable-v1-json"]
        )
    except HTTPClientError as e:
        return e.code
    ws.close()
    return None


async def _drive_every_refusal(server: PasswordServer, wrong: str) -> dict[str, int | None]:
    token = server.token
    http = AsyncHTTPClient()
    base = server.url
    ws_base = base.replace("http://", "ws://")
    publish = f"{base}iotcable/api/channels/commands/publish"
    body = json.dumps({"topic": "plant/a/b/cmd", "payload": 1})
    # A login cookie, as a browser holds it after opening Lab with ?token=.
    login = await http.fetch(f"{base}api/status?token={token}")
    cookie = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    assert cookie, "the server set no login cookie"
    outcomes: dict[str, int | None] = {
        "authorizer (REST)": await _status(
            http, HTTPRequest(f"{base}iotcable/api/status?token={token}", headers={REFUSE: "1"})
        ),
        "authorizer (cable)": await _ws_status(
            f"{ws_base}iotcable/cable?token={token}", {REFUSE: "1"}
        ),
        "authorizer (publish)": await _status(
            http,
            HTTPRequest(f"{publish}?token={token}", "POST", {REFUSE: "1"}, body),
        ),
        "bad token (REST)": await _status(
            http, HTTPRequest(f"{base}iotcable/api/status?token={wrong}")
        ),
        "bad token (cable)": await _ws_status(f"{ws_base}iotcable/cable?token={wrong}", {}),
        "wrong ?token= on POST": await _status(
            http, HTTPRequest(f"{publish}?token={wrong}", "POST", body=body)
        ),
        "XSRF (cookie, no _xsrf)": await _status(
            http,
            HTTPRequest(f"{publish}?token={wrong}", "POST", {"Cookie": cookie}, body),
        ),
        "bad origin (cable, cookie)": await _ws_status(
            f"{ws_base}iotcable/cable?token={wrong}",
            {"Cookie": cookie, "Origin": "http://evil.example"},
        ),
        "bad origin (REST, cookie)": await _status(
            http,
            HTTPRequest(
                f"{publish}?token={wrong}",
                "POST",
                {"Cookie": cookie, "Origin": "http://evil.example"},
                body,
            ),
        ),
        # And the paths that work, with the token in the query: the access log's lines.
        "allowed (REST)": await _status(
            http, HTTPRequest(f"{base}iotcable/api/status?token={token}")
        ),
        "allowed (cable)": await _ws_status(f"{ws_base}iotcable/cable?token={token}", {}),
        "allowed (publish)": await _status(
            http, HTTPRequest(f"{publish}?token={token}", "POST", body=body)
        ),
    }
    return outcomes


def test_no_token_or_password_in_the_log_of_any_refusal(
    tmp_path: Path, secured_mosquitto: Mosquitto
) -> None:
    password = secured_mosquitto.password
    assert password
    server = RefusingServer(
        tmp_path / "server", secured_mosquitto, password, extra_config=WITH_PASSWORD
    )
    assert PASSWORD_VARIABLE in server.env()
    server.start()
    wrong = server.token[:-6] + secrets.token_hex(3)  # a typo of the right one
    try:
        outcomes = asyncio.run(_drive_every_refusal(server, wrong))
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")

    # Jupyter answers a cross-site API request with 404, every other refusal is 403.
    expected: dict[str, int | None] = {
        path: 404 if path == "bad origin (REST, cookie)" else 403 for path in outcomes
    }
    expected.update({"allowed (REST)": 200, "allowed (cable)": None, "allowed (publish)": 200})
    assert outcomes == expected
    # The refusals are in the log (tornado's summary, Jupyter's access log), scrubbed.
    assert "not allowed to use iotcable channels" in log
    assert "_xsrf" in log
    assert "Blocking Cross Origin" in log
    assert "token=[secret]" in log
    leaks = [
        line
        for line in log.splitlines()
        if server.token in line or wrong in line or password in line
    ]
    assert not leaks, "secrets in the server's log:\n" + "\n".join(leaks[:5])


# -- the kernel token, in an in-process server (its token is the extension's to read) ------


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    server = dict(jp_server_config["ServerApp"])
    server["authorizer_class"] = f"{__name__}.{RefuseIoTCableOnHeader.__name__}"
    return {**jp_server_config, "ServerApp": server}


async def test_the_kernel_token_refused_by_the_authorizer_is_not_logged(
    caplog: pytest.LogCaptureFixture,
    http_server_client: Any,  # the server listens
    jp_http_port: int,
    jp_base_url: str,
    kernel_token: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    base = f"127.0.0.1:{jp_http_port}{jp_base_url}"
    http = AsyncHTTPClient()
    rest = HTTPRequest(
        f"http://{base}iotcable/api/status?token={kernel_token}", headers={REFUSE: "1"}
    )
    assert await _status(http, rest) == 403
    cable = f"ws://{base}iotcable/cable?token={kernel_token}"
    assert await _ws_status(cable, {REFUSE: "1"}) == 403
    assert await _ws_status(cable, {}) is None  # the same token, not refused: it works
    lines = [r.getMessage() for r in caplog.records]
    assert any("not allowed to use iotcable channels" in line for line in lines), lines
    leaks = [line for line in lines if kernel_token in line]
    assert not leaks, leaks
