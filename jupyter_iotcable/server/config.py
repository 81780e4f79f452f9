"""Validation of the channels configuration (pure: no server, no I/O).

Admins write ``c.IoTCableApp.channels = {...}`` (or a channels file); a mistake must stop
the extension with a message that names the key and says what is expected, instead of a
traceback or, worse, a channel that silently does something else.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..hub import DEFAULT_HISTORY_BYTES, ChannelSpec, Policy
from ..protocol.limits import DEFAULT_MAX_READING_BYTES, MAX_READING_BYTES
from ..readings import Decoder, DecoderConfigError, PayloadFormat, make_decoder
from ..readings_orjson import loads as orjson_loads
from ..topics import TopicError, TopicTemplate, contains, is_wildcard, matches, validate_filter

CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PRINCIPAL = re.compile(r"^(\*|user:[^\s:]+|group:[^\s:]+)$")

CHANNEL_KEYS = {
    "topics": "list of MQTT topic filters the channel streams, e.g. ['plant/+/+/env']",
    "format": "payload format: " + " | ".join(f.value for f in PayloadFormat),
    "columns": "topic template naming levels as columns, e.g. 'plant/{site}/{device}/env'",
    "read": "principals who may subscribe: '*', 'user:NAME', 'group:NAME'",
    "write": "principals who may publish (default: nobody)",
    "write_topics": "filters a publish topic must match (default: the channel's topics)",
    "csv_columns": "csv format: the names of the comma-separated fields",
    "time_field": "payload field that holds the reading's timestamp (default: receive time)",
    "history_limit": "readings kept for history/resume (default 1000)",
    "history_ttl": "seconds readings are kept for history/resume (default 3600)",
    "history_bytes": "memory the channel's history may take, in bytes, counting what a "
    f"reading really costs in memory (default {DEFAULT_HISTORY_BYTES:,}; the newest reading "
    "is kept whatever its size; c.IoTCableApp.history_bytes bounds all channels together)",
    "max_reading_bytes": "largest payload, in bytes as received and as the JSON it is sent as; "
    "a larger reading is kept and sent flagged (its error says its size), without its payload "
    f"(default {DEFAULT_MAX_READING_BYTES:,}, at most {MAX_READING_BYTES:,} so that a reading "
    "always fits the clients' frame cap). While a JSON payload is decoded it briefly takes "
    "up to about 25 times its size in memory (a megabyte of [{},{},...] is 350,000 dicts)",
    "policy": "slow consumers: 'conflate' (keep latest per topic) or 'disconnect'",
    "description": "one line shown in the channel list",
    "units": "units of payload fields, shown on charts, e.g. {'temperature': '°C'}",
}

#: Longest unit text: a unit labels an axis, it is not a description.
MAX_UNIT_LENGTH = 32


class ConfigError(ValueError):
    """A configuration mistake; the message names the key and what is expected."""


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    topics: tuple[str, ...]
    format: PayloadFormat
    decoder: Decoder
    columns: TopicTemplate | None
    read: tuple[str, ...]
    write: tuple[str, ...]
    write_topics: tuple[str, ...]
    history_limit: int
    history_ttl: float
    policy: Policy
    description: str
    units: Mapping[str, str] = field(default_factory=dict)
    max_reading_bytes: int = DEFAULT_MAX_READING_BYTES
    history_bytes: int = DEFAULT_HISTORY_BYTES

    def spec(self) -> ChannelSpec:
        return ChannelSpec(
            name=self.name,
            filters=self.topics,
            decoder=self.decoder,
            history_limit=self.history_limit,
            history_ttl=self.history_ttl,
            policy=self.policy,
            columns=self.columns,
            max_reading_bytes=self.max_reading_bytes,
            history_bytes=self.history_bytes,
        )

    def contains_topic_filter(self, topic_filter: str) -> bool:
        """May a subscriber narrow this channel to ``topic_filter`` (already validated)?"""
        return any(contains(f, topic_filter) for f in self.topics)

    def may_publish_to(self, topic: str) -> bool:
        return not is_wildcard(topic) and any(matches(f, topic) for f in self.write_topics)

    def public(self) -> dict[str, object]:
        """What a user may see about the channel (no principals, no broker facts)."""
        return {
            "name": self.name,
            "topics": list(self.topics),
            "columns": self.columns.pattern if self.columns else None,
            "format": self.format.value,
            "time_field": self.decoder.time_field,
            "description": self.description,
            "units": dict(self.units),
        }


def _key(name: str, *path: str | int) -> str:
    rendered = "".join(f"[{p!r}]" for p in path)
    return f"c.IoTCableApp.channels[{name!r}]{rendered}"


def _string_list(value: object, where: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings ({what}), got {value!r}")
    return tuple(value)


def _principals(value: object, where: str) -> tuple[str, ...]:
    items = _string_list(value, where, "principals")
    for i, p in enumerate(items):
        if not PRINCIPAL.match(p):
            raise ConfigError(
                f"{where}[{i}] is {p!r}; a principal is '*', 'user:NAME' or 'group:NAME'"
            )
    return items


def _filters(value: object, where: str) -> tuple[str, ...]:
    items = _string_list(value, where, "MQTT topic filters")
    if not items:
        raise ConfigError(f"{where} is empty; give at least one MQTT topic filter")
    for i, f in enumerate(items):
        try:
            validate_filter(f)
        except TopicError as e:
            raise ConfigError(f"{where}[{i}] {f!r} is not a valid MQTT topic filter: {e}") from e
    return items


def _positive(value: object, where: str, kind: type[int] | type[float]) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or value <= 0 or (kind is int and not isinstance(value, int)):  # type: ignore[operator]
        noun = "a positive integer" if kind is int else "a positive number of seconds"
        raise ConfigError(f"{where} must be {noun}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _bytes(value: object, where: str, most: int | None = None) -> int:
    """A positive whole number of bytes, at most ``most``."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where} must be a positive integer (bytes), got {value!r}")
    if most is not None and value > most:
        raise ConfigError(
            f"{where} is {value:,}; at most {most:,} bytes, so that one reading always fits "
            "the largest frame every client accepts"
        )
    return value


