"""The channel server as a JupyterHub service, against a real hub (tests/hub/conftest.py).

alice is in the hub group ``operators``: she reads telemetry and reads and writes
commands. bob is not: he reads telemetry only and is refused commands with the reason,
in a kernel (``connect()`` with no arguments), in the CLI and over REST. Their servers
hold no broker setting and relay to the service; the service alone holds the password.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.hub.conftest import Hub
from tests.hub.jupyterhub import COMMANDERS

PROBE = (Path(__file__).parent / "probe.py").read_text()
TOPIC = "plant/lyon/pump1/cmd"
COMMAND = {"topic": TOPIC, "payload": {"setpoint": 21}}
CLI = "from jupyter_iotcable.cli import main; raise SystemExit(main())"
#: What bob is told, over REST, when he publishes to commands: the reason and the scope
#: that would grant it (the service knows it; a user can ask the hub's admin for it).
WRITE_REFUSED = (
    "you may not publish to channel 'commands' "
    "(a hub admin can grant it with the scope custom:iotcable:write:commands)"
)
#: ... and in a kernel and the CLI (a publish goes through a subscription the service
#: refuses, so the reason names both), with the channels he may use.
PUBLISH_REFUSED = (
    "publish to 'plant/lyon/pump1/cmd' on channel 'commands' was refused: you may not "
    "read or publish to channel 'commands' (a hub admin can grant reading with the scope "
    "custom:iotcable:read:commands, publishing with custom:iotcable:write:commands). "
    "The channels you may read or write are 'telemetry'."
)


def post(url: str, token: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def rights(answer: Any) -> dict[str, tuple[bool, bool]]:
    return {c["name"]: (c["read"], c["write"]) for c in answer["channels"]}


@pytest.mark.parametrize("where", ["service", "own server"])
def test_rest_alice_reads_and_writes_commands_bob_only_reads_telemetry(
    hub: Hub, where: str
) -> None:
    for user in ("alice", "bob"):
        base = hub.service_url if where == "service" else hub.server(user)
        answer = get(base + "iotcable/api/channels", hub.token(user))
        assert answer["user"] == user
        expected = {"telemetry": (True, False)}
        if user == "alice":
            expected["commands"] = (True, True)
        assert rights(answer) == expected
        status, body = post(
            base + "iotcable/api/channels/commands/publish", hub.token(user), COMMAND
        )
        if user == "alice":
            assert (status, body) == (200, {"ok": True, "topic": TOPIC})
        else:
            assert status == 403
            assert body == {"ok": False, "reason": WRITE_REFUSED}


KERNEL_CODE = """
import json
import jupyter_iotcable as iot
cable = iot.connect()
result = {"url": cable.url if hasattr(cable, "url") else None}
result["channels"] = {c.name: [c.read, c.write] for c in cable.channels()}
sub = cable.subscribe("telemetry")
result["readings"] = [r.topic for _, r in zip(range(3), sub.readings(timeout=15))]
try:
    cable.publish("commands", {"setpoint": 22}, topic="plant/lyon/pump1/cmd")
    result["publish"] = "ok"
except iot.IoTCableError as e:
    result["publish"] = f"{type(e).__name__}: {e}"
