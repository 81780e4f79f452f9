"""``iotcable tail`` and ``iotcable publish`` against a real server and mosquitto."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING

import jupyter_iotcable as iot
from jupyter_iotcable import cli

if TYPE_CHECKING:
    import pytest

    from tests.servers import LiveServer


def test_tail_prints_json_lines_and_stops_after_count(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert live_server.mosquitto is not None
    codes: list[int] = []
    argv = ["tail", "telemetry", "--url", live_server.url, "--token", live_server.token]
    tail = threading.Thread(
        target=lambda: codes.append(cli.main([*argv, "--format", "jsonl", "--count", "5"]))
    )
    tail.start()
    seq = 0
    deadline = time.monotonic() + 30
    # tail subscribes on its own thread: keep publishing until it has seen five.
    while tail.is_alive() and time.monotonic() < deadline:
        live_server.mosquitto.publish("plant/lyon/pump1/env", json.dumps({"seq": seq}))
        seq += 1
        time.sleep(0.02)
    tail.join(10)
    assert codes == [0]
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 5
    first = records[0]["payload"]["seq"]
    assert [r["payload"]["seq"] for r in records] == list(range(first, first + 5))
    assert {r["site"] for r in records} == {"lyon"}
    assert {r["topic"] for r in records} == {"plant/lyon/pump1/env"}


def test_publish_sends_json_and_refusals_exit_1(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = ["--url", live_server.url, "--token", live_server.token]
    with iot.connect(live_server.url, token=live_server.token) as cable:
        commands = cable.subscribe("commands")
        code = cli.main(
            ["publish", "commands", '{"speed": 40}', "--topic", "plant/a/p3/cmd", *auth]
        )
        assert code == 0
        assert capsys.readouterr().out == "published to plant/a/p3/cmd\n"
        deadline = time.monotonic() + 20
        while len(commands) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert commands.frame["speed"].tolist() == [40.0]

    code = cli.main(["publish", "telemetry", "1", "--topic", "plant/a/p3/env", *auth])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(
        "iotcable publish: error: publish to 'plant/a/p3/env' on channel 'telemetry' was refused: "
    )


def test_tail_with_a_wrong_token_exits_1(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["tail", "telemetry", "--url", live_server.url, "--token", "wrong"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"iotcable tail: error: the server at {live_server.url} refused the token (HTTP 403"
    )
    assert err.rstrip().endswith(
        "pass the server's token with --token TOKEN or set IOTCABLE_TOKEN"
    ), err
    assert "connect(" not in err


def test_channels_lists_what_the_token_may_read_or_write(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = ["--url", live_server.url, "--token", live_server.token]
    assert cli.main(["channels", *auth]) == 0
    assert capsys.readouterr().out == (
        "CHANNEL    ACCESS      TOPICS\n"
        "telemetry  read        plant/+/+/env\n"
        "commands   read+write  plant/+/+/cmd\n"
        "numbers    read        num/#\n"
    )
    assert cli.main(["channels", "--format", "jsonl", *auth]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["read"], r["write"]) for r in records] == [
        ("telemetry", True, False),
        ("commands", True, True),
        ("numbers", True, False),
    ]
    assert records[0]["columns"] == "plant/{site}/{device}/env"


def test_a_rejected_tail_points_to_iotcable_channels(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["tail", "telemtry", "--url", live_server.url, "--token", live_server.token])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "iotcable tail: error: subscription to channel 'telemtry' was rejected: unknown "
        "channel 'telemtry'; see GET iotcable/api/channels. "
        f"`iotcable channels --url {live_server.url} --token ...` lists the channels you may "
        "read or write and their topics.\n"
    )
    assert "cable.channels()" not in err
    assert live_server.token not in err


def test_input_the_library_refuses_is_one_line_not_a_traceback(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = ["--url", live_server.url, "--token", live_server.token]
    code = cli.main(["tail", "x" * 201, *auth])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("iotcable tail: error: channel 'xxx")
    assert "channel must be 1 to 200 characters, got 201" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
