"""In a kernel started by the server, ``connect()`` needs no arguments.

The kernel is started through the server's own kernels API, so it inherits exactly the
environment the extension exported (``IOTCABLE_URL`` / ``IOTCABLE_TOKEN``). The tests share
one server (``live_server`` here is the module's ``shared_live_server``), each with a
kernel of its own.
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

from tests.integration.test_client import publish_many

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

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


@pytest.fixture
def live_server(shared_live_server: LiveServer) -> LiveServer:
    return shared_live_server


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


async def run_in_kernel(
    server: LiveServer,
    kernel_id: str,
    code: str,
    on_stdout: Callable[[str], Awaitable[None]] | None = None,
) -> str:
    """Execute ``code`` and return its stdout; fail with the traceback on an error.

    ``on_stdout`` sees each piece of output as the kernel prints it, while the cell runs.
    """
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
                if on_stdout is not None:
                    await on_stdout(msg["content"]["text"])
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


SUBSCRIBE_CELL = """
import time
import jupyter_iotcable as iot
cable = iot.connect()
sub = cable.subscribe("telemetry", topic="plant/busy/+/env", window=None)
arrivals = []
sub.on(lambda reading: arrivals.append(time.time()))  # runs on the cable's thread
print("SUBSCRIBED", sub.state)
"""

BUSY_CELL = """
started = time.time()
print("BUSY", flush=True)
# A cell computing: the main thread only sleeps, it calls no client method.
deadline = started + 120
while len(arrivals) < 50 and time.time() < deadline:
    time.sleep(0.2)
finished = time.time()
"""

SHOW_CELL = """
frame = sub.frame
print("ROWS", len(frame), sorted(int(s) for s in frame["seq"]) == list(range(50)))
print("ARRIVED DURING THE BUSY CELL", all(started < t < finished for t in arrivals))
print("ARRIVALS", len(arrivals))
cable.close()
"""


@pytest.mark.asyncio
async def test_readings_arrive_while_a_cell_sleeps(live_server: LiveServer) -> None:
    kernel = rest(live_server, "POST", "api/kernels")
    published = asyncio.Event()

    async def publish_once_busy(text: str) -> None:
        if "BUSY" in text and not published.is_set():
            messages = [("plant/busy/d1/env", json.dumps({"seq": n})) for n in range(50)]
            await asyncio.get_running_loop().run_in_executor(
                None, publish_many, live_server, messages
            )
            published.set()

    try:
        assert await run_in_kernel(live_server, kernel["id"], SUBSCRIBE_CELL) == "SUBSCRIBED live\n"
        await run_in_kernel(live_server, kernel["id"], BUSY_CELL, publish_once_busy)
        assert published.is_set()
        out = await run_in_kernel(live_server, kernel["id"], SHOW_CELL)
    finally:
        rest(live_server, "DELETE", f"api/kernels/{kernel['id']}")
    assert out.splitlines() == [
        "ROWS 50 True",
        "ARRIVED DURING THE BUSY CELL True",
        "ARRIVALS 50",
    ]


TOKEN_CELL = """
import os, urllib.error, urllib.request
url, token = os.environ["IOTCABLE_URL"], os.environ["IOTCABLE_TOKEN"]
for path in ("api/contents", "api/kernels", "api/sessions", "iotcable/api/channels"):
    request = urllib.request.Request(
        url.rstrip("/") + "/" + path, headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(path, response.status)
    except urllib.error.HTTPError as error:
        print(path, error.code)
"""


@pytest.mark.asyncio
async def test_the_kernels_token_opens_only_iotcable_endpoints(live_server: LiveServer) -> None:
    kernel = rest(live_server, "POST", "api/kernels")
    try:
        out = await run_in_kernel(live_server, kernel["id"], TOKEN_CELL)
    finally:
        rest(live_server, "DELETE", f"api/kernels/{kernel['id']}")
    assert out.splitlines() == [
        "api/contents 403",
        "api/kernels 403",
        "api/sessions 403",
        "iotcable/api/channels 200",
    ]
