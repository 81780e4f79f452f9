"""Helpers for session tests: an engine over a MemoryBridge and a socket that is a list.

A :class:`Client` drives one :class:`~jupyter_iotcable.server.session.CableSession` the way
the tornado adapter does, with a clock the test moves and a socket whose progress the test
decides: by default it takes every frame at once; ``stall()`` makes it take nothing (a
client that does not read), ``drain()`` lets it catch up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jupyter_iotcable.bridge import MemoryBridge
from jupyter_iotcable.protocol import Subprotocol
from jupyter_iotcable.server.access import Identity, PrincipalAccess
from jupyter_iotcable.server.config import parse_channels
from jupyter_iotcable.server.engine import CableEngine, EngineSettings
from jupyter_iotcable.server.publish import Refusal
from jupyter_iotcable.server.session import CableSession, wire_size

CHANNELS: dict[str, dict[str, Any]] = {
    "telemetry": {
        "topics": ["plant/+/+/env"],
        "columns": "plant/{site}/{device}/env",
        "read": ["*"],
        "history_limit": 200_000,
    },
    "commands": {"topics": ["plant/+/+/cmd"], "read": ["*"], "write": ["*"]},
    "numbers": {"topics": ["num/#"], "format": "number", "read": ["*"]},
    "strict": {"topics": ["strict/#"], "format": "number", "read": ["*"], "policy": "disconnect"},
    "secret": {"topics": ["secret/#"], "read": ["user:somebody-else"]},
    "drop": {"topics": ["drop/#"], "read": ["group:ops"], "write": ["*"]},
}

EXT = Subprotocol.EXT
IOTCABLE = Subprotocol.IOTCABLE
PLAIN = Subprotocol.PLAIN
ANN = PrincipalAccess(Identity("ann", frozenset()))


def engine(channels: dict[str, dict[str, Any]] | None = None, /, **settings: Any) -> CableEngine:
    """An engine over a connected MemoryBridge (``engine.bridge``), not started: no tasks."""
    built = CableEngine(
        parse_channels(channels or CHANNELS), EngineSettings(**settings), MemoryBridge
    )
    bridge(built).connect()
    return built


def bridge(engine: CableEngine) -> MemoryBridge:
    assert isinstance(engine.bridge, MemoryBridge)
    return engine.bridge


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now


@dataclass
class Client:
    """One connection: the session, the frames it sent, the socket's progress."""

    engine: CableEngine
    subprotocol: Subprotocol = IOTCABLE
    access: PrincipalAccess = ANN
    clock: Clock = field(default_factory=Clock)
    sid: str = "sid-1"
    frames: list[Any] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)
    stalled: bool = False
    unwritten: int = 0  # bytes handed to the socket that it has not taken
    session: CableSession = field(init=False)

    def __post_init__(self) -> None:
        self.session = CableSession(
            self.engine, self.access, self.subprotocol, self.sid, self, self.clock.now
        )

    # -- the Transport --------------------------------------------------------------

    def wake(self, delay: float) -> None:
        self.wakes.append(delay)

    # -- what the I/O layer does ------------------------------------------------------

    def open(self, resume: str | None = None) -> dict[str, Any]:
        self.session.open(self.clock.now, resume)
        self.pump()
        welcome: dict[str, Any] = self.frames[0]
        return welcome

    def send(self, command: Any) -> None:
        """A frame from the client; publishes are left for :meth:`perform`."""
        text = command if isinstance(command, str) else json.dumps(command)
        self.session.receive_text(text, self.clock.now)
        self.pump()

    async def perform(self) -> None:
        """Carry out the publishes the session asked for, as the adapter does."""
        for request in self.session.take_publishes():
            try:
                await self.engine.publish(request.channel, request.topic, request.payload)
            except Refusal as e:
                self.session.published(request, e.reason)
            else:
                self.session.published(request, None)
        self.pump()

    def advance(self, seconds: float = 0.0) -> None:
        """Time passes; the session does what is due."""
        self.clock.now += seconds
        self.session.advance(self.clock.now)
        self.pump()

    def pump(self) -> None:
        """Take what the session has to send; the socket takes it unless stalled."""
        self._collect()
        if not self.stalled and self.unwritten:
            self.drain()

    def stall(self) -> None:
        self.stalled = True

    def drain(self, nbytes: int | None = None) -> None:
        """The socket takes ``nbytes`` of what it was handed, or everything until the
        session has nothing more to send (it then stops stalling)."""
        if nbytes is not None:
            taken = min(nbytes, self.unwritten)
            self.unwritten -= taken
            self.session.written(taken, self.clock.now)
            self._collect()
            return
        self.stalled = False
        while self.unwritten:
            taken, self.unwritten = self.unwritten, 0
            self.session.written(taken, self.clock.now)
            self.session.advance(self.clock.now)
            self._collect()

    def _collect(self) -> None:
        for frame in self.session.data_to_send():
            self.frames.append(json.loads(frame))
            self.unwritten += wire_size(frame)

    # -- reading what came ------------------------------------------------------------

    def take(self) -> list[Any]:
        frames, self.frames = self.frames, []
        return frames

    def subscribe(self, identifier: str, **extra: Any) -> Any:
        self.send({"command": "subscribe", "identifier": identifier, **extra})
        return self.frames[-1] if extra.get("history") is None else self.frames

    def rows(self, identifier: str | None = None) -> list[list[Any]]:
        """Rows received (batch rows, or data frames as rows), in order; taken."""
        rows: list[list[Any]] = []
        for frame in self.take():
            if identifier is not None and frame.get("identifier") != identifier:
                continue
            if "batch" in frame:
                rows.extend(frame["batch"])
            elif "offset" in frame:
                m = frame["message"]
                rows.append([frame["offset"], m["time"], m["topic"], m["payload"]])
        return rows
