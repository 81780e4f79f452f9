"""Shared fixtures. Server fixtures (pytest-jupyter) live in tests/integration/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import Mosquitto

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh anonymous mosquitto on a free loopback port, stopped after the test."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def secured_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto that requires a username and a unique password."""
    import secrets

    broker = Mosquitto(
        tmp_path / "mosquitto",
        username="bridge",
        password=f"s3cret-{secrets.token_hex(12)}",
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
