"""Shared fixtures. Server fixtures (pytest-jupyter) live in tests/integration/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.brokers import Mosquitto

if TYPE_CHECKING:
    from tests.demos import RunningDemo

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


@pytest.fixture(scope="session")
def shared_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    """One ``iotcable demo`` (4 devices at 5 Hz) for every test that only uses it: the
    notebooks, Lab's terminal, the quickstart in Chromium. Starting one takes 15-20 s.

    Lab's contents API (``demo.api``) reads its copy of the notebooks. Tests that stop,
    kill or restart the demo start their own (``tests.demos.running_demo``).
    """
    from tests.demos import running_demo

    tmp_path = tmp_path_factory.mktemp("shared-demo")
    with running_demo(tmp_path, "--workdir", str(tmp_path / "work")) as demo:
        yield demo
