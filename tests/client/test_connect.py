"""connect() failures that need no server: nothing listening, nothing found."""

from __future__ import annotations

import socket
import threading
import traceback
from typing import TYPE_CHECKING

import pytest
from tornado.simple_httpclient import HTTPTimeoutError

import jupyter_iotcable as iot
from jupyter_iotcable.client.discovery import Endpoint
from jupyter_iotcable.client.transport import describe_failure
from tests.brokers import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator


def iotcable_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("iotcable ")]


def test_nothing_listening_fails_at_once_and_leaves_no_thread() -> None:
    before = iotcable_threads()
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(iot.ConnectionFailed) as failed:
        iot.connect(url, token="t", timeout=5)
    assert str(failed.value) == (
        f"could not connect to {url}: connection refused. Is the Jupyter server running at "
        "this address and port?"
    )
    # Raised from the user's call, not from the cable thread's machinery.
    assert [frame.name for frame in traceback.extract_tb(failed.tb)] == [
        "test_nothing_listening_fails_at_once_and_leaves_no_thread",
        "connect",
    ]
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
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
        iot.InvalidPayload,
        iot.BlockingCallInCallback,
    ):
        assert issubclass(error, iot.IoTCableError)
    assert issubclass(iot.AuthenticationFailed, iot.ConnectionFailed)
    assert issubclass(iot.IoTCableTimeout, TimeoutError)
    assert issubclass(iot.InvalidPayload, ValueError)
    assert issubclass(iot.BlockingCallInCallback, RuntimeError)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers, as an http server does when
    a client opens with a TLS handshake (it waits for request headers that never come)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_an_https_url_that_gets_no_answer_says_the_scheme_may_be_wrong(silent_server: int) -> None:
    # Which fires first, the client's wait or tornado's connect timeout, is a race: both
    # errors must carry the hint.
    with pytest.raises((iot.IoTCableTimeout, iot.ConnectionFailed)) as info:
        iot.connect(f"https://127.0.0.1:{silent_server}/", token="t", timeout=1)
    assert str(info.value).endswith(
        "or the URL has the wrong scheme: a server that speaks plain http never answers a "
        f"TLS handshake, so try http://127.0.0.1:{silent_server}/"
    )
    endpoint = Endpoint(f"https://127.0.0.1:{silent_server}/", "t", "arguments")
    failure = describe_failure(HTTPTimeoutError("Timeout while connecting"), endpoint)
    assert isinstance(failure, iot.ConnectionFailed)
    assert str(failure) == (
        f"could not connect to https://127.0.0.1:{silent_server}/: Timeout while connecting; "
        "or the URL has the wrong scheme: a server that speaks plain http never answers a "
        f"TLS handshake, so try http://127.0.0.1:{silent_server}/"
    )
    plain = Endpoint(f"http://127.0.0.1:{silent_server}/", "t", "arguments")
    assert "scheme" not in str(describe_failure(HTTPTimeoutError("Timeout"), plain))
