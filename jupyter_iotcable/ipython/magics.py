"""``%load_ext jupyter_iotcable``: the ``%iot`` / ``%%iot`` magics and their tab completion.

The only module of the package that imports IPython (a leaf over the client, like the
widgets). Loading the extension connects as ``connect()`` does (in a kernel started by a
server with the extension: no arguments) and binds the cable to ``cable``; each
``%iot`` subcommand is one client call, printed as the Python it stands for, so the
magics teach the API rather than hide it.

Errors are one line (IPython's ``UsageError``: no traceback): what the user typed,
what the server said, and what to do. Errors that are bugs keep their traceback.

Completion is a matcher of IPython's API v2 (``context_matcher``, IPython >= 8.6) on
``Completer.custom_matchers``; it asks ``completion.py`` what to offer from what this
extension knows (the channels, cached; the subscriptions' topics and fields), so a Tab
press does not wait for the server, except for the first channel list (2 s at most).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.utils.text import DollarFormatter

from ..client import (
    AuthenticationFailed,
    Cable,
    IoTCableError,
    ServerNotFound,
    Subscription,
    SubscriptionRejected,
    connect,
)
from ..payload_text import PayloadSyntaxError, as_json_string, parse_payload
from ..topics import TopicTemplate
from .commands import Command, CommandError, HelpRequested, parse
from .completion import ChannelFacts, Knowledge, complete, wants_completion

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..client import ChannelInfo

__all__ = ["IoTMagics", "load_ipython_extension", "unload_ipython_extension"]

CABLE_NAME = "cable"
"""The variable the extension binds its cable to (``iot_cable`` if ``cable`` is taken)."""
CHANNELS_TTL = 60.0
"""Seconds the channel list is kept for completion before it is asked for again."""
COMPLETION_TIMEOUT = 2.0
"""Seconds a Tab press may wait for the server's channel list."""
MATCHER_ID = "jupyter_iotcable.%iot"

_FORMATTER = DollarFormatter()
_LOADED: dict[int, IoTMagics] = {}
"""The magics of each shell the extension is loaded in (by ``id(shell)``)."""


def load_ipython_extension(shell: InteractiveShell) -> None:
    """``%load_ext jupyter_iotcable``: register ``%iot``, its completer, and connect."""
    magics = IoTMagics(shell)
    shell.register_magics(magics)
    shell.Completer.custom_matchers.append(magics.matcher)
    _LOADED[id(shell)] = magics
    magics.connect_on_load()


def unload_ipython_extension(shell: InteractiveShell) -> None:
    """``%unload_ext jupyter_iotcable``: remove ``%iot`` and close the cable it opened."""
    magics = _LOADED.pop(id(shell), None)
    if magics is None:
        return
    if magics.matcher in shell.Completer.custom_matchers:
        shell.Completer.custom_matchers.remove(magics.matcher)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("iot", None)
    magics.close()


CONNECT_BY_HAND = "%iot connect URL --token TOKEN connects by hand."


def _problem(exc: BaseException) -> str:
    """An exception as the one line a user reads, in the magics' terms."""
    if isinstance(exc, ServerNotFound):
        return (
            "could not find a Jupyter server to connect to (tried: "
            + "; ".join(exc.tried)
            + f"). {CONNECT_BY_HAND}"
        )
    if isinstance(exc, AuthenticationFailed):
        return exc.explained("give the server's token: %iot connect URL --token TOKEN")
    if isinstance(exc, SubscriptionRejected):
        return exc.explained("%iot channels")
    return str(exc) or type(exc).__name__


def _not_connected(exc: IoTCableError) -> str:
    problem = _problem(exc)
    if not isinstance(exc, ServerNotFound | AuthenticationFailed):
        problem = f"{problem} {CONNECT_BY_HAND}"
    return f"not connected: {problem}"


