"""Invalid configuration stops the extension with a clear error; Jupyter keeps running.

Cases start a real ``jupyter server`` (``LiveServer``) and read its log, or, where the
path is the same, pytest-jupyter's in-process server and its log records. A server
with no channel configured (the package enables itself wherever it is installed) stays
idle with one warning and a status endpoint that says how to configure it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
import tornado.httpclient

from tests.servers import LiveServer

ROOT = Path(__file__).resolve().parents[2]
#: Where installing the package put its auto-enable file (hatch shared-data).
INSTALLED = Path(sys.prefix, "etc", "jupyter", "jupyter_server_config.d", "jupyter_iotcable.json")
UNREACHABLE = "mqtt://127.0.0.1:9"
A_CHANNEL = {"t": {"topics": ["a/#"], "read": ["*"]}}


def iotcable_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "iotcable" in line.lower()]


def test_bad_channel_config_disables_only_the_extension(tmp_path: Path) -> None:
    server = LiveServer(
        tmp_path / "server",
        None,
        channels={"telemetry": {"topics": ["plant/#/env"], "read": ["*"]}},
        extra_config={"broker_url": UNREACHABLE},
    )
    server.start(wait_for_broker=False)
    try:
        # The Jupyter server itself answers ...
        assert server.get("api/status")["started"]
        # ... the extension's endpoints are not there ...
        with pytest.raises(urllib.error.HTTPError) as info:
            server.get("iotcable/api/status")
        assert info.value.code == 404
        # ... and the log says which key is wrong and why.
        log = server.log_path.read_text()
        assert "c.IoTCableApp.channels['telemetry']['topics'][0]" in log
        assert "is not a valid MQTT topic filter" in log
    finally:
        server.stop()


INVALID_SETTINGS: dict[str, tuple[dict[str, Any], str]] = {
    "keepalive": (
        {"broker_keepalive": 2},
        "c.IoTCableApp.broker_keepalive: keepalive must be between 5 and 65535 seconds, not 2",
    ),
    "session_expiry": (
        {"broker_session_expiry": -1},
        "c.IoTCableApp.broker_session_expiry: session_expiry must be between 0 and "
        "4294967295 seconds, not -1",
    ),
    "protocol": (
        {"broker_protocol": "3.1"},
        "c.IoTCableApp.broker_protocol: protocol must be one of auto, 5, 3.1.1, not '3.1'",
    ),
    "tls_option_on_plain_mqtt": (
        {"broker_tls_insecure": True},
        "c.IoTCableApp.broker_tls_insecure: tls_insecure only applies to TLS connections; "
        "use an mqtts:// URL instead of 'mqtt://127.0.0.1:9'",
    ),
    "type_error": (
        {"max_subscriptions": "many"},
        "c.IoTCableApp.max_subscriptions: expected an int, not the str 'many'",
    ),
    "nan": (
        {"batch_interval": math.nan},
        "c.IoTCableApp.batch_interval must be a number from 0 to 10 seconds, not nan",
    ),
    "inf": (
        {"ping_interval": math.inf},
        "c.IoTCableApp.ping_interval must be a number from 0.1 to 60 seconds, not inf",
    ),
    "max_message_size": (
        {"max_message_size": 0},
        "c.IoTCableApp.max_message_size must be an integer from 1,024 to 67,108,864 bytes, not 0",
    ),
    "group_as_a_string": (
        {"groups": {"ops": "bob"}},
        "c.IoTCableApp.groups['ops'] must be a list of user names, e.g. ['alice', 'bob'], "
        "not 'bob'",
    ),
    "password_variable_unset": (
        {"broker_username": "u", "broker_password_env": "IOTCABLE_TEST_UNSET_VARIABLE"},
        "c.IoTCableApp.broker_password_env names $IOTCABLE_TEST_UNSET_VARIABLE, which is "
        "not set in the server's environment",
    ),
}
#: Run by a real ``jupyter server`` from a JSON config file: a traitlets type error, a NaN
#: in JSON, a variable missing from the server's own environment. The rest run in an
#: in-process server (the same extension loading, a second each instead of about ten).
IN_A_REAL_SERVER = ["type_error", "nan", "password_variable_unset"]


def the_error(lines: list[str]) -> str:
    errors = [
        line for line in lines if "jupyter_iotcable is disabled: invalid configuration" in line
    ]
    # One error, the right one (a type error used to be followed by "channels is empty").
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize("case", IN_A_REAL_SERVER)
def test_invalid_setting_names_the_key_and_jupyter_keeps_running(tmp_path: Path, case: str) -> None:
    settings, message = INVALID_SETTINGS[case]
    server = LiveServer(
        tmp_path / "server",
        None,
        channels=A_CHANNEL,
        extra_config={"broker_url": UNREACHABLE, **settings},
    )
    server.start(wait_for_broker=False)
    try:
        assert server.get("api/status")["started"]
        with pytest.raises(urllib.error.HTTPError) as info:
            server.get("iotcable/api/status")
        assert info.value.code == 404
        error = the_error(iotcable_lines(server.log_path.read_text()))
        assert error.endswith(message), error
        # The server is still serving afterwards.
        assert server.get("api/status")["started"]
    finally:
        server.stop()


@pytest.fixture
def iotcable_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    settings, _ = INVALID_SETTINGS[request.param]
    return {"broker_url": UNREACHABLE, "channels": A_CHANNEL, **settings}


@pytest.mark.parametrize(
    "iotcable_config",
    [case for case in INVALID_SETTINGS if case not in IN_A_REAL_SERVER],
    indirect=True,
)
async def test_invalid_setting_in_process_names_the_key_and_jupyter_keeps_running(
    capfd: pytest.CaptureFixture[str],
    jp_serverapp: Any,
    jp_fetch: Any,
    request: pytest.FixtureRequest,
) -> None:
    _, message = INVALID_SETTINGS[request.node.callspec.params["iotcable_config"]]
    assert (await jp_fetch("api", "status")).code == 200
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("iotcable", "api", "status")
    assert info.value.code == 404
    # The extension loads while pytest-jupyter sets the server up (capfd, requested first,
    # holds the server log's lines from then on; the server's logger does not propagate).
    error = the_error(iotcable_lines(capfd.readouterr().err))
    assert error.endswith(message), error
    assert (await jp_fetch("api", "status")).code == 200


def _embedded_brokers(server: LiveServer) -> list[psutil.Process]:
    assert server.process is not None
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [p for p in children if "embedded_child" in " ".join(p.cmdline())]


def test_no_channels_is_one_warning_and_a_status_that_explains(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "server", None, channels={})
    server.start(wait_for_broker=False)
    try:
        status = server.get("iotcable/api/status")
        assert status["configured"] is False
        assert status["broker"]["state"] == "not_configured"
        assert status["channels"] == {}
        assert "c.IoTCableApp.channels" in status["hint"]
        assert "python -m jupyter_iotcable.server.configdoc" in status["hint"]
        # Still authenticated.
        request = urllib.request.Request(server.url + "iotcable/api/status")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 403
        # No embedded broker was started for nothing, and nothing else is served.
        assert _embedded_brokers(server) == []
        with pytest.raises(urllib.error.HTTPError) as info:
            server.get("iotcable/api/channels")
        assert info.value.code == 404
        log = server.log_path.read_text()
        lines = iotcable_lines(log)
        warnings = [line for line in lines if line.startswith("[W ") and "no channels" in line]
        assert len(warnings) == 1, lines
        assert "Traceback" not in log
        assert not [line for line in lines if line.startswith("[E ")], lines
    finally:
        server.stop()


def _serverextension(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [env["PYTHON"], "-m", "jupyter_server.extension.serverextension", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["HOME"],
        check=True,
    )
    return out.stdout + out.stderr


def _state_line(listing: str) -> str:
    """The ``jupyter_iotcable enabled|disabled`` line of a listing, colours removed."""
    plain = listing.replace("\x1b[32m", "").replace("\x1b[31m", "").replace("\x1b[0m", "")
    lines = [line.strip() for line in plain.splitlines()]
    matching = [line for line in lines if line.split()[:1] == ["jupyter_iotcable"]]
    states = [line for line in matching if line.split()[1:2] in (["enabled"], ["disabled"])]
    assert len(states) == 1, plain
    return states[0]


def test_extension_is_enabled_by_installing_and_listed(tmp_path: Path) -> None:
    """The installed auto-enable file says so, and list shows the extension's own line."""
    assert json.loads(INSTALLED.read_text()) == {
        "ServerApp": {"jpserver_extensions": {"jupyter_iotcable": True}}
    }
    env = {**os.environ, "PYTHON": sys.executable, "HOME": str(tmp_path)}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    assert _state_line(_serverextension(env, "list")) == "jupyter_iotcable enabled"


