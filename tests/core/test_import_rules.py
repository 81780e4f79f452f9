"""The layering of DESIGN.md section 2, enforced on the source (no imports executed).

- the core (protocol/, topics.py, readings.py, hub.py) imports only the standard library
  and the core itself;
- only bridge/ imports aiomqtt or amqtt;
- server/ never imports client/; client/ never imports server/ or bridge/;
- pandas and ipywidgets only in the leaves (frames.py, widgets.py), so that
  ``import jupyter_iotcable`` stays fast;
- IPython only in the IPython extension (ipython/), a leaf over the client that never
  imports server/ or bridge/;
- the engine side of server/ (the engine, the sessions, their tornado adapter, access,
  config) never imports jupyter_server: a JupyterHub service runs it without one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "jupyter_iotcable"
ROOT = "jupyter_iotcable"
CORE = ("protocol", "topics", "readings", "hub")
LEAVES = ("frames", "widgets")
IPYTHON_EXTENSION = "ipython"
# server/ modules that run outside a Jupyter server too (issue 13's hub service).
WITHOUT_JUPYTER_SERVER = (
    "access",
    "cable_socket",
    "codec",
    "config",
    "engine",
    "limits",
    "metrics",
    "publish",
    "session",
)
# Calls that import the module named by their first argument.
DYNAMIC_IMPORTS = ("import_module", "__import__")


def _module_name(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, package: Path = PACKAGE) -> set[str]:
    """Absolute names of every module imported anywhere in the file (lazy ones too).

    ``from X import a`` records ``X`` and ``X.a``: ``a`` may be a module (``from
    jupyter_iotcable import client``) and the file cannot tell; a name that is not a
    module still has ``X``'s layer, so recording it costs nothing. A call to
    ``importlib.import_module`` or ``__import__`` with a literal name counts too.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path, package)
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, here)
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and _called_name(node.func) in DYNAMIC_IMPORTS:
            name = _literal_argument(node)
            if name is not None:
                found.add(name)
    return found


def _literal_argument(call: ast.Call) -> str | None:
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _resolve(node: ast.ImportFrom, here: str) -> str:
    """The absolute module a ``from ... import`` statement imports from."""
    if not node.level:
        return node.module or ""
    base = here.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    prefix = ".".join(base)
    return f"{prefix}.{node.module}" if node.module else prefix


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(path: Path, package: Path = PACKAGE) -> list[str]:
    """Every import of ``path`` that breaks the layering, each said in one line."""
    module = _module_name(path, package)
    layer = _layer(module)
    found = []
    for imported in sorted(_imports(path, package)):
        if imported == ROOT:
            # Importing any submodule runs the package root first: it is in no layer.
            continue
        top = imported.split(".")[0]
        own = top == ROOT
        target = _layer(imported) if own else ""
        if layer in CORE and not (top in sys.stdlib_module_names or (own and target in CORE)):
            found.append(
                f"{module} is core and may import only the standard library and the core, "
                f"not {imported}"
            )
        if top in ("aiomqtt", "amqtt") and layer != "bridge":
            found.append(f"only bridge/ may import {top}; {module} does")
        if top in ("pandas", "ipywidgets") and layer not in LEAVES:
            found.append(f"{top} belongs in frames.py/widgets.py, not {module}")
        if top == "IPython" and layer != IPYTHON_EXTENSION:
            found.append(f"IPython belongs in ipython/ (the IPython extension), not {module}")
        if layer == IPYTHON_EXTENSION and target in ("server", "bridge"):
            found.append(
                f"ipython/ is a leaf over the client, it must not import server/ or bridge/: "
                f"{module} -> {imported}"
            )
        if (
            top == "jupyter_server"
            and layer == "server"
            and module.split(".")[2:3] in [[name] for name in WITHOUT_JUPYTER_SERVER]
        ):
            found.append(f"{module} runs without a Jupyter server: it must not import {imported}")
        if layer == "server" and target == "client":
            found.append(f"server/ must not import client/: {module} -> {imported}")
        if layer == "client" and target in ("server", "bridge"):
            found.append(f"client/ must not import server/ or bridge/: {module} -> {imported}")
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_there_is_code_to_check() -> None:
    names = {_module_name(p, PACKAGE) for p in SOURCES}
    assert "jupyter_iotcable.hub" in names
    assert any(n.startswith("jupyter_iotcable.protocol") for n in names)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_layering(path: Path) -> None:
    assert violations(path) == []


