"""``iotcable``: list, tail or publish to channels from a shell, run the simulator or the demo.

Exit codes: 0 done (Ctrl-C ends ``tail`` normally), 1 the server could not be reached,
refused the token, rejected the subscription or refused the publish (the message says
which and what to do), 2 bad arguments (a payload JSON cannot carry included), 130
interrupted. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .client.cable import ChannelInfo
    from .client.subscription import Reading

FORMATS = ("table", "jsonl", "csv")

_DELEGATES = {
    "simulate": ("jupyter_iotcable.bridge.simulator", "a device simulator publishing to MQTT"),
    "demo": ("jupyter_iotcable.demo", "JupyterLab with the extension, a broker and a simulator"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotcable",
        description="Live MQTT telemetry through a Jupyter server's iotcable channels.",
        epilog="Without --url/--token, the server is found like connect() finds it "
        "(IOTCABLE_URL and IOTCABLE_TOKEN, then JupyterHub's variables).",
    )
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
    tail.add_argument("--count", type=_positive_int, help="stop after N readings")
    _add_connection_options(tail)

    publish = commands.add_parser("publish", help="publish one message through a channel")
    publish.add_argument("channel", metavar="CHANNEL")
    publish.add_argument(
        "payload",
        metavar="PAYLOAD",
        type=_payload,
        help="sent as JSON when it parses as JSON ('{\"speed\": 40}', 40), else as a string",
    )
    publish.add_argument("--topic", required=True, help="the MQTT topic, e.g. plant/lyon/p3/cmd")
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def _payload(text: str) -> object:
    """PAYLOAD as JSON when it parses, else as a string; non-finite numbers are refused."""
    try:
        return json.loads(text, parse_constant=_no_json_constant, parse_float=_finite_float)
    except _NotJson as exc:
        raise argparse.ArgumentTypeError(
            f"{exc}, so it cannot be published: send a finite number, null, or the text "
            f"itself in quotes ('\"{exc.text}\"')"
        ) from None
    except ValueError:
        return text


class _NotJson(ValueError):
    """A number that Python's json reads but no JSON reader elsewhere can (NaN, 1e999)."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"{text} {problem}")
        self.text = text


def _no_json_constant(name: str) -> object:
    raise _NotJson(name, "has no JSON form")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotJson(text, "is too large for a 64-bit number")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _DELEGATES:
        return _delegate(args_list[0], args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the command; every failure becomes one line on stderr and an exit code."""
    from .client.errors import (
        AuthenticationFailed,
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
    except IoTCableError as exc:  # before ValueError: InvalidPayload is both
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

    with connect(args.url, args.token, timeout=args.timeout) as cable:
        sub = cable.subscribe(args.channel, args.topic, window=None, max_rows=10_000)
        write = _writer(args.format, sub.meta.get("columns"), out)
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

    with connect(args.url, args.token, timeout=args.timeout) as cable:
        result = cable.publish(args.channel, args.payload, topic=args.topic, timeout=args.timeout)
    print(f"published to {result.topic}", file=out)
    return 0


def _writer(fmt: str, template: object, out: TextIO) -> Callable[[Reading], None]:
    """A function printing one reading in ``fmt``; flushed per reading, as tail must be."""
    if fmt == "jsonl":

        def write_jsonl(reading: Reading) -> None:
            record: dict[str, Any] = {
                "time": _iso(reading.time),
                "topic": reading.topic,
                "offset": reading.offset,
                **reading.columns,
                "payload": reading.payload,
            }
            if reading.error is not None:
                record["error"] = reading.error
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()

        return write_jsonl
    if fmt == "csv":
        levels = _template_names(template)
        rows = csv.writer(out)
        rows.writerow(["time", "topic", *levels, "payload", "error"])
        out.flush()

        def write_csv(reading: Reading) -> None:
            rows.writerow(
                [
                    _iso(reading.time),
                    reading.topic,
                    *(reading.columns.get(name, "") for name in levels),
                    json.dumps(reading.payload, ensure_ascii=False),
                    reading.error or "",
                ]
            )
            out.flush()

        return write_csv

    def write_table(reading: Reading) -> None:
        payload = json.dumps(reading.payload, ensure_ascii=False, separators=(", ", ": "))
        error = f"  ! {reading.error}" if reading.error else ""
        out.write(f"{_iso(reading.time)}  {reading.topic}  {payload}{error}\n")
        out.flush()

    return write_table


def _template_names(template: object) -> tuple[str, ...]:
    if not isinstance(template, str):
        return ()
    from .topics import TopicTemplate

    return TopicTemplate(template).names


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


if __name__ == "__main__":
    sys.exit(main())
