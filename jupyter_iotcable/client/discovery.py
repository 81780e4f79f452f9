"""Find the server ``connect()`` should talk to, and say exactly where we looked when none.

Order (DESIGN.md section 5): explicit arguments; ``IOTCABLE_URL`` / ``IOTCABLE_TOKEN``
(exported by the extension into the kernels it starts); JupyterHub's
``JUPYTERHUB_SERVICE_URL`` + ``JUPYTERHUB_API_TOKEN``; the runtime file of the server
that started this kernel, ``jpserver-$JPY_PARENT_PID.json``. Never "the first running
server": on a shared machine that could be someone else's server.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import ServerNotFound

if TYPE_CHECKING:
    from collections.abc import Mapping

_CABLE_PATH = "iotcable/cable"


@dataclass(frozen=True)
class Endpoint:
    """Where the server is: its base URL (http or https, ending with ``/``) and a token."""

    base_url: str
    token: str | None
    source: str

    def websocket_url(self, query: Mapping[str, str] | None = None) -> str:
        """The cable's ``ws(s)://`` URL, with ``query`` (e.g. ``{"sid": ...}``) appended."""
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit(
            (scheme, parts.netloc, parts.path + _CABLE_PATH, urlencode(dict(query or {})), "")
        )

    def api_url(self, path: str) -> str:
        """The URL of a REST endpoint under ``{base_url}iotcable/api/``."""
        return f"{self.base_url}iotcable/api/{path}"

    @property
    def display_url(self) -> str:
        """The base URL, safe to print (it never carries the token)."""
        return self.base_url


def normalize_url(url: str) -> tuple[str, str | None]:
    """Turn what a user pastes into ``(base_url, token_from_query)``.

    Accepts the server's base URL (``http://127.0.0.1:8888/``, ``https://hub/user/ann``),
    the same with ``?token=...`` as Jupyter prints it, or the cable's own
    ``ws(s)://.../iotcable/cable`` URL. An empty host (JupyterHub's bind URL
    ``http://:8888/user/ann/``) means this machine.
    """
    parts = urlsplit(url.strip())
    schemes = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(
            f"url must look like 'http://HOST:PORT/BASE/' (http, https, ws or wss), got {url!r}"
        )
    netloc = parts.netloc
    if netloc.startswith(":"):
        netloc = "127.0.0.1" + netloc
    path = parts.path
    if path.endswith(_CABLE_PATH):
        path = path[: -len(_CABLE_PATH)]
    if not path.endswith("/"):
        path += "/"
    token = dict(parse_qsl(parts.query)).get("token") or None
    return urlunsplit((schemes[parts.scheme], netloc, path, "", "")), token


def discover(
    url: str | None = None,
    token: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    runtime_dir: Path | None = None,
) -> Endpoint:
    """The endpoint to connect to; a ``token`` argument wins over any token found.

    Raises ``ServerNotFound`` listing every place tried when nothing gives a URL.
    """
    env = os.environ if environ is None else environ
    if url is not None:
        base, query_token = normalize_url(url)
        return Endpoint(base, token or query_token, "arguments")

    tried = ["a URL argument: none given"]
    found = _from_iotcable_env(env, tried) or _from_jupyterhub_env(env, tried)
    if found is None:
        found = _from_runtime_file(env, runtime_dir, tried)
    if found is None:
        raise ServerNotFound(tried)
    if token is not None:
        return Endpoint(found.base_url, token, found.source)
    return found


def _from_iotcable_env(env: Mapping[str, str], tried: list[str]) -> Endpoint | None:
    url, token = env.get("IOTCABLE_URL"), env.get("IOTCABLE_TOKEN")
    if not url:
        note = "IOTCABLE_TOKEN is set but IOTCABLE_URL is not" if token else "not set"
        tried.append(f"IOTCABLE_URL / IOTCABLE_TOKEN: {note}")
        return None
    base, query_token = normalize_url(url)
    return Endpoint(base, token or query_token, "IOTCABLE_URL / IOTCABLE_TOKEN")


def _from_jupyterhub_env(env: Mapping[str, str], tried: list[str]) -> Endpoint | None:
    url, token = env.get("JUPYTERHUB_SERVICE_URL"), env.get("JUPYTERHUB_API_TOKEN")
    if not url or not token:
        missing = [
            name
            for name, value in (("JUPYTERHUB_SERVICE_URL", url), ("JUPYTERHUB_API_TOKEN", token))
            if not value
        ]
        tried.append(
            "JUPYTERHUB_SERVICE_URL + JUPYTERHUB_API_TOKEN: " + " and ".join(missing) + " not set"
        )
        return None
    base, _ = normalize_url(url)
    return Endpoint(base, token, "JUPYTERHUB_SERVICE_URL + JUPYTERHUB_API_TOKEN")


def _from_runtime_file(
    env: Mapping[str, str], runtime_dir: Path | None, tried: list[str]
) -> Endpoint | None:
    label = "runtime file of the server that started this kernel"
    pid = env.get("JPY_PARENT_PID")
    if not pid:
        tried.append(f"{label}: JPY_PARENT_PID not set (this is not a kernel started by Jupyter)")
        return None
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = Path(jupyter_runtime_dir())
    path = runtime_dir / f"jpserver-{pid}.json"
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        tried.append(f"{label}: {path} does not exist")
        return None
    except (OSError, ValueError) as exc:
        tried.append(f"{label}: {path} could not be read ({exc})")
        return None
    url = info.get("url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        tried.append(f"{label}: {path} has no http(s) 'url'")
        return None
    token = info.get("token")
    base, _ = normalize_url(url)
    return Endpoint(base, token if isinstance(token, str) and token else None, str(path))
