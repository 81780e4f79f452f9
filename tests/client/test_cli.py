"""``iotcable`` argument errors, exit codes and delegation, without a server."""

from __future__ import annotations

import sys
import types

import pytest

from jupyter_iotcable import cli
from jupyter_iotcable.client import ChannelInfo
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
            "argument PAYLOAD: NaN has no JSON form, so it cannot be published: send a finite "
            "number, null, or the text itself in quotes ('\"NaN\"')",
        ),
        (
            ["publish", "commands", '{"speed": -Infinity}', "--topic", "plant/a/b/cmd"],
            "argument PAYLOAD: -Infinity has no JSON form",
        ),
        (
            ["publish", "commands", "[1e999]", "--topic", "plant/a/b/cmd"],
            "argument PAYLOAD: 1e999 is too large for a 64-bit number",
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


def test_a_payload_that_is_not_json_is_sent_as_text() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["publish", "c", "on", "--topic", "t"])
    assert args.payload == "on"
    args = parser.parse_args(["publish", "c", '{"speed": 40.5}', "--topic", "t"])
    assert args.payload == {"speed": 40.5}


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
