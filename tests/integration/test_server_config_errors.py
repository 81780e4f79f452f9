"""Invalid configuration stops the extension with a clear error; Jupyter keeps running."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from tests.servers import LiveServer


def test_bad_channel_config_disables_only_the_extension(tmp_path: Path) -> None:
    server = LiveServer(
        tmp_path / "server",
        None,
        channels={"telemetry": {"topics": ["plant/#/env"], "read": ["*"]}},
        extra_config={"broker_url": "mqtt://127.0.0.1:9"},
    )
    server.start(wait_for_broker=False)
    try:
        # The Jupyter server itself answers ...
        assert server.get("api/status")["started"]
        # ... the extension's endpoints are not there ...
        with pytest.raises(urllib.error.HTTPError) as info:
            server.get("iotcable/api/status")
        assert info.value.code == 404
        # ... and the log says which key is wrong and why.
        log = server.log_path.read_text()
        assert "c.IoTCableApp.channels['telemetry']['topics'][0]" in log
        assert "is not a valid MQTT topic filter" in log
    finally:
        server.stop()


def test_extension_is_enabled_by_installing_and_listed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_server.extension.serverextension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.stdout + out.stderr
    assert "jupyter_iotcable" in text, text
    assert "enabled" in text, text
