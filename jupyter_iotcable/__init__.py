"""jupyter-iotcable: live IoT telemetry (MQTT) in Jupyter over ActionCable channels.

Importing this package is cheap: the client, pandas and ipywidgets load on first use.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import IoTCableApp

    return [{"module": "jupyter_iotcable", "app": IoTCableApp}]
