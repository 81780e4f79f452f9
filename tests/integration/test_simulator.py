"""The device simulator: the pure device model, the command line, and the whole thing
against a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from jupyter_iotcable.bridge import EmbeddedBroker
from jupyter_iotcable.bridge.simulator import (
    CommandError,
    Device,
    SimulatorConfig,
    main,
    make_devices,
    parse_args,
    run_simulator,
)

if TYPE_CHECKING:
    from tests.brokers import Mosquitto


def quiet(broker: Mosquitto, **overrides: Any) -> SimulatorConfig:
    """A simulator for ``broker`` without random dropouts or faults: the broker tests check
    exact behaviour."""
    return SimulatorConfig(broker.url, dropout_interval=0.0, fault_interval=0.0, **overrides)


def device(**overrides: Any) -> Device:
    values: dict[str, Any] = {
        "site": "lyon",
        "name": "pump1",
        "kind": "pump",
        "rng": random.Random(7),
        "dropout_interval": 0.0,
        "fault_interval": 0.0,
    }
    values.update(overrides)
    return Device(**values)


def run_for(
    dev: Device, seconds: float, dt: float = 1.0, start: float = 1000.0
) -> list[dict[str, Any]]:
    """Step a device through ``seconds`` of simulated time; the readings it sent."""
    readings = []
    now = start
    for _ in range(round(seconds / dt)):
        now += dt
        reading = dev.step(dt, now)
        if reading is not None:
            readings.append(reading)
    return readings


# -- the device model ------------------------------------------------------------------------


def test_a_reading_has_every_field_with_plausible_values() -> None:
    (reading,) = run_for(device(), 1.0)
    assert set(reading) == {
        "seq",
        "ts",
        "temperature",
        "humidity",
        "pressure",
        "vibration",
        "setpoint",
        "status",
    }
    assert reading["seq"] == 1
    assert reading["ts"] == 1001.0
    assert reading["status"] == "ok"
    assert 15 < reading["temperature"] < 30
    assert 5 <= reading["humidity"] <= 95
    assert 990 < reading["pressure"] < 1040
    assert 0 < reading["vibration"] < 20


def test_temperature_follows_a_new_setpoint_with_a_lag() -> None:
    dev = device(setpoint=21.5)
    run_for(dev, 120)
    assert dev.command(b'{"setpoint": 40}') == "setpoint 40 C"
    after = run_for(dev, 300, start=2000.0)
    assert all(r["setpoint"] == 40.0 for r in after)
    temperatures = [float(r["temperature"]) for r in after]
    # First-order lag (20 s): a quarter of the way after a few seconds, not there yet...
    assert 21 < temperatures[4] < 35
    # ...and close to it after many time constants (the drifting heat load stays small).
    assert abs(statistics.mean(temperatures[-30:]) - 40) < 2.5
    assert temperatures[4] < temperatures[20] < temperatures[60]


def test_the_same_seed_gives_the_same_readings() -> None:
    config = SimulatorConfig(devices=3, seed=42)
    first = [run_for(d, 30) for d in make_devices(config)]
    second = [run_for(d, 30) for d in make_devices(config)]
    other = [run_for(d, 30) for d in make_devices(SimulatorConfig(devices=3, seed=43))]
    assert first == second
    assert first != other


def test_devices_are_spread_over_the_sites() -> None:
    devices = make_devices(SimulatorConfig(devices=5, sites=("lyon", "porto"), seed=1))
    assert [d.topic for d in devices] == [
        "plant/lyon/pump1/env",
        "plant/porto/pump1/env",
        "plant/lyon/fan2/env",
        "plant/porto/fan2/env",
        "plant/lyon/compressor3/env",
    ]
    assert devices[0].command_topic == "plant/lyon/pump1/cmd"


def test_dropouts_silence_a_device_without_spending_sequence_numbers() -> None:
    dev = device(dropout_interval=20.0)
    readings = run_for(dev, 600, dt=0.5)
    stamps = [float(r["ts"]) for r in readings]
    gaps = [b - a for a, b in itertools.pairwise(stamps) if b - a > 0.5]
    assert gaps, "no dropout in 10 minutes with one every 20 s on average"
    # A dropout lasts 2-6 s, plus the step it started on (two may follow each other).
    assert min(gaps) >= 2.5
    assert statistics.median(gaps) <= 6.5
    assert [r["seq"] for r in readings] == list(range(1, len(readings) + 1))


def test_a_fault_raises_vibration_until_reset() -> None:
    dev = device(fault_interval=5.0, fault_duration=0.0)
    readings = run_for(dev, 120)
    healthy = [float(r["vibration"]) for r in readings if r["status"] == "ok"]
    faulty = [float(r["vibration"]) for r in readings if r["status"] == "fault"]
    assert healthy and faulty
    assert statistics.median(faulty) > 2.5 * statistics.median(healthy)
    assert dev.command(b'{"reset": true}') == "fault cleared"
    dev.fault_interval = 0.0
    assert all(r["status"] == "ok" for r in run_for(dev, 10, start=5000.0))
    assert dev.command(b'{"reset": true, "setpoint": 22}') == "setpoint 22 C, reset (no fault)"


def test_faults_clear_by_themselves() -> None:
    """A device that is not reset recovers after a while, and faults again later."""
    dev = device(fault_interval=20.0, fault_duration=10.0)
    statuses = [r["status"] for r in run_for(dev, 1200)]
    recoveries = sum(a == "fault" and b == "ok" for a, b in itertools.pairwise(statuses))
    assert recoveries >= 10
    # A fault lasts 5-15 s here, the time to the next one 20 s on average.
    assert 0.15 < statuses.count("fault") / len(statuses) < 0.55


def test_a_plant_left_alone_for_two_hours_is_mostly_healthy() -> None:
    """With the defaults, most devices are healthy however long the demo runs (faults
    used to last until a reset: after two hours nearly every device was faulted)."""
    devices = make_devices(SimulatorConfig(devices=8, seed=11))
    last_hour = []
    for second in range(2 * 3600):
        for dev in devices:
            reading = dev.step(1.0, 1000.0 + second)
            if reading is not None and second >= 3600:
                last_hour.append(reading["status"])
    assert sum(dev.fault for dev in devices) <= 3
    assert last_hour.count("fault") / len(last_hour) < 0.25
    assert "fault" in last_hour  # faults still happen


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"not json", "not JSON (Expecting value: line 1 column 1 (char 0))"),
        (
            b'{"setpoint": \xff}',
            "not JSON ('utf-8' codec can't decode byte 0xff in position 13: invalid start byte)",
        ),
        (b"[25]", 'expected a JSON object such as {"setpoint": 25.0} or {"reset": true}'),
        (b"{}", 'expected a JSON object such as {"setpoint": 25.0} or {"reset": true}'),
        (b'{"speed": 40}', "unknown field(s) 'speed'; known: 'setpoint', 'reset'"),
        (
            b'{"setpoint": "hot"}',
            "setpoint must be a number of degrees C between -20 and 120, not 'hot'",
        ),
        (
            b'{"setpoint": true}',
            "setpoint must be a number of degrees C between -20 and 120, not True",
        ),
        (
            b'{"setpoint": 1e9}',
            "setpoint must be a number of degrees C between -20 and 120, not 1000000000.0",
        ),
        (
            b'{"setpoint": NaN}',
            "setpoint must be a number of degrees C between -20 and 120, not nan",
        ),
        (b'{"reset": "yes"}', "\"reset\" must be true, not 'yes'"),
    ],
)
def test_invalid_commands_are_refused_with_a_reason(payload: bytes, error: str) -> None:
    dev = device(setpoint=21.5)
    with pytest.raises(CommandError) as info:
        dev.command(payload)
    assert str(info.value) == error
    assert dev.setpoint == 21.5


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"devices": 0}, "devices must be between 1 and 10000, not 0"),
        ({"rate": 0.0}, "rate must be more than 0 and at most 1000 readings per second, not 0.0"),
        (
            {"rate": float("inf")},
            "rate must be more than 0 and at most 1000 readings per second, not inf",
        ),
        ({"sites": ()}, "at least one site is needed"),
        (
            {"sites": ("lyon", "a/b")},
            "site 'a/b' cannot be a topic level: use letters, digits, '-' or '_' "
            "(no '/', '+', '#', leading '$' or surrounding spaces)",
        ),
        ({"sites": ("lyon", "lyon")}, "sites must be unique, got lyon, lyon"),
        ({"fault_interval": -1.0}, "fault_interval must be a number of seconds >= 0, not -1.0"),
        (
            {"fault_duration": float("nan")},
            "fault_duration must be a number of seconds >= 0, not nan",
        ),
        (
            {"broker_url": "tcp://broker"},
            "the broker URL 'tcp://broker' has the scheme 'tcp'; "
            "expected mqtt:// (plain TCP) or mqtts:// (TLS)",
        ),
        ({"password": "pw"}, "a broker password was given without a username"),
    ],
)
def test_simulator_config_errors(overrides: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        SimulatorConfig(**overrides)


def test_the_password_is_not_in_the_config_repr() -> None:
    assert "hunter2" not in repr(SimulatorConfig(username="sim", password="hunter2"))


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--devices", "0"], "devices must be between 1 and 10000, not 0"),
        (["--devices", "four"], "argument --devices: invalid int value: 'four'"),
        (
            ["--rate", "-1"],
            "rate must be more than 0 and at most 1000 readings per second, not -1.0",
        ),
        (
            ["--sites", ""],
            "site '' cannot be a topic level: use letters, digits, '-' or '_' "
            "(no '/', '+', '#', leading '$' or surrounding spaces)",
        ),
        (
            ["--sites", "lyon,+"],
            "site '+' cannot be a topic level: use letters, digits, '-' or '_' "
            "(no '/', '+', '#', leading '$' or surrounding spaces)",
        ),
        (
            ["--broker", "localhost:1883"],
            "the broker URL 'localhost:1883' has no scheme; "
            "expected mqtt://localhost:1883 or mqtts://localhost:1883",
        ),
        (
            ["--username", "sim", "--password-env", "IOTCABLE_TEST_UNSET_VARIABLE"],
            "--password-env: the environment variable IOTCABLE_TEST_UNSET_VARIABLE is not set",
        ),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (
            ["--fault-duration", "-5"],
            "fault_duration must be a number of seconds >= 0, not -5.0",
        ),
        (["--fault-interval", "often"], "argument --fault-interval: invalid float value: 'often'"),
        (
            ["--protocol", "4"],
            "argument --protocol: invalid choice: '4' (choose from 'auto', '5', '3.1.1')",
        ),
    ],
)
def test_command_line_errors_exit_2_with_a_message(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IOTCABLE_TEST_UNSET_VARIABLE", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"iotcable simulate: error: {error}"


def test_the_mqtt_version_can_be_chosen() -> None:
    assert parse_args([]).settings().protocol == "auto"
    assert parse_args(["--protocol", "3.1.1"]).settings().protocol == "3.1.1"


def test_fault_and_dropout_options_reach_the_devices() -> None:
    config = parse_args(
        ["--fault-interval", "60", "--fault-duration", "0", "--dropout-interval", "0"]
    )
    assert (config.fault_interval, config.fault_duration, config.dropout_interval) == (
        60.0,
        0.0,
        0.0,
    )
    (dev, *_) = make_devices(config)
    assert (dev.fault_interval, dev.fault_duration, dev.dropout_interval) == (60.0, 0.0, 0.0)


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "usage: iotcable simulate" in capsys.readouterr().out


def test_ctrl_c_exits_0(mosquitto: Mosquitto) -> None:
    with paho_subscriber(mosquitto.port, "plant/+/+/env") as readings:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_iotcable.bridge.simulator",
                "--broker",
                mosquitto.url,
                "--devices",
                "2",
                "--rate",
                "10",
            ],
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        try:
            readings.get(timeout=20)  # it runs and publishes
            process.send_signal(signal.SIGINT)
            _out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, err
    assert "simulator stopped" in err
    assert "Traceback" not in err


@contextlib.contextmanager
def paho_subscriber(port: int, topic: str) -> Iterator[queue.Queue[bytes]]:
    """A paho subscriber on its own thread, for the tests that are not async."""
    got: queue.Queue[bytes] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        yield got
    finally:
        client.loop_stop()
        client.disconnect()


# -- against mosquitto -----------------------------------------------------------------------


class Readings:
    """Every reading seen on ``plant/+/+/env`` by an independent aiomqtt subscriber."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def of(self, topic: str) -> list[dict[str, Any]]:
        return [reading for t, reading in self.items if t == topic]

    async def until(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "timed out waiting for readings"
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def recording(broker: Mosquitto) -> AsyncIterator[Readings]:
    readings = Readings()
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe("plant/+/+/env", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                readings.items.append((message.topic.value, json.loads(message.payload)))

        task = asyncio.create_task(collect())
        try:
            yield readings
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def simulating(config: SimulatorConfig) -> AsyncIterator[None]:
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(run_simulator(config, stop=stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.mark.asyncio
async def test_readings_arrive_with_increasing_seq_per_device(mosquitto: Mosquitto) -> None:
    config = quiet(mosquitto, devices=3, rate=20, seed=3)
    topics = ["plant/lyon/pump1/env", "plant/porto/pump1/env", "plant/lyon/fan2/env"]
    async with recording(mosquitto) as readings, simulating(config):
        await readings.until(lambda: all(len(readings.of(t)) >= 10 for t in topics))
    assert {t for t, _r in readings.items} == set(topics)
    for topic in topics:
        seqs = [r["seq"] for r in readings.of(topic)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{topic}: {seqs}"
        assert all(r["status"] == "ok" for r in readings.of(topic))


@pytest.mark.asyncio
async def test_no_reading_is_lost_while_the_simulator_connects() -> None:
    """Devices start once the broker has accepted the simulator: each one's first reading
    is seq 1. amqtt ignores the MQTT 5 attempt of ``protocol="auto"``, so the connection
    takes a few seconds, in which readings used to be taken and lost."""
    broker = EmbeddedBroker()
    await broker.start()
    try:
        config = SimulatorConfig(
            broker.url,
            username=broker.username,
            password=broker.password,
            devices=4,
            rate=20,
            seed=5,
            dropout_interval=0.0,
            fault_interval=0.0,
            protocol="auto",
        )
        topics = [device.topic for device in make_devices(config)]
        first: dict[str, int] = {}
        stop = asyncio.Event()
        assert broker.port is not None
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username=broker.username, password=broker.password
        ) as client:
            await client.subscribe("plant/+/+/env", qos=1)
            simulator = asyncio.create_task(run_simulator(config, stop=stop))
            try:
                async with asyncio.timeout(60):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        seq = json.loads(message.payload)["seq"]
                        first.setdefault(message.topic.value, seq)
                        if len(first) == len(topics):
                            break
            finally:
                stop.set()
                await asyncio.wait_for(simulator, 10)
    finally:
        await broker.stop()
    assert first == dict.fromkeys(topics, 1)


@pytest.mark.asyncio
async def test_a_setpoint_command_shows_in_that_device_readings(mosquitto: Mosquitto) -> None:
    config = quiet(mosquitto, devices=2, rate=20, seed=5)
    target, other = "plant/lyon/pump1/env", "plant/porto/pump1/env"
    async with recording(mosquitto) as readings, simulating(config):
        await readings.until(lambda: len(readings.of(target)) >= 3 and len(readings.of(other)) >= 3)
        (other_setpoint,) = {r["setpoint"] for r in readings.of(other)}
        await asyncio.to_thread(mosquitto.publish, "plant/lyon/pump1/cmd", b'{"setpoint": 31.5}')
        await readings.until(lambda: any(r["setpoint"] == 31.5 for r in readings.of(target)))
        count = len(readings.of(target))
        await readings.until(lambda: len(readings.of(target)) >= count + 5)
    sent = readings.of(target)
    first_new = next(i for i, r in enumerate(sent) if r["setpoint"] == 31.5)
    assert first_new >= 3
    # From the first reading that shows it, every reading carries the new setpoint.
    assert all(r["setpoint"] == 31.5 for r in sent[first_new:])
    assert all(r["setpoint"] == other_setpoint for r in readings.of(other))


@pytest.mark.asyncio
async def test_malformed_commands_are_logged_and_ignored(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jupyter_iotcable.bridge.simulator")
    config = quiet(mosquitto, devices=1, rate=20, seed=8)
    target = "plant/lyon/pump1/env"
    async with recording(mosquitto) as readings, simulating(config):
        for topic, payload in [
            ("plant/lyon/pump1/cmd", b"not json"),
            ("plant/lyon/pump1/cmd", b'{"speed": 3}'),
            ("plant/lyon/ghost7/cmd", b'{"setpoint": 25}'),
            ("plant/lyon/pump1/cmd", b'{"setpoint": 24.0}'),
        ]:
            await asyncio.to_thread(mosquitto.publish, topic, payload)
        await readings.until(lambda: any(r["setpoint"] == 24.0 for r in readings.of(target)))
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("simulator")]
    assert (
        "ignored a command on plant/lyon/pump1/cmd: "
        "not JSON (Expecting value: line 1 column 1 (char 0))" in messages
    )
    assert (
        "ignored a command on plant/lyon/pump1/cmd: "
        "unknown field(s) 'speed'; known: 'setpoint', 'reset'" in messages
    )
    assert "ignored a command on plant/lyon/ghost7/cmd: no such device" in messages
    assert "lyon/pump1: setpoint 24 C" in messages


@pytest.mark.asyncio
async def test_it_reconnects_when_the_broker_comes_back(mosquitto: Mosquitto) -> None:
    config = quiet(mosquitto, devices=1, rate=20, seed=9)
    target = "plant/lyon/pump1/env"
    async with simulating(config):
        async with recording(mosquitto) as before:
            await before.until(lambda: len(before.of(target)) >= 3)
        mosquitto.kill()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(mosquitto.start)
        async with recording(mosquitto) as after:
            await after.until(lambda: len(after.of(target)) >= 3, timeout=30)
    last_before = before.of(target)[-1]["seq"]
    resumed = [r["seq"] for r in after.of(target)]
    # Readings taken while the broker was down are lost, so seq jumps, but never goes back.
    assert resumed[0] > last_before + 1
    assert resumed == sorted(resumed)