# -- the checker itself, on a planted package --------------------------------------------------


@pytest.mark.parametrize(
    ("where", "source", "expected"),
    [
        (
            "server/evil.py",
            "from jupyter_iotcable import client\n",
            "server/ must not import client/: jupyter_iotcable.server.evil -> "
            "jupyter_iotcable.client",
        ),
        (
            "server/evil.py",
            "from .. import bridge, client\n",
            "server/ must not import client/: jupyter_iotcable.server.evil -> "
            "jupyter_iotcable.client",
        ),
        (
            "server/evil.py",
            "def later():\n    from ..client.cable import Cable\n",
            "server/ must not import client/: jupyter_iotcable.server.evil -> "
            "jupyter_iotcable.client.cable",
        ),
        (
            "client/evil.py",
            "from jupyter_iotcable import server\n",
            "client/ must not import server/ or bridge/: jupyter_iotcable.client.evil -> "
            "jupyter_iotcable.server",
        ),
        (
            "client/__init__.py",
            "from .. import bridge\n",
            "client/ must not import server/ or bridge/: jupyter_iotcable.client -> "
            "jupyter_iotcable.bridge",
        ),
        (
            "hub.py",
            "from jupyter_iotcable import server\n",
            "jupyter_iotcable.hub is core and may import only the standard library and the "
            "core, not jupyter_iotcable.server",
        ),
        (
            "protocol/evil.py",
            "import importlib\npd = importlib.import_module('pandas')\n",
            "pandas belongs in frames.py/widgets.py, not jupyter_iotcable.protocol.evil",
        ),
        (
            "client/evil.py",
            "def later():\n    from IPython.core.magic import Magics\n",
            "IPython belongs in ipython/ (the IPython extension), not jupyter_iotcable.client.evil",
        ),
        (
            "ipython/evil.py",
            "from ..server.engine import CableEngine\n",
            "ipython/ is a leaf over the client, it must not import server/ or bridge/: "
            "jupyter_iotcable.ipython.evil -> jupyter_iotcable.server.engine",
        ),
        (
            "server/session.py",
            "from jupyter_server.base.handlers import JupyterHandler\n",
            "jupyter_iotcable.server.session runs without a Jupyter server: it must not import "
            "jupyter_server.base.handlers",
        ),
        (
            "server/evil.py",
            "mqtt = __import__('aiomqtt')\n",
            "only bridge/ may import aiomqtt; jupyter_iotcable.server.evil does",
        ),
    ],
)
def test_the_checker_catches_a_planted_violation(
    tmp_path: Path, where: str, source: str, expected: str
) -> None:
    package = plant(tmp_path, {where: source})
    assert expected in violations(package / where, package)


def test_the_checker_passes_a_planted_package_that_keeps_the_rules(tmp_path: Path) -> None:
    files = {
        "server/fine.py": "from jupyter_iotcable import bridge, hub\nfrom ..protocol import x\n",
        "client/fine.py": "from jupyter_iotcable import protocol\nfrom . import transport\n",
        "protocol/fine.py": "import json\nfrom .. import topics\nfrom .codec import Codec\n",
        "frames.py": "import importlib\npd = importlib.import_module('pandas')\n",
        "ipython/fine.py": "from IPython.core.magic import Magics\nfrom ..client import connect\n",
    }
    package = plant(tmp_path, files)
    assert {where: violations(package / where, package) for where in files} == {
        where: [] for where in files
    }


def plant(root: Path, files: dict[str, str]) -> Path:
    """A ``jupyter_iotcable`` package under ``root`` holding ``files`` (path -> source)."""
    package = root / "jupyter_iotcable"
    for where, source in files.items():
        path = package / where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return package


def test_package_import_is_light() -> None:
    code = (
        "import sys, jupyter_iotcable; "
        "heavy = [m for m in ('pandas', 'ipywidgets', 'aiomqtt', 'tornado', 'jupyter_server', "
        "'IPython') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import jupyter_iotcable pulled in: {out.stdout.strip()}"
