"""Conversation transcripts: the two protocol machines talking, recorded as data.

Each scenario below scripts what the application on each side does (subscribe, confirm,
send rows...) and what a foreign peer might send; recording runs the real
``ServerConnection`` and ``ClientConnection`` against each other in memory and writes
every frame and event in order to ``tests/transcripts/<scenario>.<subprotocol>.json``:

    {"name": ..., "subprotocol": ..., "sid": ..., "description": ...,
     "steps": [
        {"from": "client" | "server", "frame": "<exact text>"},          # on the wire
        {"from": ..., "frame": ..., "foreign": true},                   # sent by a peer that
                                                                         # is not our machine
        {"server_does": "<method>", "args": {...}},                     # the server app decides
        {"client_does": "<method>", "args": {...}},                     # the client app acts
        {"server_event": {"event": "<ServerEvent class>", ...}},        # what the server app sees
        {"client_event": {"event": "<ClientEvent class>", ...}},        # what the client app sees
        {"reconnect": {"sid": "<sid of the new connection>"}}]}          # socket lost, new one

Replaying a transcript against ONE machine (``replay_server`` / ``replay_client``) feeds it
the other side's frames, performs its own side's actions, and requires exactly the
recorded frames and events: the TypeScript client replays the same files. The client
side always runs at ``NOW`` and opens its socket at the start.

    python -m tests.core.transcripts            # compare the recordings with the files
    python -m tests.core.transcripts --write    # rewrite the files after a deliberate change
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from collections import deque
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from jupyter_iotcable.protocol import (
    Backoff,
    ChannelRef,
    ClientConnection,
    DisconnectReason,
    HistoryRequest,
    ServerConnection,
    Subprotocol,
    make_identifier,
)

DIRECTORY = Path(__file__).resolve().parents[1] / "transcripts"
NOW = 1_700_000_000.0
FIRST_SID = "sid-1"

Step = dict[str, Any]


# -- applying recorded actions -------------------------------------------------------------------


def apply_server(conn: ServerConnection, method: str, args: Mapping[str, Any]) -> None:
    """Perform one ``server_does`` step."""
    if method == "send_rows":
        columns = args.get("columns")
        conn.send_rows(
            args["identifier"],
            args["stream_id"],
            args["epoch"],
            [tuple(row) for row in args["rows"]],
            dropped=args.get("dropped", 0),
            columns=(lambda topic: columns.get(topic, {})) if columns else None,
        )
    elif method == "disconnect":
        conn.disconnect(DisconnectReason(args["reason"]), reconnect=args["reconnect"])
    else:
        getattr(conn, method)(**args)


def apply_client(conn: ClientConnection, method: str, args: Mapping[str, Any]) -> None:
    """Perform one ``client_does`` step."""
    if method == "subscribe":
        history = args.get("history")
        conn.subscribe(
            args["channel"],
            history=HistoryRequest.from_wire(history) if history is not None else None,
            **args.get("params", {}),
        )
    else:
        getattr(conn, method)(**args)


def to_json(value: object) -> Any:
    """Events as plain JSON values, the way transcripts store them."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, HistoryRequest):
            return value.to_wire()
        if isinstance(value, ChannelRef):
            return {"channel": value.channel, "params": dict(value.params)}
        fields = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"event": type(value).__name__, **fields}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def new_client(subprotocol: Subprotocol) -> ClientConnection:
    conn = ClientConnection(subprotocol=subprotocol, backoff=Backoff(rng=random.Random(0)))
    conn.connection_opened(NOW)
    return conn


# -- replaying against one machine -----------------------------------------------------------------


class ReplayError(AssertionError):
    pass


def _expect(queue: deque[Any], recorded: Any, index: int, what: str) -> None:
    if not queue:
        raise ReplayError(f"step {index}: recorded {what} {recorded!r}, but none was produced")
    produced = queue.popleft()
    if produced != recorded:
        raise ReplayError(
            f"step {index}: recorded {what}\n  {recorded!r}\nproduced\n  {produced!r}"
        )