def test_disable_and_enable_round_trip(tmp_path: Path) -> None:
    """``disable``/``enable`` as an admin types them, in a throw-away environment.

    They write into ``sys.prefix`` (the default), so they run in a virtual environment of
    their own that sees this one's packages and holds a copy of the installed auto-enable
    file, as installing the package puts it there.
    """
    prefix = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(prefix)],
        check=True,
        capture_output=True,
    )
    site = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    Path(site).mkdir(parents=True, exist_ok=True)
    parent_site = sysconfig.get_path("purelib")
    Path(site, "parent_site.pth").write_text(f"import site; site.addsitedir({parent_site!r})\n")
    config_d = prefix / "etc" / "jupyter" / "jupyter_server_config.d"
    config_d.mkdir(parents=True)
    installed = ROOT / "jupyter-config" / "jupyter_server_config.d" / "jupyter_iotcable.json"
    (config_d / installed.name).write_text(installed.read_text())

    python = str(prefix / "bin" / "python")
    env = {**os.environ, "PYTHON": python, "HOME": str(tmp_path)}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    env.pop("JUPYTER_CONFIG_PATH", None)
    # Guard: the commands below write into this prefix, never into the shared one.
    where = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    )
    assert where.stdout.strip() == str(prefix)
    ours = INSTALLED.read_text()
    assert _state_line(_serverextension(env, "list")) == "jupyter_iotcable enabled"

    _serverextension(env, "disable", "jupyter_iotcable")
    assert _state_line(_serverextension(env, "list")) == "jupyter_iotcable disabled"
    assert json.loads((config_d / installed.name).read_text()) == {
        "ServerApp": {"jpserver_extensions": {"jupyter_iotcable": False}}
    }
    _serverextension(env, "enable", "jupyter_iotcable")
    assert _state_line(_serverextension(env, "list")) == "jupyter_iotcable enabled"
    # This environment's own installation was never touched.
    assert INSTALLED.read_text() == ours