sub.close() if hasattr(sub, "close") else None
cable.close()
print(json.dumps(result))
"""


def test_kernel_connect_without_arguments_reaches_the_service(hub: Hub) -> None:
    alice = hub.kernel("alice").run_json(KERNEL_CODE)
    assert alice["channels"] == {"telemetry": [True, False], "commands": [True, True]}
    assert alice["readings"] == ["plant/lyon/pump1/env"] * 3
    assert alice["publish"] == "ok"

    bob = hub.kernel("bob").run_json(KERNEL_CODE)
    assert bob["channels"] == {"telemetry": [True, False]}
    assert bob["readings"] == ["plant/lyon/pump1/env"] * 3
    assert bob["publish"] == f"PublishRefused: {PUBLISH_REFUSED}"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from jupyter_iotcable.cli import main; raise SystemExit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_as_bob_lists_telemetry_and_is_refused_commands(hub: Hub) -> None:
    options = ["--url", hub.server("bob"), "--token", hub.token("bob")]
    listed = _cli("channels", "--format", "jsonl", *options)
    assert listed.returncode == 0, listed.stderr
    names = [json.loads(line)["name"] for line in listed.stdout.splitlines()]
    assert names == ["telemetry"]

    refused = _cli("publish", "commands", '{"setpoint": 1}', "--topic", TOPIC, *options)
    assert refused.returncode == 1
    assert refused.stderr == f"iotcable publish: error: {PUBLISH_REFUSED}\n", refused.stderr

    tail = _cli("tail", "telemetry", "--count", "2", "--format", "jsonl", *options)
    assert tail.returncode == 0, tail.stderr
    assert [json.loads(line)["topic"] for line in tail.stdout.splitlines()] == [
        "plant/lyon/pump1/env"
    ] * 2


def _probe(hub: Hub, server: str) -> dict[str, Any]:
    secret = hub.broker_password
    # The secret travels reversed, so that the code sent to the kernel never holds it.
    call = f"probe({secret[::-1]!r}[::-1], {hub.service_url!r})"
    code = f"{PROBE}\nimport json\nprint(json.dumps({call}))"
    result: dict[str, Any] = hub.kernel("bob", server).run_json(code)
    return result


def test_probe_finds_the_broker_password_in_todays_mode_and_not_in_service_mode(
    hub: Hub,
) -> None:
    try:
        today = _probe(hub, "today")
    finally:
        # bob's processes must not include the old way's while the service is probed.
        hub.stop_server("bob", "today")
    # The extension inside bob's server: the password is in the server's initial
    # environment, which bob's kernel (same OS user) reads from /proc.
    assert any(re.fullmatch(r"/proc/\d+/environ", where) for where in today["found"]), today

    service = _probe(hub, "")
    assert service["found"] == [], service
    searched = service["searched"]
    # "Not found" after looking everywhere: every source was read.
    assert searched["environ"] > 0 and searched["files"] > 0, searched
    assert searched["proc_environ"] > 0 and searched["proc_cmdline"] > 0, searched
    assert searched["responses"] >= 6, searched


def test_a_custom_scope_granted_through_a_role_opens_commands_and_revoking_closes_it(
    hub: Hub,
) -> None:
    token = hub.new_token("bob", "scope test")  # a personal token inherits bob's scopes
    publish_url = hub.service_url + "iotcable/api/channels/commands/publish"

    def allowed() -> bool:
        status, _ = post(publish_url, token, COMMAND)
        return status == 200

    def settles(expected: bool, within: float = 20.0) -> bool:
        # The service caches the hub's answer for HubOAuth.cache_max_age (HUB_ANSWER_CACHE).
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if allowed() == expected:
                return True
            time.sleep(0.5)
        return False

    assert not allowed()
    hub.set_group(COMMANDERS, "bob", member=True)
    try:
        assert settles(True), "custom:iotcable:write:commands did not open commands"
        assert rights(get(hub.service_url + "iotcable/api/channels", token))["commands"] == (
            True,
            True,
        )
    finally:
        hub.set_group(COMMANDERS, "bob", member=False)
    assert settles(False), "revoking the role did not close commands"


def _connected_clients(log: str) -> dict[str, str]:
    """Client id -> username of the clients connected at the end of a mosquitto log."""
    clients: dict[str, str] = {}
    for line in log.splitlines():
        if m := re.search(r"New client connected from \S+ as (\S+) \(.*u'([^']*)'\)", line):
            clients[m.group(1)] = m.group(2)
        elif m := re.search(r"Client (\S+) (?:disconnected|closed its connection)", line):
            clients.pop(m.group(1), None)
    return clients


HOLD = """
import json
import jupyter_iotcable as iot
held = iot.connect()
held_sub = held.subscribe("telemetry")
print(json.dumps([r.topic for _, r in zip(range(2), held_sub.readings(timeout=15))]))
"""


def test_the_broker_sees_one_connection_from_the_service_for_both_users(hub: Hub) -> None:
    # alice and bob each hold a live telemetry subscription from their kernels, at once.
    for user in ("alice", "bob"):
        assert hub.kernel(user).run_json(HOLD) == ["plant/lyon/pump1/env"] * 2
    try:
        deadline = time.monotonic() + 30
        while (status := hub.service_get("iotcable/api/status", hub.admin_token))["channels"][
            "telemetry"
        ]["subscribers"] != 2:
            assert time.monotonic() < deadline, status["channels"]["telemetry"]
            time.sleep(0.5)
        log = hub.mosquitto.log_path.read_text()
        clients = _connected_clients(log)
        # The broker knows the service and the device: alice's and bob's servers (clients
        # of the service) opened no broker connection...
        assert sorted(clients) == ["iotcable-hub-service", "test-device"], clients
        assert clients["iotcable-hub-service"] == "iotcable-service"
        # ...and the service connected once for the whole session: every user, test and
        # reconnecting cable of the run went through that one connection.
        connects = re.findall(r"New client connected from \S+ as iotcable-hub-service ", log)
        assert len(connects) == 1, connects
    finally:
        for user in ("alice", "bob"):
            hub.kernel(user).run("held.close()")


def test_a_revoked_scope_closes_commands_on_bobs_open_connection(hub: Hub) -> None:
    """The grant goes while bob's cable is open: commands closes on it, telemetry stays."""
    import jupyter_iotcable as iot

    token = hub.new_token("bob", "open connection")
    publish_url = hub.service_url + "iotcable/api/channels/commands/publish"
    hub.set_group(COMMANDERS, "bob", member=True)
    try:
        deadline = time.monotonic() + 30  # the service caches the hub's answer: 3 s here
        while post(publish_url, token, COMMAND)[0] != 200:
            assert time.monotonic() < deadline, "the grant did not reach the service"
            time.sleep(0.5)
        with iot.connect(hub.service_url, token=token, timeout=30) as cable:
            telemetry = cable.subscribe("telemetry")
            commands = cable.subscribe("commands")
            assert cable.publish("commands", {"setpoint": 23}, topic=TOPIC)

            hub.set_group(COMMANDERS, "bob", member=False)
            # Within the cache time and the service's re-check (half of it), the service drops
            # commands and closes the connection; the cable resumes, commands is refused.
            deadline = time.monotonic() + 60
            while not commands.status.startswith("rejected"):
                assert time.monotonic() < deadline, commands.status
                time.sleep(0.5)
            assert commands.status == (
                "rejected: you may not read or publish to channel 'commands' (a hub admin "
                "can grant reading with the scope custom:iotcable:read:commands, publishing "
                "with custom:iotcable:write:commands)"
            )
            with pytest.raises(iot.PublishRefused) as refused:
                cable.publish("commands", {"setpoint": 24}, topic=TOPIC)
            assert str(refused.value) == PUBLISH_REFUSED
            # The same cable still reads telemetry.
            got = [r.topic for _, r in zip(range(3), telemetry.readings(timeout=15), strict=False)]
            assert got == ["plant/lyon/pump1/env"] * 3
            assert cable.state == "connected"
    finally:
        hub.set_group(COMMANDERS, "bob", member=False)
