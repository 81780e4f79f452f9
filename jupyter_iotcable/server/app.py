"""``IoTCableApp``: the jupyter-server extension, configured with traitlets.

Admins enable it with ``jupyter server extension enable jupyter_iotcable`` (installing
the package does it through ``jupyter-config/``) and configure ``c.IoTCableApp`` in
``jupyter_server_config.py``. Invalid configuration stops this extension with an error
naming the key; the Jupyter server itself keeps running.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Float, Int, Unicode

from ..bridge import BrokerConfigError, BrokerSettings, parse_broker_url
from .config import ConfigError, load_channels_file, parse_channels
from .engine import CableEngine, EngineSettings


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
        "password itself in config files).",
    )
    broker_password_file = Unicode(
        None,
        allow_none=True,
        config=True,
        help="File whose first line is the MQTT password (e.g. a mounted secret).",
    )
    broker_client_id = Unicode(
        "jupyter-iotcable",
        config=True,
        help="MQTT client id. Stable, so the broker keeps our persistent session (QoS 1 "
        "readings queued while the bridge is away are delivered on return).",
    )
    broker_keepalive = Int(30, config=True, help="MQTT keepalive, seconds.")
    broker_session_expiry = Int(
        3600, config=True, help="Seconds the broker keeps our session while we are away."
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
        "csv_columns, time_field, history_limit, history_ttl, policy, description}. "
        "See docs/configuration.md.",
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
        "{'operators': ['alice', 'bob']}. Under JupyterHub the hub's groups apply too.",
    )
    owner = Unicode(
        None,
        allow_none=True,
        config=True,
        help="User name of the server's owner for 'user:NAME' principals. Default: "
        "$JUPYTERHUB_USER, else the operating-system user.",
    )

    max_message_size = Int(
        64 * 1024, config=True, help="Largest client frame (bytes); larger: close 1009."
    )
    max_subscriptions = Int(100, config=True, help="Subscriptions per connection.")
    publish_rate = Float(10.0, config=True, help="Publishes per second per connection / REST user.")
    publish_burst = Int(20, config=True, help="Publish burst allowance.")
    outbox_bytes = Int(
        1 << 20, config=True, help="Bound of each connection's outgoing queue (bytes)."
    )
    batch_interval = Float(0.02, config=True, help="Seconds readings are batched before a flush.")
    batch_max = Int(500, config=True, help="Readings that force a flush / per batch frame.")
    ping_interval = Float(3.0, config=True, help="ActionCable ping interval, seconds.")
    session_ttl = Float(120.0, config=True, help="Seconds a dropped session can be resumed.")
    export_kernel_env = Bool(
        True,
        config=True,
        help="Export IOTCABLE_URL and IOTCABLE_TOKEN so kernels started afterwards can "
        "connect() without arguments (the token opens iotcable endpoints only).",
    )

    engine: CableEngine | None = None

    def _resolve_password(self) -> str | None:
        if self.broker_password_env:
            # Popped, not read: kernels inherit the server's environment, and the broker
            # password must not reach a notebook.
            value = os.environ.pop(self.broker_password_env, None)
            if value is None:
                raise ConfigError(
                    f"c.IoTCableApp.broker_password_env names ${self.broker_password_env}, "
                    "which is not set in the server's environment"
                )
            return value
        if self.broker_password_file:
            try:
                with open(self.broker_password_file, encoding="utf-8") as f:
                    return f.readline().rstrip("\r\n")
            except OSError as e:
                raise ConfigError(
                    f"c.IoTCableApp.broker_password_file cannot be read: {e.strerror}"
                ) from None
        return None

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
        return BrokerSettings(
            url=self.broker_url,
            username=self.broker_username,
            password=self._resolve_password(),
            client_id=self.broker_client_id,
            keepalive=self.broker_keepalive,
            session_expiry=self.broker_session_expiry,
            ca_certs=self.broker_ca_certs,
            certfile=self.broker_certfile,
            keyfile=self.broker_keyfile,
            tls_insecure=self.broker_tls_insecure,
        )

    def _engine_settings(self) -> EngineSettings:
        positive = {
            "max_message_size": self.max_message_size,
            "max_subscriptions": self.max_subscriptions,
            "publish_rate": self.publish_rate,
            "publish_burst": self.publish_burst,
            "outbox_bytes": self.outbox_bytes,
            "batch_max": self.batch_max,
            "ping_interval": self.ping_interval,
            "session_ttl": self.session_ttl,
        }
        for key, value in positive.items():
            if value <= 0:
                raise ConfigError(f"c.IoTCableApp.{key} must be positive, got {value!r}")
        if self.batch_interval < 0:
            raise ConfigError("c.IoTCableApp.batch_interval must be >= 0 seconds")
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
        )

    def _channels(self) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        if self.channels_file:
            raw.update(load_channels_file(self.channels_file))
        raw.update(self.channels)
        if not raw:
            raise ConfigError(
                "c.IoTCableApp.channels is empty: configure at least one channel, e.g. "
                "{'telemetry': {'topics': ['plant/+/+/env'], 'read': ['*']}}"
            )
        return raw

    def initialize_settings(self) -> None:
        try:
            channels = parse_channels(self._channels())
            broker = self._broker_settings()
            settings = self._engine_settings()
            groups = {str(k): [str(m) for m in v] for k, v in self.groups.items()}
        except (ConfigError, ValueError) as e:
            self.log.error("jupyter_iotcable is disabled: invalid configuration: %s", e)
            raise
        self.engine = CableEngine(channels, settings, broker)
        owner = self.owner or os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        self.settings.update(
            {"iotcable_engine": self.engine, "iotcable_owner": owner, "iotcable_groups": groups}
        )

    def initialize_handlers(self) -> None:
        from .handlers import ChannelsHandler, PublishHandler, StatusHandler
        from .websocket import CableHandler

        engine = self.engine
        assert engine is not None
        args = {"engine": engine}
        self.handlers.extend(
            [
                ("iotcable/cable", CableHandler, args),
                ("iotcable/api/channels", ChannelsHandler, args),
                ("iotcable/api/status", StatusHandler, args),
                (r"iotcable/api/channels/([^/]+)/publish", PublishHandler, args),
            ]
        )

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.engine is None:
            return
        await self.engine.start()
        if self.export_kernel_env:
            # Kernels inherit the server's environment when they start, so these reach
            # every kernel started from now on (and only iotcable accepts the token).
            os.environ["IOTCABLE_URL"] = url_path_join(serverapp.connection_url, "")
            os.environ["IOTCABLE_TOKEN"] = self.engine.kernel_token.value
        self.log.info(
            "jupyter_iotcable: %d channel(s) at %s",
            len(self.engine.channels),
            url_path_join(serverapp.base_url, "iotcable/cable"),
        )

    async def stop_extension(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
            if os.environ.get("IOTCABLE_TOKEN") == self.engine.kernel_token.value:
                os.environ.pop("IOTCABLE_TOKEN", None)
                os.environ.pop("IOTCABLE_URL", None)
