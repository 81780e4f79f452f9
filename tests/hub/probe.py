"""Look for a secret from inside a user's kernel, everywhere the kernel's OS user can read.

The test sends this file's source to the kernel and calls ``probe(secret)``; it is
plain standard library (plus urllib) so that it runs in any kernel. It reads:

- the kernel's own environment;
- ``/proc/*/environ`` and ``/proc/*/cmdline`` of every process it may read (its own OS
  user's: the single-user server, other kernels; the hub's and the service's are refused);
- every file under its home directory and the server's runtime directory;
- every answer of the iotcable endpoints it can reach (its server's ``iotcable/api/*`` with
  the kernel's ``IOTCABLE_TOKEN``, the service's through the hub with the server's hub
  token) and the hub API's ``/user`` and ``/services``.

It returns where the secret was found and how much it searched (so that "not found"
means something: every category searched something).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

MAX_FILE = 16 << 20


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_FILE)
    except OSError:
        return None


def _get(url: str, token: str) -> bytes | None:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as e:
        return bytes(e.read())
    except OSError:
        return None


def probe(secret: str, service_url: str | None = None) -> dict[str, Any]:
    needle = secret.encode()
    found: list[str] = []
    searched = {"environ": 0, "proc_environ": 0, "proc_cmdline": 0, "files": 0, "responses": 0}

    searched["environ"] = len(os.environ)
    found += [f"environ:{k}" for k, v in os.environ.items() if secret in v or secret in k]

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        for kind in ("environ", "cmdline"):
            data = _read(proc / kind)
            if data is None or (kind == "environ" and not data):
                continue  # refused (another user's process), or gone
            searched[f"proc_{kind}"] += 1
            if needle in data:
                found.append(f"/proc/{proc.name}/{kind}")

    roots = [Path.home()]
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        roots.append(Path(jupyter_runtime_dir()))
    except ImportError:
        pass
    seen: set[Path] = set()
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                if path in seen or not path.is_file():
                    continue
                seen.add(path)
                data = _read(path)
                if data is None:
                    continue
                searched["files"] += 1
                if needle in data:
                    found.append(str(path))

    answers: list[tuple[str, bytes | None]] = []
    url, token = os.environ.get("IOTCABLE_URL"), os.environ.get("IOTCABLE_TOKEN")
    if url and token:
        for endpoint in ("iotcable/api/status", "iotcable/api/channels"):
            answers.append((url + endpoint, _get(url + endpoint, token)))
    hub_api = os.environ.get("JUPYTERHUB_API_URL")
    hub_token = os.environ.get("JUPYTERHUB_API_TOKEN")
    if hub_api and hub_token:
        for endpoint in ("/user", "/services"):
            answers.append((hub_api + endpoint, _get(hub_api + endpoint, hub_token)))
        if service_url:
            for endpoint in ("iotcable/api/status", "iotcable/api/channels"):
                answers.append((service_url + endpoint, _get(service_url + endpoint, hub_token)))
    for where, body in answers:
        if body is None:
            continue
        searched["responses"] += 1
        if needle in body:
            found.append(where)
    return {"found": found, "searched": searched}
