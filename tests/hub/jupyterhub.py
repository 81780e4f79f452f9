"""A real JupyterHub for the tests: configurable-http-proxy, real OS users, the service.

``TestHub`` writes a ``jupyterhub_config.py`` into a fresh directory and runs JupyterHub
(PyPI) with configurable-http-proxy (npm, installed into ``.venv`` by ``.ci/setup``) on
free loopback ports, the LocalProcessSpawner running each user's server as that user's
OS account, and the iotcable service (``python -m jupyter_iotcable.hubservice``) as an
OS user of its own that alone can read the broker password.

OS users: ``alice`` (hub group ``operators``), ``bob``, and ``iotcable`` (the service),
created with ``useradd`` when missing and marked as ours in their GECOS field; an account
of that name that is not ours stops the tests rather than being used. They are removed
at the end unless another test session still holds the shared lock.

Their processes run as other users, so what they execute must be reachable by them: the
directories above the checkout and its venv that others cannot enter (a clone under
``/root``, drwx------, as CI makes it) get o+x (enter, not list) for the session and
their modes back when the last session ends (``open_traversal``); and when the venv's
Python is still not reachable (a pyenv Python under ``/root``), a layered venv over
Debian's Python of the same version reads the project's venv (``user_python``).
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_iotcable.hubservice.scopes import (
    custom_scopes,
    oauth_client_allowed_scopes,
    scope_for,
    server_token_scopes,
)
from tests.brokers import Mosquitto, free_port
from tests.servers import NOT_YET, wait_ready

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
PROXY = VENV / "jupyterhub-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
MARK = "jupyter-iotcable test user"
USERS_LOCK = Path(tempfile.gettempdir()) / "jupyter-iotcable-hub-users.lock"
TRAVERSAL_STATE = Path(tempfile.gettempdir()) / "jupyter-iotcable-hub-traversal.json"
SERVICE = "iotcable"
SERVICE_USER = "iotcable"
PEOPLE = ("alice", "bob")

#: Channels of the test hub. Commands are for operators; telemetry for everyone.
HUB_CHANNELS: dict[str, dict[str, Any]] = {
    "telemetry": {
        "topics": ["plant/+/+/env"],
        "columns": "plant/{site}/{device}/env",
        "format": "json",
        "read": ["*"],
    },
    "commands": {
        "topics": ["plant/+/+/cmd"],
        "format": "json",
        "read": ["group:operators"],
        "write": ["group:operators"],
    },
}
#: Seconds the service caches the hub's answers in these tests (its default is 10).
HUB_ANSWER_CACHE = 3

#: Members of this hub group hold the role that grants write on commands by scope only.
COMMANDERS = "iotcable-commanders"


class HubSetupError(RuntimeError):
    """The machine cannot run the test hub; the message says what to do."""


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


# -- OS users ------------------------------------------------------------------------------


def _ours(name: str) -> bool | None:
    """True: our test account; False: somebody else's; None: no such account."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_gecos == MARK


