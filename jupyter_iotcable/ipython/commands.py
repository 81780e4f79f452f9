"""The ``%iot`` command line: what the user typed, as a ``Command`` (pure, no IPython).

``%iot SUBCOMMAND ...`` is parsed by argparse, except that a publish payload is taken
verbatim: shell-style splitting would eat the quotes of ``{"setpoint": 25}``. So for
``publish`` the options and the channel are read word by word, and everything after them
is the payload; in the cell form (``%%iot publish ...``) the cell is the payload.

Errors become ``CommandError`` (one line naming the subcommand and what to do);
``--help`` becomes ``HelpRequested`` with the text to show. Nothing here exits or prints.
"""

from __future__ import annotations

import argparse
import io
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from ..argtypes import positive_int

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "SUBCOMMANDS",
    "Command",
    "CommandError",
    "HelpRequested",
    "build_parser",
    "parse",
    "split_publish",
]

DEFAULT_NAME = "sub"
"""The variable ``%iot subscribe`` binds unless ``--name`` says otherwise."""

SUBCOMMANDS: dict[str, str] = {
    "channels": "the channels you may read or write, with their topics",
    "status": "the cable: server, broker state, subscriptions, rates",
    "subscribe": "subscribe to a channel and bind the subscription to a name",
    "live": "a live chart and table of a channel or a subscription",
    "tail": "the latest readings of a channel, as a DataFrame",
    "publish": "publish one JSON message (or text with --text) to a topic",
    "connect": "connect to a server by URL and token (when the kernel was not started by one)",
}

EXAMPLES = """\
examples:
  %iot channels
  %iot status
  %iot subscribe telemetry --topic 'plant/lyon/+/env' --window 15min --history 5min
  %iot live telemetry -y temperature
  %iot tail telemetry -n 20
  %iot publish commands --topic plant/lyon/pump1/cmd {"setpoint": 25}

  %%iot publish commands --topic plant/lyon/pump1/cmd
  {"setpoint": 25,
   "reason": "a longer payload in the cell below the magic"}

Tab completes subcommands, options, channel names, topic levels and payload fields.
`%iot SUBCOMMAND --help` says more about one subcommand."""


class CommandError(ValueError):
    """What the user typed cannot be run; the message says why and what to type instead."""


