"""In a kernel started by the server, ``connect()`` needs no arguments.

The kernel is started through the server's own kernels API, so it inherits exactly the
environment the extension exported (``IOTCABLE_URL`` / ``IOTCABLE_TOKEN``).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

if TYPE_CHECKING:
    from tests.servers import LiveServer

CODE = """
import jupyter_iotcable as iot
cable = iot.connect()
print("SOURCE", cable.endpoint.source)
print("URL", cable.url)
sub = cable.subscribe("telemetry")
print("STATE", sub.state)
cable.close()
"""


def rest(server: LiveServer, method: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        server.url + path,
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        return json.loads(body) if body else {}


def execute_request(code: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": "test",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": datetime.now(UTC).isoformat(),
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


async def run_in_kernel(server: LiveServer, kernel_id: str, code: str) -> str:
    """Execute ``code`` and return its stdout; fail with the traceback on an error."""
    url = server.url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    )
    try:
        request = execute_request(code)
        await ws.write_message(json.dumps(request))
        stdout: list[str] = []
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 60)
            assert raw is not None, "kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                continue
            kind = msg["msg_type"]
            if kind == "stream" and msg["content"]["name"] == "stdout":
                stdout.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(stdout)
    finally:
        ws.close()


@pytest.mark.asyncio
async def test_connect_without_arguments_in_a_kernel(live_server: LiveServer) -> None:
    kernel = rest(live_server, "POST", "api/kernels")
    try:
        out = await run_in_kernel(live_server, kernel["id"], CODE)
    finally:
        rest(live_server, "DELETE", f"api/kernels/{kernel['id']}")
    assert out.splitlines() == [
        "SOURCE IOTCABLE_URL / IOTCABLE_TOKEN",
        f"URL {live_server.url}",
        "STATE live",
    ]
