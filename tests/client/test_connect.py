"""connect() failures that need no server: nothing listening, nothing found."""

from __future__ import annotations

import threading

import pytest

import jupyter_iotcable as iot
from tests.brokers import free_port


def iotcable_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("iotcable ")]


def test_nothing_listening_fails_at_once_and_leaves_no_thread() -> None:
    before = iotcable_threads()
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(iot.ConnectionFailed, match="connection refused"):
        iot.connect(url, token="t", timeout=5)
    assert iotcable_threads() == before


@pytest.mark.asyncio
async def test_connect_async_failure_leaves_no_thread() -> None:
    before = iotcable_threads()
    with pytest.raises(iot.ConnectionFailed, match="connection refused"):
        await iot.connect_async(f"http://127.0.0.1:{free_port()}/", token="t", timeout=5)
    assert iotcable_threads() == before


def test_connect_errors_share_one_base_class() -> None:
    for error in (
        iot.ServerNotFound,
        iot.ConnectionFailed,
        iot.AuthenticationFailed,
        iot.SubscriptionRejected,
        iot.PublishRefused,
        iot.CableClosed,
        iot.IoTCableTimeout,
    ):
        assert issubclass(error, iot.IoTCableError)
    assert issubclass(iot.AuthenticationFailed, iot.ConnectionFailed)
    assert issubclass(iot.IoTCableTimeout, TimeoutError)
