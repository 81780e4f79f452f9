"""Channel configuration: every mistake names the key and what is expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_iotcable.server.config import ConfigError, load_channels_file, parse_channels

GOOD = {
    "telemetry": {
        "topics": ["plant/+/+/env"],
        "columns": "plant/{site}/{device}/env",
        "format": "json",
        "read": ["*"],
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
