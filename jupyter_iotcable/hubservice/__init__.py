"""The channel server as a JupyterHub service (``iotcable hub-service``); see docs/jupyterhub.md.

Importing this package is cheap; the service app (jupyter_server, jupyterhub) loads when
the extension point or ``main`` is used.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import IoTCableServiceExtension

    return [{"module": "jupyter_iotcable.hubservice", "app": IoTCableServiceExtension}]


def main(argv: list[str] | None = None) -> int:
    from .app import main as run

    return run(argv)