class HelpRequested(Exception):
    """``--help`` (or no subcommand at all): ``text`` is the help to show."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class Command:
    """One parsed ``%iot`` invocation: the subcommand, its options, and for ``publish``
    the payload as typed (still text: JSON parsing belongs to ``payload_text``)."""

    name: str
    options: argparse.Namespace
    payload: str | None = None


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting (a kernel must not exit)."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{self.prog}: {message} (see {self.prog} --help)")

    def print_help(self, file: object = None) -> None:
        raise HelpRequested(self.format_help().rstrip())

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise CommandError(message or f"{self.prog}: exit {status}")


_CHANNEL_HELP = "a channel's name (%%iot channels lists them)"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        # A fixed width: a kernel has no terminal to measure.
        super().__init__(prog, max_help_position=20, width=88)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="%iot",
        description="Live MQTT telemetry through this server's iotcable channels.",
        epilog=EXAMPLES,
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(
        dest="command", metavar="SUBCOMMAND", parser_class=_Parser, title="subcommands"
    )

    def add(name: str, *, usage: str | None = None) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name,
            help=SUBCOMMANDS[name],
            description=SUBCOMMANDS[name],
            usage=usage,
            formatter_class=_Formatter,
        )
        return sub

    add("channels")
    add("status")

    subscribe = add("subscribe")
    subscribe.add_argument("channel", metavar="CHANNEL", help=_CHANNEL_HELP)
    _topic_option(subscribe)
    subscribe.add_argument(
        "--window",
        "-w",
        default="15min",
        help="how much the frame keeps: a duration (15min, 1h) or a number of rows "
        "(default: 15min)",
    )
    subscribe.add_argument(
        "--history", "-H", help="backfill this much from the server first (e.g. 5min)"
    )
    subscribe.add_argument(
        "--name",
        "-N",
        default=DEFAULT_NAME,
        type=_identifier,
        help=f"the variable to bind the subscription to (default: {DEFAULT_NAME})",
    )

    live = add("live")
    live.add_argument(
        "target", metavar="CHANNEL|NAME", help="a channel, or a variable holding a subscription"
    )
    _topic_option(live)
    live.add_argument(
        "-y",
        dest="y",
        metavar="FIELD",
        action="append",
        help="the payload field to chart; again for one panel per field (-y temperature "
        "-y vibration)",
    )
    live.add_argument(
        "--by", metavar="NAME", help="what names the series (default: the topic levels that vary)"
    )

    tail = add("tail")
    tail.add_argument("channel", metavar="CHANNEL", help=_CHANNEL_HELP)
    _topic_option(tail)
    tail.add_argument(
        "-n", dest="rows", type=positive_int, default=10, help="how many readings (default: 10)"
    )
    tail.add_argument(
        "--history",
        "-H",
        default="15min",
        help="without a subscription to the channel, how far back the server's history is "
        "read (default: 15min)",
    )

    publish = add("publish", usage="%(prog)s CHANNEL --topic TOPIC [--text] PAYLOAD")
    publish.add_argument("channel", metavar="CHANNEL", help=_CHANNEL_HELP)
    publish.add_argument(
        "--topic", "-t", required=True, help="the MQTT topic, e.g. plant/lyon/pump1/cmd"
    )
    publish.add_argument(
        "--text", action="store_true", help="send PAYLOAD as text, not JSON (text channels)"
    )
    # Not parsed by argparse (see split_publish); declared for --help only.
    publish.add_argument(
        "payload",
        metavar="PAYLOAD",
        nargs="?",
        help='the rest of the line, as JSON ({"setpoint": 25}); with %%%%iot, the cell',
    )

    connect = add("connect")
    connect.add_argument(
        "url", metavar="URL", nargs="?", help="the server's base URL, e.g. http://127.0.0.1:8888/"
    )
    connect.add_argument("--token", help="the server's token")
    return parser


def _topic_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic", "-t", help="an MQTT filter inside the channel, e.g. 'plant/lyon/+/env'"
    )


def _identifier(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a Python variable name")
    return text


_PARSER = build_parser()


def _unchanged(text: str) -> str:
    return text


def parse(line: str, cell: str | None = None, expand: Callable[[str], str] = _unchanged) -> Command:
    """The ``Command`` for ``%iot LINE`` (``cell``: the body of ``%%iot LINE``).

    ``expand`` substitutes the user's variables (IPython's ``$name`` and ``{expr}``) in
    the words of the command, never in a payload: IPython would expand the whole line,
    and a JSON payload's braces make that all or nothing (``$device`` in the topic then
    stayed as it was, and went out as a topic level).
    """
    words = _split(expand(line)) if not _is_publish(line) else _split(line)
    if not words or words[0] in ("-h", "--help", "help"):
        raise HelpRequested(_PARSER.format_help().rstrip())
    name = words[0]
    if name == "publish":
        head, payload = split_publish(line.lstrip()[len("publish") :])
        options = _PARSER.parse_args(["publish", *(expand(word) for word in head)])
        if cell is not None and cell.strip():
            if payload:
                raise CommandError(
                    "%iot publish: the payload is both on the line and in the cell: "
                    "give it in one place"
                )
            payload = cell
        if not payload:
            raise CommandError(
                "%iot publish: no payload: put it after the options "
                '(%iot publish CHANNEL --topic TOPIC {"setpoint": 25}) or in the cell below '
                "%%iot publish"
            )
        return Command("publish", options, payload.strip())
    if cell is not None and cell.strip():
        raise CommandError(
            f"%%iot {name}: only publish takes a cell (the payload); run %iot {name} "
            "on a line of its own"
        )
    if name not in SUBCOMMANDS:
        # argparse's "invalid choice" lists them; say it in one friendly line instead.
        from difflib import get_close_matches

        close = get_close_matches(name, SUBCOMMANDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CommandError(
            f"%iot: unknown subcommand {name!r}: {hint}choose one of {', '.join(SUBCOMMANDS)} "
            "(%iot --help)"
        )
    return Command(name, _PARSER.parse_args(words))


def _is_publish(line: str) -> bool:
    return line.split(None, 1)[:1] == ["publish"]


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        raise CommandError(f"%iot: {exc} in {line.strip()!r}") from None


_PUBLISH_OPTIONS_WITH_VALUE = ("--topic", "-t")
_PUBLISH_FLAGS = ("--text", "-h", "--help")


def split_publish(rest: str) -> tuple[list[str], str]:
    """``CHANNEL [options] PAYLOAD`` -> the words argparse should see, and the payload text.

    The channel and the options come first, each one shell word (quotes allowed); the
    first word that is neither is where the payload starts, and the payload is the rest
    of the line exactly as typed. A payload may start with ``-`` (``-5``): only known
    options count as options.
    """
    words: list[str] = []
    have_channel = False
    text = rest
    while True:
        text = text.lstrip()
        if not text:
            return words, ""
        if have_channel and not text.startswith("-"):
            return words, text.strip()  # the payload, as typed (never shell-split)
        word, after = _first_word(text)
        if word in _PUBLISH_OPTIONS_WITH_VALUE:
            words.append(word)
            text = after.lstrip()
            if text:
                value, text = _first_word(text)
                words.append(value)
            continue
        if word.startswith("--topic=") or word in _PUBLISH_FLAGS:
            words.append(word)
            text = after
            continue
        if have_channel:  # "-5": a payload, not an option
            return words, text.strip()
        words.append(word)
        have_channel = True
        text = after


def _first_word(text: str) -> tuple[str, str]:
    """The first shell word of ``text`` (quotes removed) and the text after it."""
    stream = io.StringIO(text)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        word = lexer.get_token()
    except ValueError as exc:  # an unclosed quote
        raise CommandError(f"%iot publish: {exc} in {text.strip()!r}") from None
    consumed = stream.tell()
    return (word or ""), text[consumed:]