def _finish(frames: deque[str], events: deque[Any]) -> None:
    if frames or events:
        raise ReplayError(
            f"produced more than recorded: frames {list(frames)}, events {list(events)}"
        )


def replay_server(transcript: Mapping[str, Any]) -> None:
    """Drive a ServerConnection through a transcript; raise ReplayError on any difference."""
    subprotocol = Subprotocol(transcript["subprotocol"])
    conn = ServerConnection(subprotocol, transcript["sid"])
    frames: deque[str] = deque()
    events: deque[Any] = deque()
    for index, step in enumerate(transcript["steps"]):
        if "reconnect" in step:
            _finish(frames, events)
            conn = ServerConnection(subprotocol, step["reconnect"]["sid"])
        elif "server_does" in step:
            apply_server(conn, step["server_does"], step["args"])
        elif step.get("from") == "client":
            conn.receive_text(step["frame"])
        elif step.get("from") == "server" and not step.get("foreign"):
            frames.extend(conn.data_to_send())
            _expect(frames, step["frame"], index, "server frame")
        elif "server_event" in step:
            events.extend(to_json(e) for e in conn.events_received())
            _expect(events, step["server_event"], index, "server event")
        frames.extend(conn.data_to_send())
        events.extend(to_json(e) for e in conn.events_received())
    _finish(frames, events)


def replay_client(transcript: Mapping[str, Any]) -> None:
    """Drive a ClientConnection through a transcript; raise ReplayError on any difference."""
    conn = new_client(Subprotocol(transcript["subprotocol"]))
    frames: deque[str] = deque()
    events: deque[Any] = deque()
    for index, step in enumerate(transcript["steps"]):
        if "reconnect" in step:
            _finish(frames, events)
            conn.connection_lost(NOW)
            conn.connection_opened(NOW)
        elif "client_does" in step:
            apply_client(conn, step["client_does"], step["args"])
        elif step.get("from") == "server":
            conn.receive_text(step["frame"], NOW)
        elif step.get("from") == "client" and not step.get("foreign"):
            frames.extend(conn.data_to_send())
            _expect(frames, step["frame"], index, "client frame")
        elif "client_event" in step:
            events.extend(to_json(e) for e in conn.events_received())
            _expect(events, step["client_event"], index, "client event")
        frames.extend(conn.data_to_send())
        events.extend(to_json(e) for e in conn.events_received())
    _finish(frames, events)


# -- recording -------------------------------------------------------------------------------


class Recorder:
    """Both machines connected in memory; every action, frame and event is recorded."""

    def __init__(self, subprotocol: Subprotocol) -> None:
        self.subprotocol = subprotocol
        self.server_conn = ServerConnection(subprotocol, FIRST_SID)
        self.client_conn = new_client(subprotocol)
        self.steps: list[Step] = []

    @property
    def extended(self) -> bool:
        return self.subprotocol.extended

    def server(self, method: str, **args: Any) -> None:
        self.steps.append({"server_does": method, "args": args})
        apply_server(self.server_conn, method, args)
        self._pump()

    def client(self, method: str, **args: Any) -> str | None:
        self.steps.append({"client_does": method, "args": args})
        apply_client(self.client_conn, method, args)
        self._pump()
        if method == "subscribe":
            return make_identifier(args["channel"], **args.get("params", {}))
        return None

    def foreign_client_frame(self, frame: str) -> None:
        """A frame our client machine would never send (another client, or a broken one)."""
        self.steps.append({"from": "client", "frame": frame, "foreign": True})
        self.server_conn.receive_text(frame)
        self._record_events("server")
        self._pump()

    def foreign_server_frame(self, frame: str) -> None:
        self.steps.append({"from": "server", "frame": frame, "foreign": True})
        self.client_conn.receive_text(frame, NOW)
        self._record_events("client")
        self._pump()

    def reconnect(self, sid: str) -> None:
        self.steps.append({"reconnect": {"sid": sid}})
        self.client_conn.connection_lost(NOW)
        self.client_conn.connection_opened(NOW)
        self._record_events("client")
        self.server_conn = ServerConnection(self.subprotocol, sid)

    def _record_events(self, side: str) -> None:
        conn = self.server_conn if side == "server" else self.client_conn
        for event in conn.events_received():
            self.steps.append({f"{side}_event": to_json(event)})

    def _pump(self) -> None:
        self._record_events("server")
        self._record_events("client")
        while True:
            from_server = self.server_conn.data_to_send()
            for frame in from_server:
                self.steps.append({"from": "server", "frame": frame})
                self.client_conn.receive_text(frame, NOW)
                self._record_events("client")
            from_client = self.client_conn.data_to_send()
            for frame in from_client:
                self.steps.append({"from": "client", "frame": frame})
                self.server_conn.receive_text(frame)
                self._record_events("server")
            if not from_server and not from_client:
                return


