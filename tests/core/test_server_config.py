"""Channel configuration: every mistake names the key and what is expected."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from jupyter_iotcable.server.app import IoTCableApp
from jupyter_iotcable.server.config import ConfigError, load_channels_file, parse_channels

GOOD = {
    "telemetry": {
        "topics": ["plant/+/+/env"],
        "columns": "plant/{site}/{device}/env",
        "format": "json",
        "read": ["*"],
        "units": {"temperature": "°C", "vibration": "mm/s"},
    },
    "commands": {"topics": "plant/+/+/cmd", "write": ["group:operators"], "read": ["user:ann"]},
}


def test_good_config_parses() -> None:
    channels = parse_channels(GOOD)
    t = channels["telemetry"]
    assert t.topics == ("plant/+/+/env",)
    assert t.columns is not None and t.columns.names == ("site", "device")
    assert t.read == ("*",) and t.write == ()
    c = channels["commands"]
    assert c.topics == ("plant/+/+/cmd",), "a single string is accepted as a one-item list"
    assert c.may_publish_to("plant/lyon/p1/cmd")
    assert not c.may_publish_to("plant/+/p1/cmd"), "wildcards are never publishable"
    assert not c.may_publish_to("plant/lyon/p1/env")
    assert t.contains_topic_filter("plant/lyon/+/env")
    assert not t.contains_topic_filter("plant/#")
    assert t.public()["units"] == {"temperature": "°C", "vibration": "mm/s"}
    assert c.public()["units"] == {}, "units are optional"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be a dict of channels"),
        ({"bad name!": {"topics": ["a"]}}, "channel name 'bad name!'"),
        ({"t": "topics"}, "c.IoTCableApp.channels['t'] must be a dict"),
        ({"t": {}}, "c.IoTCableApp.channels['t'] needs 'topics'"),
        ({"t": {"topics": []}}, "['topics'] is empty"),
        ({"t": {"topics": ["a/#/b"]}}, "['topics'][0] 'a/#/b' is not a valid MQTT topic filter"),
        ({"t": {"topics": [1]}}, "['topics'] must be a list of strings"),
        ({"t": {"topics": ["a"], "topic": "a"}}, "unknown key(s) ['topic']"),
        ({"t": {"topics": ["a"], "format": "yaml"}}, "yaml"),
        ({"t": {"topics": ["a"], "read": ["everyone"]}}, "['read'][0] is 'everyone'"),
        ({"t": {"topics": ["a"], "columns": "a/{x/b"}}, "['columns']"),
        (
            {"t": {"topics": ["a"], "history_limit": 0}},
            "['history_limit'] must be a positive integer",
        ),
        (
            {"t": {"topics": ["a"], "history_ttl": "1h"}},
            "['history_ttl'] must be a positive number",
        ),
        ({"t": {"topics": ["a"], "policy": "drop"}}, "expected 'conflate' or 'disconnect'"),
        ({"t": {"topics": ["a"], "format": "csv"}}, "csv"),
        ({"t": {"topics": ["a"], "units": "°C"}}, "['units'] must be a dict of field -> unit"),
        ({"t": {"topics": ["a"], "units": {"t": ""}}}, "['units']['t'] must be a unit text"),
        ({"t": {"topics": ["a"], "units": {"t": "x" * 33}}}, "of 1-32 characters"),
        ({"t": {"topics": ["a"], "units": {"t": 1}}}, "['units']['t'] must be a unit text"),
        ({"t": {"topics": ["a"], "units": {"": "°C"}}}, "the field name '' must be"),
        ({"t": {"topics": ["a"], "units": {"t": "°C\n"}}}, "has control characters"),
    ],
)
def test_mistakes_name_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_channels(raw)
    assert message in str(info.value)


def test_channels_file_json_and_toml(tmp_path: Path) -> None:
    j = tmp_path / "channels.json"
    j.write_text(json.dumps({"channels": GOOD}))
    assert set(parse_channels(load_channels_file(j))) == {"telemetry", "commands"}
    t = tmp_path / "channels.toml"
    t.write_text('[telemetry]\ntopics = ["plant/+/+/env"]\nread = ["*"]\n')
    assert set(parse_channels(load_channels_file(t))) == {"telemetry"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.yaml", "a: 1", "use a .json or .toml file"),
        ("c.json", "{nope", "is not valid JSON"),
        ("c.toml", "= nope", "is not valid TOML"),
        ("c.json", "[1]", "must hold a table/object of channels"),
    ],
)
def test_channels_file_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_channels_file(p)
    assert message in str(info.value)


def test_missing_channels_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_channels_file(tmp_path / "absent.json")


# -- c.IoTCableApp settings outside the channels -------------------------------------------


def _app(**settings: Any) -> IoTCableApp:
    app = IoTCableApp()
    for key, value in settings.items():
        setattr(app, key, value)
    return app


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "batch_interval",
            math.nan,
            "batch_interval must be a number from 0 to 10 seconds, not nan",
        ),
        ("batch_interval", -0.1, "batch_interval must be a number from 0 to 10 seconds, not -0.1"),
        ("ping_interval", math.inf, "ping_interval must be a number from 0.1 to 60 seconds"),
        ("ping_interval", 0.0, "ping_interval must be a number from 0.1 to 60 seconds, not 0.0"),
        ("session_ttl", math.nan, "session_ttl must be a number from 1 to 86,400 seconds"),
        ("publish_rate", math.inf, "publish_rate must be a number from 0.001 to 100,000"),
        ("publish_rate", 0.0, "publish_rate must be a number from 0.001"),
        ("max_message_size", 0, "max_message_size must be an integer from 1,024 to 67,108,864"),
        ("max_subscriptions", 0, "max_subscriptions must be an integer from 1 to 100,000"),
        ("publish_burst", -1, "publish_burst must be an integer from 1 to 100,000 publishes"),
        ("outbox_bytes", 10, "outbox_bytes must be an integer from 1,024 to 1,073,741,824"),
        ("batch_max", 0, "batch_max must be an integer from 1 to 100,000 readings"),
        ("max_identifier_bytes", 10, "max_identifier_bytes must be an integer from 64 to"),
        ("max_sessions", -1, "max_sessions must be an integer from 0 to 1,000,000 sessions"),
        ("max_sessions_per_user", -1, "max_sessions_per_user must be an integer from 0 to"),
        ("too_slow_grace", math.inf, "too_slow_grace must be a number from 0.1 to 600 seconds"),
    ],
)
def test_numeric_settings_must_be_finite_and_in_range(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _app(**{key: value})._engine_settings()
    assert str(info.value).startswith(f"c.IoTCableApp.{message}")


def test_numeric_settings_at_their_bounds_are_accepted() -> None:
    settings = _app(batch_interval=0.0, ping_interval=60.0, max_message_size=1024)
    assert settings._engine_settings().batch_interval == 0.0


def test_resume_and_slow_client_limits_reach_the_engine() -> None:
    engine = _app(
        max_identifier_bytes=2048, max_sessions=0, max_sessions_per_user=4, too_slow_grace=2.5
    )._engine_settings()
    assert (
        engine.max_identifier_bytes,
        engine.max_sessions,
        engine.max_sessions_per_user,
        engine.too_slow_grace,
    ) == (2048, 0, 4, 2.5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"broker_keepalive": 2},
            "c.IoTCableApp.broker_keepalive: keepalive must be between 5 and 65535 seconds, not 2",
        ),
        (
            {"broker_session_expiry": -1},
            "c.IoTCableApp.broker_session_expiry: session_expiry must be between 0 and",
        ),
        (
            {"broker_tls_insecure": True},
            "c.IoTCableApp.broker_tls_insecure: tls_insecure only applies to TLS connections; "
            "use an mqtts:// URL instead of 'mqtt://127.0.0.1:9'",
        ),
        ({"broker_client_id": ""}, "c.IoTCableApp.broker_client_id: the MQTT client id must"),
        ({"broker_username": ""}, "c.IoTCableApp.broker_username: the broker username is empty"),
        ({"broker_url": "http://x"}, "c.IoTCableApp.broker_url: the broker URL 'http://x' has"),
        (
            {"broker_password_file": "/nonexistent/pw"},
            "c.IoTCableApp.broker_password_file cannot be read",
        ),
        (
            {"broker_password_env": "A", "broker_password_file": "/etc/hostname"},
            "c.IoTCableApp.broker_password_env and c.IoTCableApp.broker_password_file are both set",
        ),
    ],
)
def test_broker_setting_errors_name_the_key(settings: dict[str, Any], message: str) -> None:
    app = _app(**{"broker_url": "mqtt://127.0.0.1:9", "broker_client_id": "fixed", **settings})
    with pytest.raises(ConfigError) as info:
        app._broker_settings()
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (
            {"ops": "bob"},
            "c.IoTCableApp.groups['ops'] must be a list of user names, e.g. ['alice', 'bob'], "
            "not 'bob'",
        ),
        ({"ops": ["bob", 3]}, "c.IoTCableApp.groups['ops'] must be a list of user names"),
        ({"ops": {"bob": 1}}, "c.IoTCableApp.groups['ops'] must be a list of user names"),
        ({"": ["bob"]}, "c.IoTCableApp.groups['']: a group name must be a non-empty string"),
    ],
)
def test_groups_are_lists_of_user_names(groups: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _app(groups=groups)._groups()
    assert str(info.value) == message or str(info.value).startswith(message)


def test_groups_accept_lists() -> None:
    assert _app(groups={"ops": ["bob", "ann"], "x": []})._groups() == {
        "ops": ["ann", "bob"],
        "x": [],
    }
