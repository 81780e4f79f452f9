"""The server's bridge among others: its own client id per server, its lines in the server log
(the first test's second server lives through a broker outage for those)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.brokers import Mosquitto
from tests.servers import LiveServer

READINGS = 200


def publish_readings(broker: Mosquitto, count: int) -> None:
    """Publish ``count`` QoS 1 readings over one connection and wait for every PUBACK."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(f"plant/lyon/pump{i % 4}/env", b"{}", qos=1) for i in range(count)]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def telemetry_offset(server: LiveServer) -> int:
    offset: int = server.get("iotcable/api/status")["channels"]["telemetry"]["offset"]
    return offset


def wait_for_offset(server: LiveServer, count: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while telemetry_offset(server) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return telemetry_offset(server)


def client_ids(broker: Mosquitto) -> list[str]:
    """The client ids mosquitto saw connecting, in order (its notice log names them)."""
    log = broker.log_path.read_text(errors="replace")
    return re.findall(r"New client connected from \S+ as (\S+) ", log)


def test_two_servers_on_one_broker_each_get_every_reading(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """With the default client ids, neither server takes the other's session over."""
    servers = [LiveServer(tmp_path / name, mosquitto) for name in ("one", "two")]
    try:
        for server in servers:
            server.start()
        publish_readings(mosquitto, READINGS)
        assert [wait_for_offset(s, READINGS) for s in servers] == [READINGS, READINGS]
        for server in servers:
            broker = server.get("iotcable/api/status")["broker"]
            assert (broker["state"], broker["disconnects"], broker["last_error"]) == (
                "connected",
                0,
                None,
            )
        first_ids = client_ids(mosquitto)
        bridge_ids = [i for i in first_ids if i.startswith("jupyter-iotcable-")]
        assert len(set(bridge_ids)) == 2, first_ids
        # The same server restarted comes back with the same id: the broker kept its
        # session (and what was published while it was away).
        servers[0].stop()
        publish_readings(mosquitto, 10)
        servers[0].start()
        again = [i for i in client_ids(mosquitto)[len(first_ids) :] if i in bridge_ids]
        assert again == [bridge_ids[0]]
        assert wait_for_offset(servers[0], 10) == 10
        # A broker outage, for the bridge's lines in the server log (checked below).
        mosquitto.kill()
        deadline = time.monotonic() + 20
        while servers[1].get("iotcable/api/status")["broker"]["state"] == "connected":
            assert time.monotonic() < deadline, "the bridge did not notice the outage"
            time.sleep(0.2)
        mosquitto.start()
    finally:
        for server in servers:
            server.stop()
    assert_bridge_lines_in_the_server_log(servers[1].log_path.read_text())


def test_two_servers_sharing_a_client_id_are_told_so(tmp_path: Path, mosquitto: Mosquitto) -> None:
    shared: dict[str, Any] = {"broker_client_id": "one-id-for-two"}
    servers = [
        LiveServer(tmp_path / name, mosquitto, extra_config=shared) for name in ("one", "two")
    ]
    try:
        servers[0].start()
        servers[1].start(wait_for_broker=False)
        expected = (
            "another client uses client id 'one-id-for-two': set "
            "c.IoTCableApp.broker_client_id to an id unique to this server"
        )
        deadline = time.monotonic() + 60
        reported: list[str] = []
        while not reported and time.monotonic() < deadline:
            for server in servers:
                broker = server.get("iotcable/api/status")["broker"]
                if expected in str(broker.get("last_error")):
                    reported.append(str(broker["last_error"]))
            time.sleep(0.2)
        assert reported, [s.get("iotcable/api/status")["broker"] for s in servers]
        logs = "".join(s.log_path.read_text() for s in servers)
        assert re.search(
            rf"^\[W [-\d: .]+ jupyter_iotcable\.bridge\] MQTT broker: {re.escape(expected)}",
            logs,
            re.M,
        )
    finally:
        for server in servers:
            server.stop()


def assert_bridge_lines_in_the_server_log(log: str) -> None:
    """The bridge's lines are in the server log with its format and level (checked on a
    server of the test above, which lived through a broker outage)."""
    prefix = r"^\[{level} \d{{4}}-\d\d-\d\d [\d:.]+ jupyter_iotcable\.bridge\] "
    assert re.search(prefix.format(level="I") + "MQTT bridge connected", log, re.M), log
    assert re.search(prefix.format(level="W") + "MQTT broker: lost the connection", log, re.M)
    # Every bridge line has the server's format (no bare last-resort warnings) ...
    bare = [line for line in log.splitlines() if line.startswith("MQTT ")]
    assert not bare, bare
    # ... and the server's level: INFO, so no DEBUG packet traces.
    assert "Sending CONNECT" not in log
