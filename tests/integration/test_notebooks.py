"""The example notebooks run top to bottom in the set-up a user has: ``iotcable demo``
(embedded broker, simulator, JupyterLab with the demo's channels), each in a kernel that
Lab started, so ``connect()`` finds the server through the extension's kernel token and
the commands go out as the person who started the demo.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.demos import RunningDemo, execute_in_lab, outputs, running_demo

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    """One demo for both notebooks (starting one takes a while)."""
    tmp_path = tmp_path_factory.mktemp("notebooks-demo")
    with running_demo(tmp_path, "--workdir", str(tmp_path / "demo")) as running:
        yield running


def read_notebook(name: str) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(  # type: ignore[no-untyped-call]
        NOTEBOOKS / f"{name}.ipynb", as_version=4
    )
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        f"{name}.ipynb is stored with outputs; clear them before committing"
    )
    return notebook


def printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for output in outputs(notebook, "stream"))


def test_quickstart_runs_and_a_device_obeys_its_command(demo: RunningDemo) -> None:
    notebook = read_notebook("quickstart")
    execute_in_lab(demo, notebook)
    assert outputs(notebook, "error") == []
    text = printed(notebook)
    # The device answered the command with its new setpoint.
    assert "reported setpoint" in text
    # A demo younger than the five minutes of history asked for: the gap is explained.
    assert "when this server started" in text
    assert "faulted device(s)" in text


def test_tour_runs_on_two_channels_and_draws_a_matplotlib_chart(demo: RunningDemo) -> None:
    notebook = read_notebook("tour")
    execute_in_lab(demo, notebook)
    assert outputs(notebook, "error") == []
    text = printed(notebook)
    # The demo runs four devices, two per site: the plant subscription sees them all.
    assert "from 4 devices" in text
    # The command was seen on the commands channel and answered on telemetry.
    assert "reports setpoint" in text
    assert text.count(" flagged (") == 3
    # The chart the user sees: matplotlib's inline PNG, not a fallback.
    images = [output for output in outputs(notebook, "display_data") if "image/png" in output.data]
    assert len(images) == 1
    assert images[0].data["text/plain"].startswith("<Figure size")