# -- scenarios -------------------------------------------------------------------------------

TELEMETRY = {"channel": "telemetry", "params": {"topic": "plant/+/+/env"}}
META = {"columns": "plant/{site}/{device}/env", "format": "json"}
COLUMNS = {
    "plant/lyon/pump1/env": {"site": "lyon", "device": "pump1"},
    "plant/lyon/pump2/env": {"site": "lyon", "device": "pump2"},
}


def rows(*offsets: int, epoch_base: float = NOW) -> list[list[Any]]:
    """Rows alternating between two devices; offset 13 carries an undecodable payload."""
    out: list[list[Any]] = []
    for offset in offsets:
        topic = f"plant/lyon/pump{1 + offset % 2}/env"
        if offset == 13:
            out.append([offset, epoch_base + offset / 10, topic, "23,4", "payload is not JSON"])
        else:
            out.append([offset, epoch_base + offset / 10, topic, {"temp": 20 + offset / 10}, None])
    return out


def subscribed(r: Recorder) -> str:
    """Welcome, subscribe to telemetry, confirm (with meta on iotcable)."""
    r.server("welcome")
    identifier = r.client("subscribe", **TELEMETRY)
    assert identifier is not None
    r.server("confirm_subscription", identifier=identifier, meta=META)
    return identifier


def send_rows(r: Recorder, identifier: str, offsets: list[int], **extra: Any) -> None:
    r.server(
        "send_rows",
        identifier=identifier,
        stream_id="telemetry",
        epoch=extra.pop("epoch", "e1"),
        rows=rows(*offsets),
        columns=COLUMNS,
        **extra,
    )


def sc_welcome(r: Recorder) -> None:
    """The server welcomes a new connection with its session id."""
    r.server("welcome")


def sc_restored_welcome(r: Recorder) -> None:
    """A resumed session: the server restores the subscription, the client asks for what it
    missed from its last position instead of subscribing again."""
    identifier = subscribed(r)
    send_rows(r, identifier, [1, 2])
    r.reconnect("sid-2")
    r.server("welcome", restored=[identifier], meta={identifier: META})
    send_rows(r, identifier, [3, 4])
    r.server("confirm_history", identifier=identifier)


def sc_resubscribe(r: Recorder) -> None:
    """A new session after a reconnect: the client subscribes again, with history from its
    last position on the extended subprotocols, so nothing is lost or repeated."""
    identifier = subscribed(r)
    send_rows(r, identifier, [1, 2])
    r.reconnect("sid-2")
    r.server("welcome")
    r.server("confirm_subscription", identifier=identifier, meta=META)
    if r.extended:
        send_rows(r, identifier, [2, 3])
        r.server("confirm_history", identifier=identifier)


def sc_restart_kept_rows_first(r: Recorder) -> None:
    """The server restarted (new epoch) and sends the rows it keeps before its
    reject_history: the new epoch's rows report the restart, as one gap; the reject adds
    none, and the client asks again from available_from (the rows come again and are
    dropped)."""
    identifier = subscribed(r)
    send_rows(r, identifier, [10])
    r.reconnect("sid-2")
    r.server("welcome")
    r.server("confirm_subscription", identifier=identifier, meta=META)
    send_rows(r, identifier, [3, 4], epoch="e2")
    r.server(
        "reject_history",
        identifier=identifier,
        reason="epoch e1 of stream telemetry is gone (the server restarted)",
        stream_id="telemetry",
        epoch="e2",
        available_from=3,
    )
    send_rows(r, identifier, [3, 4], epoch="e2")
    r.server("confirm_history", identifier=identifier)


