"""The example notebooks run top to bottom in the set-up a user has: ``iotcable demo``
(embedded broker, simulator, JupyterLab with the demo's channels), each in a kernel that
Lab started, so ``connect()`` finds the server through the extension's kernel token and
the commands go out as the person who started the demo.

The quickstart runs cell by cell in Chromium instead (tests/browser/test_quickstart.py),
as a new user runs it; the tour runs here, through nbclient.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from tests.demos import RunningDemo, execute_in_lab, outputs

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


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


def test_tour_runs_on_two_channels_and_draws_a_matplotlib_chart(shared_demo: RunningDemo) -> None:
    notebook = read_notebook("tour")
    execute_in_lab(shared_demo, notebook)
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


def test_the_notebooks_are_stored_without_outputs() -> None:
    names = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["quickstart", "tour"]
    for name in names:
        read_notebook(name)  # fails on outputs