def ensure_user(name: str) -> pwd.struct_passwd:
    ours = _ours(name)
    if ours is False:
        raise HubSetupError(
            f"an OS account {name!r} exists and was not made by these tests; the hub tests "
            "use accounts of that name. Remove it or run the tests on another machine."
        )
    if ours is None:
        try:
            _run("useradd", "--create-home", "--shell", "/bin/sh", "--comment", MARK, name)
        except subprocess.CalledProcessError as e:
            if _ours(name) is None:  # not a race with another session creating it
                raise HubSetupError(f"useradd {name} failed: {e.stderr.strip()}") from e
    entry = pwd.getpwnam(name)
    # A home left by an earlier account of that name (userdel refuses to remove a home
    # while a process of the user runs) may belong to another uid now: give it back.
    home = Path(entry.pw_dir)
    home.mkdir(mode=0o755, exist_ok=True)
    if home.stat().st_uid != entry.pw_uid:
        _run("chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(home))
    return entry


def remove_users(names: tuple[str, ...]) -> None:
    for name in names:
        if _ours(name):
            subprocess.run(["userdel", "--remove", name], capture_output=True)


# -- what other users can execute ------------------------------------------------------------


def _others_can_enter(path: Path) -> Path | None:
    """The first directory from / to ``path`` that other users cannot traverse."""
    current = Path("/")
    for part in path.parts[1:]:
        current = current / part
        try:
            mode = current.stat().st_mode
        except OSError:
            return current
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return current
    return None


def _blocking(path: Path) -> list[Path]:
    """Every directory from / to ``path`` that other users cannot traverse."""
    blocked: list[Path] = []
    current = Path("/")
    for part in path.parts[1:]:
        current = current / part
        try:
            mode = current.stat().st_mode
        except OSError:
            break
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            blocked.append(current)
    return blocked


@contextlib.contextmanager
def _traversal_state() -> Iterator[dict[str, int]]:
    """The directories the sessions opened and their modes before, under an exclusive lock.

    Root chmods what this file names, so it must be root's own: not a symlink, not
    writable by others (it lives in the shared temporary directory).
    """
    fd = os.open(TRAVERSAL_STATE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise HubSetupError(
                f"{TRAVERSAL_STATE} is not this user's own file (uid {info.st_uid}, mode "
                f"{stat.S_IMODE(info.st_mode):o}); remove it and run the tests again"
            )
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.read(fd, 1 << 20).decode()
        state: dict[str, int] = json.loads(text) if text.strip() else {}
        yield state
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(state).encode())
    finally:
        os.close(fd)


def open_traversal(*paths: Path) -> list[Path]:
    """Let other OS users *enter* (o+x, not list) the directories that keep them from
    ``paths``: a checkout under ``/root`` (drwx------, as CI clones it) holds the venv
    the users' servers and the service run. Each directory's mode before is recorded;
    the last session restores it (:func:`close_traversal`, from ``UsersLock.release``).
    """
    opened: list[Path] = []
    with _traversal_state() as state:
        for directory in dict.fromkeys(d for path in paths for d in _blocking(path)):
            mode = stat.S_IMODE(directory.stat().st_mode)
            try:
                directory.chmod(mode | stat.S_IXOTH)
            except OSError as e:
                raise HubSetupError(
                    f"{directory} is not traversable by other OS users (no o+x) and could "
                    f"not be made so ({e}); the hub tests run servers as other users: use a "
                    "checkout under a traversable directory"
                ) from e
            state.setdefault(str(directory), mode)
            opened.append(directory)
    return opened


def close_traversal() -> list[Path]:
    """Give back the modes :func:`open_traversal` changed (unless changed since)."""
    restored: list[Path] = []
    with _traversal_state() as state:
        for name, mode in state.items():
            directory = Path(name)
            with contextlib.suppress(OSError):
                if stat.S_IMODE(directory.stat().st_mode) == mode | stat.S_IXOTH:
                    directory.chmod(mode)
                    restored.append(directory)
        state.clear()
    return restored


def user_python(workdir: Path) -> str:
    """A Python that other OS users can run and that imports this project's venv.

    The venv's own Python when others can reach it; else a venv over the system Python
    of the same version, whose ``.pth`` adds the project venv's site-packages.
    """
    venv_python = VENV / "bin" / "python"
    if _others_can_enter(venv_python.resolve().parent) is None:
        return str(venv_python)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if os.access(candidate, os.X_OK) and _others_can_enter(Path(candidate).parent) is None:
            break
    else:
        raise HubSetupError(
            f"the venv's Python ({venv_python.resolve()}) is not reachable by other OS users "
            f"and there is no system python{version} to layer over it; install Debian's "
            f"python{version} or make the venv's interpreter readable by others"
        )
    layered = workdir / "python"
    _run(candidate, "-m", "venv", "--without-pip", str(layered))
    site = next(VENV.glob("lib/python*/site-packages"))
    pth = next(layered.glob("lib/python*/site-packages")) / "iotcable-project-venv.pth"
    pth.write_text(f"import site; site.addsitedir({str(site)!r})\n")
    for path in [layered, *layered.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    return str(layered / "bin" / "python")


# -- the hub -------------------------------------------------------------------------------


def _chown(path: Path, user: str, mode: int) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(mode)


@dataclass
class TestHub:
    workdir: Path
    mosquitto: Mosquitto
    broker_password: str
    public_port: int = field(default_factory=free_port)
    hub_port: int = field(default_factory=free_port)
    proxy_api_port: int = field(default_factory=free_port)
    service_port: int = field(default_factory=free_port)
    admin_token: str = field(default_factory=lambda: secrets.token_hex(24))
    login_password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(8))
    process: subprocess.Popen[bytes] | None = None
    python: str = ""
    #: Directories made traversable for the session (o+x), restored at its end.
    opened: list[Path] = field(default_factory=list)

    __test__ = False  # not a test class, whatever its name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}/"

    @property
    def service_url(self) -> str:
        """The service's base URL through the hub's proxy (a Jupyter-server-shaped root)."""
        return f"{self.url}services/{SERVICE}/"

    @property
    def log_path(self) -> Path:
        return self.workdir / "hub" / "jupyterhub.log"

    # -- configuration ----------------------------------------------------------------

    def _user_config(self, name: str, iotcable: dict[str, Any]) -> Path:
        """A JUPYTER_CONFIG_PATH entry for users' servers (readable by them: no secret)."""
        directory = self.workdir / "users" / name
        directory.mkdir(parents=True, exist_ok=True)
        config = {"IoTCableApp": iotcable}
        path = directory / "jupyter_server_config.json"
        path.write_text(json.dumps(config, indent=1))
        for p in (directory, path):
            p.chmod(0o755 if p.is_dir() else 0o644)
        return directory

    def _service_files(self) -> tuple[Path, Path]:
        """The service's directory (its user only) with the password and its config."""
        directory = self.workdir / "service"
        directory.mkdir(exist_ok=True)
        password = directory / "broker-password"
        password.write_text(self.broker_password + "\n")
        config = directory / "iotcable_service_config.json"
        config.write_text(
            json.dumps(
                {
                    "IoTCableApp": {
                        "broker_url": self.mosquitto.url,
                        "broker_username": self.mosquitto.username,
                        "broker_password_file": str(password),
                        "broker_client_id": "iotcable-hub-service",
                        "channels": HUB_CHANNELS,
                    },
                    # How long the service trusts the hub's answer about a user's scopes
                    # (the service's default is 10 s): a grant or a revocation reaches the
                    # service within this, and open connections within half of it more.
                    "HubOAuth": {"cache_max_age": HUB_ANSWER_CACHE},
                },
                indent=1,
            )
        )
        _chown(password, SERVICE_USER, 0o400)
        _chown(config, SERVICE_USER, 0o600)
        _chown(directory, SERVICE_USER, 0o700)
        return directory, config

    def write_config(self) -> Path:
        hub_dir = self.workdir / "hub"
        hub_dir.mkdir(mode=0o700, exist_ok=True)
        venv_share = VENV / "share" / "jupyter"
        service_dir, service_config = self._service_files()
        service_config_dir = self._user_config(
            "service-client",
            {"service_url": f"http://127.0.0.1:{self.service_port}/services/{SERVICE}/"},
        )
        today_dir = self._user_config(
            "today",
            {
                "broker_url": self.mosquitto.url,
                "broker_username": self.mosquitto.username,
                "broker_password_env": "IOTCABLE_BROKER_PASSWORD",
                "channels": HUB_CHANNELS,
            },
        )
        channels = sorted(HUB_CHANNELS)
        users_env = {
            "JUPYTER_PATH": str(venv_share),
            "JUPYTERLAB_DIR": str(venv_share / "lab"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
        settings = {
            "public_port": self.public_port,
            "hub_port": self.hub_port,
            "proxy_api_port": self.proxy_api_port,
            "service_port": self.service_port,
            "proxy": str(PROXY),
            "hub_dir": str(hub_dir),
            "python": self.python,
            "service_dir": str(service_dir),
            "service_config": str(service_config),
            "service_config_path": str(service_config_dir),
            "today_config_path": str(today_dir),
            "venv_config_path": str(VENV / "etc" / "jupyter"),
            "users_env": users_env,
            "admin_token": self.admin_token,
            "login_password": self.login_password,
            "broker_password": self.broker_password,
            "custom_scopes": custom_scopes(channels),
            "server_token_scopes": server_token_scopes(SERVICE, channels),
            "oauth_scopes": oauth_client_allowed_scopes(channels),
            "commanders_scopes": [scope_for("write", "commands")],
            "commanders": COMMANDERS,
            "service": SERVICE,
            "service_user": SERVICE_USER,
        }
        path = hub_dir / "jupyterhub_config.py"
        path.write_text(
            f"SETTINGS = {json.dumps(settings, indent=1)}\n"
            + (Path(__file__).parent / "hub_config_template.py").read_text()
        )
        path.chmod(0o600)
        return path

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        if not PROXY.exists():
            raise HubSetupError(
                f"configurable-http-proxy is missing ({PROXY}): run bash .ci/setup test"
            )
        self.workdir.chmod(0o755)
        for name in (*PEOPLE, SERVICE_USER):
            ensure_user(name)
        self.opened = open_traversal(ROOT, VENV)
        self.python = user_python(self.workdir)
        config = self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IOTCABLE_", "JUPYTER"))}
        env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=config.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            status = self.service_get("iotcable/api/status", self.admin_token)
            return bool(status.get("broker", {}).get("state") == "connected")

        wait_ready(
            self.process,
            ready,
            timeout=timeout,
            what="jupyterhub and its iotcable service",
            log_tail=self.log_tail,
            interval=0.25,
            # and an answer that is not JSON yet, while the hub routes to the service
            not_yet=(*NOT_YET, ValueError),
        )

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # The hub stops the proxy and its managed service; users' servers it leaves
            # running by design (cleanup_servers=False would), so stop them first.
            for user in PEOPLE:
                for server in ("server", "servers/today"):
                    with contextlib.suppress(urllib.error.URLError, OSError):
                        self.api("DELETE", f"users/{user}/{server}")
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)
        self.process = None

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- the hub's REST API --------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}hub/api/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {token or self.admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def service_get(self, path: str, token: str) -> Any:
        request = urllib.request.Request(
            self.service_url + path, headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def new_token(self, user: str, note: str = "test") -> str:
        """A personal API token of ``user`` (the hub's default: it inherits their scopes)."""
        model = self.api("POST", f"users/{user}/tokens", {"note": note})
        token: str = model["token"]
        return token

    def start_server(self, user: str, name: str = "", timeout: float = 120.0) -> dict[str, Any]:
        path = f"users/{user}/servers/{name}" if name else f"users/{user}/server"
        try:
            self.api("POST", path)
        except urllib.error.HTTPError as e:
            if e.code != 400:  # 400: already running
                raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{user}")
            server = model.get("servers", {}).get(name)
            if server and server.get("ready"):
                return dict(server)
            if not model.get("servers", {}).get(name, {}).get("pending") and not server:
                raise RuntimeError(f"{user}'s server {name!r} stopped:\n{self.log_tail()}")
            time.sleep(0.5)
        raise TimeoutError(f"{user}'s server {name!r} not ready in {timeout}s:\n{self.log_tail()}")

    def server_url(self, user: str, name: str = "") -> str:
        return f"{self.url}user/{user}/{name + '/' if name else ''}"

    def set_group(self, group: str, user: str, member: bool) -> None:
        self.api("POST" if member else "DELETE", f"groups/{group}/users", {"users": [user]})


class UsersLock:
    """Shared while a session uses the test accounts; whoever ends last removes them."""

    def __init__(self) -> None:
        self.file = USERS_LOCK.open("a+")
        fcntl.flock(self.file, fcntl.LOCK_SH)

    def release(self) -> None:
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another session still uses the accounts
        else:
            remove_users((*PEOPLE, SERVICE_USER))
            close_traversal()
        finally:
            self.file.close()


def make_workdir() -> Path:
    """A directory the users' servers can read (pytest's own tmp is private to root)."""
    return Path(tempfile.mkdtemp(prefix="iotcable-hub-"))


def group_of(user: str) -> str:
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
