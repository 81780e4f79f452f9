"""``iotcable``: list, tail or publish to channels from a shell, run the simulator or the demo.

Exit codes: 0 done (Ctrl-C ends ``tail`` normally), 1 the server could not be reached,
refused the token, rejected the subscription or refused the publish (the message says
which and what to do), 2 bad arguments (a payload JSON cannot carry included), 130
interrupted. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from ._version import __version__
from .argtypes import positive_int

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .client import ChannelInfo

FORMATS = ("table", "jsonl", "csv")  # tailformat.FORMATS, without importing the client

_DELEGATES = {
    "simulate": ("jupyter_iotcable.bridge.simulator", "a device simulator publishing to MQTT"),
    "demo": ("jupyter_iotcable.demo", "JupyterLab with the extension, a broker and a simulator"),
    "hub-service": (
        "jupyter_iotcable.hubservice",
        "the channels as a JupyterHub service (docs/jupyterhub.md)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotcable",
        description="Live MQTT telemetry through a Jupyter server's iotcable channels.",
        epilog="Without --url/--token, the server is found like connect() finds it "
        "(IOTCABLE_URL and IOTCABLE_TOKEN, then JupyterHub's variables).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    channels = commands.add_parser(
        "channels", help="list the channels you may read or write, with their topics"
    )
    channels.add_argument(
        "--format", choices=("table", "jsonl"), default="table", help="output format"
    )
    _add_connection_options(channels)

    tail = commands.add_parser("tail", help="print a channel's readings as they arrive")
    tail.add_argument("channel", metavar="CHANNEL")
    tail.add_argument("--topic", help="an MQTT filter inside the channel, e.g. plant/lyon/+/env")
    tail.add_argument("--format", choices=FORMATS, default="table", help="output format")
    tail.add_argument("--count", type=positive_int, help="stop after N readings")
    _add_connection_options(tail)

    publish = commands.add_parser(
        "publish",
        help="publish one message through a channel",
        description="Publish one message through a channel. PAYLOAD is JSON "
        "('{\"setpoint\": 25}', 40, '\"on\"'); malformed JSON is refused (exit code 2) "
        "unless --text says to send the text as it is.",
    )
    publish.add_argument("channel", metavar="CHANNEL")
    publish.add_argument(
        "payload",
        metavar="PAYLOAD",
        help="a JSON value, e.g. '{\"setpoint\": 25}' (with --text: any text)",
    )
    publish.add_argument("--topic", required=True, help="the MQTT topic, e.g. plant/lyon/p3/cmd")
    publish.add_argument(
        "--text",
        action="store_true",
        help="send PAYLOAD as text, not JSON (for text, csv and influx channels)",
    )
    publish.set_defaults(usage_error=publish.error)
    _add_connection_options(publish)

    for name, (_, summary) in _DELEGATES.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the Jupyter server's base URL, e.g. http://127.0.0.1:8888/")
    parser.add_argument("--token", help="the server's token (or the kernel's IOTCABLE_TOKEN)")
    parser.add_argument(
        "--timeout", type=_positive_float, default=10.0, help="seconds to wait for the server"
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _DELEGATES:
        return _delegate(args_list[0], args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
        if args.command == "publish":
            args.payload = _payload(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return _run(args)


def _payload(args: argparse.Namespace) -> object:
    """PAYLOAD as JSON (or as text with ``--text``); malformed JSON is a usage error."""
    from .payload_text import PayloadSyntaxError, parse_payload

    try:
        return parse_payload(args.payload, as_text=args.text)
    except PayloadSyntaxError as exc:
        args.usage_error(f"argument PAYLOAD {exc}")
        raise  # usage_error exits; this line only reassures the type checker


def _run(args: argparse.Namespace) -> int:
    """Run the command; every failure becomes one line on stderr and an exit code."""
    from .client.errors import (
        AuthenticationFailed,
        InvalidPayload,
        IoTCableError,
        ServerNotFound,
        SubscriptionRejected,
    )
    from .protocol import ProtocolError

    commands = {"channels": _channels, "tail": _tail, "publish": _publish}
    try:
        return commands[args.command](args, sys.stdout)
    except SubscriptionRejected as exc:
        return _fail(args, exc.explained(_channels_command(args)), 1)
    except ServerNotFound as exc:  # the advice in options, not in Python
        return _fail(
            args,
            exc.explained(
                "Pass the server's URL and token (`jupyter server list` shows them):\n"
                f"    iotcable {args.command} ... --url http://127.0.0.1:8888/ --token TOKEN\n"
                "or set IOTCABLE_URL and IOTCABLE_TOKEN in the environment."
            ),
            1,
        )
    except AuthenticationFailed as exc:
        advice = "pass the server's token with --token TOKEN or set IOTCABLE_TOKEN"
        return _fail(args, exc.explained(advice), 1)
    except InvalidPayload as exc:  # the payload given does not fit: a bad argument
        return _fail(args, str(exc), 2)
    except IoTCableError as exc:  # before ValueError: some are both
        return _fail(args, str(exc), 1)
    except (ValueError, TypeError) as exc:
        return _fail(args, str(exc), 2)
    except BrokenPipeError:
        # The reader went away (``iotcable channels | head -1``): a normal end. Python
        # would report the broken pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ProtocolError, OSError) as exc:
        return _fail(args, f"{type(exc).__name__}: {exc}", 1)
    except KeyboardInterrupt:
        return 0 if args.command == "tail" else 130
    except Exception as exc:  # a bug: still one line, and what to do about it
        return _fail(
            args,
            f"unexpected {type(exc).__name__}: {exc} (please report this to the "
            "jupyter-iotcable maintainers)",
            1,
        )


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"iotcable {args.command}: error: {message}", file=sys.stderr)
    return code


def _channels_command(args: argparse.Namespace) -> str:
    """The ``iotcable channels`` command line matching this one's server (never its token)."""
    command = "`iotcable channels"
    if args.url:
        command += f" --url {args.url}"
    if args.token:
        command += " --token ..."
    return command + "`"


