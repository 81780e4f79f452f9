"""``connect()`` and ``Cable``: the public API of one authenticated websocket to the server.

Threading: a cable runs its websocket on a private event loop in a daemon thread (see
``loop.py``). All protocol state lives in its ``ClientSession`` on that thread; the public
methods hand work over, get a ``concurrent.futures.Future`` back and wait for it, so they
are safe from any thread, and their ``*_async`` twins await the same answer from any
asyncio loop (ipykernel's included) without blocking it. Subscription callbacks run on
that thread too: there, ``unsubscribe``, ``close`` and ``drop_connection`` act directly,
and methods that wait for the server refuse with ``BlockingCallInCallback`` (the answer
could only arrive on the thread they block).

Errors a user can act on (a wrong channel, a refused publish, a timeout) are raised from
the method the user called, with the internal chain suppressed: the traceback is the
user's call and one line of ours, not the cable thread's machinery.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, TypeVar

from ..protocol import LocalProtocolError, make_identifier
from .channels import ChannelInfo, Channels, parse_channels
from .discovery import Endpoint, discover
from .durations import since_timestamp, window_bounds
from .errors import (
    BlockingCallInCallback,
    CableClosed,
    IoTCableError,
    IoTCableTimeout,
    PublishRefused,
    SubscriptionRejected,
)
from .gaps import describe_time
from .inbox import Inbox
from .loop import BackgroundLoop
from .payloads import publishable
from .session import BrokerReport, CableState, ClientSession, PublishResult
from .subscription import USER_ERRORS, Subscription, facts_table
from .transport import DEFAULT_MAX_MESSAGE_SIZE, Transport, get_json, scheme_hint

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from datetime import datetime, timedelta
    from types import TracebackType

__all__ = ["BrokerReport", "Cable", "ChannelInfo", "PublishResult", "connect", "connect_async"]

log = logging.getLogger("jupyter_iotcable.client")

T = TypeVar("T")


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
    try:
        cable = Cable(discover(url, token), timeout=timeout, max_message_size=max_message_size)
        try:
            cable._wait(cable._session.ready, timeout, "waiting for the server's welcome")
        except IoTCableTimeout as exc:
            cable.close()
            raise _with_scheme_hint(exc, cable.endpoint) from None
        except BaseException:
            cable.close()
            raise
    except USER_ERRORS as error:
        raise error.with_traceback(None) from None
    return cable


async def connect_async(
    url: str | None = None,
    token: str | None = None,
    *,
    timeout: float = 10.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> Cable:
    """``connect`` for asyncio code: awaits the welcome without blocking the caller's loop."""
    try:
        cable = Cable(discover(url, token), timeout=timeout, max_message_size=max_message_size)
        try:
            await cable._await(cable._session.ready, timeout, "waiting for the server's welcome")
        except IoTCableTimeout as exc:
            await cable.aclose()
            raise _with_scheme_hint(exc, cable.endpoint) from None
        except BaseException:
            await cable.aclose()
            raise
    except USER_ERRORS as error:
        raise error.with_traceback(None) from None
    return cable


def _with_scheme_hint(error: IoTCableTimeout, endpoint: Endpoint) -> IoTCableTimeout:
    """An https URL that gets no answer is most often a plain-http server (see scheme_hint)."""
    hint = scheme_hint(endpoint)
    return IoTCableTimeout(f"{error}{hint}") if hint else error