def sc_ping(r: Recorder) -> None:
    """The keep-alive the server sends every 3 s (whole unix seconds)."""
    r.server("welcome")
    r.server("ping", now=NOW + 3.25)


def sc_confirm_subscription(r: Recorder) -> None:
    """Subscribe and confirm; iotcable-v1-json adds the channel's meta."""
    subscribed(r)


def sc_reject_subscription(r: Recorder) -> None:
    """The application refuses a subscription and says why."""
    r.server("welcome")
    identifier = r.client("subscribe", channel="telemetry", params={"topic": "factory/#"})
    r.server(
        "reject_subscription",
        identifier=identifier,
        reason="topic 'factory/#' is outside channel 'telemetry'; it must be inside one of "
        "['plant/+/+/env']",
    )


def sc_reject_bad_identifier(r: Recorder) -> None:
    """A subscribe whose identifier is not a channel identifier is rejected by the protocol
    machine itself, with the identifier echoed as received."""
    r.server("welcome")
    r.foreign_client_frame('{"command":"subscribe","identifier":"{\\"chanel\\":\\"telemetry\\"}"}')


def sc_duplicate_subscribe(r: Recorder) -> None:
    """Every subscribe gets exactly one answer: a duplicate of a pending subscribe is answered
    with it, a duplicate of a confirmed one is confirmed again (as @rails/actioncable's retry
    loop needs)."""
    r.server("welcome")
    identifier = r.client("subscribe", **TELEMETRY)
    assert identifier is not None
    duplicate = json.dumps(
        {"command": "subscribe", "identifier": identifier}, separators=(",", ":")
    )
    r.foreign_client_frame(duplicate)
    r.server("confirm_subscription", identifier=identifier, meta=META)
    r.foreign_client_frame(duplicate)


def sc_duplicate_subscribe_history(r: Recorder) -> None:
    """A duplicate of a pending subscribe that carries history: the history is asked of the
    server's application only once the subscription is confirmed (a reject drops it)."""
    r.server("welcome")
    identifier = r.client("subscribe", **TELEMETRY)
    assert identifier is not None
    r.foreign_client_frame(
        json.dumps(
            {"command": "subscribe", "identifier": identifier, "history": {"since": NOW - 60}},
            separators=(",", ":"),
        )
    )
    r.server("confirm_subscription", identifier=identifier, meta=META)
    send_rows(r, identifier, [1, 2])
    r.server("confirm_history", identifier=identifier)


def sc_unsubscribe(r: Recorder) -> None:
    """Unsubscribe gets no reply."""
    identifier = subscribed(r)
    r.client("unsubscribe", identifier=identifier)


def sc_publish(r: Recorder) -> None:
    """A perform ("message" command) and the transmissions answering it."""
    identifier = subscribed(r)
    r.client(
        "perform",
        identifier=identifier,
        action="publish",
        data={"topic": "plant/lyon/pump1/cmd", "payload": {"speed": 40}, "ref": "1"},
    )
    r.server(
        "transmit",
        identifier=identifier,
        message={
            "action": "publish_result",
            "ref": "1",
            "ok": True,
            "topic": "plant/lyon/pump1/cmd",
        },
    )
    r.client(
        "perform",
        identifier=identifier,
        action="publish",
        data={"topic": "plant/lyon/pump1/env", "payload": 1, "ref": "2"},
    )
    r.server(
        "transmit",
        identifier=identifier,
        message={
            "action": "publish_result",
            "ref": "2",
            "ok": False,
            "topic": "plant/lyon/pump1/env",
            "reason": "you may not publish to 'plant/lyon/pump1/env'",
        },
    )


