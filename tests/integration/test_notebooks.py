"""The example notebooks run top to bottom against a real server fed by the simulator.

The kernel is started by nbclient, not by the server, so it finds the server the way any
other kernel would without the server's help: through ``IOTCABLE_URL``/``IOTCABLE_TOKEN``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_iotcable.bridge import SimulatorConfig, run_simulator
from tests.brokers import Mosquitto
from tests.servers import LiveServer

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture
def simulator(mosquitto: Mosquitto) -> Iterator[None]:
    """Four devices (two per site) at 5 Hz on the test's mosquitto, in a thread of its own."""
    config = SimulatorConfig(
        broker_url=mosquitto.url, devices=4, rate=5.0, seed=7, dropout_interval=0
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(run_simulator(config, stop=stop, on_ready=ready.set),),
        daemon=True,
    )
    thread.start()
    try:
        assert ready.wait(10), "the simulator did not connect to mosquitto"
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # The device answered the command with its new setpoint.
        ("quickstart", "reported setpoint"),
        # Both subscriptions delivered: two devices in lyon, two in porto.
        ("tour", "from 4 devices"),
    ],
)
def test_notebook_runs_without_errors(
    name: str,
    expected: str,
    live_server: LiveServer,
    simulator: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("IOTCABLE_URL", live_server.url)
    monkeypatch.setenv("IOTCABLE_TOKEN", live_server.token)
    notebook = nbformat.read(  # type: ignore[no-untyped-call]
        NOTEBOOKS / f"{name}.ipynb", as_version=4
    )
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        f"{name}.ipynb is stored with outputs; clear them before committing"
    )
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=60,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # A failing cell raises CellExecutionError naming the cell and the traceback.
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )
    assert expected in printed
