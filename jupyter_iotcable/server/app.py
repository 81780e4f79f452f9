"""``IoTCableApp``: the jupyter-server extension, configured with traitlets.

Admins enable it with ``jupyter server extension enable jupyter_iotcable`` (installing
the package does it through ``jupyter-config/``) and configure ``c.IoTCableApp`` in
``jupyter_server_config.py``. Invalid configuration stops this extension with an error
naming the key; the Jupyter server itself keeps running. With no channel configured (the
package enabled itself on a server nobody configured) the extension stays idle, says so
in one warning, and ``iotcable/api/status`` tells an authorized user how to configure it.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Float, Int, TraitError, Unicode

from ..bridge import (
    BridgeFactory,
    BrokerConfigError,
    BrokerSettings,
    EmbeddedBridge,
    MqttBridge,
    default_client_id,
    parse_broker_url,
)
from ..hub import DEFAULT_SERVER_HISTORY_BYTES
from .auth import HubOwner, KernelToken, fetch_hub_user
from .config import ConfigError, load_channels_file, parse_channels
from .engine import CableEngine, EngineSettings
from .hubclient import ServiceLink, normalize_service_url
from .limits import BucketMap

PACKAGE_LOGGER = "jupyter_iotcable"

NOT_CONFIGURED_HINT = (
    "no channels are configured, so jupyter_iotcable is idle (no broker connection). "
    "Set c.IoTCableApp.channels (and c.IoTCableApp.broker_url) in jupyter_server_config.py, "
    "e.g. c.IoTCableApp.channels = {'telemetry': {'topics': ['plant/+/+/env'], "
    "'read': ['*']}}; every setting is listed by `python -m jupyter_iotcable.server.configdoc` "
    "(docs/configuration.md). To silence this, disable the extension: "
    "`jupyter server extension disable jupyter_iotcable`."
)

# BrokerSettings fields -> the c.IoTCableApp key an admin sets. A password without a
# username is fixed by setting the username.
BROKER_KEYS = {
    "url": "broker_url",
    "username": "broker_username",
    "password": "broker_username",
    "client_id": "broker_client_id",
    "keepalive": "broker_keepalive",
    "protocol": "broker_protocol",
    "session_expiry": "broker_session_expiry",
    "ca_certs": "broker_ca_certs",
    "certfile": "broker_certfile",
    "keyfile": "broker_keyfile",
    "tls_insecure": "broker_tls_insecure",
}

TRAIT_ERROR = re.compile(r"The '(\w+)' trait of an? \w+ instance (.*?)\.?$", re.DOTALL)


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Bounds:
    """The accepted range of a numeric setting (both ends included)."""

    low: float
    high: float
    integer: bool
    unit: str

    def __str__(self) -> str:
        return f"{_number(self.low)} to {_number(self.high)} {self.unit}"

    def check(self, key: str, value: object) -> None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and self.integer:
            ok = isinstance(value, int)
        # NaN fails both comparisons, inf fails the upper bound: neither gets through.
        if not ok or not (self.low <= value <= self.high):  # type: ignore[operator]
            kind = "an integer" if self.integer else "a number"
            raise ConfigError(f"c.IoTCableApp.{key} must be {kind} from {self}, not {value!r}")


ENGINE_BOUNDS = {
    "max_message_size": Bounds(1024, 64 << 20, True, "bytes"),
    "max_subscriptions": Bounds(1, 100_000, True, "subscriptions"),
    "publish_rate": Bounds(0.001, 100_000, False, "publishes per second"),
    "publish_burst": Bounds(1, 100_000, True, "publishes"),
    "outbox_bytes": Bounds(1024, 1 << 30, True, "bytes"),
    "batch_interval": Bounds(0, 10, False, "seconds"),
    "batch_max": Bounds(1, 100_000, True, "readings"),
    "ping_interval": Bounds(0.1, 60, False, "seconds"),
    "session_ttl": Bounds(1, 86_400, False, "seconds"),
    "max_identifier_bytes": Bounds(64, 64 * 1024, True, "bytes"),
    "max_sessions": Bounds(0, 1_000_000, True, "sessions"),
    "max_sessions_per_user": Bounds(0, 100_000, True, "sessions"),
    "too_slow_grace": Bounds(0.1, 600, False, "seconds"),
    "history_bytes": Bounds(1 << 20, 1 << 40, True, "bytes"),
}


def _bounds(key: str) -> str:
    return f"Accepted: {ENGINE_BOUNDS[key]}."


def _link_error_message(error: TraitError) -> str:
    """A traitlets type error as the admin's key: ``c.IoTCableApp.KEY: expected ...``."""
    text = str(error)
    match = TRAIT_ERROR.match(text)
    if match is None:
        return f"c.IoTCableApp: {text}"
    return f"c.IoTCableApp.{match.group(1)}: {match.group(2)}"


