"""The docs stay true to the code."""

from __future__ import annotations

from pathlib import Path

from jupyter_iotcable.server.configdoc import render

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_up_to_date() -> None:
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == render(), (
        "docs/configuration.md is stale: run "
        "`python -m jupyter_iotcable.server.configdoc > docs/configuration.md`"
    )


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash .ci/test" in readme
    assert "bash .ci/test" in (ROOT / ".ci" / "run").read_text()
