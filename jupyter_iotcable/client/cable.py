"""``connect()`` and ``Cable``: one authenticated websocket to the server, shared by subscriptions.

Threading: a cable runs its websocket on a private event loop in a daemon thread (see
``loop.py``). All protocol state (the ``ClientConnection``, the table of identifiers on
the wire) lives on that thread; the public methods hand work over and wait for the
answer, so they are safe from any thread, and their ``*_async`` twins await the same
work from any asyncio loop (ipykernel's included) without blocking it. Subscription
callbacks run on that thread too: there, ``unsubscribe``, ``close`` and
``drop_connection`` act directly, and methods that wait for the server refuse with
``BlockingCallInCallback`` (the answer could only arrive on the thread they block).

Every ``Subscription`` has its own identifier on the wire, so each gets exactly the
history it asked for (the machine drops rows per identifier it already holds: shared,
a second subscription's backfill would be swallowed by the first one's rows). A second
subscription to the same channel and topic adds an ``instance`` param to its identifier;
the server reads only ``channel`` and ``topic`` and ignores other params.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import itertools
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..protocol import (
    BrokerStatus,
    ClientConnection,
    Disconnected,
    HistoryConfirmed,
    HistoryRequest,
    LocalProtocolError,
    RowsReceived,
    ServerError,
    Subprotocol,
    SubscriptionConfirmed,
    Transmission,
    Welcomed,
    make_identifier,
)
from ..protocol import (
    GapReported as Gap,
)
from ..protocol import (
    SubscriptionRejected as RejectedEvent,
)
from .discovery import Endpoint, discover
from .durations import since_timestamp, window_bounds
from .errors import (
    BlockingCallInCallback,
    CableClosed,
    ConnectionFailed,
    IoTCableError,
    IoTCableTimeout,
    SubscriptionRejected,
)
from .loop import BackgroundLoop
from .payloads import publishable
from .subscription import Subscription, _facts_table
from .transport import DEFAULT_MAX_MESSAGE_SIZE, Transport, get_json, scheme_hint

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from datetime import datetime, timedelta
    from types import TracebackType

    from ..protocol import ClientEvent

log = logging.getLogger("jupyter_iotcable.client")

T = TypeVar("T")
CableState = Literal["connecting", "connected", "reconnecting", "closed"]

_OPEN_CABLES: weakref.WeakSet[Cable] = weakref.WeakSet()


def _close_open_cables() -> None:
    """Close every cable at interpreter exit, so the server sees a clean close (1000)."""
    for cable in list(_OPEN_CABLES):
        cable.close(timeout=1.0)


def _close_at_exit() -> None:
    # ``atexit`` runs only after Python has joined the non-daemon threads, so a user
    # thread blocked in ``sub.readings()`` would keep the script from ever exiting.
    # ``threading._register_atexit`` (what concurrent.futures uses) runs before that join:
    # closing the cables there ends their iterators, and the threads can finish.
    register_before_join = getattr(threading, "_register_atexit", None)
    if register_before_join is not None:
        # RuntimeError: imported while the interpreter is already shutting down.
        with contextlib.suppress(RuntimeError):
            register_before_join(_close_open_cables)
    atexit.register(_close_open_cables)


_close_at_exit()


@dataclass(frozen=True)
class PublishResult:
    """The server's answer to a publish; truthy when it was accepted."""

    ok: bool
    topic: str
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class ChannelInfo:
    """A channel the user may read or write, as ``cable.channels()`` lists it."""

    name: str
    topics: tuple[str, ...]
    columns: str | None
    format: str
    read: bool
    write: bool
    description: str = ""