def sc_history_confirm(r: Recorder) -> None:
    """Subscribe with history: confirm, the rows asked for, then confirm_history."""
    r.server("welcome")
    identifier = r.client("subscribe", **TELEMETRY, history={"since": NOW - 3600})
    r.server("confirm_subscription", identifier=identifier, meta=META)
    assert identifier is not None
    send_rows(r, identifier, [1, 2, 3])
    r.server("confirm_history", identifier=identifier)


def sc_history_reject(r: Recorder) -> None:
    """A history request the server can only partly serve: reject_history reports the gap, and
    the client asks for what is still kept."""
    identifier = subscribed(r)
    send_rows(r, identifier, [10])
    r.client("request_history", identifier=identifier)
    r.server(
        "reject_history",
        identifier=identifier,
        reason="offsets 11..99 of stream telemetry are no longer kept",
        stream_id="telemetry",
        epoch="e1",
        available_from=100,
    )
    send_rows(r, identifier, [100, 101])
    r.server("confirm_history", identifier=identifier)


def sc_history_plain(r: Recorder) -> None:
    """actioncable-v1-json has no history: both ways of asking get reject_history."""
    identifier = subscribed(r)
    other = make_identifier("commands")
    history = {"since": NOW - 3600}
    for command, target in (("history", identifier), ("subscribe", other)):
        r.foreign_client_frame(
            json.dumps(
                {"command": command, "identifier": target, "history": history},
                separators=(",", ":"),
            )
        )
    r.server("confirm_subscription", identifier=other)


def sc_data_frames(r: Recorder) -> None:
    """Rows as ActionCable data frames: one per row, with columns and the drop count."""
    identifier = subscribed(r)
    send_rows(r, identifier, [1, 2])
    send_rows(r, identifier, [7, 13], dropped=4)


def sc_batch(r: Recorder) -> None:
    """Rows as iotcable batch frames: one frame per run, columns left to the confirm's meta."""
    identifier = subscribed(r)
    send_rows(r, identifier, [1, 2])
    send_rows(r, identifier, [7, 13], dropped=4)


def sc_epoch_change(r: Recorder) -> None:
    """The stream restarted (new epoch): the client reports a gap and accepts the new rows;
    rows it already holds are dropped."""
    identifier = subscribed(r)
    send_rows(r, identifier, [5, 6])
    send_rows(r, identifier, [6, 7])
    send_rows(r, identifier, [1], epoch="e2")


def sc_continuity_lost(r: Recorder) -> None:
    """The stream goes on in epoch e1.2 of the same server run (its broker lost the bridge's
    session): the client reports lost continuity, not a restart, and accepts the new rows."""
    identifier = subscribed(r)
    send_rows(r, identifier, [5, 6])
    send_rows(r, identifier, [7], epoch="e1.2")
    send_rows(r, identifier, [8], epoch="e1.2")


# An integer no 64-bit float holds: an older server passed such device JSON on, and no
# client can decode a frame holding it.
POISON = "1" * 401


def undecodable_rows(r: Recorder, identifier: str, offsets: list[int]) -> None:
    """Rows as an older server sends them, the first one's payload undecodable: one batch
    frame on iotcable, one data frame per row on the ActionCable subprotocols."""
    ident = json.dumps(identifier)
    topic = "plant/lyon/pump1/env"
    payloads = [POISON if i == 0 else '{"temp":20.5}' for i in range(len(offsets))]
    if r.subprotocol is Subprotocol.IOTCABLE:
        body = ",".join(
            f'[{o},{NOW + o / 10!r},"{topic}",{p}]' for o, p in zip(offsets, payloads, strict=True)
        )
        frames = [
            '{"identifier":' + ident + ',"batch":[' + body + '],"stream_id":"telemetry",'
            '"epoch":"e1"}'
        ]
    else:
        frames = [
            '{"identifier":' + ident + ',"message":{"topic":"' + topic + '","time":'
            f'{NOW + o / 10!r},"payload":{p}}},"stream_id":"telemetry","epoch":"e1",'
            f'"offset":{o}}}'
            for o, p in zip(offsets, payloads, strict=True)
        ]
    for frame in frames:
        r.foreign_server_frame(frame)