@magics_class
class IoTMagics(Magics):
    """``%iot SUBCOMMAND ...`` and ``%%iot publish ...`` (``%iot --help`` lists them)."""

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self.ip = shell  # ``Magics.shell`` is Optional; this one is always there
        self.cable: Cable | None = None
        self.cable_name = CABLE_NAME
        self.owns_cable = False
        self._channel_list: list[ChannelInfo] | None = None
        self._channel_list_at = 0.0
        self._bound: dict[str, Subscription] = {}
        self._published: dict[str, dict[str, None]] = {}
        self.matcher = self._make_matcher()

    # -- the magic --------------------------------------------------------------------------

    @no_var_expand  # parse() expands the command's words itself, never a payload
    @line_cell_magic
    def iot(self, line: str, cell: str | None = None) -> Any:
        """Live MQTT telemetry through this server's iotcable channels.

        %iot channels | status | subscribe | live | tail | publish | connect ...
        %%iot publish CHANNEL --topic TOPIC   (the cell is the payload)

        %iot --help lists the subcommands with examples; %iot SUBCOMMAND --help says
        more about one.
        """
        try:
            command = parse(line, cell, self._expand)
        except HelpRequested as shown:
            print(shown.text)
            return None
        except CommandError as exc:
            raise UsageError(str(exc)) from None
        run = getattr(self, f"_do_{command.name}")
        try:
            return run(command)
        except UsageError:
            raise
        except (IoTCableError, ValueError, TypeError) as exc:
            # The library's errors say what went wrong and what to do; the traceback
            # (the cable's thread, futures) says nothing a user can act on.
            raise UsageError(f"%iot {command.name}: {_problem(exc)}") from None

    def _expand(self, text: str) -> str:
        """``$name`` and ``{expr}`` from the user's namespace, as IPython expands magic
        lines (text that does not expand is left as it is, like IPython leaves it)."""
        try:
            return str(_FORMATTER.vformat(text, args=[], kwargs=dict(self.ip.user_ns)))
        except Exception:
            return text

    # -- subcommands --------------------------------------------------------------------------

    def _do_channels(self, command: Command) -> Any:
        infos = self._need_cable().channels()
        self._channel_list, self._channel_list_at = list(infos), time.monotonic()
        return infos

    def _do_status(self, command: Command) -> Cable:
        return self._need_cable()

    def _do_subscribe(self, command: Command) -> Subscription:
        options = command.options
        cable = self._need_cable()
        window = _window(options.window)
        sub = cable.subscribe(
            options.channel, options.topic, window=window, history=options.history
        )
        name = options.name
        previous = self._bound.get(name)
        replaced = previous is not None and self.ip.user_ns.get(name) is previous
        self.ip.user_ns[name] = sub
        self._bound[name] = sub
        print(f"{name} = {self.cable_name}.subscribe({_arguments(options, window)})")
        if replaced and previous is not None and previous is not sub:
            # Running the cell again replaces its subscription rather than adding one.
            previous.unsubscribe()
            print(f"(the subscription {name} held before is unsubscribed)")
        return sub

    def _do_live(self, command: Command) -> Any:
        options = command.options
        sub = self._subscription_for(options.target, options.topic)
        if sub is None:
            sub = self._need_cable().subscribe(options.target, options.topic)
            print(f"(subscribed to {options.target!r} for the chart; window 15min)")
        chart: dict[str, Any] = {}
        if options.y:
            chart["y"] = options.y[0] if len(options.y) == 1 else options.y
        if options.by is not None:
            chart["by"] = options.by
        return sub.live(**chart)

    def _do_tail(self, command: Command) -> Any:
        options = command.options
        sub = self._subscription_for(options.channel, options.topic)
        if sub is not None:
            return sub.frame.tail(options.rows)
        # No subscription yet: read the server's history, keep the last rows, let go.
        cable = self._need_cable()
        with cable.subscribe(
            options.channel, options.topic, window=options.rows, history=options.history
        ) as temporary:
            frame = temporary.frame
        if frame.empty:
            print(
                f"(no readings on {options.channel!r} in the last {options.history} of the "
                f"server's history; %iot subscribe {options.channel} follows new ones)"
            )
        return frame.tail(options.rows)

    def _do_publish(self, command: Command) -> None:
        options = command.options
        assert command.payload is not None
        try:
            payload = parse_payload(command.payload, as_text=options.text)
        except PayloadSyntaxError as exc:
            raise UsageError(f"%iot publish: the payload {exc}") from None
        cable = self._need_cable()
        if isinstance(payload, str):
            channel = next(
                (i for i in self._channel_infos(cable.timeout) if i.name == options.channel), None
            )
            if channel is not None:  # (an unknown channel: publish says so, with did-you-mean)
                payload = as_json_string(payload, channel.format)
        result = cable.publish(options.channel, payload, topic=options.topic)
        if isinstance(payload, dict):
            self._published.setdefault(options.channel, {}).update(dict.fromkeys(payload))
        print(f"published to {result.topic}")

    def _do_connect(self, command: Command) -> None:
        options = command.options
        cable = connect(options.url, options.token)
        self.close()
        self._adopt(cable, owned=True)
        print(f"iotcable: connected to {cable.url} as `{self.cable_name}`")

    # -- the cable ----------------------------------------------------------------------------

    def connect_on_load(self) -> None:
        """Use the notebook's open ``cable`` if it has one, else connect as ``connect()``
        does; say so in one line. A failure is said too, and the magics stay usable:
        ``%iot connect URL --token TOKEN``."""
        existing = self.ip.user_ns.get(CABLE_NAME)
        if isinstance(existing, Cable) and existing.state != "closed":
            self._adopt(existing, owned=False)
            print(f"iotcable: using the open `{CABLE_NAME}` ({existing.url})")
            return
        try:
            cable = connect()
        except IoTCableError as exc:
            print(f"iotcable: {_not_connected(exc)}", file=sys.stderr)
            return
        self._adopt(cable, owned=True)
        summary = ""
        try:
            infos = self._channel_infos(timeout=cable.timeout)
            summary = ": " + ", ".join(f"{info.name} ({_access(info)})" for info in infos)
        except IoTCableError:
            pass  # the channels are listed again by %iot channels, with the error if any
        print(
            f"iotcable: connected to {cable.url} as `{self.cable_name}`{summary}. "
            "%iot --help lists the commands."
        )

    def _adopt(self, cable: Cable, *, owned: bool) -> None:
        self.cable, self.owns_cable = cable, owned
        self._channel_list = None
        taken = self.ip.user_ns.get(CABLE_NAME)
        free = taken is None or taken is cable or isinstance(taken, Cable)
        self.cable_name = CABLE_NAME if free else "iot_cable"
        self.ip.user_ns[self.cable_name] = cable

    def _need_cable(self) -> Cable:
        if self.cable is not None and self.cable.state != "closed":
            return self.cable
        try:
            cable = connect()
        except IoTCableError as exc:
            raise UsageError(f"%iot: {_not_connected(exc)}") from None
        self._adopt(cable, owned=True)
        return cable

    def close(self) -> None:
        """Close the cable if this extension opened it (not one the notebook made)."""
        if self.cable is not None and self.owns_cable:
            self.cable.close()
        self.cable = None

    def _subscription_for(self, target: str, topic: str | None) -> Subscription | None:
        """A variable holding a subscription, else this cable's latest live subscription
        to channel ``target`` with the same ``topic``."""
        value = self.ip.user_ns.get(target)
        if isinstance(value, Subscription):
            return value
        cable = self.cable
        if cable is None or cable.state == "closed":
            return None
        for sub in reversed(cable.subscriptions):
            if sub.channel == target and sub.topic == topic and sub.state == "live":
                return sub
        return None

    def _channel_infos(self, timeout: float) -> list[ChannelInfo]:
        if self._channel_list is None or time.monotonic() - self._channel_list_at > CHANNELS_TTL:
            cable = self.cable
            if cable is None or cable.state == "closed":
                return self._channel_list or []
            self._channel_list = list(cable.channels(timeout=timeout))
            self._channel_list_at = time.monotonic()
        return self._channel_list

    # -- completion ----------------------------------------------------------------------------

    def _make_matcher(self) -> Any:
        @context_matcher(identifier=MATCHER_ID, priority=100)  # type: ignore[untyped-decorator]
        def iot_matcher(context: CompletionContext) -> SimpleMatcherResult:
            lines = context.full_text.split("\n")
            before = "\n".join([*lines[: context.cursor_line], context.text_until_cursor])
            found = complete(before, self.knowledge()) if wants_completion(before) else None
            if found is None:
                return {"completions": [], "suppress": False}
            return {
                "completions": [SimpleCompletion(text, type="iot") for text in found.texts],
                "matched_fragment": found.fragment,
                "suppress": True,
                "ordered": True,
            }

        return iot_matcher

    def knowledge(self) -> Knowledge:
        """What completion may offer now; never raises, waits at most ``COMPLETION_TIMEOUT``."""
        try:
            infos = self._channel_infos(timeout=COMPLETION_TIMEOUT)
        except IoTCableError:
            infos = self._channel_list or []
        channels = [ChannelFacts(i.name, tuple(i.topics), i.read, i.write) for i in infos]
        topics: dict[str, set[str]] = {}
        fields: dict[str, dict[str, None]] = {}
        numeric: dict[str, set[str]] = {}
        subscriptions = {
            name: value.channel
            for name, value in list(self.ip.user_ns.items())
            if isinstance(value, Subscription) and not name.startswith("_")
        }
        levels = {
            info.name: list(TopicTemplate(info.columns).names)
            for info in infos
            if isinstance(info.columns, str)
        }
        for info in infos:
            units = getattr(info, "units", None)
            if isinstance(units, dict):
                fields.setdefault(info.name, {}).update(dict.fromkeys(units))
        cable = self.cable
        subs = list(cable.subscriptions) if cable is not None else []
        for sub in subs:
            _learn(sub, topics, fields, numeric)
        for channel, published in self._published.items():
            fields.setdefault(channel, {}).update(published)
        ordered = {
            channel: sorted(names, key=lambda f, c=channel: f not in numeric.get(c, ()))  # type: ignore[misc]
            for channel, names in fields.items()
        }
        return Knowledge(channels, topics, ordered, numeric, subscriptions, levels)