def _delegate(command: str, argv: list[str]) -> int:
    module_name, _ = _DELEGATES[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        print(
            f"iotcable {command}: not available in this version of jupyter-iotcable "
            f"({module_name} is missing)",
            file=sys.stderr,
        )
        return 2
    try:
        code = module.main(argv)
    except SystemExit as exc:  # argparse inside the delegate (--help, bad arguments)
        code = exc.code if isinstance(exc.code, int) else 2
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


def _channels(args: argparse.Namespace, out: TextIO) -> int:
    from .client import connect

    with connect(args.url, args.token, timeout=args.timeout) as cable:
        infos = cable.channels(timeout=args.timeout)
    if args.format == "jsonl":
        for info in infos:
            out.write(json.dumps(_channel_record(info), ensure_ascii=False) + "\n")
    else:
        out.write(channels_table(infos))
    out.flush()
    return 0


def _channel_record(info: ChannelInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "read": info.read,
        "write": info.write,
        "topics": list(info.topics),
        "columns": info.columns,
        "format": info.format,
        "description": info.description,
    }


def channels_table(infos: Sequence[ChannelInfo]) -> str:
    """Aligned columns: channel, access, topics (and descriptions, when any has one)."""
    if not infos:
        return "no channels: this token may neither read nor write any channel\n"
    rows = [["CHANNEL", "ACCESS", "TOPICS", "DESCRIPTION"]]
    for info in infos:
        access = "+".join(name for name, ok in (("read", info.read), ("write", info.write)) if ok)
        rows.append([info.name, access or "-", " ".join(info.topics), info.description])
    if not any(info.description for info in infos):
        rows = [row[:3] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )


def _tail(args: argparse.Namespace, out: TextIO) -> int:
    from .client import connect
    from .tailformat import writer

    with connect(args.url, args.token, timeout=args.timeout) as cable:
        sub = cable.subscribe(args.channel, args.topic, window=None, max_rows=10_000)
        write = writer(args.format, _template_names(sub.meta.get("columns")), out)
        seen = 0
        try:
            for reading in sub.readings():
                write(reading)
                seen += 1
                if args.count is not None and seen >= args.count:
                    return 0
        except BrokenPipeError:
            # The reader went away (``iotcable tail ... | head``): that is a normal end.
            # Python would report the broken pipe again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return 0
        if cable.error is not None:
            raise cable.error
    return 0


def _publish(args: argparse.Namespace, out: TextIO) -> int:
    from .client import connect
    from .payload_text import as_json_string

    with connect(args.url, args.token, timeout=args.timeout) as cable:
        payload = args.payload
        if isinstance(payload, str):
            fmt = cable.channels(timeout=args.timeout)[args.channel].format
            payload = as_json_string(payload, fmt)
        result = cable.publish(args.channel, payload, topic=args.topic, timeout=args.timeout)
    print(f"published to {result.topic}", file=out)
    return 0


def _template_names(template: object) -> tuple[str, ...]:
    if not isinstance(template, str):
        return ()
    from .topics import TopicTemplate

    return TopicTemplate(template).names


if __name__ == "__main__":
    sys.exit(main())
