"""``iotcable tail``, ``publish`` and ``channels`` against a real server and mosquitto.

The tests share one server (``shared_live_server``); each reads and writes topics of
its own (``plant/<test>/...``), so that no test sees another's readings.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from typing import TYPE_CHECKING

import pytest

import jupyter_iotcable as iot
from jupyter_iotcable import cli

if TYPE_CHECKING:
    from collections.abc import Callable

    from jupyter_iotcable.client import Subscription
    from tests.servers import LiveServer


def auth(server: LiveServer) -> list[str]:
    return ["--url", server.url, "--token", server.token]


def tail_while_publishing(
    server: LiveServer,
    argv: list[str],
    topic: str,
    payload: Callable[[int], object] = lambda seq: {"seq": seq},
) -> int:
    """Run ``iotcable ARGV`` (a ``tail --count N``) on a thread while a device publishes
    ``payload(seq)`` to ``topic`` every 20 ms; the exit code."""
    assert server.mosquitto is not None
    codes: list[int] = []
    tail = threading.Thread(target=lambda: codes.append(cli.main(argv)))
    tail.start()
    seq = 0
    deadline = time.monotonic() + 30
    # tail subscribes on its own thread: keep publishing until it has seen enough.
    while tail.is_alive() and time.monotonic() < deadline:
        server.mosquitto.publish(topic, json.dumps(payload(seq)))
        seq += 1
        time.sleep(0.02)
    tail.join(10)
    assert len(codes) == 1, "tail did not end"
    return codes[0]


def wait_for_rows(sub: Subscription, rows: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(sub) < rows and time.monotonic() < deadline:
        time.sleep(0.05)


def test_tail_prints_json_lines_and_stops_after_count(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tail", "telemetry", "--topic", "plant/jsonl/+/env", "--format", "jsonl"]
    argv += ["--count", "5", *auth(shared_live_server)]
    assert tail_while_publishing(shared_live_server, argv, "plant/jsonl/pump1/env") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 5
    first = records[0]["payload"]["seq"]
    assert [r["payload"]["seq"] for r in records] == list(range(first, first + 5))
    assert {r["site"] for r in records} == {"jsonl"}
    assert {r["topic"] for r in records} == {"plant/jsonl/pump1/env"}


def test_tail_as_a_table_aligns_the_payload_fields_under_a_header(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tail", "telemetry", "--topic", "plant/table/+/env", "--count", "4"]
    argv += auth(shared_live_server)  # --format table is the default
    code = tail_while_publishing(
        shared_live_server,
        argv,
        "plant/table/pump1/env",
        lambda seq: {"seq": seq, "temperature": 20 + seq / 4, "status": "ok"},
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0]
    assert header.split() == ["time", "site", "device", "seq", "temperature", "status"]
    rows = [line for line in lines[1:] if line != header]  # the header again when seq widens
    assert len(rows) == 4
    for row in rows:
        time_, site, device, seq, temperature, status = row.split()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", time_)
        assert (site, device, status) == ("table", "pump1", "ok")
        assert float(temperature) == 20 + int(seq) / 4
        # Aligned: numbers end under the end of their header, text starts under its start.
        assert row.index(site) == header.index("site")
        assert row.index(f" {temperature} ") + len(temperature) + 1 == header.index(
            "temperature"
        ) + len("temperature")
        assert row.rindex(status) == header.index("status")


def test_tail_as_csv_flattens_the_payload_fields_into_columns(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tail", "telemetry", "--topic", "plant/csv/+/env", "--format", "csv", "--count", "3"]
    code = tail_while_publishing(
        shared_live_server,
        [*argv, *auth(shared_live_server)],
        "plant/csv/fan2/env",
        lambda seq: {"seq": seq, "pos": {"x": seq, "y": -seq}, "status": "ok"},
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3
    assert list(rows[0]) == [
        "time", "topic", "site", "device", "seq", "pos.x", "pos.y", "status", "other", "error",
    ]  # fmt: skip
    for row in rows:
        assert (row["topic"], row["site"], row["device"]) == ("plant/csv/fan2/env", "csv", "fan2")
        assert int(row["pos.x"]) == -int(row["pos.y"]) == int(row["seq"])
        assert (row["status"], row["other"], row["error"]) == ("ok", "", "")


def test_publish_sends_json_and_refusals_exit_1(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with iot.connect(shared_live_server.url, token=shared_live_server.token) as cable:
        commands = cable.subscribe("commands", topic="plant/publish/+/cmd")
        argv = ["publish", "commands", '{"speed": 40}', "--topic", "plant/publish/p3/cmd"]
        code = cli.main([*argv, *auth(shared_live_server)])
        assert code == 0
        assert capsys.readouterr().out == "published to plant/publish/p3/cmd\n"
        wait_for_rows(commands, 1)
        assert commands.frame["speed"].tolist() == [40]

    argv = ["publish", "telemetry", "1", "--topic", "plant/publish/p3/env"]
    code = cli.main([*argv, *auth(shared_live_server)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(
        "iotcable publish: error: publish to 'plant/publish/p3/env' on channel 'telemetry' was "
        "refused: "
    )


def test_malformed_json_is_not_published_and_text_only_with_text(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = "plant/malformed/p1/cmd"
    with iot.connect(shared_live_server.url, token=shared_live_server.token) as cable:
        commands = cable.subscribe("commands", topic="plant/malformed/+/cmd")
        code = cli.main(
            ["publish", "commands", '{"setpoint": 25', "--topic", topic, *auth(shared_live_server)]
        )
        out, err = capsys.readouterr()
        assert (code, out) == (2, "")
        assert (
            "error: argument PAYLOAD is not valid JSON: expecting ',' delimiter at column 16" in err
        )
        # Then a good one: the first reading the subscription sees must be this one.
        code = cli.main(
            ["publish", "commands", '{"setpoint": 25}', "--topic", topic, *auth(shared_live_server)]
        )
        assert code == 0
        code = cli.main(
            ["publish", "commands", "on", "--text", "--topic", topic, *auth(shared_live_server)]
        )
        assert code == 0
        # A JSON string is a JSON payload too.
        code = cli.main(
            ["publish", "commands", '"off"', "--topic", topic, *auth(shared_live_server)]
        )
        assert code == 0
        wait_for_rows(commands, 3)
        frame = commands.frame
    assert frame["setpoint"].tolist()[0] == 25
    # --text on a JSON channel sends a JSON string.
    assert frame["value"].tolist()[1:] == ["on", "off"]
    assert len(frame) == 3


def test_tail_with_a_wrong_token_exits_1(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["tail", "telemetry", "--url", shared_live_server.url, "--token", "wrong"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"iotcable tail: error: the server at {shared_live_server.url} refused the token (HTTP 403"
    )
    assert err.rstrip().endswith(
        "pass the server's token with --token TOKEN or set IOTCABLE_TOKEN"
    ), err
    assert "connect(" not in err


def test_channels_lists_what_the_token_may_read_or_write(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["channels", *auth(shared_live_server)]) == 0
    assert capsys.readouterr().out == (
        "CHANNEL    ACCESS      TOPICS\n"
        "telemetry  read        plant/+/+/env\n"
        "commands   read+write  plant/+/+/cmd\n"
        "numbers    read        num/#\n"
    )
    assert cli.main(["channels", "--format", "jsonl", *auth(shared_live_server)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["read"], r["write"]) for r in records] == [
        ("telemetry", True, False),
        ("commands", True, True),
        ("numbers", True, False),
    ]
    assert records[0]["columns"] == "plant/{site}/{device}/env"


def test_a_rejected_tail_points_to_iotcable_channels(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["tail", "telemtry", *auth(shared_live_server)])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "iotcable tail: error: unknown channel 'telemtry': did you mean 'telemetry'? The "
        "channels you may read or write are 'commands', 'numbers' and 'telemetry'.\n"
    )
    assert "cable.channels()" not in err
    assert shared_live_server.token not in err


def test_input_the_library_refuses_is_one_line_not_a_traceback(
    shared_live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["tail", "x" * 201, *auth(shared_live_server)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("iotcable tail: error: channel 'xxx")
    assert "channel must be 1 to 200 characters, got 201" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