def _learn(
    sub: Subscription,
    topics: dict[str, set[str]],
    fields: dict[str, dict[str, None]],
    numeric: dict[str, set[str]],
) -> None:
    """The topics and payload fields a subscription has seen (its latest row per topic),
    and the example topics the server named when it confirmed the subscription."""
    try:
        latest = sub.latest
    except Exception:  # completion must never fail: a frame that cannot be built adds nothing
        return
    seen = topics.setdefault(sub.channel, set())
    seen.update(str(topic) for topic in latest.index)
    # What the server told the subscription about the channel's topics (its confirm).
    known = sub.meta.get("topics")
    examples = known.get("examples") if isinstance(known, dict) else None
    if isinstance(examples, list):
        seen.update(example for example in examples if isinstance(example, str))
    template = sub.meta.get("columns")
    levels = set(TopicTemplate(template).names) if isinstance(template, str) else set()
    for name, dtype in latest.dtypes.items():
        column = str(name)
        if column in levels or column in ("time", "topic", "error"):
            continue
        fields.setdefault(sub.channel, {})[column] = None
        if dtype.kind in "iuf":
            numeric.setdefault(sub.channel, set()).add(column)


def _window(text: str) -> str | int:
    """``--window``: a duration (``15min``), or a number of rows (``5000``)."""
    return int(text) if text.isdigit() else text


def _arguments(options: Any, window: str | int) -> str:
    """The ``cable.subscribe(...)`` arguments a subscribe stands for, as Python."""
    parts = [repr(options.channel)]
    if options.topic is not None:
        parts.append(f"topic={options.topic!r}")
    parts.append(f"window={window!r}")
    if options.history is not None:
        parts.append(f"history={options.history!r}")
    return ", ".join(parts)


def _access(info: ChannelInfo) -> str:
    return "+".join(name for name, ok in (("read", info.read), ("write", info.write)) if ok) or "-"
