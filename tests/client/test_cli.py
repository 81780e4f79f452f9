"""``iotcable`` argument errors, exit codes and delegation, without a server."""

from __future__ import annotations

import csv
import io
import json
import sys
import types

import pytest

from jupyter_iotcable import cli, tailformat
from jupyter_iotcable.client import ChannelInfo, Reading
from tests.brokers import free_port


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["tail"], "the following arguments are required: CHANNEL"),
        (["tail", "telemetry", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (
            ["tail", "telemetry", "--count", "0"],
            "argument --count: expected a number of at least 1, got 0",
        ),
        (
            ["tail", "telemetry", "--count", "many"],
            "argument --count: expected a whole number, got 'many'",
        ),
        (
            ["tail", "telemetry", "--timeout", "soon"],
            "argument --timeout: expected a number of seconds, got 'soon'",
        ),
        (["publish", "commands", "{}"], "the following arguments are required: --topic"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        (
            ["publish", "commands", "NaN", "--topic", "plant/a/b/cmd"],
            "argument PAYLOAD holds NaN, which has no JSON form, so it cannot be published: send "
            "a finite number, null, or the text itself in quotes ('\"NaN\"')",
        ),
        (
            ["publish", "commands", '{"speed": -Infinity}', "--topic", "plant/a/b/cmd"],
            "argument PAYLOAD holds -Infinity, which has no JSON form",
        ),
        (
            ["publish", "commands", "[1e999]", "--topic", "plant/a/b/cmd"],
            "argument PAYLOAD holds 1e999, which is too large for a 64-bit number",
        ),
        (["channels", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ],
)
def test_argument_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.startswith("usage: iotcable")


def test_a_bad_url_exits_2_and_says_what_a_url_looks_like(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(["tail", "telemetry", "--url", "localhost:8888"], capsys)
    assert code == 2
    assert err == (
        "iotcable tail: error: url must look like 'http://HOST:PORT/BASE/' "
        "(http, https, ws or wss), got 'localhost:8888'\n"
    )


def test_no_server_found_exits_1_with_where_it_looked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("IOTCABLE_URL", "IOTCABLE_TOKEN", "JUPYTERHUB_SERVICE_URL", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(["publish", "commands", "1", "--topic", "a/b"], capsys)
    assert code == 1
    assert err.startswith("iotcable publish: error: could not find a Jupyter server to connect to.")
    # The advice is in the CLI's options, not in Python.
    assert "iotcable publish ... --url http://127.0.0.1:8888/ --token TOKEN" in err
    assert "or set IOTCABLE_URL and IOTCABLE_TOKEN in the environment." in err
    assert "connect(" not in err


def test_nothing_listening_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    code, _, err = run(["tail", "telemetry", "--url", url, "--token", "t"], capsys)
    assert code == 1
    assert err == (
        f"iotcable tail: error: could not connect to {url}: connection refused. "
        "Is the Jupyter server running at this address and port?\n"
    )


def test_a_missing_delegate_says_so_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli._DELEGATES, "demo", ("jupyter_iotcable._no_such_demo", "demo"))
    code, _, err = run(["demo", "--port", "1"], capsys)
    assert code == 2
    assert err == (
        "iotcable demo: not available in this version of jupyter-iotcable "
        "(jupyter_iotcable._no_such_demo is missing)\n"
    )


def test_delegates_get_the_remaining_arguments_and_give_the_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("fake_simulator")

    def main(argv: list[str]) -> int:
        seen.append(argv)
        return 3

    fake.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_simulator", fake)
    monkeypatch.setitem(cli._DELEGATES, "simulate", ("fake_simulator", "simulator"))
    code, _, _ = run(["simulate", "--help", "--rate", "5"], capsys)
    assert code == 3
    assert seen == [["--help", "--rate", "5"]]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("channels", "tail", "publish", "simulate", "demo"):
        assert command in out


def test_a_payload_is_json_and_text_only_with_text() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["publish", "c", '{"speed": 40.5}', "--topic", "t"])
    assert cli._payload(args) == {"speed": 40.5}
    args = parser.parse_args(["publish", "c", "40", "--topic", "t"])
    assert cli._payload(args) == 40
    args = parser.parse_args(["publish", "c", '{"speed": 40', "--topic", "t", "--text"])
    assert cli._payload(args) == '{"speed": 40'


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            '{"setpoint": 25',
            "argument PAYLOAD is not valid JSON: expecting ',' delimiter at column 16\n"
            '    {"setpoint": 25\n'
            "                   ^\n"
            "(to send it as text rather than JSON, add --text)\n",
        ),
        (
            "on",
            "argument PAYLOAD is not valid JSON: expecting value at column 1\n"
            "    on\n"
            "    ^\n"
            "(to send it as text rather than JSON, add --text)\n",
        ),
        (
            '{"a": 1,\n "b": }',
            "argument PAYLOAD is not valid JSON: expecting value at line 2, column 7\n"
            '     "b": }\n'
            "          ^\n",
        ),
        ("", "argument PAYLOAD is empty: give a JSON value"),
    ],
)
def test_malformed_json_exits_2_with_where_it_broke_before_connecting(
    payload: str, expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No server anywhere: an argument error must come before any attempt to connect.
    for name in ("IOTCABLE_URL", "IOTCABLE_TOKEN", "JUPYTERHUB_SERVICE_URL", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run(["publish", "commands", payload, "--topic", "plant/a/b/cmd"], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("usage: iotcable publish")
    assert "iotcable publish: error: " + expected in err
    assert "Traceback" not in err
    assert "could not find a Jupyter server" not in err


def test_a_long_payload_shows_the_neighbourhood_of_the_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = "[" + ", ".join(str(n) for n in range(100)) + ", oops, 1]"
    code, _, err = run(["publish", "c", payload, "--topic", "a/b"], capsys)
    assert code == 2
    excerpt, caret = err.splitlines()[-3:-1]
    assert excerpt.startswith("    …") and "oops" in excerpt
    # The caret sits under the first character the parser could not read.
    assert excerpt[caret.index("^") :].startswith("oops")
    assert len(excerpt) < 130


def test_the_channels_table_aligns_and_says_when_there_is_none() -> None:
    infos = [
        ChannelInfo("telemetry", ("plant/+/+/env",), None, "json", True, False, "sensors"),
        ChannelInfo("cmd", ("a/#", "b/#"), None, "json", True, True),
    ]
    assert cli.channels_table(infos) == (
        "CHANNEL    ACCESS      TOPICS         DESCRIPTION\n"
        "telemetry  read        plant/+/+/env  sensors\n"
        "cmd        read+write  a/# b/#\n"
    )
    assert cli.channels_table([]) == (
        "no channels: this token may neither read nor write any channel\n"
    )


def test_a_delegates_argument_error_becomes_its_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(["simulate", "--devices", "many"], capsys)
    assert code == 2
    assert "usage: iotcable simulate" in err


# -- what `iotcable tail` prints -----------------------------------------------------------

T0 = 1_733_450_000.0  # 2024-12-06T01:53:20Z


def reading(offset: int, payload: object, *, topic: str = "plant/lyon/pump1/env") -> Reading:
    _, site, device, _ = topic.split("/")
    return Reading(topic, T0 + offset, payload, {"site": site, "device": device}, offset)


def printed(fmt: str, readings: list[Reading], levels: tuple[str, ...] = ("site", "device")) -> str:
    out = io.StringIO()
    write = tailformat.writer(fmt, levels, out)
    for r in readings:
        write(r)
    return out.getvalue()


def test_the_table_aligns_payload_fields_under_a_header_again_when_a_column_widens() -> None:
    assert printed(
        "table",
        [
            reading(0, {"seq": 1, "temperature": 21.5, "status": "ok"}),
            reading(
                1, {"seq": 2, "temperature": 9.25, "status": "fault"}, topic="plant/porto/fan10/env"
            ),
            reading(2, {"seq": 3, "temperature": -40, "status": "ok"}),
        ],
    ) == (
        "time                      site  device  seq  temperature  status\n"
        "2024-12-06T01:53:20.000Z  lyon  pump1     1         21.5  ok\n"
        "time                      site   device  seq  temperature  status\n"
        "2024-12-06T01:53:21.000Z  porto  fan10     2         9.25  fault\n"
        "2024-12-06T01:53:22.000Z  lyon   pump1     3          -40  ok\n"
    )


def test_the_table_widens_for_new_fields_and_wider_values_and_says_so_with_a_header() -> None:
    text = printed(
        "table",
        [
            reading(0, {"seq": 1, "status": "ok"}),
            reading(1, {"seq": 2, "status": "ok"}),
            reading(2, {"seq": 3, "status": "ok", "vibration": 0.5}),  # a new field
            reading(3, {"seq": 1234, "status": "ok", "vibration": 0.25}),  # a wider value
            reading(4, {"seq": 5, "status": True}),  # text column gets a bool; vibration missing
        ],
    )
    assert text == (
        "time                      site  device  seq  status\n"
        "2024-12-06T01:53:20.000Z  lyon  pump1     1  ok\n"
        "2024-12-06T01:53:21.000Z  lyon  pump1     2  ok\n"
        "time                      site  device  seq  status  vibration\n"
        "2024-12-06T01:53:22.000Z  lyon  pump1     3  ok            0.5\n"
        "time                      site  device   seq  status  vibration\n"
        "2024-12-06T01:53:23.000Z  lyon  pump1   1234  ok           0.25\n"
        "2024-12-06T01:53:24.000Z  lyon  pump1      5  true\n"
    )


def test_the_table_without_a_template_shows_topics_and_cuts_long_text() -> None:
    long = "x" * 100
    text = printed(
        "table",
        [
            Reading("num/a", T0, 1.5, {}, 0),
            Reading("num/b", T0 + 1, long, {}, 1),
            Reading("num/c", T0 + 2, "line\nbreak", {}, 2, error="not a number"),
        ],
        levels=(),
    )
    lines = text.splitlines()
    assert lines[0] == "time                      topic  value"
    assert lines[1] == "2024-12-06T01:53:20.000Z  num/a    1.5"  # numbers to the right
    # The text turned the column into a text column: the header says so again.
    assert lines[3] == "2024-12-06T01:53:21.000Z  num/b  " + "x" * 39 + "…"
    assert lines[4].startswith("2024-12-06T01:53:22.000Z  num/c  line\\nbreak")
    assert lines[4].endswith("  ! not a number")


def test_csv_flattens_payload_fields_into_columns_and_keeps_later_fields() -> None:
    text = printed(
        "csv",
        [
            reading(0, {"seq": 1, "temperature": 21.5, "ok": True, "pos": {"x": 1, "y": 2}}),
            reading(1, {"seq": 2, "temperature": 22.0, "extra": [1, 2], "topic": "mine"}),
        ],
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "time", "topic", "site", "device", "seq", "temperature", "ok", "pos.x", "pos.y",
        "other", "error",
    ]  # fmt: skip
    assert rows[0] == {
        "time": "2024-12-06T01:53:20.000Z",
        "topic": "plant/lyon/pump1/env",
        "site": "lyon",
        "device": "pump1",
        "seq": "1",
        "temperature": "21.5",
        "ok": "true",
        "pos.x": "1",
        "pos.y": "2",
        "other": "",
        "error": "",
    }
    # Fields the header has no column for are not lost: they are in `other`, as JSON.
    assert rows[1]["seq"] == "2"
    assert rows[1]["ok"] == ""
    assert json.loads(rows[1]["other"]) == {"extra": [1, 2], "payload.topic": "mine"}


def test_jsonl_keeps_the_payload_whole() -> None:
    (line,) = printed("jsonl", [reading(7, {"a": {"b": [1, None]}})]).splitlines()
    assert json.loads(line) == {
        "time": "2024-12-06T01:53:27.000Z",
        "topic": "plant/lyon/pump1/env",
        "offset": 7,
        "site": "lyon",
        "device": "pump1",
        "payload": {"a": {"b": [1, None]}},
    }