def _units(value: object, where: str) -> dict[str, str]:
    """``{"temperature": "°C"}``: payload field names to short unit texts."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a dict of field -> unit, e.g. {{'temperature': '°C'}}")
    units: dict[str, str] = {}
    for key, unit in value.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: the field name {key!r} must be a non-empty string")
        if not isinstance(unit, str) or not unit or len(unit) > MAX_UNIT_LENGTH:
            raise ConfigError(
                f"{where}[{key!r}] must be a unit text of 1-{MAX_UNIT_LENGTH} characters "
                f"such as '°C', got {unit!r}"
            )
        if not unit.isprintable():
            raise ConfigError(f"{where}[{key!r}] {unit!r} has control characters")
        units[key] = unit
    return units


def parse_channel(name: object, raw: object) -> ChannelConfig:
    if not isinstance(name, str) or not CHANNEL_NAME.match(name):
        raise ConfigError(
            f"channel name {name!r} in c.IoTCableApp.channels is invalid: use 1-64 letters, "
            "digits, '_', '-' or '.', starting with a letter or digit"
        )
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{_key(name)} must be a dict of settings, got {raw!r}")
    unknown = sorted(set(raw) - set(CHANNEL_KEYS))
    if unknown:
        allowed = "\n".join(f"  {k}: {v}" for k, v in CHANNEL_KEYS.items())
        raise ConfigError(f"{_key(name)} has unknown key(s) {unknown}; allowed keys:\n{allowed}")
    if "topics" not in raw:
        raise ConfigError(f"{_key(name)} needs 'topics': {CHANNEL_KEYS['topics']}")
    topics = _filters(raw["topics"], _key(name, "topics"))

    fmt_raw = raw.get("format", "json")
    csv_columns = raw.get("csv_columns")
    if csv_columns is not None:
        csv_columns = _string_list(csv_columns, _key(name, "csv_columns"), "column names")
    time_field = raw.get("time_field")
    if time_field is not None and not isinstance(time_field, str):
        raise ConfigError(f"{_key(name, 'time_field')} must be a string, got {time_field!r}")
    try:
        # JSON payloads decode with orjson first (the same readings, 2-3x faster); the
        # standard library's decoder says why a payload is refused.
        decoder = make_decoder(
            str(fmt_raw), csv_columns=csv_columns, time_field=time_field, json_loads=orjson_loads
        )
    except DecoderConfigError as e:
        raise ConfigError(f"{_key(name)}: {e}") from e

    columns: TopicTemplate | None = None
    if raw.get("columns") is not None:
        pattern = raw["columns"]
        if not isinstance(pattern, str):
            raise ConfigError(f"{_key(name, 'columns')} must be a string like 'plant/{{site}}/x'")
        try:
            columns = TopicTemplate(pattern)
        except TopicError as e:
            raise ConfigError(f"{_key(name, 'columns')} {pattern!r}: {e}") from e

    write_topics = (
        _filters(raw["write_topics"], _key(name, "write_topics"))
        if "write_topics" in raw
        else topics
    )
    policy_raw = raw.get("policy", Policy.CONFLATE.value)
    try:
        policy = Policy(policy_raw)
    except ValueError:
        raise ConfigError(
            f"{_key(name, 'policy')} is {policy_raw!r}; expected 'conflate' or 'disconnect'"
        ) from None
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{_key(name, 'description')} must be a string")
    return ChannelConfig(
        name=name,
        topics=topics,
        format=decoder.format,
        decoder=decoder,
        columns=columns,
        read=_principals(raw.get("read", []), _key(name, "read")),
        write=_principals(raw.get("write", []), _key(name, "write")),
        write_topics=write_topics,
        history_limit=int(
            _positive(raw.get("history_limit", 1000), _key(name, "history_limit"), int)
        ),
        history_ttl=_positive(raw.get("history_ttl", 3600), _key(name, "history_ttl"), float),
        policy=policy,
        description=description,
        units=_units(raw.get("units", {}), _key(name, "units")),
        max_reading_bytes=_bytes(
            raw.get("max_reading_bytes", DEFAULT_MAX_READING_BYTES),
            _key(name, "max_reading_bytes"),
            MAX_READING_BYTES,
        ),
        history_bytes=_bytes(
            raw.get("history_bytes", DEFAULT_HISTORY_BYTES), _key(name, "history_bytes")
        ),
    )


def parse_channels(raw: object) -> dict[str, ChannelConfig]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"c.IoTCableApp.channels must be a dict of channels, got {raw!r}")
    return {str(name): parse_channel(name, value) for name, value in raw.items()}


def load_channels_file(path: str | Path) -> dict[str, object]:
    """Read a channels file: JSON (``.json``) or TOML (``.toml``), top level = channels."""
    p = Path(path)
    where = f"c.IoTCableApp.channels_file ({p})"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{where} cannot be read: {e.strerror}") from e
    try:
        if p.suffix == ".toml":
            data: object = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{where}: use a .json or .toml file")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{where} is not valid {p.suffix[1:].upper()}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a table/object of channels")
    channels = data.get("channels", data)
    if not isinstance(channels, dict):
        raise ConfigError(f"{where}: 'channels' must be a table/object of channels")
    return channels