@dataclass
class _Wire:
    """One identifier subscribed on the wire, and who waits on it.

    It belongs to one ``subscription``, or to none when it was opened only because the
    server answers a publish only on a subscription of the channel; ``publishing``
    counts the publishes waiting for their answer on it. Once neither is left, the
    identifier is unsubscribed, so that no hidden subscription keeps streaming rows.
    """

    channel: str
    topic: str | None
    subscription: Subscription | None = None
    publishing: int = 0
    state: Literal["pending", "confirmed"] = "pending"
    meta: dict[str, Any] = field(default_factory=dict)
    confirm_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    history_waiters: list[asyncio.Future[None]] = field(default_factory=list)


def connect(
    url: str | None = None,
    token: str | None = None,
    *,
    timeout: float = 10.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> Cable:
    """Connect to the iotcable server and return a ``Cable`` once the server welcomed it.

    Without ``url``, finds the server: ``IOTCABLE_URL``/``IOTCABLE_TOKEN``, then
    JupyterHub's ``JUPYTERHUB_SERVICE_URL``/``JUPYTERHUB_API_TOKEN``, then the runtime
    file of the Jupyter server that started this kernel. ``url`` is the server's base
    URL (``http://127.0.0.1:8888/``; a ``?token=`` in it is used as the token).

    Raises ``ServerNotFound``, ``ConnectionFailed``, ``AuthenticationFailed`` or
    ``IoTCableTimeout``; each message says what to do.
    """
    cable = Cable(discover(url, token), timeout=timeout, max_message_size=max_message_size)
    try:
        cable._wait(cable._ready, timeout, "waiting for the server's welcome")
    except IoTCableTimeout as exc:
        cable.close()
        raise _with_scheme_hint(exc, cable.endpoint) from None
    except BaseException:
        cable.close()
        raise
    return cable


async def connect_async(
    url: str | None = None,
    token: str | None = None,
    *,
    timeout: float = 10.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> Cable:
    """``connect`` for asyncio code: awaits the welcome without blocking the caller's loop."""
    cable = Cable(discover(url, token), timeout=timeout, max_message_size=max_message_size)
    try:
        await cable._await(cable._ready, timeout, "waiting for the server's welcome")
    except IoTCableTimeout as exc:
        await cable.aclose()
        raise _with_scheme_hint(exc, cable.endpoint) from None
    except BaseException:
        await cable.aclose()
        raise
    return cable


def _with_scheme_hint(error: IoTCableTimeout, endpoint: Endpoint) -> IoTCableTimeout:
    """An https URL that gets no answer is most often a plain-http server (see scheme_hint)."""
    hint = scheme_hint(endpoint)
    return IoTCableTimeout(f"{error}{hint}") if hint else error


class Cable:
    """A connection to an iotcable server; create it with ``connect()``.

    Use it as a context manager (``with connect(...) as cable``), or call ``close()``;
    open cables are also closed at interpreter exit.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float = 10.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.state: CableState = "connecting"
        self.sid: str | None = None
        self.broker: str | None = None
        self.broker_detail: str | None = None
        self.error: IoTCableError | None = None
        self.last_server_error: str | None = None
        self._closing = False
        self._wires: dict[str, _Wire] = {}
        self._publish_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refs = itertools.count(1)
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = BackgroundLoop(name=f"iotcable {endpoint.base_url}")
        self._connection = ClientConnection(subprotocol=Subprotocol.IOTCABLE)
        self._transport: Transport
        self._connected: asyncio.Event
        self._run_task: asyncio.Task[None]
        self._loop.call(self._start, timeout, max_message_size).result()
        _OPEN_CABLES.add(self)

    def _start(self, timeout: float, max_message_size: int) -> None:
        # Created on the loop's thread: asyncio objects belong to the loop that uses them.
        self._connected = asyncio.Event()
        self._transport = Transport(
            self.endpoint,
            self._connection,
            self,
            connect_timeout=timeout,
            max_message_size=max_message_size,
        )
        self._run_task = asyncio.ensure_future(self._transport.run())

    @property
    def url(self) -> str:
        """The server's base URL (never with the token)."""
        return self.endpoint.base_url

    @property
    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions of this cable."""
        subs = (wire.subscription for wire in list(self._wires.values()))
        return [sub for sub in subs if sub is not None]

    # -- subscribing ------------------------------------------------------------------------

    def subscribe(
        self,
        channel: str,
        topic: str | None = None,
        *,
        window: str | timedelta | int | None = "15min",
        max_rows: int = 100_000,
        history: str | timedelta | datetime | float | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Subscribe to ``channel`` (narrowed to the MQTT filter ``topic`` if given).

        Blocks until the server confirmed (and, with ``history``, until the backfill was
        answered). ``window`` bounds the frame in time (``"15min"``, a timedelta) or in
        rows (an int); ``max_rows`` always bounds it. Raises ``SubscriptionRejected``
        with the server's reason when the channel is unknown, forbidden, or ``topic``
        lies outside it.
        """
        sub, work = self._prepare_subscribe(channel, topic, window, max_rows, history)
        self._run(work, self._timeout(timeout), f"subscribing to {channel!r}")
        return sub

    async def subscribe_async(
        self,
        channel: str,
        topic: str | None = None,
        *,
        window: str | timedelta | int | None = "15min",
        max_rows: int = 100_000,
        history: str | timedelta | datetime | float | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """``subscribe`` for asyncio code."""
        sub, work = self._prepare_subscribe(channel, topic, window, max_rows, history)
        await self._await(self._submit(work), self._timeout(timeout), f"subscribing to {channel!r}")
        return sub

    def _prepare_subscribe(
        self,
        channel: str,
        topic: str | None,
        window: str | timedelta | int | None,
        max_rows: int,
        history: str | timedelta | datetime | float | None,
    ) -> tuple[Subscription, Coroutine[object, object, None]]:
        rows, seconds = window_bounds(window, max_rows)
        since = None if history is None else since_timestamp(history, time.time())
        _check_channel(channel, topic)
        # The identifier on the wire is chosen on the cable's thread, which owns the table.
        sub = Subscription(self, channel, topic, "", max_rows=rows, window=seconds)
        return sub, self._subscribe(sub, since)

    async def _subscribe(self, sub: Subscription, since: float | None) -> None:
        try:
            await self._until_connected()
            history = HistoryRequest(since=since) if since is not None else None
            identifier = self._connection.subscribe(
                sub.channel, history=history, **self._free_params(sub.channel, sub.topic)
            )
            sub.identifier = identifier
            wire = self._wires[identifier] = _Wire(sub.channel, sub.topic, subscription=sub)
            loop = asyncio.get_running_loop()
            waiters = [_waiter(loop, wire.confirm_waiters)]
            if since is not None:
                waiters.append(_waiter(loop, wire.history_waiters))
            self._transport.flush()
            for waiter in waiters:
                await waiter
        except BaseException:
            self._forget_subscriber(sub)
            raise

    def _free_params(self, channel: str, topic: str | None) -> dict[str, str]:
        """Identifier params naming a new subscription: an ``instance`` when the plain
        identifier of this channel and topic is taken (its server side ignores it)."""
        params = _params(topic)
        instance = 1
        while make_identifier(channel, **params) in self._wires:
            instance += 1
            params = {**_params(topic), "instance": str(instance)}
        return params

    def _request_history(
        self, sub: Subscription, since: str | timedelta | datetime | float, timeout: float
    ) -> None:
        start = since_timestamp(since, time.time())
        self._run(self._history(sub, start), timeout, "waiting for history")

    async def _history(self, sub: Subscription, since: float) -> None:
        await self._until_connected()
        wire = self._wires.get(sub.identifier)
        if wire is None or wire.subscription is not sub:
            raise CableClosed(f"{sub!r} is not subscribed any more: subscribe again first")
        if wire.state == "pending":  # resubscribing after a reconnect
            await _waiter(asyncio.get_running_loop(), wire.confirm_waiters)
        waiter = _waiter(asyncio.get_running_loop(), wire.history_waiters)
        self._connection.request_history(sub.identifier, since=since)
        self._transport.flush()
        await waiter

    def _unsubscribe(self, sub: Subscription) -> None:
        if self._loop.in_loop_thread:
            # A callback: the table is ours already, and waiting for the loop would
            # wait for ourselves, for ever.
            self._forget_subscriber(sub)
            return
        try:
            self._loop.call(self._forget_subscriber, sub).result()
        except RuntimeError:  # the loop closed in the meantime: nothing left on the wire
            sub._end("unsubscribed")

    def _forget_subscriber(self, sub: Subscription) -> None:
        if sub.state in ("pending", "live"):
            sub._end("unsubscribed")
        wire = self._wires.get(sub.identifier)
        if wire is None or wire.subscription is not sub:
            return
        wire.subscription = None
        self._release_if_unused(sub.identifier, wire)

    def _release_if_unused(self, identifier: str, wire: _Wire) -> None:
        """Unsubscribe ``identifier`` once no subscription and no publish uses it."""
        if (
            wire.subscription is not None
            or wire.publishing
            or self._wires.get(identifier) is not wire
        ):
            return
        del self._wires[identifier]
        for waiter in wire.confirm_waiters + wire.history_waiters:
            waiter.cancel()
        # Also while reconnecting: the machine would otherwise subscribe it again.
        self._connection.unsubscribe(identifier)
        self._transport.flush()

    # -- publishing -------------------------------------------------------------------------

    def publish(
        self,
        channel: str,
        payload: object,
        *,
        topic: str,
        timeout: float | None = None,
        check: bool = True,
    ) -> PublishResult:
        """Publish ``payload`` to the MQTT ``topic`` through ``channel``.

        Returns the server's ``PublishResult`` (truthy when accepted). A refusal (no
        write permission, topic outside the channel, payload the channel's format cannot
        carry) raises ``PublishRefused`` with the server's reason, or with
        ``check=False`` comes back as a falsy result whose ``reason`` says why.
        """
        _check_channel(channel, topic)
        message = publishable(payload)
        result = self._run(
            self._publish(channel, message, topic),
            self._timeout(timeout),
            f"publishing to {topic!r}",
        )
        return _checked(channel, result, check)

    async def publish_async(
        self,
        channel: str,
        payload: object,
        *,
        topic: str,
        timeout: float | None = None,
        check: bool = True,
    ) -> PublishResult:
        """``publish`` for asyncio code."""
        _check_channel(channel, topic)
        message = publishable(payload)
        result = await self._await(
            self._submit(self._publish(channel, message, topic)),
            self._timeout(timeout),
            f"publishing to {topic!r}",
        )
        return _checked(channel, result, check)

    async def _publish(self, channel: str, payload: object, topic: str) -> PublishResult:
        await self._until_connected()
        identifier, wire = self._wire_to_publish_on(channel, topic)
        wire.publishing += 1
        try:
            if wire.state == "pending":
                try:
                    await _waiter(asyncio.get_running_loop(), wire.confirm_waiters)
                except SubscriptionRejected as exc:
                    return PublishResult(False, topic, exc.reason)
            return await self._perform_publish(identifier, payload, topic)
        finally:
            wire.publishing -= 1
            self._release_if_unused(identifier, wire)

    def _wire_to_publish_on(self, channel: str, topic: str) -> tuple[str, _Wire]:
        """The server answers a publish only on a subscription of the channel: use one we
        have, else subscribe to just the publish topic until the answer is in."""
        for identifier, wire in self._wires.items():
            if wire.channel == channel:
                return identifier, wire
        identifier = self._connection.subscribe(
            channel, history=None, **self._free_params(channel, topic)
        )
        wire = self._wires[identifier] = _Wire(channel, topic)
        self._transport.flush()
        return identifier, wire

    async def _perform_publish(self, identifier: str, payload: object, topic: str) -> PublishResult:
        ref = str(next(self._refs))
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._publish_waiters[ref] = answer
        try:
            self._connection.perform(
                identifier, "publish", {"topic": topic, "payload": payload, "ref": ref}
            )
            self._transport.flush()
            message = await answer
        finally:
            self._publish_waiters.pop(ref, None)
        reason = message.get("reason")
        return PublishResult(
            message.get("ok") is True,
            str(message.get("topic", topic)),
            reason if isinstance(reason, str) else None,
        )

    # -- REST -------------------------------------------------------------------------------

    def channels(self, *, timeout: float | None = None) -> list[ChannelInfo]:
        """The channels this user may read or write (``GET iotcable/api/channels``)."""
        wait = self._timeout(timeout)
        body = self._run(get_json(self.endpoint, "channels", wait), wait + 1, "listing channels")
        return _channel_infos(body, self.endpoint)

    # -- lifecycle --------------------------------------------------------------------------

    def drop_connection(self) -> None:
        """Abort the websocket as a network failure would (no closing handshake).

        The cable then reconnects and resumes like after any outage: a way to check
        that code survives one.
        """
        if self._loop.in_loop_thread:
            self._transport.drop()
            return
        if self._closing or self._loop.loop.is_closed():
            raise CableClosed(f"the cable to {self.url} is closed: there is no connection to drop")
        self._loop.call(self._transport.drop).result()

    def close(self, timeout: float = 5.0) -> None:
        """Close the websocket cleanly and stop the background thread. Idempotent.

        From a subscription callback it ends the subscriptions and iterators at once,
        and the closing handshake finishes on the cable's thread after the callback.
        """
        _OPEN_CABLES.discard(self)
        if self._loop.loop.is_closed():
            return
        if self._closing:
            # Closed from a callback (or another thread): wait for that close to finish.
            if not self._loop.in_loop_thread:
                self._loop.join(timeout + 1)
            return
        self._closing = True
        if self._loop.in_loop_thread:
            self._close_from_callback(timeout)
            return
        try:
            self._loop.submit(self._shutdown(timeout)).result(timeout + 1)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("iotcable: closing %s timed out", self.url)
        self._loop.stop(timeout)

    def _close_from_callback(self, timeout: float) -> None:
        # The loop cannot wait for itself: end what users wait on now, and let the loop
        # run the shutdown after this callback returns, then stop.
        self.state = "closed"
        self._connected.clear()
        self._end_everything()
        shutdown = asyncio.ensure_future(self._shutdown(timeout))
        shutdown.add_done_callback(lambda _: self._loop.loop.stop())

    async def aclose(self) -> None:
        """``close`` for asyncio code."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    async def _shutdown(self, timeout: float) -> None:
        self._transport.close()
        await asyncio.wait({self._run_task}, timeout=timeout)

    def __enter__(self) -> Cable:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Cable:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- display ----------------------------------------------------------------------------

    def _describe(self) -> dict[str, str]:
        subs = self.subscriptions
        facts = {
            "server": self.url,
            "state": self.state if self.error is None else f"{self.state}: {self.error}",
            "broker": self.broker or "unknown",
            "subscriptions": ", ".join(repr(s.channel) for s in subs) or "none",
            "rate": f"{sum(s.rate for s in subs):.1f} readings/s",
            "rows": f"{sum(len(s) for s in subs):,}",
            "gaps": str(sum(len(s.gaps) for s in subs)),
        }
        return facts

    def __repr__(self) -> str:
        facts = self._describe()
        return (
            f"<Cable {self.url} {facts['state']}, subscriptions: {facts['subscriptions']}, "
            f"rate={facts['rate']}>"
        )

    def _repr_html_(self) -> str:
        return _facts_table("Cable", self._describe())

    # -- transport listener (loop thread) ---------------------------------------------------

    def transport_state(self, state: str) -> None:
        if state == "closed":
            self.state = "closed"
            self._connected.clear()
            self._end_everything()
        elif state == "reconnecting":
            self.state = "reconnecting"
            self._connected.clear()
            # The machine resubscribes on the welcome; until the server confirms again,
            # nothing may be performed on these identifiers.
            for wire in self._wires.values():
                wire.state = "pending"

    def transport_failed(self, error: IoTCableError) -> None:
        self.error = error
        if not self._ready.done():
            self._ready.set_exception(error)
        else:
            log.warning("iotcable: %s", error)

    def transport_events(self, events: list[ClientEvent]) -> None:
        for event in events:
            self._dispatch(event)

    def _dispatch(self, event: ClientEvent) -> None:
        if isinstance(event, RowsReceived):
            sub = self._subscription(event.identifier)
            if sub is not None:
                sub._receive(event.epoch, list(event.rows), event.dropped)
        elif isinstance(event, Welcomed):
            self.state = "connected"
            self.sid = event.sid
            self._connected.set()
            if not self._ready.done():
                self._ready.set_result(None)
        elif isinstance(event, SubscriptionConfirmed):
            self._confirmed(event.identifier, dict(event.meta or {}))
        elif isinstance(event, RejectedEvent):
            self._rejected(event.identifier, event.reason)
        elif isinstance(event, Transmission):
            message = dict(event.message)
            if message.get("action") == "publish_result":
                waiter = self._publish_waiters.get(str(message.get("ref")))
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
        elif isinstance(event, HistoryConfirmed):
            self._history_answered(event.identifier)
        elif isinstance(event, Gap):
            self._gap(event)
        elif isinstance(event, BrokerStatus):
            self.broker, self.broker_detail = event.state, event.detail
        elif isinstance(event, ServerError):
            self.last_server_error = f"{event.code}: {event.message}"
            log.warning("iotcable: the server reported %s", self.last_server_error)
        elif isinstance(event, Disconnected):
            log.info("iotcable: disconnected by the server (%s)", event.reason)

    def _confirmed(self, identifier: str, meta: dict[str, Any]) -> None:
        wire = self._wires.get(identifier)
        if wire is None:
            return
        wire.state = "confirmed"
        wire.meta = meta
        if wire.subscription is not None:
            wire.subscription._confirm(meta)
        _resolve(wire.confirm_waiters)

    def _rejected(self, identifier: str, reason: str) -> None:
        wire = self._wires.pop(identifier, None)
        if wire is None:
            return
        self._connection.unsubscribe(identifier)  # forget it (a rejected one sends nothing)
        error = SubscriptionRejected(wire.channel, wire.topic, reason)
        if wire.subscription is not None:
            wire.subscription._end("rejected", reason)
        _resolve(wire.confirm_waiters + wire.history_waiters, error)

    def _history_answered(self, identifier: str) -> None:
        wire = self._wires.get(identifier)
        if wire is not None:
            _resolve(wire.history_waiters)

    def _gap(self, event: Gap) -> None:
        wire = self._wires.get(event.identifier)
        if wire is None:
            return
        if wire.subscription is not None:
            wire.subscription._record_gap(
                reason=event.reason,
                stream_id=event.stream_id,
                epoch_changed=event.epoch_changed,
                after_offset=event.after_offset,
                available_from=event.available_from,
            )
        # A reject_history is how the server answers a history request it cannot serve.
        _resolve(wire.history_waiters)

    def _subscription(self, identifier: str) -> Subscription | None:
        wire = self._wires.get(identifier)
        return None if wire is None else wire.subscription

    def _end_everything(self) -> None:
        error = self.error or CableClosed(f"the cable to {self.url} is closed")
        for wire in self._wires.values():
            if wire.subscription is not None:
                wire.subscription._end("closed", None if self.error is None else str(self.error))
            _resolve(wire.confirm_waiters + wire.history_waiters, error)
        self._wires.clear()
        for waiter in self._publish_waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
        if not self._ready.done():
            self._ready.set_exception(error)

    # -- waiting across threads -------------------------------------------------------------

    async def _until_connected(self) -> None:
        """Wait out a reconnection; fail at once on a closed cable."""
        if self._connected.is_set():
            return
        if not self._run_task.done():
            connected = asyncio.ensure_future(self._connected.wait())
            try:
                await asyncio.wait({connected, self._run_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                connected.cancel()
        if not self._connected.is_set():
            raise self.error or CableClosed(f"the cable to {self.url} is closed")

    def _submit(self, coro: Coroutine[object, object, T]) -> concurrent.futures.Future[T]:
        if self._closing or self._loop.loop.is_closed():
            coro.close()
            raise self.error or CableClosed(f"the cable to {self.url} is closed")
        return self._loop.submit(coro)

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _run(self, coro: Coroutine[object, object, T], timeout: float, what: str) -> T:
        """Run ``coro`` on the cable's thread and wait for its result (sync methods)."""
        if self._loop.in_loop_thread:
            # Checked before anything is sent: refused work must not half happen.
            coro.close()
            raise BlockingCallInCallback(
                f"{what}: this waits for the server's answer, which arrives on the thread "
                "running this subscription callback, so it cannot be done here. Hand it to "
                "another thread, e.g. threading.Thread(target=cable.publish, args=(...), "
                "kwargs={...}).start(), or act on readings from sub.readings() instead. "
                "sub.unsubscribe(), cable.close() and cable.drop_connection() work here."
            )
        return self._wait(self._submit(coro), timeout, what)

    def _wait(
        self,
        future: concurrent.futures.Future[T],
        timeout: float,
        what: str,
    ) -> T:
        if self._loop.in_loop_thread:
            raise BlockingCallInCallback(
                f"{what}: a cable cannot wait for its own thread (a subscription callback)"
            )
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise self._timed_out(what, timeout) from None

    async def _await(self, future: concurrent.futures.Future[T], timeout: float, what: str) -> T:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            raise self._timed_out(what, timeout) from None

    def _timed_out(self, what: str, timeout: float) -> IoTCableTimeout:
        return IoTCableTimeout(
            f"{what}: no answer from {self.url} within {timeout:g} s "
            f"(cable {self.state}); pass a longer timeout=... if the server is busy"
        )


def _check_channel(channel: str, topic: str | None) -> None:
    """Refuse on the caller's thread what cannot become an identifier."""
    if not isinstance(channel, str) or not (topic is None or isinstance(topic, str)):
        raise TypeError(
            f"channel and topic must be strings, got {type(channel).__name__} and "
            f"{type(topic).__name__}; cable.channels() lists the channels"
        )
    try:
        make_identifier(channel, **_params(topic))
    except LocalProtocolError as exc:
        raise ValueError(
            f"channel {channel!r}: {exc}; cable.channels() lists the channels"
        ) from None


def _params(topic: str | None) -> dict[str, str]:
    return {} if topic is None else {"topic": topic}


def _waiter(
    loop: asyncio.AbstractEventLoop, waiters: list[asyncio.Future[None]]
) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()
    waiters.append(future)
    return future


def _resolve(waiters: list[asyncio.Future[None]], error: BaseException | None = None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
    waiters.clear()


def _checked(channel: str, result: PublishResult, check: bool) -> PublishResult:
    if check and not result.ok:
        from .errors import PublishRefused

        raise PublishRefused(channel, result)
    return result


def _channel_infos(body: object, endpoint: Endpoint) -> list[ChannelInfo]:
    entries = body.get("channels") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise ConnectionFailed(
            f"{endpoint.api_url('channels')} answered without a 'channels' list: "
            "is the server's jupyter-iotcable the same version as this client?"
        )
    infos = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        columns = entry.get("columns")
        infos.append(
            ChannelInfo(
                name=entry["name"],
                topics=tuple(str(t) for t in entry.get("topics") or ()),
                columns=columns if isinstance(columns, str) else None,
                format=str(entry.get("format", "")),
                read=entry.get("read") is True,
                write=entry.get("write") is True,
                description=str(entry.get("description") or ""),
            )
        )
    return infos
