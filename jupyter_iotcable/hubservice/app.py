"""The channel server as a JupyterHub service: the extension's engine without a notebook server.

``IoTCableServiceApp`` is a Jupyter ``ServerApp`` that exposes none of Jupyter's own
services (no kernels, contents, terminals: ``default_services = ()``, the subset mechanism
jupyter_server offers to subclasses) and loads one extension, ``IoTCableServiceExtension``:
the same ``IoTCableApp`` (channels, broker, engine, websocket and REST handlers, history,
metrics, protocol), configured with the same ``c.IoTCableApp`` keys. What differs:

- **identity** comes from the hub: JupyterHub's own ``JupyterHubIdentityProvider``
  (``HubOAuth``: the user's API token in ``Authorization: token`` or ``?token=``, or the
  hub's OAuth cookie for this service), which admits only holders of
  ``access:services!service=NAME``. The hub's answer is cached ``HubOAuth.cache_max_age``
  seconds (10 here, JupyterHub's default is 300), so group and scope changes reach a new
  connection or request within that time, and an open websocket within that time plus
  its re-check interval (``handlers.ServiceCableHandler``, ``access.HubAccess``);
- **authorization**: the Authorizer allows the ``iotcable`` resource only (nothing else
  exists here anyway), and each channel accepts, besides its ``user:``/``group:``
  principals (hub users and groups), the holders of ``custom:iotcable:read:NAME`` /
  ``custom:iotcable:write:NAME`` (``scope:`` principals added to every channel);
- **who runs it**: the hub starts it (``c.JupyterHub.services``) as its own OS user, with
  the broker credentials only it can read. One broker connection for the whole hub.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any
from urllib.parse import urlsplit

from jupyter_server.auth import Authorizer
from jupyter_server.serverapp import ServerApp
from traitlets import default

from ..server.app import IoTCableApp
from ..server.config import ChannelConfig
from .scopes import scopable, scope_for

EXTENSION_MODULE = "jupyter_iotcable.hubservice"


def with_scope_principals(channel: ChannelConfig) -> ChannelConfig:
    """The channel, readable by ``custom:iotcable:read:NAME`` holders and writable by
    ``custom:iotcable:write:NAME`` holders, on top of its own principals."""
    if not scopable(channel.name):
        return channel
    return dataclasses.replace(
        channel,
        read=(*channel.read, "scope:" + scope_for("read", channel.name)),
        write=(*channel.write, "scope:" + scope_for("write", channel.name)),
    )


class ServiceAuthorizer(Authorizer):
    """Hub users may use iotcable (the channels decide the rest); nothing else exists."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource == "iotcable" and isinstance(getattr(user, "hub_user", None), dict)


class IoTCableServiceExtension(IoTCableApp):
    """``IoTCableApp`` serving hub users: scope principals, no kernel environment."""

    name = "jupyter_iotcable_hubservice"

    @default("export_kernel_env")
    def _no_kernels_here(self) -> bool:
        return False

    def initialize_settings(self) -> None:
        super().initialize_settings()
        if self.engine is not None:
            self.engine.channels = {
                name: with_scope_principals(channel)
                for name, channel in self.engine.channels.items()
            }

    def initialize_handlers(self) -> None:
        super().initialize_handlers()
        from ..server.handlers import ChannelsHandler, PublishHandler
        from ..server.websocket import CableHandler
        from .handlers import ServiceCableHandler, ServiceChannelsHandler, ServicePublishHandler

        # The hub's answer is looked up again while a websocket is open: about as often
        # as HubOAuth's cache can change it.
        provider = getattr(self.serverapp, "identity_provider", None)
        hub_auth = getattr(provider, "hub_auth", None)
        cache = float(getattr(hub_auth, "cache_max_age", 10) or 10)
        recheck = max(1.0, min(5.0, cache / 2))
        ours: dict[type, tuple[type, dict[str, Any]]] = {
            CableHandler: (ServiceCableHandler, {"recheck_interval": recheck}),
            ChannelsHandler: (ServiceChannelsHandler, {}),
            PublishHandler: (ServicePublishHandler, {}),
        }
        handlers = []
        for pattern, handler, *args in self.handlers:
            if handler in ours:
                replacement, extra = ours[handler]
                handlers.append((pattern, replacement, {**(args[0] if args else {}), **extra}))
            else:
                handlers.append((pattern, handler, *args))
        self.handlers = handlers

    async def _learn_hub_owner(self, hub_owner: Any) -> None:
        # The extension asks the hub for its server's owner, for kernel-token requests;
        # the service has no owner and starts no kernels.
        return None


class IoTCableServiceApp(ServerApp):
    """``iotcable hub-service``: the channel server the hub runs as a service."""

    name = "iotcable-hub-service"
    description = "jupyter-iotcable channels as a JupyterHub service"
    # Only the channels: no kernels, contents, files, terminals, sessions or nbconvert.
    default_services = ()  # type: ignore[assignment]

    @default("identity_provider_class")
    def _hub_identity(self) -> type:
        from jupyterhub.singleuser.extension import JupyterHubIdentityProvider

        provider: type = JupyterHubIdentityProvider
        return provider

    @default("authorizer_class")
    def _service_authorizer(self) -> type:
        return ServiceAuthorizer

    @default("base_url")
    def _hub_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/iotcable/")

    @default("ip")
    def _hub_ip(self) -> str:
        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        return (urlsplit(url).hostname or "127.0.0.1") if url else "127.0.0.1"

    @default("port")
    def _hub_port(self) -> int:
        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        port = urlsplit(url).port if url else None
        return port or 10101

    @default("port_retries")
    def _fixed_port(self) -> int:
        return 0  # the hub's proxy routes to exactly this port

    @default("open_browser")
    def _no_browser(self) -> bool:
        return False

    @default("allow_unauthenticated_access")
    def _authenticated_only(self) -> bool:
        return False

    def init_server_extensions(self) -> None:
        # Only our extension, whatever the environment's jupyter_server_config.d enables
        # (JupyterLab, notebook...): the service serves channels and nothing else.
        self.jpserver_extensions = {EXTENSION_MODULE: True}
        super().init_server_extensions()

    def init_webapp(self) -> None:
        super().init_webapp()
        # As in JupyterHub's single-user server: tornado's own XSRF check runs before
        # authentication, so it cannot tell a token request (exempt) from a cookie one;
        # JupyterHandler checks after authentication, with the hub's rules. And the hub's
        # request log, which scrubs tokens from URLs.
        from jupyterhub.log import log_request

        self.web_app.settings["xsrf_cookies"] = False
        self.web_app.settings["log_function"] = log_request

    def init_configurables(self) -> None:
        # Hub answers (a user's groups and scopes) are cached briefly: a revoked grant
        # reaches new connections and requests within this time.
        self.config.HubOAuth.setdefault("cache_max_age", 10)
        super().init_configurables()


def main(argv: list[str] | None = None) -> int:
    IoTCableServiceApp.launch_instance(argv=argv)
    return 0