def _level_number(level: object) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(str(level).upper())
    return number if isinstance(number, int) else logging.INFO


# Handlers of the server's log that the package logger currently shares (one server per
# process in production, several in a row in tests: each replaces the previous one's).
_adopted_handlers: list[logging.Handler] = []


def _bridge_factory(broker: BrokerSettings | None) -> BridgeFactory:
    """The configured broker, or without ``broker_url`` the embedded one."""
    if broker is None:
        return lambda filters, sink: EmbeddedBridge(filters, sink)
    return lambda filters, sink: MqttBridge(broker, filters, sink=sink)


class IoTCableApp(ExtensionApp):
    name = "jupyter_iotcable"
    description = "Live MQTT telemetry over authenticated ActionCable channels"
    load_other_extensions = True

    broker_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="MQTT broker, mqtt://host:port or mqtts://host:port. Unset: an embedded broker "
        "(amqtt) on 127.0.0.1, started and stopped with the server.",
    )
    broker_username = Unicode(None, allow_none=True, config=True, help="MQTT username.")
    broker_password_env = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Name of the environment variable holding the MQTT password (never the "
        "password itself in config files). The extension removes the variable from the "
        "server's environment as soon as it loads, before checking anything else, so "
        "kernels and terminals started by the server do not inherit it. This is not a "
        "security boundary: kernels run as the server's OS user, and any process of that "
        "user can still read the server's initial environment (/proc/PID/environ on "
        "Linux) or a password file; give the bridge a broker account whose ACL allows only "
        "what the channels need.",
    )
    broker_password_file = Unicode(
        None,
        allow_none=True,
        config=True,
        help="File whose first line is the MQTT password (e.g. a mounted secret). Set this "
        "or broker_password_env, not both.",
    )
    broker_client_id = Unicode(
        None,
        allow_none=True,
        config=True,
        help="MQTT client id. Stable, so the broker keeps our persistent session (QoS 1 "
        "readings queued while the bridge is away are delivered on return), and unique: "
        "a broker serves one connection per id, so two servers sharing one split the "
        "readings (the bridge then reports 'another client uses client id'). Unset: "
        "derived from the OS user, the host name, the server's configured port and root "
        "directory (under JupyterHub: the hub, user and server name), which is the same on "
        "every restart of that server.",
    )
    broker_protocol = Unicode(
        "auto",
        config=True,
        help="MQTT version: 'auto' (MQTT 5, else 3.1.1), '5' or '3.1.1'. Set '3.1.1' for a "
        "broker that speaks only 3.1.1 and ignores an MQTT 5 CONNECT instead of refusing it "
        "(amqtt does): 'auto' waits out the connect timeout (10 s) before falling back, on "
        "every start.",
    )
    broker_keepalive = Int(30, config=True, help="MQTT keepalive, 5 to 65535 seconds.")
    broker_session_expiry = Int(
        3600,
        config=True,
        help="Seconds the broker keeps our session while we are away (0: a clean session "
        "every time).",
    )
    broker_ca_certs = Unicode(None, allow_none=True, config=True, help="mqtts: CA bundle file.")
    broker_certfile = Unicode(
        None, allow_none=True, config=True, help="mqtts: client certificate file."
    )
    broker_keyfile = Unicode(None, allow_none=True, config=True, help="mqtts: client key file.")
    broker_tls_insecure = Bool(
        False, config=True, help="mqtts: skip hostname verification (testing only)."
    )

    channels = Dict(
        config=True,
        help="Channels: name -> {topics, format, columns, read, write, write_topics, "
        "csv_columns, time_field, history_limit, history_ttl, policy, description, units}. "
        "See docs/configuration.md. Empty (and no channels_file): the extension stays "
        "idle and iotcable/api/status says how to configure it.",
    )
    channels_file = Unicode(
        None,
        allow_none=True,
        config=True,
        help="A .json or .toml file of channels, merged under `channels` (which wins).",
    )
    groups = Dict(
        config=True,
        help="Groups for 'group:NAME' principals when not under JupyterHub: "
        "{'operators': ['alice', 'bob']} (a list of user names per group). Under "
        "JupyterHub the hub's groups apply too.",
    )
    owner = Unicode(
        None,
        allow_none=True,
        config=True,
        help="User name of the server's owner for 'user:NAME' principals. Default: "
        "$JUPYTERHUB_USER, else the operating-system user.",
    )

    max_message_size = Int(
        64 * 1024,
        config=True,
        help="Largest client frame (bytes); larger: close 1009. " + _bounds("max_message_size"),
    )
    max_subscriptions = Int(
        100, config=True, help="Subscriptions per connection. " + _bounds("max_subscriptions")
    )
    publish_rate = Float(
        10.0,
        config=True,
        help="Publishes per second per connection / REST user. " + _bounds("publish_rate"),
    )
    publish_burst = Int(
        20, config=True, help="Publish burst allowance. " + _bounds("publish_burst")
    )
    outbox_bytes = Int(
        1 << 20,
        config=True,
        help="Bound of each connection's outgoing queue (bytes). " + _bounds("outbox_bytes"),
    )
    batch_interval = Float(
        0.02,
        config=True,
        help="Ignored (kept so that existing configurations load): there is no batching "
        "delay. A reading goes to a connection as soon as its socket is free; readings that "
        "come while a write is pending go together in the next batch. " + _bounds("batch_interval"),
    )
    batch_max = Int(
        500,
        config=True,
        help="Readings per batch frame (iotcable-v1-json), at most. " + _bounds("batch_max"),
    )
    ping_interval = Float(
        3.0, config=True, help="ActionCable ping interval, seconds. " + _bounds("ping_interval")
    )
    session_ttl = Float(
        120.0,
        config=True,
        help="Seconds a dropped session can be resumed. " + _bounds("session_ttl"),
    )
    max_identifier_bytes = Int(
        1024,
        config=True,
        help="Largest subscription identifier (UTF-8 bytes); every frame about the "
        "subscription repeats it, and kept sessions hold it. Larger: reject_subscription. "
        + _bounds("max_identifier_bytes"),
    )
    max_sessions = Int(
        256,
        config=True,
        help="Dropped sessions kept for resume, oldest evicted first (0: no resume). "
        + _bounds("max_sessions"),
    )
    max_sessions_per_user = Int(
        32,
        config=True,
        help="Dropped sessions kept for resume per user, oldest evicted first. "
        + _bounds("max_sessions_per_user"),
    )
    too_slow_grace = Float(
        10.0,
        config=True,
        help="Seconds a client on a 'disconnect' channel gets to read what was already "
        "sent before its too_slow frame; a client that reads nothing meanwhile is dropped. "
        + _bounds("too_slow_grace"),
    )
    history_bytes = Int(
        DEFAULT_SERVER_HISTORY_BYTES,
        config=True,
        help="Memory the history of all channels may take together (bytes, what readings "
        "really cost in memory, not only their payloads); past it, the channel holding the "
        "most gives up its oldest readings first (a history request then reports the gap). "
        "Each channel has its own history_bytes too. " + _bounds("history_bytes"),
    )
    service_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Under JupyterHub: the base URL of the iotcable hub service (`iotcable "
        "hub-service`, e.g. http://127.0.0.1:10101/services/iotcable/). Set, this server "
        "holds no broker setting and runs no bridge: its iotcable endpoints relay to the "
        "service as the server's owner (with $JUPYTERHUB_API_TOKEN), so kernels, the "
        "sidebar and the CLI work as before while the broker credentials stay with the "
        "service. Default: $IOTCABLE_SERVICE_URL. See docs/jupyterhub.md.",
    )
    export_kernel_env = Bool(
        True,
        config=True,
        help="Export IOTCABLE_URL and IOTCABLE_TOKEN so kernels started afterwards can "
        "connect() without arguments (the token opens iotcable endpoints only).",
    )

    engine: CableEngine | None = None
    kernel_token: KernelToken
    link: ServiceLink | None = None
    configured = False
    _link_error: ConfigError | None = None
    _env_password: str | None = None
    _hub_owner: HubOwner | None = None
    _hub_task: asyncio.Task[None] | None = None

    # -- linking: before anything can fail ------------------------------------------------

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        """Link to the server; take the password variable away first, whatever happens.

        A type error in the config (``max_subscriptions = "many"``) raises here. Raised,
        jupyter_server would log a traceback and load the extension anyway with the config
        rolled back to defaults ("channels is empty", a second, misleading error); kept, it
        is the one error ``initialize_settings`` reports.
        """
        self._share_server_logging(serverapp)
        try:
            super()._link_jupyter_server_extension(serverapp)
        except TraitError as e:
            self._link_error = ConfigError(_link_error_message(e))
        finally:
            self._take_password_variable(serverapp)

    def _take_password_variable(self, serverapp: Any) -> None:
        """Pop the password variable so kernels never inherit it, valid config or not.

        The name comes from the raw config when linking failed (the trait is then unset).
        """
        name = self.broker_password_env
        if not name:
            for config in (self.config, serverapp.config):
                raw = config.get("IoTCableApp", {}).get("broker_password_env")
                if isinstance(raw, str) and raw:
                    name = raw
                    break
        if name:
            self._env_password = os.environ.pop(name, None)

    def _share_server_logging(self, serverapp: Any) -> None:
        """Send the package's log records (bridge, engine) to the server's log handlers.

        Without this they have no handler: INFO lines are lost and warnings reach stderr
        through logging's last resort, without time or level. The level is the server's
        ``log_level`` (its handlers' level), so that DEBUG records are not even created
        when the server would drop them. Records still propagate to the root logger.
        """
        package = logging.getLogger(PACKAGE_LOGGER)
        for handler in _adopted_handlers:
            package.removeHandler(handler)
        _adopted_handlers[:] = [h for h in serverapp.log.handlers if h not in package.handlers]
        for handler in _adopted_handlers:
            package.addHandler(handler)
        package.setLevel(_level_number(serverapp.log_level))

    # -- settings -------------------------------------------------------------------------

    def _resolve_password(self) -> str | None:
        if self.broker_password_env and self.broker_password_file:
            raise ConfigError(
                "c.IoTCableApp.broker_password_env and c.IoTCableApp.broker_password_file "
                "are both set; set only one"
            )
        if self.broker_password_env:
            if self._env_password is None:
                raise ConfigError(
                    f"c.IoTCableApp.broker_password_env names ${self.broker_password_env}, "
                    "which is not set in the server's environment"
                )
            return self._env_password
        if self.broker_password_file:
            try:
                with open(self.broker_password_file, encoding="utf-8") as f:
                    return f.readline().rstrip("\r\n")
            except OSError as e:
                raise ConfigError(
                    f"c.IoTCableApp.broker_password_file cannot be read: {e.strerror}"
                ) from None
        return None

    def _client_id(self) -> str:
        """The configured client id, else one derived for this server (stable, unique)."""
        if self.broker_client_id is not None:
            return str(self.broker_client_id)
        hub_user = os.environ.get("JUPYTERHUB_USER")
        if hub_user:
            # Under a hub the pod's host name and port change with every spawn; the hub,
            # the user and the server name identify the server.
            hub = os.environ.get("JUPYTERHUB_API_URL", "")
            server = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
            return default_client_id(hub_user, f"hub {hub}", f"server {server}")
        # The configured port (not the one port_retries may pick) keeps the id stable
        # across restarts; two servers started alike in one directory are told apart by
        # the bridge's takeover report.
        assert self.serverapp is not None, "linked to a server before settings are built"
        place = f"{self.serverapp.port} {self.serverapp.root_dir}"
        return default_client_id(getpass.getuser(), socket.gethostname(), place)

    def _broker_settings(self) -> BrokerSettings | None:
        if not self.broker_url:
            return None
        try:
            parse_broker_url(self.broker_url)
        except BrokerConfigError as e:
            raise ConfigError(f"c.IoTCableApp.broker_url: {e}") from None
        for key in ("broker_ca_certs", "broker_certfile", "broker_keyfile"):
            path = getattr(self, key)
            if path and not os.path.isfile(path):
                raise ConfigError(f"c.IoTCableApp.{key}: no such file {path!r}")
        password = self._resolve_password()
        try:
            return BrokerSettings(
                url=self.broker_url,
                username=self.broker_username,
                password=password,
                client_id=self._client_id(),
                keepalive=self.broker_keepalive,
                session_expiry=self.broker_session_expiry,
                protocol=self.broker_protocol,
                ca_certs=self.broker_ca_certs,
                certfile=self.broker_certfile,
                keyfile=self.broker_keyfile,
                tls_insecure=self.broker_tls_insecure,
            )
        except BrokerConfigError as e:
            keys = dict.fromkeys(f"c.IoTCableApp.{BROKER_KEYS.get(f, f)}" for f in e.fields)
            raise ConfigError(f"{', '.join(keys) or 'c.IoTCableApp'}: {e}") from None

    def _engine_settings(self) -> EngineSettings:
        for key, bounds in ENGINE_BOUNDS.items():
            bounds.check(key, getattr(self, key))
        return EngineSettings(
            max_message_size=self.max_message_size,
            max_subscriptions=self.max_subscriptions,
            publish_rate=self.publish_rate,
            publish_burst=self.publish_burst,
            outbox_bytes=self.outbox_bytes,
            batch_interval=self.batch_interval,
            batch_max=self.batch_max,
            ping_interval=self.ping_interval,
            session_ttl=self.session_ttl,
            max_identifier_bytes=self.max_identifier_bytes,
            max_sessions=self.max_sessions,
            max_sessions_per_user=self.max_sessions_per_user,
            too_slow_grace=self.too_slow_grace,
            history_bytes=self.history_bytes,
        )

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name, members in self.groups.items():
            where = f"c.IoTCableApp.groups[{name!r}]"
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}: a group name must be a non-empty string")
            # A string is a sequence too: 'bob' would become the members b, o and b.
            listed = isinstance(members, list | tuple | set | frozenset)
            if not listed or not all(isinstance(m, str) and m for m in members):
                raise ConfigError(
                    f"{where} must be a list of user names, e.g. ['alice', 'bob'], not {members!r}"
                )
            groups[name] = sorted(members)
        return groups

    def _channels(self) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        if self.channels_file:
            raw.update(load_channels_file(self.channels_file))
        raw.update(self.channels)
        return raw

    def _service_link(self) -> ServiceLink | None:
        """The hub service to relay to, when this server is one of its clients."""
        url = self.service_url or os.environ.get("IOTCABLE_SERVICE_URL")
        if not url:
            return None
        try:
            url = normalize_service_url(url)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if not token:
            raise ConfigError(
                "c.IoTCableApp.service_url is set but $JUPYTERHUB_API_TOKEN is not: a "
                "client of the iotcable hub service must be a server spawned by JupyterHub"
            )
        ignored = [key for key in ("broker_url", "channels", "channels_file") if getattr(self, key)]
        if ignored:
            self.log.warning(
                "jupyter_iotcable: %s ignored: this server is a client of the hub service "
                "at %s, which holds the broker settings and the channels",
                ", ".join(f"c.IoTCableApp.{k}" for k in ignored),
                url,
            )
        return ServiceLink(url, token)

    def initialize_settings(self) -> None:
        try:
            if self._link_error is not None:
                raise self._link_error
            self.link = self._service_link()
            if self.link is not None:
                self._settings_for_link(self.link)
                return
            raw_channels = self._channels()
            if not raw_channels:
                self._stay_idle()
                return
            channels = parse_channels(raw_channels)
            broker = self._broker_settings()
            settings = self._engine_settings()
            groups = self._groups()
        except (ConfigError, ValueError) as e:
            self.log.error("jupyter_iotcable is disabled: invalid configuration: %s", e)
            raise
        self.configured = True
        self.engine = CableEngine(channels, settings, _bridge_factory(broker))
        self.kernel_token = KernelToken()
        owner = self.owner or os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        if os.environ.get("JUPYTERHUB_API_TOKEN"):
            self._hub_owner = HubOwner(owner)
        self.settings.update(
            {
                "iotcable_engine": self.engine,
                "iotcable_kernel_token": self.kernel_token,
                "iotcable_owner": owner,
                "iotcable_groups": groups,
                "iotcable_hub_owner": self._hub_owner,
                "iotcable_rest_buckets": BucketMap(settings.publish_rate, settings.publish_burst),
            }
        )

    def _settings_for_link(self, link: ServiceLink) -> None:
        self.configured = True
        self.kernel_token = KernelToken()
        owner = self.owner or os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        self.settings.update(
            {
                "iotcable_kernel_token": self.kernel_token,
                "iotcable_owner": owner,
                "iotcable_groups": {},
                "iotcable_hub_owner": HubOwner(owner),
            }
        )

    def _stay_idle(self) -> None:
        """No channels: nothing to bridge, so no broker (nor embedded broker) either."""
        self.log.warning("jupyter_iotcable: %s", NOT_CONFIGURED_HINT)

    def initialize_handlers(self) -> None:
        from .handlers import (
            ChannelsHandler,
            MetricsHandler,
            NotConfiguredStatusHandler,
            PublishHandler,
            StatusHandler,
        )
        from .websocket import CableHandler

        if self.link is not None:
            from .hubclient import CableProxy, ChannelsProxy, PublishProxy, StatusProxy

            link = {"link": self.link}
            self.handlers.extend(
                [
                    ("iotcable/cable", CableProxy, link),
                    ("iotcable/api/channels", ChannelsProxy, {**link, "path": "channels"}),
                    ("iotcable/api/status", StatusProxy, {**link, "path": "status"}),
                    (
                        r"iotcable/api/channels/([^/]+)/publish",
                        PublishProxy,
                        {**link, "path": "publish"},
                    ),
                ]
            )
            return
        if not self.configured:
            self.handlers.append(
                ("iotcable/api/status", NotConfiguredStatusHandler, {"hint": NOT_CONFIGURED_HINT})
            )
            return
        engine = self.engine
        assert engine is not None
        args = {"engine": engine}
        self.handlers.extend(
            [
                ("iotcable/cable", CableHandler, args),
                ("iotcable/api/channels", ChannelsHandler, args),
                ("iotcable/api/status", StatusHandler, args),
                ("iotcable/api/metrics", MetricsHandler, args),
                (r"iotcable/api/channels/([^/]+)/publish", PublishHandler, args),
            ]
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.link is not None:
            self._export_kernel_env(serverapp, self.kernel_token.value)
            self.log.info("jupyter_iotcable: a client of the hub service at %s", self.link.url)
            return
        if self.engine is None:
            return
        await self.engine.start()
        if self._hub_owner is not None:
            self._hub_task = asyncio.create_task(self._learn_hub_owner(self._hub_owner))
        self._export_kernel_env(serverapp, self.kernel_token.value)
        self.log.info(
            "jupyter_iotcable: %d channel(s) at %s",
            len(self.engine.channels),
            url_path_join(serverapp.base_url, "iotcable/cable"),
        )

    def _export_kernel_env(self, serverapp: Any, token: str) -> None:
        if self.export_kernel_env:
            # Kernels inherit the server's environment when they start, so these reach
            # every kernel started from now on (and only iotcable accepts the token).
            os.environ["IOTCABLE_URL"] = url_path_join(serverapp.connection_url, "")
            os.environ["IOTCABLE_TOKEN"] = token

    async def _learn_hub_owner(self, hub_owner: HubOwner) -> None:
        """Ask the hub for the owner's model (groups, scopes) for kernel-token requests."""
        api_url = os.environ.get("JUPYTERHUB_API_URL", "")
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not (api_url and token):
            return
        model, problem = await fetch_hub_user(api_url, token)
        if problem is None and not hub_owner.learn(model):
            name = model.get("name") if isinstance(model, Mapping) else None
            problem = f"the hub's answer is not the owner {hub_owner.owner!r} (got {name!r})"
        if problem is not None:
            self.log.warning(
                "jupyter_iotcable: cannot read %s's JupyterHub groups (%s); kernel-token "
                "requests get them once the owner has used iotcable from the browser",
                hub_owner.owner,
                problem,
            )

    async def stop_extension(self) -> None:
        if self._hub_task is not None:
            self._hub_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hub_task
        if self.engine is not None:
            await self.engine.stop()
        kernel_token = getattr(self, "kernel_token", None)
        if kernel_token is not None and os.environ.get("IOTCABLE_TOKEN") == kernel_token.value:
            os.environ.pop("IOTCABLE_TOKEN", None)
            os.environ.pop("IOTCABLE_URL", None)
        package = logging.getLogger(PACKAGE_LOGGER)
        for handler in _adopted_handlers:
            package.removeHandler(handler)
        _adopted_handlers.clear()
        package.setLevel(logging.NOTSET)
