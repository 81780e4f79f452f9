"""``iotcable demo`` as a user runs it: a subprocess that prints where Lab is, serves the
simulator's readings through the extension, and leaves nothing behind when stopped."""

from __future__ import annotations

import getpass
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

import jupyter_iotcable as iot
from jupyter_iotcable.bridge import EmbeddedBroker
from jupyter_iotcable.demo import lab_config
from jupyter_iotcable.demo import main as demo_main
from jupyter_iotcable.server.config import parse_channel
from tests.brokers import free_port

READY = re.compile(r"open (http://127\.0\.0\.1:\d+/)lab/tree/quickstart\.ipynb\?token=(\w+)")
START_TIMEOUT = 120.0


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    url: str
    token: str
    children: list[psutil.Process]
    lines: queue.Queue[str | None]
    reader: threading.Thread

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def rest_of_output(self) -> str:
        """What the demo printed after its URL (call once it has exited)."""
        self.reader.join(10)
        rest = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        return "".join(rest)


def _read_lines(stream: object, lines: queue.Queue[str | None]) -> None:
    assert hasattr(stream, "readline")
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RunningDemo]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOTCABLE_", "JUPYTERHUB_"))}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_iotcable.cli",
            "demo",
            "--no-browser",
            "--port",
            str(free_port()),
            "--devices",
            "4",
            "--rate",
            "5",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    output: list[str] = []
    found: re.Match[str] | None = None
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while found is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            output.append(line)
            found = READY.search(line)
        assert found is not None, "the demo did not print its URL:\n" + "".join(output)
        children = psutil.Process(process.pid).children(recursive=True)
        yield RunningDemo(process, found.group(1), found.group(2), children, lines, reader)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_demo_serves_readings_and_stops_everything(demo: RunningDemo) -> None:
    names = {" ".join(child.cmdline()) for child in demo.children}
    assert any("embedded_child" in name for name in names), names
    assert any("simulate" in name for name in names), names
    assert any("jupyterlab" in name for name in names), names
    # The broker password reaches the simulator and Lab through their environment only.
    simulator = next(child for child in demo.children if "simulate" in child.cmdline())
    password = simulator.environ()["IOTCABLE_DEMO_BROKER_PASSWORD"]
    assert password
    assert not any(password in name for name in names)

    with iot.connect(demo.url, token=demo.token, timeout=30) as cable:
        sub = cable.subscribe("telemetry", topic="plant/+/+/env", timeout=30)
        reading = next(sub.readings(timeout=30))
    assert reading.columns["site"] in ("lyon", "porto")
    assert isinstance(reading.payload, dict)
    assert {"seq", "ts", "temperature", "setpoint", "status"} <= set(reading.payload)

    assert demo.stop() == 0
    _, alive = psutil.wait_procs(demo.children, timeout=10)
    assert alive == []
    assert demo.rest_of_output().endswith("broker stopped\nstopped.\n")


def test_device_obeys_a_command_within_a_second(demo: RunningDemo) -> None:
    with iot.connect(demo.url, token=demo.token, timeout=30) as cable:
        sub = cable.subscribe("telemetry", topic="plant/lyon/pump1/env", timeout=30)
        readings = sub.readings(timeout=30)
        before = next(readings)
        assert isinstance(before.payload, dict) and before.payload["setpoint"] != 31.5
        sent_at = time.time()
        cable.publish("commands", {"setpoint": 31.5}, topic="plant/lyon/pump1/cmd")
        # Readings stamped (by the device) more than a second after the command must all
        # carry the new setpoint; the overall deadline is generous for a loaded machine.
        later = []
        for reading in readings:
            assert isinstance(reading.payload, dict)
            if reading.payload["ts"] >= sent_at + 1.0:
                later.append(reading.payload)
                if len(later) == 3:
                    break
    assert [payload["setpoint"] for payload in later] == [31.5, 31.5, 31.5]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535, not 70000"),
        (["--devices", "0"], "--devices must be between 1 and 10000, not 0"),
        (["--rate", "0"], "--rate must be more than 0 and at most 1000 per second, not 0"),
        (["--rate", "fast"], "argument --rate: invalid float value: 'fast'"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: iotcable demo")
    assert f"iotcable demo: error: {message}\n" in err


def test_lab_config_channels_pass_the_extension_validation(tmp_path: Path) -> None:
    broker = EmbeddedBroker(password="pw")
    broker.port = 1883  # the config only needs the URL; nothing is started
    config = lab_config(broker, root_dir=tmp_path, port=8899, token="t", open_browser=False)
    iot_config = config["IoTCableApp"]
    assert iot_config["broker_url"] == "mqtt://127.0.0.1:1883"
    assert "pw" not in json.dumps(config)
    channels = {name: parse_channel(name, raw) for name, raw in iot_config["channels"].items()}
    owner = f"user:{getpass.getuser()}"
    assert channels["telemetry"].read == ("*",)
    assert channels["commands"].write == (owner,)
    assert channels["commands"].may_publish_to("plant/lyon/pump1/cmd")
