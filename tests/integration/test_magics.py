"""``%load_ext jupyter_iotcable`` against a real server and mosquitto: in an in-process
IPython (what each subcommand prints and returns, what Tab offers from what the server
and the subscriptions know), and once in a real kernel started by the server (the
output a notebook shows, an error without a traceback, Tab through the kernel protocol).

The tests share one server; each uses topics of its own (``plant/magic-<test>/...``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jupyter_iotcable.client import Cable, Subscription
from tests.client.test_magics import run, run_cell
from tests.integration.test_client import publish_many
from tests.integration.test_client_kernel import rest

if TYPE_CHECKING:
    from tests.servers import LiveServer


@pytest.fixture
def shell(
    shared_live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    """IPython where ``connect()`` finds the server as in a kernel it started, with the
    extension loaded (the load's own output is read by the first test)."""
    monkeypatch.setenv("IOTCABLE_URL", shared_live_server.url)
    monkeypatch.setenv("IOTCABLE_TOKEN", shared_live_server.token)
    ip = InteractiveShell.instance()
    for name in ("cable", "iot_cable", "sub", "lyon"):
        ip.user_ns.pop(name, None)
    run_cell(ip, "%load_ext jupyter_iotcable")
    try:
        yield ip
    finally:
        run_cell(ip, "%unload_ext jupyter_iotcable")


def device(server: LiveServer, topic: str, count: int, start: int = 0) -> None:
    """``count`` readings ``{"seq", "temperature", "status"}`` on ``topic``; returns once
    the server has them (in its history, and on their way to subscribers)."""

    def received() -> int:
        channels = server.get("iotcable/api/status")["channels"]
        return int(channels["telemetry"]["messages_in"])

    before = received()
    publish_many(
        server,
        [
            (topic, json.dumps({"seq": n, "temperature": 20 + n / 2, "status": "ok"}))
            for n in range(start, start + count)
        ],
    )
    wait_for(lambda: received() >= before + count)


def state_of(cable: Cable) -> str:
    return cable.state


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_loading_connects_binds_cable_and_lists_the_channels(
    shared_live_server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IOTCABLE_URL", shared_live_server.url)
    monkeypatch.setenv("IOTCABLE_TOKEN", shared_live_server.token)
    ip = InteractiveShell.instance()
    ip.user_ns.pop("cable", None)
    try:
        assert run(ip, "%load_ext jupyter_iotcable", capsys) == (
            True,
            f"iotcable: connected to {shared_live_server.url} as `cable`: telemetry (read), "
            "commands (read+write), numbers (read). %iot --help lists the commands.\n",
            "",
        )
        cable = ip.user_ns["cable"]
        assert isinstance(cable, Cable)
        assert state_of(cable) == "connected"
        # %iot status is that cable.
        ok, out, _ = run(ip, "%iot status", capsys)
        assert ok
        assert out.startswith("Out[") and f"<Cable {shared_live_server.url} connected" in out
        # Unloading closes the cable the extension opened.
        run_cell(ip, "%unload_ext jupyter_iotcable")
        assert state_of(cable) == "closed"
        # A notebook's own open cable is used, not replaced, and survives an unload.
        run_cell(ip, "import jupyter_iotcable as iot; cable = iot.connect()")
        mine = ip.user_ns["cable"]
        assert run(ip, "%load_ext jupyter_iotcable", capsys)[1] == (
            f"iotcable: using the open `cable` ({shared_live_server.url})\n"
        )
        run_cell(ip, "%unload_ext jupyter_iotcable")
        assert ip.user_ns["cable"] is mine
        assert state_of(mine) == "connected"
        mine.close()
    finally:
        run_cell(ip, "%unload_ext jupyter_iotcable")


def test_subscribe_binds_a_name_shows_it_and_a_second_run_replaces_it(
    shell: InteractiveShell, shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    device(shared_live_server, "plant/magic-sub/d1/env", 5)
    capsys.readouterr()
    line = "%iot subscribe telemetry --topic 'plant/magic-sub/+/env' --window 15min --history 5min"
    ok, out, err = run(shell, line, capsys)
    assert (ok, err) == (True, "")
    printed, shown = out.split("\n", 1)
    # The Python it stands for, then the subscription as IPython shows it.
    assert printed == (
        "sub = cable.subscribe('telemetry', topic='plant/magic-sub/+/env', window='15min', "
        "history='5min')"
    )
    first = shell.user_ns["sub"]
    assert isinstance(first, Subscription)
    assert shown.startswith("Out[") and repr(first).split(" live")[0] in shown
    assert len(first) == 5  # the history
    # Running the cell again replaces the subscription rather than adding one.
    ok, out, _ = run(shell, line, capsys)
    assert ok
    assert "(the subscription sub held before is unsubscribed)" in out
    assert first.state == "unsubscribed"
    second = shell.user_ns["sub"]
    assert second is not first and second.state == "live"
    # --name binds another name and leaves `sub` alone.
    ok, out, _ = run(shell, "%iot subscribe telemetry -t 'plant/magic-sub/+/env' -N lyon", capsys)
    assert ok
    assert out.startswith("lyon = cable.subscribe('telemetry', topic='plant/magic-sub/+/env', ")
    assert shell.user_ns["sub"] is second
    assert isinstance(shell.user_ns["lyon"], Subscription)


def test_tail_is_a_dataframe_of_the_latest_readings(
    shell: InteractiveShell, shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    device(shared_live_server, "plant/magic-tail/d1/env", 30)
    cable = shell.user_ns["cable"]
    # No subscription: the server's history, and nothing left subscribed afterwards.
    assert run_cell(shell, "frame = %iot tail telemetry --topic 'plant/magic-tail/+/env' -n 20")
    frame = shell.user_ns["frame"]
    assert type(frame).__name__ == "DataFrame"
    assert frame["seq"].tolist() == list(range(10, 30))
    assert {"site", "device", "temperature", "status"} <= set(frame.columns)
    assert cable.subscriptions == []
    # With a subscription to the same channel and topic: its frame.
    run_cell(shell, "%iot subscribe telemetry --topic 'plant/magic-tail/+/env'")
    device(shared_live_server, "plant/magic-tail/d1/env", 3, start=100)
    wait_for(lambda: len(shell.user_ns["sub"]) == 3)
    capsys.readouterr()
    assert run_cell(shell, "frame = %iot tail telemetry --topic 'plant/magic-tail/+/env' -n 2")
    assert shell.user_ns["frame"]["seq"].tolist() == [101, 102]
    # A topic nobody published on: an empty frame, and a hint.
    ok, out, _ = run(shell, "%iot tail telemetry --topic 'plant/magic-none/+/env'", capsys)
    assert ok
    assert out.startswith(
        "(no readings on 'telemetry' in the last 15min of the server's history; "
        "%iot subscribe telemetry follows new ones)\n"
    )


def test_publish_a_line_and_a_cell_reach_the_devices(
    shell: InteractiveShell, shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cell(shell, "%iot subscribe commands --topic 'plant/magic-pub/+/cmd' --name log")
    log = shell.user_ns["log"]
    capsys.readouterr()
    shell.user_ns["dev"] = "p1"  # IPython's $name, in the topic (not in the payload)
    line = '%iot publish commands --topic plant/magic-pub/$dev/cmd {"setpoint": 25}'
    assert run(shell, line, capsys) == (True, "published to plant/magic-pub/p1/cmd\n", "")
    cell = (
        "%%iot publish commands --topic plant/magic-pub/p1/cmd\n"
        '{"setpoint": 26.5,\n "reason": "a longer payload, in the cell"}\n'
    )
    assert run(shell, cell, capsys) == (True, "published to plant/magic-pub/p1/cmd\n", "")
    # Malformed: refused before it is sent.
    ok, _, err = run(shell, line[:-1], capsys)
    assert not ok
    assert err.startswith("UsageError: %iot publish: the payload is not valid JSON: expecting ','")
    # Text (and a JSON string) on a JSON channel: a JSON string.
    assert run(shell, "%iot publish commands -t plant/magic-pub/p1/cmd --text on", capsys)[0]
    assert run(shell, '%iot publish commands -t plant/magic-pub/p1/cmd "off"', capsys)[0]
    wait_for(lambda: len(log) == 4)
    time.sleep(0.3)  # a fifth (the malformed one) would have arrived by now
    frame = log.frame
    assert frame["setpoint"].tolist()[:2] == [25, 26.5]
    assert frame["reason"].tolist()[1] == "a longer payload, in the cell"
    assert frame["value"].tolist()[2:] == ["on", "off"]
    assert len(frame) == 4


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            "%iot subscribe telemtry",
            "UsageError: %iot subscribe: unknown channel 'telemtry': did you mean 'telemetry'? "
            "The channels you may read or write are 'commands', 'numbers' and 'telemetry'.",
        ),
        (
            "%iot publish telemetry --topic plant/magic-err/p1/env 1",
            "UsageError: %iot publish: publish to 'plant/magic-err/p1/env' on channel 'telemetry' "
            "was refused: ",
        ),
        (
            "%iot subscribe telemetry --topic 'elsewhere/#'",
            "UsageError: %iot subscribe: subscription to channel 'telemetry' with topic "
            "'elsewhere/#' was rejected: ",
        ),
    ],
)
def test_what_the_server_refuses_is_one_line_not_a_traceback(
    shell: InteractiveShell, line: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    ok, out, err = run(shell, line, capsys)
    assert not ok
    assert out == ""
    assert err.startswith(error)
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err
    assert "cable.channels()" not in err  # the advice in the magic's terms
    if "rejected" in error:
        assert err.rstrip().endswith(
            "%iot channels lists the channels you may read or write and their topics."
        )


def test_live_charts_a_subscription(
    shell: InteractiveShell, shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cell(shell, "%iot subscribe telemetry --topic 'plant/magic-live/+/env'")
    device(shared_live_server, "plant/magic-live/d1/env", 3)
    wait_for(lambda: len(shell.user_ns["sub"]) == 3)
    assert run_cell(shell, "chart = %iot live sub -y temperature")
    chart = shell.user_ns["chart"]
    try:
        assert chart.live_view.sub is shell.user_ns["sub"]
        assert chart.live_view.fields == ["temperature"]
    finally:
        chart.live_view.stop()
    # Two panels, series named by device.
    assert run_cell(shell, "chart = %iot live sub -y temperature -y seq --by device")
    view = shell.user_ns["chart"].live_view
    view.stop()
    assert (view.fields, view.by) == (["temperature", "seq"], ["device"])
    # A field the frame does not have: the chart's own error, in one line.
    capsys.readouterr()
    ok, out, err = run(shell, "%iot live sub -y temprature", capsys)
    assert not ok
    assert err.startswith("UsageError: %iot live: ")
    assert "temperature" in err  # the fields there are, or a did-you-mean
    assert len(err.splitlines()) == 1
    # A channel without a subscription: one is made for the chart.
    capsys.readouterr()
    ok, out, _ = run(shell, "chart = %iot live telemetry --topic 'plant/magic-live2/+/env'", capsys)
    assert ok
    assert out == "(subscribed to 'telemetry' for the chart; window 15min)\n"
    shell.user_ns["chart"].live_view.stop()


def completions(shell: InteractiveShell, text: str) -> list[str]:
    with provisionalcompleter():
        return [c.text for c in shell.Completer.completions(text, len(text))]


def test_tab_offers_what_the_server_and_the_subscriptions_know(
    shell: InteractiveShell, shared_live_server: LiveServer
) -> None:
    # Channels: from the server; readable ones to subscribe, writable ones to publish.
    assert completions(shell, "%iot subscribe ") == ["telemetry", "commands", "numbers"]
    assert completions(shell, "%iot publish ") == ["commands"]
    # Topic levels: the channel's filter before anything was seen ...
    assert completions(shell, "%iot subscribe telemetry --topic plant/") == ["plant/+/"]
    # ... then the sites and devices a subscription has seen, and its payload fields.
    run_cell(shell, "%iot subscribe telemetry --topic 'plant/+/+/env'")
    device(shared_live_server, "plant/magic-tab/pump1/env", 1)
    device(shared_live_server, "plant/magic-tab/fan2/env", 1)
    wait_for(lambda: len(shell.user_ns["sub"]) >= 2)
    assert {"plant/magic-tab/", "plant/+/"} <= set(
        completions(shell, "%iot tail telemetry --topic plant/")
    )
    assert completions(shell, "%iot tail telemetry --topic plant/magic-tab/") == [
        "plant/magic-tab/fan2/",
        "plant/magic-tab/pump1/",
        "plant/magic-tab/+/",
    ]
    assert sorted(completions(shell, "%iot live sub -y ")) == ["seq", "temperature"]
    # Payload fields of what was published on the channel.
    run_cell(shell, '%iot publish commands --topic plant/magic-tab/pump1/cmd {"setpoint": 25}')
    assert completions(shell, '%iot publish commands -t plant/magic-tab/pump1/cmd {"se') == [
        '"setpoint"'
    ]


# -- in a real kernel ----------------------------------------------------------------------


class KernelSession:
    """A kernel's websocket: send requests, collect what answers them."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws

    async def request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Send a shell request; its reply's content, with ``outputs`` (the iopub messages
        it caused: ``(msg_type, content)``) added."""
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "msg_type": msg_type,
                        "version": "5.3",
                        "date": datetime.now(UTC).isoformat(),
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": content,
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        outputs: list[tuple[str, dict[str, Any]]] = []
        reply: dict[str, Any] | None = None
        idle = False
        while reply is None or not idle:
            raw = await asyncio.wait_for(self.ws.read_message(), 60)
            assert isinstance(raw, str), "kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if msg["channel"] == "shell":
                reply = msg["content"]
            elif kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
            elif kind not in ("execute_input",):
                outputs.append((kind, msg["content"]))
        return {**reply, "outputs": outputs}

    async def execute(self, code: str) -> dict[str, Any]:
        return await self.request(
            "execute_request",
            {"code": code, "silent": False, "store_history": True, "user_expressions": {},
             "allow_stdin": False, "stop_on_error": True},
        )  # fmt: skip


def text_of(reply: dict[str, Any], kind: str) -> str:
    """What the outputs of kind ``stdout``, ``stderr`` or ``text/plain`` say, joined."""
    parts = []
    for msg_type, content in reply["outputs"]:
        if msg_type == "stream" and content["name"] == kind:
            parts.append(content["text"])
        elif msg_type in ("execute_result", "display_data") and kind in content["data"]:
            parts.append(content["data"][kind])
    return "".join(parts)


@pytest.mark.asyncio
async def test_in_a_kernel_the_magics_show_results_errors_and_complete(
    shared_live_server: LiveServer,
) -> None:
    server = shared_live_server
    await asyncio.to_thread(device, server, "plant/magic-kernel/d1/env", 3)
    kernel = await asyncio.to_thread(rest, server, "POST", "api/kernels")
    url = server.url.replace("http://", "ws://") + f"api/kernels/{kernel['id']}/channels"
    ws = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    )
    session = KernelSession(ws)
    try:
        # Loading needs no URL or token: the kernel's environment has them.
        reply = await session.execute("%load_ext jupyter_iotcable")
        assert reply["status"] == "ok"
        assert text_of(reply, "stdout").startswith(
            f"iotcable: connected to {server.url} as `cable`"
        )

        reply = await session.execute(
            "%iot subscribe telemetry --topic 'plant/magic-kernel/+/env' --history 5min"
        )
        assert reply["status"] == "ok"
        assert text_of(reply, "stdout").startswith("sub = cable.subscribe('telemetry', ")
        shown = [c for t, c in reply["outputs"] if t == "execute_result"]
        assert len(shown) == 1
        # The notebook shows the subscription's HTML facts table.
        assert "<strong>Subscription</strong>" in shown[0]["data"]["text/html"]

        reply = await session.execute("%iot tail telemetry --topic 'plant/magic-kernel/+/env' -n 2")
        assert reply["status"] == "ok"
        (result,) = [c for t, c in reply["outputs"] if t == "execute_result"]
        assert "text/html" in result["data"]  # a DataFrame, as pandas shows one
        assert "plant/magic-kernel/d1/env" in result["data"]["text/plain"]

        # A mistake: one red line on stderr, no traceback, and the cell counts as failed
        # (so "Run All" stops there).
        reply = await session.execute("%iot subscribe telemtry")
        assert reply["status"] == "error"
        assert [t for t, _ in reply["outputs"]] == ["stream"]
        err = text_of(reply, "stderr")
        assert err.startswith("UsageError: %iot subscribe: unknown channel 'telemtry': did you")
        assert len(err.splitlines()) == 1

        # Tab, through the kernel's completion protocol (what Lab sends).
        code = "%iot subscribe tel"
        reply = await session.request("complete_request", {"code": code, "cursor_pos": len(code)})
        assert reply["matches"] == ["telemetry"]
        assert (reply["cursor_start"], reply["cursor_end"]) == (15, 18)
    finally:
        ws.close()
        await asyncio.to_thread(rest, server, "DELETE", f"api/kernels/{kernel['id']}")