class _Control:
    """What a ``Subscription`` may ask of its cable (``SubscriptionControl``)."""

    def __init__(self, cable: Cable) -> None:
        self._cable = cable

    @property
    def url(self) -> str:
        return self._cable.url

    @property
    def cable_state(self) -> str:
        return self._cable.state

    def unsubscribe(self, inbox: Inbox) -> None:
        self._cable._unsubscribe(inbox)

    def history(
        self, inbox: Inbox, since: str | timedelta | datetime | float, timeout: float
    ) -> None:
        start = since_timestamp(since, time.time())
        cable = self._cable
        answer = cable._ask(cable._session.history, inbox, start)
        cable._wait(answer, timeout, "waiting for history")


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
        if max_message_size < DEFAULT_MAX_MESSAGE_SIZE:
            # A frame the server may send and the socket refuses would close it with 1009,
            # and again after each reconnect (the resume sends the same reading).
            raise ValueError(
                f"max_message_size must be at least {DEFAULT_MAX_MESSAGE_SIZE:,} bytes, the "
                f"largest frame the server sends; got {max_message_size:,}"
            )
        self.endpoint = endpoint
        self.timeout = timeout
        self._closing = False
        self._subscriptions: list[Subscription] = []
        self._control = _Control(self)
        self._session = ClientSession(endpoint.base_url)
        self._loop = BackgroundLoop(name=f"iotcable {endpoint.base_url}")
        self._transport: Transport
        self._run_task: asyncio.Task[None]
        self._loop.call(self._start, timeout, max_message_size).result()
        _OPEN_CABLES.add(self)

    def _start(self, timeout: float, max_message_size: int) -> None:
        # Created on the loop's thread: asyncio objects belong to the loop that uses them.
        self._transport = Transport(
            self.endpoint,
            self._session,
            connect_timeout=timeout,
            max_message_size=max_message_size,
        )
        self._session.wake = self._transport.flush
        self._run_task = asyncio.ensure_future(self._transport.run())

    @property
    def url(self) -> str:
        """The server's base URL (never with the token)."""
        return self.endpoint.base_url

    @property
    def state(self) -> CableState:
        """``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        return self._session.state

    @property
    def sid(self) -> str | None:
        """The session id the server gave (resumed after a reconnect)."""
        return self._session.sid

    @property
    def broker(self) -> BrokerReport | None:
        """The server's link to its MQTT broker as the server reports it (``None``: not yet)."""
        return self._session.broker

    @property
    def error(self) -> IoTCableError | None:
        """Why the cable failed or closed for good, if it did."""
        return self._session.error

    @property
    def last_server_error(self) -> str | None:
        """The last ``error`` frame the server sent, or the last frame this client could
        not understand nor attribute to a subscription (``code: message``); shown in the
        cable's status. An undecodable frame of a subscription is a gap in its ``gaps``."""
        return self._session.last_server_error

    @property
    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions of this cable."""
        self._subscriptions = [s for s in self._subscriptions if s.state in ("pending", "live")]
        return list(self._subscriptions)

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
        with the server's reason when the channel is unknown (saying which channels there
        are), forbidden, or ``topic`` lies outside it.
        """
        try:
            sub, since = self._new_subscription(channel, topic, window, max_rows, history)
            wait = self._timeout(timeout)
            answer = self._ask(self._session.subscribe, sub._inbox, since)
            try:
                self._wait(answer, wait, f"subscribing to {channel!r}")
            except SubscriptionRejected as rejected:
                raise self._explained(rejected, wait) from None
            except IoTCableTimeout:
                self._unsubscribe(sub._inbox)
                raise
        except USER_ERRORS as error:
            raise error.with_traceback(None) from None
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
        try:
            sub, since = self._new_subscription(channel, topic, window, max_rows, history)
            wait = self._timeout(timeout)
            answer = await self._ask_async(self._session.subscribe, sub._inbox, since)
            try:
                await self._await(answer, wait, f"subscribing to {channel!r}")
            except SubscriptionRejected as rejected:
                raise await self._explained_async(rejected, wait) from None
            except IoTCableTimeout:
                self._unsubscribe(sub._inbox)
                raise
        except USER_ERRORS as error:
            raise error.with_traceback(None) from None
        return sub

    def _new_subscription(
        self,
        channel: str,
        topic: str | None,
        window: str | timedelta | int | None,
        max_rows: int,
        history: str | timedelta | datetime | float | None,
    ) -> tuple[Subscription, float | None]:
        rows, seconds = window_bounds(window, max_rows)
        since = None if history is None else since_timestamp(history, time.time())
        _check_channel(channel, topic)
        sub = Subscription(Inbox(channel, topic, max_rows=rows, window=seconds), self._control)
        self._subscriptions.append(sub)
        return sub, since

    def _unsubscribe(self, inbox: Inbox) -> None:
        if self._loop.in_loop_thread:
            # A callback: the session is ours already, and waiting for the loop would
            # wait for ourselves, for ever.
            self._session.unsubscribe(inbox)
            return
        try:
            self._loop.call(self._session.unsubscribe, inbox).result()
        except RuntimeError:  # the loop closed in the meantime: nothing left on the wire
            if inbox.active:
                inbox.ended("unsubscribed")

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

        ``payload`` must suit the channel's ``format`` (checked before anything is sent,
        and again by the server): on a ``json`` channel any JSON value (dicts, lists,
        numbers, ... and what pandas gives, see README), where a ``str`` is JSON *text*
        (``'{"setpoint": 25}'``; to publish a JSON string pass ``json.dumps(text)``); on a
        ``number`` channel a number; on ``text``, ``csv`` and ``influx`` channels text; on a
        ``bytes`` channel base64 text. A payload the format cannot carry raises
        ``InvalidPayload`` and nothing is sent.

        Returns the server's ``PublishResult`` (truthy when accepted). A refusal (no
        write permission, topic outside the channel) raises ``PublishRefused`` with the
        server's reason, or with ``check=False`` comes back as a falsy result whose
        ``reason`` says why.
        """
        try:
            _check_channel(channel, topic)
            message = publishable(payload)
            wait = self._timeout(timeout)
            answer = self._ask(self._session.publish, channel, topic, message)
            try:
                result = self._wait(answer, wait, f"publishing to {topic!r}")
            except IoTCableTimeout:
                self._loop.call(self._session.forget_publish, answer)
                raise
            if check and not result.ok:
                raise self._refused(channel, result, wait)
        except USER_ERRORS as error:
            raise error.with_traceback(None) from None
        return result

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
        try:
            _check_channel(channel, topic)
            message = publishable(payload)
            wait = self._timeout(timeout)
            answer = await self._ask_async(self._session.publish, channel, topic, message)
            try:
                result = await self._await(answer, wait, f"publishing to {topic!r}")
            except IoTCableTimeout:
                self._loop.call(self._session.forget_publish, answer)
                raise
            if check and not result.ok:
                known = await self._channel_names_async(wait)
                raise PublishRefused(channel, result, known)
        except USER_ERRORS as error:
            raise error.with_traceback(None) from None
        return result

    # -- REST -------------------------------------------------------------------------------

    def channels(self, *, timeout: float | None = None) -> Channels:
        """The channels you may read or write (``GET iotcable/api/channels``), as a table.

        A list of ``ChannelInfo`` that prints as a table, shows as one in a notebook,
        finds a channel by name (``cable.channels()["telemetry"]``) and exports a
        DataFrame (``.to_frame()``).
        """
        try:
            return self._channels(self._timeout(timeout))
        except USER_ERRORS as error:
            raise error.with_traceback(None) from None

    def _channels(self, wait: float) -> Channels:
        body = self._run(get_json(self.endpoint, "channels", wait), wait + 1, "listing channels")
        return parse_channels(body, self.endpoint)

    def _channel_names(self, wait: float) -> list[str] | None:
        """The channels' names for an error message, or ``None`` if they cannot be had."""
        try:
            return self._channels(wait).names
        except IoTCableError:
            return None

    async def _channel_names_async(self, wait: float) -> list[str] | None:
        try:
            body = await self._await(
                self._submit(get_json(self.endpoint, "channels", wait)), wait + 1, "listing"
            )
            return parse_channels(body, self.endpoint).names
        except IoTCableError:
            return None

    def _explained(self, rejected: SubscriptionRejected, wait: float) -> SubscriptionRejected:
        """The rejection, with "did you mean" and the channels there are when it is unknown."""
        return SubscriptionRejected(
            rejected.channel, rejected.topic, rejected.reason, self._channel_names(wait)
        )

    async def _explained_async(
        self, rejected: SubscriptionRejected, wait: float
    ) -> SubscriptionRejected:
        known = await self._channel_names_async(wait)
        return SubscriptionRejected(rejected.channel, rejected.topic, rejected.reason, known)

    def _refused(self, channel: str, result: PublishResult, wait: float) -> PublishRefused:
        return PublishRefused(channel, result, self._channel_names(wait))

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
            raise CableClosed(
                f"the cable to {self.url} is closed: there is no connection to drop"
            ) from None
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
        self._session.close()
        shutdown = asyncio.ensure_future(self._shutdown(timeout))
        shutdown.add_done_callback(lambda _: self._loop.loop.stop())

    async def aclose(self) -> None:
        """``close`` for asyncio code."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    async def _shutdown(self, timeout: float) -> None:
        self._transport.close()
        await asyncio.wait({self._run_task}, timeout=timeout)
        self._session.close()

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

    def _state_text(self) -> str:
        error = self.error
        return self.state if error is None else f"{self.state}: {error}"

    def _broker_text(self) -> str:
        report = self.broker
        if report is None:
            return "broker not reported yet"
        text = f"broker {report.state}"
        if report.state != "connected" and report.detail:
            text += f" ({report.detail})"
        return text

    def __repr__(self) -> str:
        subs = self.subscriptions
        parts = [self._state_text()]
        if self.state != "closed":
            parts.append(self._broker_text())
        if self.last_server_error is not None:
            parts.append(f"last server error {self.last_server_error!r}")
        if subs:
            listed = ", ".join(
                f"{sub.describe()} ({len(sub):,} rows, {sub.rate:,.1f}/s)" for sub in subs
            )
            parts.append(f"{len(subs)} subscription{'s' * (len(subs) != 1)}: {listed}")
        else:
            parts.append("no subscriptions")
        return f"<Cable {self.url} " + ", ".join(parts) + ">"

    def _repr_html_(self) -> str:
        subs = self.subscriptions
        report = self.broker
        broker = self._broker_text()
        if report is not None:
            broker += f", as of {describe_time(report.since, time.time())}"
        facts = {
            "server": self.url,
            "state": self._state_text(),
            "broker": broker,
            "subscriptions": f"{len(subs)}",
            "rate": f"{sum(s.rate for s in subs):,.1f} readings/s",
            "rows": f"{sum(len(s) for s in subs):,}",
            "gaps": f"{sum(len(s.gaps) for s in subs):,}",
        }
        if self.last_server_error is not None:
            facts["last server error"] = self.last_server_error
        table = ""
        if subs:
            head = "".join(
                f"<th style='text-align:left'>{h}</th>"
                for h in ("channel", "topic", "status", "rows", "readings/s", "gaps")
            )
            body = "".join(
                "<tr>"
                + "".join(
                    f"<td style='text-align:left'>{_escape(cell)}</td>"
                    for cell in (
                        sub.channel,
                        sub.topic or "(all topics)",
                        sub.status,
                        f"{len(sub):,}",
                        f"{sub.rate:,.1f}",
                        f"{len(sub.gaps):,}",
                    )
                )
                + "</tr>"
                for sub in subs
            )
            table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        return facts_table("Cable", facts, table)

    # -- handing work to the cable's thread, and waiting ------------------------------------

    def _ask(
        self, command: Callable[..., concurrent.futures.Future[T]], *args: object
    ) -> concurrent.futures.Future[T]:
        """Run a session command on the cable's thread; the answer to wait for.

        Refused on the cable's own thread (a callback) before anything is sent: the
        answer could only arrive on the thread that would wait for it.
        """
        if self._loop.in_loop_thread:
            raise BlockingCallInCallback(
                "this waits for the server's answer, which arrives on the thread running "
                "this subscription callback, so it cannot be done here. Hand it to another "
                "thread, e.g. threading.Thread(target=cable.publish, args=(...), "
                "kwargs={...}).start(), or act on readings from sub.readings() instead. "
                "sub.unsubscribe(), cable.close() and cable.drop_connection() work here."
            )
        if self._closing or self._loop.loop.is_closed():
            raise self._closed()
        try:
            return self._loop.call(command, *args).result()
        except RuntimeError:  # the loop stopped in between
            raise self._closed() from None

    async def _ask_async(
        self, command: Callable[..., concurrent.futures.Future[T]], *args: object
    ) -> concurrent.futures.Future[T]:
        if self._closing or self._loop.loop.is_closed():
            raise self._closed()
        return await asyncio.wrap_future(self._loop.call(command, *args))

    def _closed(self) -> IoTCableError:
        return self.error or CableClosed(f"the cable to {self.url} is closed")

    def _submit(self, coro: Coroutine[object, object, T]) -> concurrent.futures.Future[T]:
        if self._closing or self._loop.loop.is_closed():
            coro.close()
            raise self._closed()
        return self._loop.submit(coro)

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _run(self, coro: Coroutine[object, object, T], timeout: float, what: str) -> T:
        """Run ``coro`` on the cable's thread and wait for its result (sync methods)."""
        if self._loop.in_loop_thread:
            coro.close()
            raise BlockingCallInCallback(
                f"{what}: this waits for the server's answer, which arrives on the thread "
                "running this subscription callback, so it cannot be done here"
            )
        return self._wait(self._submit(coro), timeout, what)

    def _wait(self, future: concurrent.futures.Future[T], timeout: float, what: str) -> T:
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


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _check_channel(channel: str, topic: str | None) -> None:
    """Refuse on the caller's thread what cannot become an identifier."""
    if not isinstance(channel, str) or not (topic is None or isinstance(topic, str)):
        raise TypeError(
            f"channel and topic must be strings, got {type(channel).__name__} and "
            f"{type(topic).__name__}; cable.channels() lists the channels"
        )
    try:
        make_identifier(channel, **({} if topic is None else {"topic": topic}))
    except LocalProtocolError as exc:
        raise ValueError(
            f"channel {channel!r}: {exc}; cable.channels() lists the channels"
        ) from None
