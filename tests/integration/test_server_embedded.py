"""The extension's own embedded mode: no ``broker_url``, so each Jupyter server starts an
amqtt broker of its own (DESIGN.md section 8), with credentials nobody outside the server
knows. Two real servers on one machine, a reading through each, nothing left behind."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import jupyter_iotcable as iot
from tests.servers import LiveServer


def gone(pid: int) -> bool:
    """True once the process has exited (a zombie waiting for its reaper counts)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return gone(pid)


def publish(server: LiveServer, channel: str, topic: str, payload: object) -> dict[str, Any]:
    """The REST publish endpoint, as a script without a websocket would use it."""
    request = urllib.request.Request(
        f"{server.url}iotcable/api/channels/{channel}/publish",
        method="POST",
        data=json.dumps({"topic": topic, "payload": payload}).encode(),
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LiveServer]]:
    """Two servers without a broker URL. Their temporary files (the embedded brokers'
    work directories among them) go to the test's own TMPDIR."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    started = []
    try:
        for name in ("one", "two"):
            server = LiveServer(tmp_path / name, None)
            server.start(90)
            started.append(server)
        yield started
    finally:
        for server in started:
            server.stop()


def test_each_server_runs_its_own_broker_publishes_through_it_and_takes_it_along(
    servers: list[LiveServer], tmp_path: Path
) -> None:
    """One pair of servers for the whole life of their brokers (starting a pair costs 15-20 s
    on a shared machine): each its own broker, in status; a publish through each goes to
    its own broker only; a killed server and a stopped one both take theirs along."""
    one, two = servers
    # -- each server runs its own broker and shows it in status
    brokers = [server.get("iotcable/api/status")["broker"] for server in servers]
    for broker in brokers:
        assert broker["embedded"] is True
        assert broker["state"] == "connected"
        embedded = broker["embedded_broker"]
        assert embedded["running"] is True
        assert embedded["host"] == "127.0.0.1"
        assert broker["broker"] == f"127.0.0.1:{embedded['port']}"
    ports = [broker["embedded_broker"]["port"] for broker in brokers]
    pids = [broker["embedded_broker"]["pid"] for broker in brokers]
    assert ports[0] != ports[1]
    assert pids[0] != pids[1]
    server_pids = [server.process.pid for server in servers if server.process is not None]
    for pid, server_pid in zip(pids, server_pids, strict=True):
        assert psutil.Process(pid).ppid() == server_pid
    # Each broker's work directory (its log) is a temporary one of its own.
    assert len(list((tmp_path / "tmp").glob("iotcable-broker-*"))) == 2

    # -- a publish goes through its own server's embedded broker only
    with (
        iot.connect(one.url, token=one.token, timeout=30) as cable_one,
        iot.connect(two.url, token=two.token, timeout=30) as cable_two,
    ):
        sub_one = cable_one.subscribe("commands", timeout=30)
        sub_two = cable_two.subscribe("commands", timeout=30)
        # readings() yields what arrives from its call on: take both before publishing
        # (a reading can reach the client before the publish's REST answer does).
        on_one = sub_one.readings(timeout=30)
        on_two = sub_two.readings(timeout=30)
        answer = publish(one, "commands", "plant/lyon/pump1/cmd", {"setpoint": 24.5})
        assert answer["ok"] is True
        reading = next(on_one)
        assert (reading.topic, reading.payload) == ("plant/lyon/pump1/cmd", {"setpoint": 24.5})
        # Had the first publish reached the second server's broker, it would be its
        # subscriber's first reading: it arrived at the first server already.
        assert publish(two, "commands", "plant/porto/fan1/cmd", {"setpoint": 19.0})["ok"] is True
        first_on_two = next(on_two)
        assert (first_on_two.topic, first_on_two.payload) == (
            "plant/porto/fan1/cmd",
            {"setpoint": 19.0},
        )

    # -- a killed server takes its embedded broker with it: SIGKILL runs no cleanup in
    # the server; the broker sees its stdin close, exits, and removes its directory itself.
    assert two.process is not None
    two.process.send_signal(signal.SIGKILL)
    two.process.wait(10)
    assert wait_gone(pids[1]), f"the embedded broker {pids[1]} outlived its killed server"
    assert len(list((tmp_path / "tmp").glob("iotcable-broker-*"))) == 1

    # -- a stopped server stops its broker and removes its directory
    one.stop()
    assert wait_gone(pids[0]), f"the embedded broker {pids[0]} outlived its server"
    assert list((tmp_path / "tmp").glob("iotcable-broker-*")) == []
