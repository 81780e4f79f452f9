"""The embedded broker's process: amqtt on a loopback port, guarded by generated credentials.

Run by ``EmbeddedBroker`` as ``python -m jupyter_iotcable.bridge.embedded_child``; not meant
to be started by hand. The protocol with the parent is three lines of plumbing:

- stdin, first line: the JSON configuration (host, port, username, password, and
  optionally remove_at_exit: the parent's temporary directory, removed when the broker
  exits). The password travels here rather than on the command line, where ``ps`` would
  show it to every user.
- stdout, one line once the broker accepts connections: ``{"port": N}``, the port actually
  bound (the parent asks for port 0 so that each server gets a free one without a race).
- stdin, end of file: the parent is gone (it stopped us, or it died and the kernel closed
  its end of the pipe); the broker shuts down. SIGTERM does the same. The watchdog is
  ``stop_when_stdin_closes``, shared with the demo's other children.

Everything amqtt logs goes to stderr, which the parent points at a file in its work
directory and quotes when the broker fails to start.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin

from .embedded import stop_when_stdin_closes

__all__ = ["CredentialsAuthPlugin", "broker_config", "main"]

SESSION_EXPIRY = 3600
"""Seconds amqtt keeps the session of a disconnected persistent client.

amqtt only speaks MQTT 3.1.1, where a client cannot ask for an expiry: without this, every
persistent client that goes away for good would be kept (with its queue) forever.
"""

LISTENER = "default"
PLUGIN = "jupyter_iotcable.bridge.embedded_child.CredentialsAuthPlugin"
"""The plugin's import path for amqtt (when we run as ``__main__`` the class's own
``__module__`` does not name an importable module)."""
CONFIG_KEYS = ("host", "port", "username", "password")


class CredentialsAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Accepts exactly one username/password pair (compared in constant time).

    amqtt's own FileAuthPlugin wants argon2 hashes in a password file; a generated password
    that lives as long as the process needs neither the file nor the hashing cost.
    """

    @dataclass
    class Config:
        username: str = ""
        password: str = ""

    async def authenticate(self, *, session: Any) -> bool:
        config = self.config
        username = session.username or ""
        password = session.password or ""
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        # Both comparisons always run, so the timing does not tell which part was wrong.
        user_ok = hmac.compare_digest(username.encode(), config.username.encode())
        password_ok = hmac.compare_digest(password.encode(), config.password.encode())
        return bool(config.username) and user_ok and password_ok


def broker_config(username: str, password: str) -> dict[str, Any]:
    """amqtt's configuration: one external listener (we own the socket) and our auth only."""
    return {
        "listeners": {LISTENER: {"type": "external"}},
        "session_expiry_interval": SESSION_EXPIRY,
        "plugins": {PLUGIN: {"username": username, "password": password}},
    }


async def serve(config: dict[str, Any]) -> None:
    broker = Broker(broker_config(config["username"], config["password"]))

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await broker.external_connected(
            StreamReaderAdapter(reader), StreamWriterAdapter(writer), LISTENER
        )

    # Our own listening socket (amqtt's "external" listener) so that port 0 works: the
    # kernel picks a free port and we report the one it picked. It is bound before the
    # broker starts, so that a port in use fails fast, and serves once the broker runs.
    server = await asyncio.start_server(
        connected, config["host"], int(config["port"]), start_serving=False
    )
    await broker.start()
    try:
        await server.start_serving()
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(json.dumps({"port": port}) + "\n")
        sys.stdout.flush()
        # Nothing else may go to the pipe the parent stopped reading: it could fill up.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        await until_stopped()
    finally:
        server.close()
        await broker.shutdown()


async def until_stopped() -> None:
    """Return on SIGTERM, which is also what the parent's end of stdin closing sends."""
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    # Only now: an end of file seen before the handler was installed would kill us
    # without a clean broker shutdown.
    stop_when_stdin_closes()
    await stopping.wait()


def read_config_line() -> bytes:
    """The first line of stdin, read without buffering beyond it (the rest is watched)."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            break
        line += chunk
    return line


async def run(line: bytes) -> int:
    try:
        config = json.loads(line)
    except ValueError as exc:
        print(f"embedded broker: the configuration on stdin is not JSON ({exc})", file=sys.stderr)
        return 2
    missing = [key for key in CONFIG_KEYS if not isinstance(config, dict) or key not in config]
    if missing:
        print(f"embedded broker: the configuration lacks {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        await serve(config)
    except OSError as exc:
        print(
            f"embedded broker: cannot listen on {config['host']}:{config['port']}: {exc}",
            file=sys.stderr,
        )
        return 1
    # After a failed start the parent quotes our log from that directory, and removes it.
    if config.get("remove_at_exit"):
        shutil.rmtree(config["remove_at_exit"], ignore_errors=True)
    return 0


def main() -> int:
    # The parent's terminal Ctrl-C is for the parent: it decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(run(read_config_line()))


if __name__ == "__main__":
    sys.exit(main())
