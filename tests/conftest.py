"""Shared fixtures. Server fixtures (pytest-jupyter) live in tests/integration/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.brokers import Mosquitto

if TYPE_CHECKING:
    from tests.demos import RunningDemo

pytest_plugins = ["pytest_jupyter.jupyter_server"]

#: Tests that share a costly fixture run on one xdist worker (``--dist loadgroup``, as
#: .ci/test runs them), by path: pytest 9 ignores the nodeid suffix by which pytest-xdist
#: 3.8 groups ``xdist_group`` tests (it sets ``item._nodeid``, which pytest 9 no longer
#: reads), so the marker alone grouped nothing and both workers started a JupyterHub.
XDIST_GROUPS = {
    # one JupyterHub, its users' servers and kernels (tests/hub/conftest.py)
    "tests/hub/": "hub",
    # one server, broker and Lab page (shared_server, shared_page)
    "tests/browser/test_lab_extension.py": "lab-extension",
    # one `iotcable demo` (shared_demo), with the tests that start their own
    "tests/browser/test_quickstart.py": "demo",
    "tests/integration/test_demo.py": "demo",
    "tests/integration/test_notebooks.py": "demo",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the groups of :data:`XDIST_GROUPS` (and the marker's, should
    pytest-xdist's suffix work again); every other test is a unit of its own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]

    class PathGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            for prefix, group in XDIST_GROUPS.items():
                if nodeid.startswith(prefix):
                    return group
            scope: str = super()._split_scope(nodeid)
            return scope

    return PathGroupScheduling(config, log)


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
