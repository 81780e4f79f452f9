"""``connect()`` and ``Cable``: one authenticated websocket to the server, shared by subscriptions.

Threading: a cable runs its websocket on a private event loop in a daemon thread (see
``loop.py``). All protocol state (the ``ClientConnection``, the table of identifiers on
the wire) lives on that thread; the public methods hand work over and wait for the
answer, so they are safe from any thread, and their ``*_async`` twins await the same
work from any asyncio loop (ipykernel's included) without blocking it.

Several ``Subscription`` objects may share one identifier on the wire (same channel and
topic): the server is subscribed once and every one of them gets the rows.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import itertools
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..protocol import (
    BrokerStatus,
    ClientConnection,
    Disconnected,
    Gap,
    HistoryConfirmed,
    HistoryRequest,
    RowsReceived,
    ServerError,
    Subprotocol,
    SubscriptionConfirmed,
    Transmission,
    Welcomed,
    make_identifier,
)
from ..protocol import (
    SubscriptionRejected as RejectedEvent,
)
from .discovery import Endpoint, discover
from .durations import since_timestamp, window_bounds
from .errors import (
    CableClosed,
    ConnectionFailed,
    IoTCableError,
    IoTCableTimeout,
    SubscriptionRejected,
)
from .loop import BackgroundLoop
from .subscription import Subscription, _facts_table
from .transport import DEFAULT_MAX_MESSAGE_SIZE, Transport, get_json

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from datetime import datetime, timedelta
    from types import TracebackType

    from ..protocol import ClientEvent

log = logging.getLogger("jupyter_iotcable.client")

T = TypeVar("T")
CableState = Literal["connecting", "connected", "reconnecting", "closed"]

_OPEN_CABLES: weakref.WeakSet[Cable] = weakref.WeakSet()


@atexit.register
def _close_open_cables() -> None:
    """Close every cable at interpreter exit, so the server sees a clean close (1000)."""
    for cable in list(_OPEN_CABLES):
        cable.close(timeout=1.0)


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
    """One identifier subscribed on the wire, and who waits on it."""

    channel: str
    topic: str | None
    state: Literal["pending", "confirmed"] = "pending"
    meta: dict[str, Any] = field(default_factory=dict)
    subscribers: list[Subscription] = field(default_factory=list)
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
    except BaseException:
        await cable.aclose()
        raise
    return cable


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
        return [sub for wire in list(self._wires.values()) for sub in list(wire.subscribers)]

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
        self._wait(work, self._timeout(timeout), f"subscribing to {channel!r}")
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
        await self._await(work, self._timeout(timeout), f"subscribing to {channel!r}")
        return sub

    def _prepare_subscribe(
        self,
        channel: str,
        topic: str | None,
        window: str | timedelta | int | None,
        max_rows: int,
        history: str | timedelta | datetime | float | None,
    ) -> tuple[Subscription, concurrent.futures.Future[None]]:
        rows, seconds = window_bounds(window, max_rows)
        since = None if history is None else since_timestamp(history, time.time())
        identifier = _identifier(channel, topic)
        sub = Subscription(self, channel, topic, identifier, max_rows=rows, window=seconds)
        return sub, self._submit(self._subscribe(sub, since))

    async def _subscribe(self, sub: Subscription, since: float | None) -> None:
        await self._until_connected()
        wire = self._wires.get(sub.identifier)
        new = wire is None
        if wire is None:
            wire = self._wires[sub.identifier] = _Wire(sub.channel, sub.topic)
        wire.subscribers.append(sub)
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[None]] = []
        try:
            if wire.state == "pending":
                waiters.append(_waiter(loop, wire.confirm_waiters))
            if since is not None:
                waiters.append(_waiter(loop, wire.history_waiters))
            if new:
                history = HistoryRequest(since=since) if since is not None else None
                self._connection.subscribe(sub.channel, history=history, **_params(sub.topic))
            elif since is not None and wire.state == "confirmed":
                self._connection.request_history(sub.identifier, since=since)
            self._transport.flush()
            if wire.state == "confirmed":
                sub._confirm(wire.meta)
            for waiter in waiters:
                await waiter
        except BaseException:
            self._forget_subscriber(sub, "unsubscribed")
            raise

    def _request_history(
        self, sub: Subscription, since: str | timedelta | datetime | float, timeout: float
    ) -> None:
        start = since_timestamp(since, time.time())
        self._wait(self._submit(self._history(sub, start)), timeout, "waiting for history")

    async def _history(self, sub: Subscription, since: float) -> None:
        await self._until_connected()
        wire = self._wires.get(sub.identifier)
        if wire is None or sub not in wire.subscribers:
            raise CableClosed(f"{sub!r} is not subscribed any more: subscribe again first")
        if wire.state == "pending":  # resubscribing after a reconnect
            await _waiter(asyncio.get_running_loop(), wire.confirm_waiters)
        waiter = _waiter(asyncio.get_running_loop(), wire.history_waiters)
        self._connection.request_history(sub.identifier, since=since)
        self._transport.flush()
        await waiter

    def _unsubscribe(self, sub: Subscription) -> None:
        if self._loop.loop.is_closed():
            sub._end("unsubscribed")
            return
        self._loop.call(self._forget_subscriber, sub, "unsubscribed").result()

    def _forget_subscriber(self, sub: Subscription, state: Literal["unsubscribed"]) -> None:
        wire = self._wires.get(sub.identifier)
        if sub.state in ("pending", "live"):
            sub._end(state)
        if wire is None or sub not in wire.subscribers:
            return
        wire.subscribers.remove(sub)
        if wire.subscribers:
            return
        del self._wires[sub.identifier]
        for waiter in wire.confirm_waiters + wire.history_waiters:
            waiter.cancel()
        if self._transport.is_open:
            self._connection.unsubscribe(sub.identifier)
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
        result = self._wait(
            self._submit(self._publish(channel, payload, topic)),
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
        result = await self._await(
            self._submit(self._publish(channel, payload, topic)),
            self._timeout(timeout),
            f"publishing to {topic!r}",
        )
        return _checked(channel, result, check)

    async def _publish(self, channel: str, payload: object, topic: str) -> PublishResult:
        await self._until_connected()
        # The server answers a perform only on a subscription of the channel: use any we
        # have, else subscribe narrowly (to the publish topic) so that few rows come along.
        identifier = next((i for i, w in self._wires.items() if w.channel == channel), None)
        if identifier is None:
            identifier = _identifier(channel, topic)
            self._wires[identifier] = _Wire(channel, topic)
            self._connection.subscribe(channel, history=None, **_params(topic))
            self._transport.flush()
        if self._wires[identifier].state == "pending":
            try:
                await _waiter(asyncio.get_running_loop(), self._wires[identifier].confirm_waiters)
            except SubscriptionRejected as exc:
                return PublishResult(False, topic, exc.reason)
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
        body = self._wait(
            self._submit(get_json(self.endpoint, "channels", wait)), wait + 1, "listing channels"
        )
        return _channel_infos(body, self.endpoint)

    # -- lifecycle --------------------------------------------------------------------------

    def drop_connection(self) -> None:
        """Abort the websocket as a network failure would (no closing handshake).

        The cable then reconnects and resumes like after any outage: a way to check
        that code survives one.
        """
        self._loop.call(self._transport.drop).result()

    def close(self, timeout: float = 5.0) -> None:
        """Close the websocket cleanly and stop the background thread. Idempotent."""
        _OPEN_CABLES.discard(self)
        if self._loop.loop.is_closed():
            return
        if not self._loop.in_loop_thread:
            try:
                self._submit(self._shutdown(timeout)).result(timeout + 1)
            except (concurrent.futures.TimeoutError, RuntimeError):
                log.warning("iotcable: closing %s timed out", self.url)
        self._loop.stop(timeout)

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
            wire = self._wires.get(event.identifier)
            if wire is not None:
                for sub in wire.subscribers:
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
        for sub in wire.subscribers:
            sub._confirm(meta)
        _resolve(wire.confirm_waiters)

    def _rejected(self, identifier: str, reason: str) -> None:
        wire = self._wires.pop(identifier, None)
        if wire is None:
            return
        self._connection.unsubscribe(identifier)  # forget it (a rejected one sends nothing)
        error = SubscriptionRejected(wire.channel, wire.topic, reason)
        for sub in wire.subscribers:
            sub._end("rejected", reason)
        _resolve(wire.confirm_waiters + wire.history_waiters, error)

    def _history_answered(self, identifier: str) -> None:
        wire = self._wires.get(identifier)
        if wire is not None:
            _resolve(wire.history_waiters)

    def _gap(self, event: Gap) -> None:
        wire = self._wires.get(event.identifier)
        if wire is None:
            return
        for sub in wire.subscribers:
            sub._record_gap(
                reason=event.reason,
                stream_id=event.stream_id,
                epoch_changed=event.epoch_changed,
                after_offset=event.after_offset,
                available_from=event.available_from,
            )
        # A reject_history is how the server answers a history request it cannot serve.
        _resolve(wire.history_waiters)

    def _end_everything(self) -> None:
        error = self.error or CableClosed(f"the cable to {self.url} is closed")
        for wire in self._wires.values():
            for sub in wire.subscribers:
                sub._end("closed", None if self.error is None else str(self.error))
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
        if self._loop.loop.is_closed():
            coro.close()
            raise self.error or CableClosed(f"the cable to {self.url} is closed")
        return self._loop.submit(coro)

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _wait(
        self,
        future: concurrent.futures.Future[T],
        timeout: float,
        what: str,
    ) -> T:
        if self._loop.in_loop_thread:
            raise RuntimeError(
                "a cable cannot wait for its own thread: do not call blocking cable methods "
                "from a subscription callback; use the *_async methods or another thread"
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


def _identifier(channel: str, topic: str | None) -> str:
    return make_identifier(channel, **_params(topic))


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