def sc_undecodable_recovered(r: Recorder) -> None:
    """A frame the client cannot decode costs no other row: the client asks history again
    from the last offset it holds, and the answer brings the rows (here decodable, as a
    fixed server sends them): no gap, rows received meanwhile are not repeated."""
    identifier = subscribed(r)
    send_rows(r, identifier, [1, 2])
    undecodable_rows(r, identifier, [3, 4])
    send_rows(r, identifier, [5])
    send_rows(r, identifier, [3, 4, 5])
    r.server("confirm_history", identifier=identifier)
    send_rows(r, identifier, [6])


def sc_undecodable_gap(r: Recorder) -> None:
    """A frame the client cannot decode, again when asked from history (or with no history
    to ask, on actioncable-v1-json): one gap, undecodable, after the last offset held;
    later rows arrive as usual."""
    identifier = subscribed(r)
    send_rows(r, identifier, [1, 2])
    undecodable_rows(r, identifier, [3, 4])
    if r.extended:
        undecodable_rows(r, identifier, [3, 4])
        send_rows(r, identifier, [5])
        r.server("confirm_history", identifier=identifier)
    send_rows(r, identifier, [6])


def sc_undecodable_connection_lost(r: Recorder) -> None:
    """The connection goes before history answered for an undecodable frame: the gap is
    reported then, and the resubscription asks from the last offset held."""
    identifier = subscribed(r)
    send_rows(r, identifier, [1, 2])
    undecodable_rows(r, identifier, [3])
    r.reconnect("sid-2")
    r.server("welcome")
    r.server("confirm_subscription", identifier=identifier, meta=META)
    send_rows(r, identifier, [3, 4])
    r.server("confirm_history", identifier=identifier)


def sc_broker(r: Recorder) -> None:
    """Broker health events."""
    r.server("welcome")
    r.server("broker_event", state="disconnected", detail="connection to broker lost")
    r.server("broker_event", state="reconnecting", detail="retry in 2.0 s")
    r.server("broker_event", state="connected", detail="mqtt://127.0.0.1:1883")


def sc_errors(r: Recorder) -> None:
    """Input that cannot be answered any other way gets an error frame, and the connection
    goes on; a pong is accepted silently."""
    identifier = subscribed(r)
    for frame in [
        '{"command":"subscribe"',
        '["subscribe"]',
        '{"identifier":"x"}',
        '{"command":"perform","identifier":"x"}',
        '{"command":"message","identifier":7}',
        '{"command":"message","identifier":"{\\"channel\\":\\"nope\\"}","data":"{}"}',
        '{"command":"unsubscribe","identifier":"{\\"channel\\":\\"nope\\"}"}',
        # A number no 64-bit float holds is refused as JSON (as orjson and JavaScript do).
        '{"command":"history","identifier":'
        + json.dumps(identifier)
        + ',"history":{"since":1e400}}',
        json.dumps(
            {"command": "message", "identifier": identifier, "data": {"action": "publish"}},
            separators=(",", ":"),
        ),
        '{"command":"pong"}',
    ]:
        r.foreign_client_frame(frame)
    r.server("error", code="publish_failed", message="the broker is not connected")


def sc_malformed_server_frames(r: Recorder) -> None:
    """What the client does with server frames it cannot understand: report, never crash."""
    identifier = subscribed(r)
    for frame in [
        "<html>",
        '{"type":"stats"}',
        '{"identifier":' + json.dumps(identifier) + ',"batch":[[2,1,"t",0],[1,1,"t",0]],'
        '"stream_id":"telemetry","epoch":"e1"}',
        '{"identifier":' + json.dumps(identifier) + ',"batch":[[3,1e400,"t",0]],'
        '"stream_id":"telemetry","epoch":"e1"}',
    ]:
        r.foreign_server_frame(frame)


