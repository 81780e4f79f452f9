"""The jupyter-server extension: configuration, websocket and REST handlers."""
