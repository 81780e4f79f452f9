"""The MQTT side of the server: one connection to the broker that survives the broker.

``MqttBridge`` keeps one aiomqtt connection alive in a background task. It subscribes every
filter with QoS 1 on a persistent session (MQTT 5 clean start off plus a session expiry, or
MQTT 3.1.1 clean session off), so the broker keeps what is published while we are away;
it reconnects with exponential backoff and jitter and resubscribes; and it hands each message
to a synchronous ``on_message`` callback (the hub) in arrival order. Broker trouble is never
raised to the caller: it shows in ``state``, ``status()`` and the ``on_state`` callback.

Messages come in through :mod:`.fast_ingest` (PUBLISH packets read and routed as they are
read, without aiomqtt's ``Message``, queue and task per message); aiomqtt keeps the
connection. Back-pressure: nothing waits in the bridge, so when ``on_message`` is slow, the
event loop reads the socket less often, TCP pushes back, and the broker holds the rest in
our session queue (bounded by the broker's own limits, which is where an operator looks
for them); reading is also paced to what the connections write (``hub.Pressure``).
aiomqtt's queue, used only where the fast path cannot be installed, is bounded
(``max_backlog``) so that no burst can grow memory without limit; what it would have to
drop is counted. The bridge says it cannot keep up
(``overloaded`` in ``status()`` and one warning per episode) when ``on_message`` kept the
loop busy for most of a measuring window, when the backlog reached half its bound, or when
it had to drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from jupyter_iotcable.protocol import BrokerState
from jupyter_iotcable.topics import validate_filter

from . import fast_ingest
from .interface import BridgeError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from paho.mqtt.client import MQTTMessage

    from .interface import BridgeSink
    from .mqtt_packets import Publish
    from .settings import BrokerSettings

__all__ = ["BridgeError", "BrokerState", "MqttBridge", "MqttMessage", "describe_error"]

logger = logging.getLogger("jupyter_iotcable.bridge")
paho_logger = logging.getLogger("jupyter_iotcable.bridge.paho")
"""aiomqtt's and paho's own messages (packet traces at DEBUG), kept apart from ours."""

LOAD_LIMIT = 0.8
"""Share of a window spent in ``on_message`` above which the bridge reports overload."""

STABLE_CONNECTION = 10.0
"""Seconds a connection must last before a loss restarts the backoff from its base.

Without it, a broker that accepts and at once drops us (another client taking over our
client id, a broker-side limit) would be hammered every ``backoff_base`` seconds.
"""

TAKEOVER_DROPS = 3
"""Connections in a row, each accepted by the broker and then closed by it, after which the
bridge reports that another client uses its client id.

A broker gives a client id to one connection at a time: when a second client connects with
it, the broker closes the first one (mosquitto 2.0 simply closes the socket, EMQX and
HiveMQ first say "session taken over"). Two servers sharing an id thus keep kicking each
other out, and each receives only part of the readings. A broker that goes down does not
look like this: the reconnect fails instead of being accepted at once. The count restarts
when a connect fails or a connection outlasts twice the backoff cap (the longest the other
client waits before taking the id back).
"""

RESTART_RETRY = 0.8
"""Longest wait, in seconds, between reconnects while the broker's port refuses connections.

A refused TCP connection is what a broker being restarted looks like (its host answers,
nothing listens yet): retrying costs one packet, so the bridge retries every 0.4-0.8 s
instead of backing off to ``backoff_cap``, and is back within a second of the broker.
A broker that does not answer at all (host down, network lost) gets the full backoff.
"""

CLIENT_ID_SETTING = "c.IoTCableApp.broker_client_id"
"""Where the admin sets the client id (named in the takeover report)."""

# CONNACK and DISCONNECT reason codes, as paho reports them for both protocol versions
# (it maps the 3.1.1 return codes 4 and 5 to the MQTT 5 codes 0x86 and 0x87).
_BAD_CREDENTIALS = frozenset({4, 0x86})
_NOT_AUTHORIZED = frozenset({5, 0x87})
_PROTOCOL_REFUSED = frozenset({1, 0x84})
_SESSION_TAKEN_OVER = 0x8E
# What paho reports when the socket simply closed: MQTT_ERR_CONN_LOST (3.1.1) and
# "unspecified error" (5.0).
_CONNECTION_LOST = frozenset({7, 0x80})


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """One message as the broker delivered it, stamped with the bridge's clock."""

    topic: str
    payload: bytes
    received_at: float
    qos: int
    retain: bool


