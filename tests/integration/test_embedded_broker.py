"""EmbeddedBroker: amqtt in a child process with generated credentials."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import psutil
import pytest

from jupyter_iotcable.bridge import (
    BrokerSettings,
    BrokerState,
    EmbeddedBroker,
    EmbeddedBrokerError,
    MqttBridge,
    MqttMessage,
)
from tests.brokers import free_port


@contextlib.asynccontextmanager
async def started(broker: EmbeddedBroker) -> AsyncIterator[EmbeddedBroker]:
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


def gone(pid: int) -> bool:
    """True once the process has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def client(broker: EmbeddedBroker, **overrides: object) -> aiomqtt.Client:
    values: dict[str, object] = {"username": broker.username, "password": broker.password}
    values.update(overrides)
    assert broker.port is not None
    return aiomqtt.Client("127.0.0.1", broker.port, timeout=5, **values)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_accepts_the_generated_credentials_with_qos_1() -> None:
    async with started(EmbeddedBroker()) as broker:
        assert broker.running
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        async with client(broker) as sub, client(broker) as pub:
            await sub.subscribe("plant/#", qos=1)
            await pub.publish("plant/lyon/pump1/env", b'{"t": 1}', qos=1)
            async with asyncio.timeout(5):
                message = await anext(sub.messages)
    assert (message.topic.value, message.payload, message.qos) == (
        "plant/lyon/pump1/env",
        b'{"t": 1}',
        1,
    )


@pytest.mark.asyncio
async def test_rejects_a_wrong_password_and_anonymous_clients() -> None:
    async with started(EmbeddedBroker()) as broker:
        with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
            async with client(broker, password=broker.password + "x"):
                pass
        with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
            async with client(broker, username="intruder"):
                pass
        with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
            async with client(broker, username=None, password=None):
                pass


@pytest.mark.asyncio
async def test_the_bridge_keeps_a_persistent_session_on_it() -> None:
    async with started(EmbeddedBroker()) as broker:
        settings = broker.settings(client_id="bridge-on-amqtt")
        assert settings.protocol == "3.1.1"
        first = MqttBridge(settings, ["plant/#"], lambda _m: None)
        await first.start()
        assert await first.wait_connected(10)
        await first.stop()
        async with client(broker) as pub:
            for i in range(20):
                await pub.publish("plant/porto/fan1/env", str(i).encode(), qos=1)
        got: list[MqttMessage] = []
        all_there = asyncio.Event()

        def on_message(message: MqttMessage) -> None:
            got.append(message)
            if len(got) == 20:
                all_there.set()

        second = MqttBridge(settings, ["plant/#"], on_message)
        await second.start()
        try:
            await asyncio.wait_for(all_there.wait(), 10)
        finally:
            await second.stop()
    assert [m.payload for m in got] == [str(i).encode() for i in range(20)]


@pytest.mark.asyncio
async def test_auto_protocol_falls_back_to_3_1_1_on_amqtt() -> None:
    """amqtt does not answer an MQTT 5 CONNECT at all; "auto" must still get through."""
    async with started(EmbeddedBroker()) as broker:
        default = broker.settings()
        settings = BrokerSettings(
            default.url,
            username=default.username,
            password=default.password,
            protocol="auto",
            timeout=0.5,
        )
        bridge = MqttBridge(settings, [], lambda _m: None)
        await bridge.start()
        try:
            assert await bridge.wait_connected(10)
            assert bridge.state is BrokerState.CONNECTED
            assert bridge.status()["protocol"] == "3.1.1"
        finally:
            await bridge.stop()


@pytest.mark.asyncio
async def test_two_instances_get_different_ports() -> None:
    async with started(EmbeddedBroker()) as one, started(EmbeddedBroker()) as two:
        assert one.port != two.port
        assert one.password != two.password
        for broker in (one, two):
            async with client(broker):
                pass


@pytest.mark.asyncio
async def test_stop_leaves_no_process_and_cleans_its_workdir() -> None:
    broker = EmbeddedBroker()
    await broker.start()
    pid = broker.pid
    workdir = broker.log_path.parent if broker.log_path else None
    assert pid is not None and psutil.pid_exists(pid)
    assert workdir is not None and workdir.is_dir()
    await broker.stop()
    assert gone(pid)
    assert not broker.running
    assert broker.pid is None
    assert not workdir.exists()
    await broker.stop()  # a second stop is harmless


