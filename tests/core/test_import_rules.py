"""The layering of DESIGN.md section 2, enforced on the source (no imports executed).

- the core (protocol/, topics.py, readings.py, hub.py) imports only the standard library
  and the core itself;
- only bridge/ imports aiomqtt or amqtt;
- server/ never imports client/; client/ never imports server/ or bridge/;
- pandas and ipywidgets only in the leaves (frames.py, widgets.py), so that
  ``import jupyter_iotcable`` stays fast.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "jupyter_iotcable"
CORE = ("protocol", "topics", "readings", "hub")
LEAVES = ("frames", "widgets")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in the file (lazy ones too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = (
        _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                prefix = ".".join(base)
                mod = f"{prefix}.{node.module}" if node.module else prefix
                if node.module is None:
                    found.update(f"{prefix}.{alias.name}" for alias in node.names)
                else:
                    found.add(mod)
            elif node.module:
                found.add(node.module)
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_there_is_code_to_check() -> None:
    names = {_module_name(p) for p in SOURCES}
    assert "jupyter_iotcable.hub" in names
    assert any(n.startswith("jupyter_iotcable.protocol") for n in names)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_layering(path: Path) -> None:
    module = _module_name(path)
    layer = _layer(module)
    stdlib = sys.stdlib_module_names
    for imported in _imports(path):
        top = imported.split(".")[0]
        own = top == "jupyter_iotcable"
        target = _layer(imported) if own else ""
        if layer in CORE:
            assert top in stdlib or (own and target in CORE), (
                f"{module} is core and may import only the standard library and the core, "
                f"not {imported}"
            )
        if top in ("aiomqtt", "amqtt"):
            assert layer == "bridge", f"only bridge/ may import {top}; {module} does"
        if top in ("pandas", "ipywidgets"):
            assert layer in LEAVES, f"{top} belongs in frames.py/widgets.py, not {module}"
        if layer == "server":
            assert target != "client", f"server/ must not import client/: {module} -> {imported}"
        if layer == "client":
            assert target not in ("server", "bridge"), (
                f"client/ must not import server/ or bridge/: {module} -> {imported}"
            )


def test_package_import_is_light() -> None:
    code = (
        "import sys, jupyter_iotcable; "
        "heavy = [m for m in ('pandas', 'ipywidgets', 'aiomqtt', 'tornado', 'jupyter_server') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import jupyter_iotcable pulled in: {out.stdout.strip()}"