class _ProtocolRefused(Exception):
    """The broker did not answer an MQTT 5 CONNECT the way a v5 broker would."""


class _TlsSetupError(Exception):
    """The TLS files named in the settings cannot be used."""


def _reason_value(code: object) -> int | None:
    if isinstance(code, ReasonCode):
        return int(code.value)
    if isinstance(code, int):
        return code
    return None


def describe_error(exc: BaseException, address: str) -> str:
    """A one-line explanation of a connection failure for logs, status and ``on_state``."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, MqttConnectError):
        code = _reason_value(cause.rc)
        if code in _BAD_CREDENTIALS:
            return f"authentication failed: {address} rejected the username or password ({cause})"
        if code in _NOT_AUTHORIZED:
            return (
                f"authentication failed: {address} refused to let this client connect "
                f"({cause}); check the username, password and the broker's ACL"
            )
        return f"{address} refused the connection ({cause})"
    if isinstance(cause, aiomqtt.MqttCodeError):
        code = _reason_value(cause.rc)
        if code == _SESSION_TAKEN_OVER:
            return (
                f"{address} closed the connection because another client connected with the "
                "same client id; give each server its own client_id"
            )
        if code in _CONNECTION_LOST:
            return f"lost the connection to {address}"
        return f"lost the connection to {address} ({cause})"
    if isinstance(cause, _TlsSetupError):
        return str(cause)
    text = str(cause) or type(cause).__name__
    if text == "Operation timed out":
        return f"{address} did not answer within the timeout"
    if text == "Disconnected during message iteration":
        return f"lost the connection to {address}"
    return f"cannot connect to {address} ({text})"


def _tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    """The TLS context for ``mqtts://``; built per connection so rotated files are re-read."""
    try:
        context = ssl.create_default_context(cafile=settings.ca_certs)
    except (OSError, ssl.SSLError) as exc:
        raise _TlsSetupError(
            f"cannot load the CA certificates ca_certs={settings.ca_certs!r} ({exc})"
        ) from None
    if settings.certfile:
        try:
            context.load_cert_chain(settings.certfile, settings.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise _TlsSetupError(
                f"cannot load the client certificate certfile={settings.certfile!r} "
                f"keyfile={settings.keyfile!r} ({exc})"
            ) from None
    if settings.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Inbox:
    """Counts what passes through aiomqtt's incoming queue, which the bridge drains."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[aiomqtt.Message] | None = None
        self.peak = 0
        self.window_peak = 0
        self.dropped = 0

    @property
    def backlog(self) -> int:
        return self.queue.qsize() if self.queue is not None else 0

    def queue_class(self) -> type[asyncio.Queue[aiomqtt.Message]]:
        """A queue class for aiomqtt's ``queue_type`` that reports to this inbox.

        aiomqtt builds the queue itself (``queue_type(maxsize=...)``), so the class carries
        the inbox it belongs to.
        """
        inbox = self

        class CountingQueue(asyncio.Queue[aiomqtt.Message]):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                inbox.queue = self

            def put_nowait(self, item: aiomqtt.Message) -> None:
                try:
                    super().put_nowait(item)
                except asyncio.QueueFull:
                    inbox.dropped += 1
                    raise
                size = self.qsize()
                inbox.peak = max(inbox.peak, size)
                inbox.window_peak = max(inbox.window_peak, size)

        return CountingQueue


class MqttBridge:
    """Keeps one MQTT connection alive and hands its messages to ``on_message`` in order.

    ``on_message`` is called synchronously on the event loop, once per message, in the order
    the broker delivered them; it must be quick (it is the hub's ingest). ``on_state`` is
    called with the new state and a human-readable reason each time the state changes.
    ``clock`` stamps ``MqttMessage.received_at`` and the timestamps in ``status()``.

    The engine passes a ``sink`` (:class:`~.interface.BridgeSink`) instead of the two
    callbacks: it is told ``sink.on_message(topic, payload, received_at)`` without an
    ``MqttMessage`` per message. This class implements :class:`~.interface.Bridge`.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        filters: Sequence[str],
        on_message: Callable[[MqttMessage], None] | None = None,
        on_state: Callable[[BrokerState, str], None] | None = None,
        *,
        on_session_lost: Callable[[str], None] | None = None,
        sink: BridgeSink | None = None,
        clock: Callable[[], float] = time.time,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_backlog: int = 10_000,
        load_window: float = 1.0,
    ) -> None:
        if isinstance(filters, str):
            raise TypeError("filters must be a sequence of topic filters, not one string")
        if not (0 < backoff_base <= backoff_cap):
            raise ValueError("backoff_base must be positive and at most backoff_cap")
        if max_backlog < 1:
            raise ValueError("max_backlog must be at least 1")
        if not load_window > 0:
            raise ValueError("load_window must be positive")
        if (sink is None) == (on_message is None):
            raise TypeError("give MqttBridge either on_message (and on_state) or a sink")
        self._settings = settings
        self._filters = tuple(dict.fromkeys(validate_filter(f) for f in filters))
        self._sink = sink
        self._on_message = on_message
        self._on_state = sink.on_state if sink is not None else on_state
        self._on_session_lost = on_session_lost
        self._clock = clock
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_backlog = max_backlog
        self._load_window = load_window

        self.state = BrokerState.DISCONNECTED
        self._client: aiomqtt.Client | None = None
        self._protocol: aiomqtt.ProtocolVersion | None = None
        self._protocol_confirmed = False
        self._up_since: float | None = None
        self._connected = asyncio.Event()
        self._refused = False
        self._tasks: list[asyncio.Task[None]] = []
        self._inbox = _Inbox()

        self._connected_since: float | None = None
        self._last_change = clock()
        self._connects = 0
        self._disconnects = 0
        self._last_error: str | None = None
        self._messages_in = 0
        self._messages_out = 0
        self._handler_errors = 0
        self._busy = 0.0
        self._load = 0.0
        self._overloaded = False
        self._takeover_drops = 0
        self._client_id_conflict: str | None = None
        # Continuity: whether a connection ever came up, whether the broker had our session
        # on the last CONNACK, and how often it had lost it.
        self._had_connection = False
        self._session_present: bool | None = None
        self._sessions_lost = 0
        self._lost_on_connect = False
        # Set when the current connection is lost: publishes waiting for their
        # acknowledgement fail at once instead of after ``timeout``.
        self._link_lost = asyncio.Event()

    # -- public API --------------------------------------------------------------------------

    @property
    def settings(self) -> BrokerSettings:
        return self._settings

    @property
    def filters(self) -> tuple[str, ...]:
        return self._filters

    async def start(self) -> None:
        """Start connecting in the background and return at once."""
        if self._tasks:
            return
        self._client = None
        self._protocol = None
        self._protocol_confirmed = False
        self._set_state(BrokerState.CONNECTING, f"connecting to {self._settings.address}")
        self._tasks = [
            asyncio.create_task(self._run(), name="iotcable-mqtt-bridge"),
            asyncio.create_task(self._watch_load(), name="iotcable-mqtt-load"),
        ]

    async def stop(self) -> None:
        """Disconnect cleanly (the broker keeps our session) and stop reconnecting."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._client = None
        self._connected.clear()
        if self.state is not BrokerState.DISCONNECTED:
            if self.state is BrokerState.CONNECTED:
                self._disconnects += 1
            self._connected_since = None
            self._set_state(BrokerState.DISCONNECTED, "stopped")

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until the bridge is connected and subscribed; False after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish one message; with QoS 1, return once the broker acknowledged it.

        Raises ``BridgeError`` when the broker is unreachable (nothing was sent), when the
        message is invalid, or when the broker did not acknowledge it in time.
        """
        client = self._client
        if client is None or self.state is not BrokerState.CONNECTED:
            raise BridgeError(
                f"the MQTT broker {self._settings.address} is unreachable "
                f"(bridge {self.state.value}); the publish to {topic!r} was not sent"
            )
        link_lost = self._link_lost
        try:
            await self._publish_unless_lost(client, link_lost, topic, payload, qos, retain)
        except ValueError as exc:
            raise BridgeError(
                self._settings.redact(f"the publish to {topic!r} is invalid ({exc}); not sent")
            ) from None
        except aiomqtt.MqttError as exc:
            raise BridgeError(
                self._settings.redact(
                    f"the publish to {topic!r} failed ({exc}); the broker "
                    f"{self._settings.address} may not have received it"
                )
            ) from None
        self._messages_out += 1

    async def _publish_unless_lost(
        self,
        client: aiomqtt.Client,
        link_lost: asyncio.Event,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
    ) -> None:
        """``client.publish``, failing as soon as the connection is lost.

        aiomqtt keeps waiting for the acknowledgement of a publish whose connection the
        broker dropped (for ``timeout`` seconds, 10 by default), and a broker drops the
        connection when a publish breaks its rules (a malformed topic, a packet over its
        ``max_packet_size``): the publisher must hear about it at once.
        """
        publishing = asyncio.ensure_future(client.publish(topic, payload, qos=qos, retain=retain))
        lost = asyncio.ensure_future(link_lost.wait())
        try:
            await asyncio.wait({publishing, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if publishing.done():
            publishing.result()  # raises what the publish raised
            return
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await publishing
        raise BridgeError(
            self._settings.redact(
                f"the publish to {topic!r} was not acknowledged: the broker "
                f"{self._settings.address} closed the connection first (a broker drops a "
                "client whose packet breaks its rules, e.g. one over its max_packet_size); "
                "the bridge reconnects"
            )
        )

    def status(self) -> dict[str, object]:
        """A JSON-safe snapshot for the status page: no credentials, errors redacted."""
        protocol = self._protocol
        return {
            "state": self.state.value,
            "broker": self._settings.address,
            "tls": self._settings.tls,
            "protocol": None if protocol is None else _protocol_name(protocol),
            "client_id": self._settings.client_id,
            "filters": list(self._filters),
            "connected_since": self._connected_since,
            "last_change": self._last_change,
            "connects": self._connects,
            "disconnects": self._disconnects,
            "last_error": self._last_error,
            "messages_in": self._messages_in,
            "messages_out": self._messages_out,
            "handler_errors": self._handler_errors,
            "backlog": self._inbox.backlog,
            "backlog_max_seen": self._inbox.peak,
            "max_backlog": self._max_backlog,
            "dropped": self._inbox.dropped,
            "load": round(self._load, 3),
            "overloaded": self._overloaded,
            "client_id_conflict": self._client_id_conflict is not None,
            "session_present": self._session_present,
            "sessions_lost": self._sessions_lost,
        }

    # -- connection loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            protocol = self._next_protocol()
            self._up_since = None
            self._refused = False
            try:
                await self._serve(protocol)
            except _ProtocolRefused as exc:
                # Only a broker that never took MQTT 5 from us gets 3.1.1: one that did and
                # is slow to answer after a restart is not a 3.1.1 broker.
                if self._settings.protocol == "auto" and not self._protocol_confirmed:
                    logger.info(
                        "MQTT broker %s did not accept MQTT 5 (%s); trying MQTT 3.1.1",
                        self._settings.address,
                        self._settings.redact(describe_error(exc, self._settings.address)),
                    )
                    self._protocol = aiomqtt.ProtocolVersion.V311
                    continue
                self._failed(exc)
            except (aiomqtt.MqttError, _TlsSetupError) as exc:
                self._refused = _connection_refused(exc)
                self._failed(exc)
            except Exception as exc:
                # A bug, not broker trouble: say so loudly, but keep the bridge alive.
                logger.exception("MQTT bridge: unexpected error; reconnecting")
                self._failed(exc)
            if self._settings.protocol == "auto" and not self._protocol_confirmed:
                # The 3.1.1 fallback only sticks once it worked: the broker may just be slow.
                self._protocol = None
            lasted = time.monotonic() - self._up_since if self._up_since is not None else 0.0
            # Two clients fighting over one id keep the full backoff, so that each takes
            # the id back at most every backoff_cap seconds while the admin is told.
            if lasted >= STABLE_CONNECTION and self._client_id_conflict is None:
                failures = 0
            await asyncio.sleep(self._backoff(failures, refused=self._refused))
            failures += 1

    def _next_protocol(self) -> aiomqtt.ProtocolVersion:
        if self._protocol is None:
            wanted = self._settings.protocol
            self._protocol = (
                aiomqtt.ProtocolVersion.V311 if wanted == "3.1.1" else aiomqtt.ProtocolVersion.V5
            )
        return self._protocol

    def _backoff(self, failures: int, *, refused: bool = False) -> float:
        """Exponential backoff with jitter: a random delay in [d/2, d], d doubling up to the cap.

        The jitter spreads the reconnects of many servers after a broker restart; the lower
        half is cut off so that a retry never follows a failure immediately. While the
        broker's port refuses connections (``refused``: a broker being restarted), the
        delay stays at most ``RESTART_RETRY``.
        """
        cap = min(self._backoff_cap, RESTART_RETRY) if refused else self._backoff_cap
        delay = min(cap, self._backoff_base * 2 ** min(failures, 30))
        return random.uniform(delay / 2, delay)

    async def _serve(self, protocol: aiomqtt.ProtocolVersion) -> NoReturn:
        """One connection: connect, subscribe, deliver until it drops (then raise).

        Each attempt uses a new aiomqtt client: aiomqtt does not reliably reset its state
        when a client is reused after a lost connection (empicano/aiomqtt#269, #288).
        """
        client = self._new_client(protocol)
        flags = _watch_connack(client)
        await self._connect(client, protocol)
        self._up_since = time.monotonic()
        self._link_lost = link_lost = asyncio.Event()
        # Before any message of this connection is delivered: what came before the outage
        # and what comes after must be told apart.
        self._check_session(flags.get("session_present"))
        self._client = client
        pump = asyncio.create_task(self._pump(client))
        subscribe = asyncio.create_task(self._subscribe_all(client, protocol))
        try:
            # Messages of our stored session arrive right after CONNACK, before the SUBACK:
            # the pump runs from the start so that they never pile up in the queue.
            await asyncio.wait({pump, subscribe}, return_when=asyncio.FIRST_COMPLETED)
            if not subscribe.done():
                await pump  # it finished first, so this raises why the connection dropped
            subscribe.result()
            self._on_connected(protocol)
            await pump
        except BaseException as exc:
            self._client = None
            link_lost.set()
            for task in (pump, subscribe):
                task.cancel()
            await asyncio.gather(pump, subscribe, return_exceptions=True)
            # Says goodbye to the broker when we stop; returns at once if the link is gone.
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    def _check_session(self, session_present: bool | None) -> None:
        """Report lost continuity: a reconnect after which the broker had no session of ours.

        The broker then kept nothing for us while we were away (it restarted without
        persistence, the session expired, or the bridge runs with clean sessions): readings
        published during the outage are gone. The first connection of a run has nothing to
        lose, and a kept session (``session present`` 1) was queued for us.
        """
        self._session_present = session_present
        self._lost_on_connect = False
        if not self._had_connection:
            self._had_connection = True
            return
        if session_present:
            return
        self._sessions_lost += 1
        self._lost_on_connect = True
        detail = (
            f"the bridge reconnected to {self._settings.address} without its MQTT session "
            "(CONNACK session present 0): readings published while it was away are lost"
        )
        logger.warning("MQTT broker: %s", detail)
        try:
            if self._sink is not None:
                self._sink.on_session_lost(detail)
            elif self._on_session_lost is not None:
                self._on_session_lost(detail)
        except Exception:
            logger.exception("on_session_lost failed")

    async def _connect(self, client: aiomqtt.Client, protocol: aiomqtt.ProtocolVersion) -> None:
        """CONNECT and wait for CONNACK; tell a refused protocol apart from other failures."""
        v5 = protocol is aiomqtt.ProtocolVersion.V5
        try:
            await client.__aenter__()
        except MqttConnectError as exc:
            if v5 and _reason_value(exc.rc) in _PROTOCOL_REFUSED:
                raise _ProtocolRefused(str(exc)) from exc
            raise
        except aiomqtt.MqttError as exc:
            if str(exc) != "Operation timed out":
                raise
            _close_abandoned(client)
            # A broker that only speaks 3.1.1 may not answer a v5 CONNECT at all.
            if v5:
                raise _ProtocolRefused(str(exc)) from exc
            raise

    def _new_client(self, protocol: aiomqtt.ProtocolVersion) -> aiomqtt.Client:
        settings = self._settings
        persistent = settings.session_expiry > 0
        client_for = functools.partial(
            aiomqtt.Client,
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=settings.client_id,
            protocol=protocol,
            keepalive=settings.keepalive,
            timeout=settings.timeout,
            logger=paho_logger,
            tls_context=_tls_context(settings) if settings.tls else None,
            queue_type=self._inbox.queue_class(),
            max_queued_incoming_messages=self._max_backlog,
            # Latency: without TCP_NODELAY small packets wait for Nagle's algorithm.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        if protocol is aiomqtt.ProtocolVersion.V5:
            properties: Properties | None = None
            if persistent:
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = settings.session_expiry
            client = client_for(clean_start=not persistent, properties=properties)
        else:
            client = client_for(clean_session=not persistent)
        # aiomqtt warns on every publish beyond 10 awaiting their acknowledgement; a
        # simulator with many devices or a burst of commands is normal, not a problem.
        client.pending_calls_threshold = 1000
        # QoS 2 messages (and every message, where the fast path cannot be installed)
        # come through paho's callback, without aiomqtt's Message, queue and task wake-up.
        client._client.on_message = self._on_paho_message
        fast_ingest.install(
            client,
            self._route_step,
            v5=protocol is aiomqtt.ProtocolVersion.V5,
            pressure=getattr(self._sink, "pressure", None),
        )
        return client

    async def _subscribe_all(
        self, client: aiomqtt.Client, protocol: aiomqtt.ProtocolVersion
    ) -> None:
        """Subscribe every filter with QoS 1 in one SUBSCRIBE; report the ones refused.

        With MQTT 5, retain handling 1 asks for retained messages only when the subscription
        is new, so a reconnect to a kept session does not replay them.
        """
        if not self._filters:
            return
        if protocol is aiomqtt.ProtocolVersion.V5:
            codes = await client.subscribe(
                [(f, SubscribeOptions(qos=1, retainHandling=1)) for f in self._filters]
            )
        else:
            codes = await client.subscribe([(f, 1) for f in self._filters])
        refused = [
            f"{topic_filter!r} ({code})"
            for topic_filter, code in zip(self._filters, codes, strict=False)
            if (_reason_value(code) or 0) >= 0x80
        ]
        if refused:
            self._last_error = self._settings.redact(
                f"{self._settings.address} refused the subscription to {', '.join(refused)}"
            )
            logger.error("MQTT broker: %s", self._last_error)

    async def _pump(self, client: aiomqtt.Client) -> NoReturn:
        """Deliver messages until the connection drops (aiomqtt then raises ``MqttError``).

        Each wake-up drains the whole queue at once: waiting for messages one by one through
        aiomqtt's iterator costs a task per message and lets the queue grow under load.
        """
        messages = client.messages
        try:
            while True:
                self._deliver(await anext(messages))
                self._drain()
        finally:
            # What is still queued was already acknowledged to the broker: deliver it
            # rather than lose it.
            self._drain()

    def _drain(self) -> None:
        queue = self._inbox.queue
        if queue is None:
            return
        while True:
            try:
                message = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            self._deliver(message)

    def _deliver(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = payload.encode() if isinstance(payload, str) else bytes(payload or b"")
        self._route(message.topic.value, payload, message.qos, bool(message.retain))

    def _on_paho_message(self, client: object, userdata: object, message: MQTTMessage) -> None:
        """paho's ``on_message``, in place of aiomqtt's, for what :mod:`.fast_ingest`
        leaves to paho (QoS 2): routed as soon as paho has read it, without an aiomqtt
        ``Message``, a queue and a task wake-up each. aiomqtt's iterator then only tells
        :meth:`_pump` that the connection dropped."""
        try:
            topic = message.topic
        except UnicodeDecodeError:  # a broker must refuse these; skip rather than crash
            self._handler_errors += 1
            return
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        self._route(topic, payload, message.qos, bool(message.retain))

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self._route_step([(topic, payload, qos, retain)])

    def _route_step(self, messages: list[Publish]) -> None:
        """Hand messages to the sink (or ``on_message``) in order; a failure costs only its
        own message. A topic that is not UTF-8 (``None``) is counted and skipped."""
        started = time.perf_counter()
        sink, on_message, clock = self._sink, self._on_message, self._clock
        for topic, payload, qos, retain in messages:
            if topic is None:  # a broker must refuse these; skip rather than crash
                self._handler_errors += 1
                continue
            self._messages_in += 1
            try:
                if sink is not None:
                    sink.on_message(topic, payload, clock())
                else:
                    assert on_message is not None
                    on_message(MqttMessage(topic, payload, clock(), qos, retain))
            except Exception:
                self._handler_errors += 1
                # Logged on the 1st, 10th, 100th... failure: a broken handler must not
                # flood logs.
                if math.log10(self._handler_errors).is_integer():
                    logger.exception(
                        "on_message failed for a message on %r (%d failures so far); "
                        "the message was skipped",
                        topic,
                        self._handler_errors,
                    )
        self._busy += time.perf_counter() - started

    # -- state and load ----------------------------------------------------------------------

    def _on_connected(self, protocol: aiomqtt.ProtocolVersion) -> None:
        self._connects += 1
        self._protocol_confirmed = True
        self._connected_since = self._clock()
        # While another client takes our id over, each reconnect succeeds for a moment:
        # the conflict stays the last error until a connection proves stable.
        self._last_error = self._client_id_conflict
        self._connected.set()
        detail = (
            f"connected to {self._settings.address} with MQTT {_protocol_name(protocol)}, "
            f"{len(self._filters)} filter(s) subscribed"
        )
        if self._lost_on_connect:
            detail += (
                "; the broker no longer had the bridge's session: readings published while "
                "it was away are lost (every stream reports the gap)"
            )
        if self._client_id_conflict is not None:
            detail += f"; but {self._client_id_conflict}"
        self._set_state(BrokerState.CONNECTED, detail)

    def _failed(self, exc: BaseException | None) -> None:
        was_connected = self.state is BrokerState.CONNECTED
        self._connected.clear()
        self._connected_since = None
        if exc is None:
            reason = f"the connection to {self._settings.address} ended"
        else:
            reason = self._settings.redact(describe_error(exc, self._settings.address))
        if was_connected:
            self._disconnects += 1
        in_conflict = self._client_id_conflict is not None
        self._watch_takeover(exc)
        if self._client_id_conflict is not None:
            reason = self._client_id_conflict
            if in_conflict:
                # Reported once per episode: each takeover would otherwise log a warning.
                logger.debug("MQTT broker: dropped again (%s)", reason)
            else:
                logger.warning("MQTT broker: %s", reason)
        elif reason != self._last_error or was_connected:
            logger.warning("MQTT broker: %s; retrying with backoff", reason)
        else:
            logger.debug("MQTT broker: %s (again)", reason)
        self._last_error = reason
        self._set_state(BrokerState.RECONNECTING, reason)

    def _watch_takeover(self, exc: BaseException | None) -> None:
        """Count connections the broker accepted and then closed; name the likely cause."""
        if self._up_since is None:
            # The connect itself failed: the broker is down or refusing us, not taken over.
            self._takeover_drops = 0
            return
        if time.monotonic() - self._up_since >= self._conflict_clears_after:
            self._takeover_drops = 0
            self._end_conflict()
            return
        address = self._settings.address
        if exc is not None and _taken_over(exc):
            evidence = f"{address} said another client took the session over"
            self._takeover_drops = max(self._takeover_drops + 1, TAKEOVER_DROPS)
        elif exc is not None and _connection_lost(exc):
            self._takeover_drops += 1
            evidence = (
                f"{address} accepted and then dropped this connection "
                f"{self._takeover_drops} times in a row"
            )
        else:
            return
        if self._takeover_drops >= TAKEOVER_DROPS and self._client_id_conflict is None:
            self._client_id_conflict = (
                f"another client uses client id {self._settings.client_id!r}: set "
                f"{CLIENT_ID_SETTING} to an id unique to this server ({evidence})"
            )

    @property
    def _conflict_clears_after(self) -> float:
        """Seconds a connection must last to show that nobody else is using our id."""
        return max(STABLE_CONNECTION, 2 * self._backoff_cap)

    def _end_conflict(self) -> None:
        if self._client_id_conflict is not None:
            if self._last_error == self._client_id_conflict:
                self._last_error = None
            self._client_id_conflict = None
            logger.info(
                "MQTT broker: the connection with client id %r is stable again",
                self._settings.client_id,
            )

    def _set_state(self, state: BrokerState, reason: str) -> None:
        if state is self.state:
            return
        self.state = state
        self._last_change = self._clock()
        logger.info("MQTT bridge %s: %s", state.value, reason)
        if self._on_state is not None:
            try:
                self._on_state(state, reason)
            except Exception:
                logger.exception("on_state failed for the state %s", state.value)

    async def _watch_load(self) -> None:
        """Every ``load_window`` seconds, decide whether the bridge is keeping up."""
        window_start = time.monotonic()
        dropped_before = self._inbox.dropped
        while True:
            await asyncio.sleep(self._load_window)
            now = time.monotonic()
            inbox = self._inbox
            self._load = min(1.0, self._busy / max(now - window_start, 1e-9))
            dropped = inbox.dropped - dropped_before
            overloaded = (
                self._load >= LOAD_LIMIT
                or inbox.window_peak * 2 >= self._max_backlog
                or dropped > 0
            )
            if overloaded and not self._overloaded:
                logger.warning(
                    "MQTT messages arrive faster than they are handled: on_message busy %.0f%% "
                    "of the last %.1f s, backlog peak %d of %d, %d dropped; the broker is "
                    "holding the rest of our session queue",
                    100 * self._load,
                    now - window_start,
                    inbox.window_peak,
                    self._max_backlog,
                    dropped,
                )
            elif self._overloaded and not overloaded:
                logger.info("MQTT bridge caught up (on_message busy %.0f%%)", 100 * self._load)
            up_since = self._up_since
            if (
                self.state is BrokerState.CONNECTED
                and up_since is not None
                and now - up_since >= self._conflict_clears_after
            ):
                self._takeover_drops = 0
                self._end_conflict()
            self._overloaded = overloaded
            self._busy = 0.0
            inbox.window_peak = inbox.backlog
            dropped_before = inbox.dropped
            window_start = now


def _taken_over(exc: BaseException) -> bool:
    """The broker said another client connected with our client id (MQTT 5 brokers may)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return (
        isinstance(cause, aiomqtt.MqttCodeError) and _reason_value(cause.rc) == _SESSION_TAKEN_OVER
    )


def _connection_lost(exc: BaseException) -> bool:
    """The socket just closed, with no reason given (how mosquitto drops a taken-over id)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, aiomqtt.MqttCodeError):
        return _reason_value(cause.rc) in _CONNECTION_LOST
    return isinstance(cause, aiomqtt.MqttError) and str(cause) == (
        "Disconnected during message iteration"
    )


def _connection_refused(exc: BaseException) -> bool:
    """The broker's host answered that nothing listens on the port (a broker restarting)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(cause)


def _watch_connack(client: aiomqtt.Client) -> dict[str, bool]:
    """Record the CONNACK's "session present" flag, which aiomqtt does not expose.

    paho hands it to ``on_connect``, which aiomqtt sets to its own callback; ours wraps it.
    Returns the dict the flag is written to (``session_present``) when the CONNACK comes.
    """
    flags: dict[str, bool] = {}
    paho_client = getattr(client, "_client", None)
    if paho_client is None:
        return flags
    inner = paho_client.on_connect

    def on_connect(*args: object, **kwargs: object) -> None:
        connect_flags = args[2] if len(args) > 2 else kwargs.get("flags")
        present = getattr(connect_flags, "session_present", None)
        if present is None and isinstance(connect_flags, dict):
            present = connect_flags.get("session present")
        if present is not None:
            flags["session_present"] = bool(present)
        inner(*args, **kwargs)

    paho_client.on_connect = on_connect
    return flags


def _close_abandoned(client: aiomqtt.Client) -> None:
    """Close the socket of a client whose CONNECT got no answer.

    aiomqtt only cleans up in ``__aexit__``, which does not apply when ``__aenter__`` failed,
    and it leaves the socket open (and registered with the event loop) after a CONNACK
    timeout. paho's ``disconnect()`` closes it and unregisters it through aiomqtt's own
    socket callbacks; there is no public aiomqtt way to reach it.
    """
    paho_client = getattr(client, "_client", None)
    if paho_client is not None:
        paho_client.disconnect()


def _protocol_name(protocol: aiomqtt.ProtocolVersion) -> str:
    return "5" if protocol is aiomqtt.ProtocolVersion.V5 else "3.1.1"
