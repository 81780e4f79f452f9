"""jupyter-iotcable: live IoT telemetry (MQTT) in Jupyter over ActionCable channels.

Importing this package is cheap: the client, pandas, ipywidgets and IPython load on first
use (``jupyter_iotcable.connect`` imports the client when it is first looked up; the
IPython extension, ``%load_ext jupyter_iotcable``, when it is loaded).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .client import (
        AuthenticationFailed,
        BlockingCallInCallback,
        BrokerReport,
        Cable,
        CableClosed,
        ChannelInfo,
        Channels,
        ConnectionFailed,
        Gap,
        GapCause,
        InvalidPayload,
        IoTCableError,
        IoTCableTimeout,
        PublishRefused,
        PublishResult,
        Reading,
        ServerNotFound,
        Subscription,
        SubscriptionRejected,
        UnknownName,
        connect,
        connect_async,
    )

__all__ = [
    "AuthenticationFailed",
    "BlockingCallInCallback",
    "BrokerReport",
    "Cable",
    "CableClosed",
    "ChannelInfo",
    "Channels",
    "ConnectionFailed",
    "Gap",
    "GapCause",
    "InvalidPayload",
    "IoTCableError",
    "IoTCableTimeout",
    "PublishRefused",
    "PublishResult",
    "Reading",
    "ServerNotFound",
    "Subscription",
    "SubscriptionRejected",
    "UnknownName",
    "__version__",
    "connect",
    "connect_async",
]
_CLIENT_EXPORTS = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    # PEP 562: the client (and tornado with it) loads only when someone asks for it.
    if name in _CLIENT_EXPORTS:
        value = getattr(importlib.import_module(".client", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_iotcable``: connect, and add the ``%iot`` magics and completion."""
    from .ipython.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_iotcable``: remove ``%iot`` and close the cable it opened."""
    from .ipython.magics import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import IoTCableApp

    return [{"module": "jupyter_iotcable", "app": IoTCableApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    # The prebuilt JupyterLab extension (built from labextension/ into this package).
    return [{"src": "labextension", "dest": "jupyter-iotcable"}]