@pytest.mark.asyncio
async def test_a_given_workdir_keeps_the_log(tmp_path: Path) -> None:
    async with started(EmbeddedBroker(workdir=tmp_path / "broker")) as broker:
        assert broker.log_path == tmp_path / "broker" / "broker.log"
    assert (tmp_path / "broker" / "broker.log").exists()


@pytest.mark.asyncio
async def test_the_password_is_not_on_the_command_line_nor_in_status() -> None:
    async with started(EmbeddedBroker(password="unique-Pa55-for-this-test")) as broker:
        assert broker.pid is not None
        child = psutil.Process(broker.pid)
        visible = [
            " ".join(child.cmdline()),
            json.dumps(child.environ()),
            json.dumps(broker.status()),
            repr(broker),
        ]
        assert broker.status() == {
            "host": "127.0.0.1",
            "port": broker.port,
            "pid": broker.pid,
            "running": True,
        }
    for text in visible:
        assert "unique-Pa55-for-this-test" not in text


@pytest.mark.asyncio
async def test_the_terminal_ctrl_c_does_not_kill_it() -> None:
    """Ctrl-C in the terminal reaches the whole process group; Jupyter then asks whether to
    shut down, so the broker must wait for the server's decision."""
    async with started(EmbeddedBroker()) as broker:
        assert broker.pid is not None
        psutil.Process(broker.pid).send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)
        assert broker.running
        async with client(broker):
            pass


@pytest.mark.asyncio
async def test_a_port_in_use_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    async with started(EmbeddedBroker()) as first:
        assert first.port is not None
        second = EmbeddedBroker(port=first.port)
        with pytest.raises(EmbeddedBrokerError) as info:
            await second.start()
        # The failed one's temporary directory is gone; the running one's is still there.
        assert first.log_path is not None
        assert os.listdir(tmp_path) == [first.log_path.parent.name]
    message = str(info.value)
    assert message.startswith("the embedded MQTT broker exited during start-up (exit code 1);")
    assert f"cannot listen on 127.0.0.1:{first.port}" in message
    assert "address already in use" in message
    assert second.password not in message
    assert not second.running


def test_constructor_and_url_errors() -> None:
    with pytest.raises(ValueError, match="port must be between 0 and 65535, not 70000"):
        EmbeddedBroker(port=70000)
    with pytest.raises(ValueError, match="the embedded broker needs a non-empty username"):
        EmbeddedBroker(username="")
    with pytest.raises(EmbeddedBrokerError, match="the embedded broker has not been started"):
        _ = EmbeddedBroker().url


def test_the_parent_dying_takes_the_broker_with_it(tmp_path: Path) -> None:
    """SIGKILL the process that owns the broker: no cleanup code runs in it, yet the child
    sees its stdin close and exits."""
    script = (
        "import asyncio, sys\n"
        "from jupyter_iotcable.bridge import EmbeddedBroker\n"
        "async def main():\n"
        "    broker = EmbeddedBroker()\n"
        "    await broker.start()\n"
        "    print(broker.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not gone(child_pid)
        (workdir,) = tmp_path.glob("iotcable-broker-*")
        parent.kill()
        parent.wait(10)
        assert wait_gone(child_pid), f"the broker (pid {child_pid}) outlived its parent"
        # Its temporary directory went with it: nobody else was left to remove it.
        assert not workdir.exists()
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.parametrize(
    ("stdin", "error"),
    [
        (
            b"not json\n",
            "embedded broker: the configuration on stdin is not JSON "
            "(Expecting value: line 1 column 1 (char 0))",
        ),
        (
            b'{"host": "127.0.0.1"}\n',
            "embedded broker: the configuration lacks port, username, password",
        ),
        (b"[1, 2]\n", "embedded broker: the configuration lacks host, port, username, password"),
    ],
)
def test_the_child_refuses_a_bad_configuration(stdin: bytes, error: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_iotcable.bridge.embedded_child"],
        input=stdin,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.decode().strip() == error
    assert done.stdout == b""


@pytest.mark.asyncio
async def test_a_free_port_can_be_asked_for_explicitly() -> None:
    port = free_port()
    async with started(EmbeddedBroker(port=port)) as broker:
        assert broker.port == port
        async with client(broker):
            pass