def disconnect_scenario(reason: DisconnectReason) -> Callable[[Recorder], None]:
    reconnect = reason.required_reconnect is not False

    def scenario(r: Recorder) -> None:
        subscribed(r)
        r.server("disconnect", reason=reason.value, reconnect=reconnect)

    scenario.__doc__ = (
        f"The server ends the connection: {reason.value}, reconnect {str(reconnect).lower()}."
    )
    return scenario


ALL = tuple(Subprotocol)
EXTENDED = (Subprotocol.IOTCABLE, Subprotocol.EXT)
ACTIONCABLE = (Subprotocol.EXT, Subprotocol.PLAIN)

SCENARIOS: dict[str, tuple[Callable[[Recorder], None], tuple[Subprotocol, ...]]] = {
    "welcome": (sc_welcome, ALL),
    "restored_welcome": (sc_restored_welcome, EXTENDED),
    "resubscribe": (sc_resubscribe, ALL),
    "ping": (sc_ping, ALL),
    "confirm_subscription": (sc_confirm_subscription, ALL),
    "reject_subscription": (sc_reject_subscription, ALL),
    "reject_bad_identifier": (sc_reject_bad_identifier, ALL),
    "duplicate_subscribe": (sc_duplicate_subscribe, ALL),
    "duplicate_subscribe_history": (sc_duplicate_subscribe_history, EXTENDED),
    "restart_kept_rows_first": (sc_restart_kept_rows_first, EXTENDED),
    "unsubscribe": (sc_unsubscribe, ALL),
    "publish": (sc_publish, ALL),
    "history_confirm": (sc_history_confirm, EXTENDED),
    "history_reject": (sc_history_reject, EXTENDED),
    "history_plain": (sc_history_plain, (Subprotocol.PLAIN,)),
    "data_frames": (sc_data_frames, ACTIONCABLE),
    "batch": (sc_batch, (Subprotocol.IOTCABLE,)),
    "epoch_change": (sc_epoch_change, ALL),
    "continuity_lost": (sc_continuity_lost, ALL),
    "undecodable_recovered": (sc_undecodable_recovered, EXTENDED),
    "undecodable_gap": (sc_undecodable_gap, ALL),
    "undecodable_connection_lost": (sc_undecodable_connection_lost, EXTENDED),
    "broker": (sc_broker, ALL),
    "errors": (sc_errors, ALL),
    "malformed_server_frames": (sc_malformed_server_frames, ALL),
    **{
        f"disconnect_{reason.value}": (disconnect_scenario(reason), ALL)
        for reason in DisconnectReason
    },
}


def record(name: str, subprotocol: Subprotocol) -> dict[str, Any]:
    scenario, _ = SCENARIOS[name]
    recorder = Recorder(subprotocol)
    scenario(recorder)
    return {
        "name": name,
        "subprotocol": subprotocol.value,
        "sid": FIRST_SID,
        "description": " ".join((scenario.__doc__ or "").split()),
        "steps": recorder.steps,
    }


def path_for(name: str, subprotocol: Subprotocol) -> Path:
    return DIRECTORY / f"{name}.{subprotocol.value}.json"


def every_transcript() -> list[tuple[str, Subprotocol]]:
    return [(name, sub) for name, (_, subs) in SCENARIOS.items() for sub in subs]


def render(transcript: Mapping[str, Any]) -> str:
    return json.dumps(transcript, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    write = "--write" in argv
    expected = {path_for(name, sub): render(record(name, sub)) for name, sub in every_transcript()}
    stale = set(DIRECTORY.glob("*.json")) - set(expected)
    differ = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    if write:
        DIRECTORY.mkdir(exist_ok=True)
        for path in differ:
            path.write_text(expected[path])
        for path in stale:
            path.unlink()
        print(f"wrote {len(differ)} transcript(s), removed {len(stale)}")
        return 0
    for path in sorted(differ):
        print(f"differs: {path.name}")
    for path in sorted(stale):
        print(f"stale: {path.name}")
    return 1 if differ or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
