"""``iotcable demo`` as a user runs it: a subprocess that prints where Lab is, serves the
simulator's readings through the extension within 30 seconds, leaves the checkout's
notebooks alone, and leaves nothing behind however it is stopped."""

from __future__ import annotations

import getpass
import json
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import jupyter_iotcable as iot
from jupyter_iotcable.bridge import EmbeddedBroker
from jupyter_iotcable.demo import (
    CHILD_CODE,
    OWNER_FILE,
    copy_notebooks,
    lab_config,
    opened_clean,
    remove_stale_workdirs,
)
from jupyter_iotcable.demo import main as demo_main
from jupyter_iotcable.server.config import parse_channel
from tests.demos import RunningDemo, run_in_terminal, running_demo

ROOT = Path(__file__).resolve().parents[2]
FIRST_READING_WITHIN = 30.0
"""The issue: readings through the client within 30 seconds of the server being up."""


def remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    assert left > 0, f"no reading within {FIRST_READING_WITHIN:g} s of the demo being up"
    return left


def stops_completely(demo: RunningDemo, signum: signal.Signals) -> tuple[int, list[str]]:
    """Start a kernel (so Lab has a child of its own), send the demo ``signum``; its exit
    code and the processes still alive 30 seconds later (none, when all is well)."""
    demo.api("POST", "api/kernels", {"name": "python3"})
    family = demo.descendants()
    assert any("ipykernel" in " ".join(p.cmdline()) for p in family), family
    code = demo.signal(signum)
    _, alive = psutil.wait_procs(family, timeout=30)
    return code, [" ".join(p.cmdline())[:100] for p in alive]


def readme_demo_lines() -> list[str]:
    """The demo's own lines in the README's sample output ([setup] lines vary)."""
    readme = (ROOT / "README.md").read_text()
    sample = readme.split("$ bash .ci/demo\n", 1)[1].split("```", 1)[0]
    return [line for line in sample.splitlines() if not line.startswith("[setup]")]


def as_pattern(line: str) -> re.Pattern[str]:
    """A README line as a pattern: ports, tokens and temporary names vary."""
    pattern = re.escape(line)
    pattern = re.sub(r"127\\\.0\\\.0\\\.1:\d+", r"127\\.0\\.0\\.1:\\d+", pattern)
    pattern = pattern.replace(r"token=\.\.\.", r"token=\w+")
    pattern = re.sub(r"iotcable\\-demo\\-\w+", r"iotcable-demo-\\w+", pattern)
    pattern = pattern.replace(re.escape("/tmp/"), r"/\S+/")
    return re.compile(pattern)


def test_demo_serves_readings_within_30_seconds_and_stops_everything(tmp_path: Path) -> None:
    """Run as the README runs it: the defaults, and the output the README shows."""
    with running_demo(tmp_path, small=False) as demo:
        deadline = demo.ready_at + FIRST_READING_WITHIN
        with iot.connect(demo.url, token=demo.token, timeout=remaining(deadline)) as cable:
            sub = cable.subscribe("telemetry", topic="plant/+/+/env", timeout=remaining(deadline))
            reading = next(sub.readings(timeout=remaining(deadline)))
        remaining(deadline)
        assert reading.columns["site"] in ("lyon", "porto")
        # Lab's bridge speaks amqtt's 3.1.1 at once: no MQTT 5 attempt to wait out (10 s).
        (workdir,) = (tmp_path / "tmp").iterdir()
        lab_log = (workdir / "lab.log").read_text()
        assert "with MQTT 3.1.1" in lab_log and "did not accept MQTT 5" not in lab_log, lab_log
        assert isinstance(reading.payload, dict)
        assert {"seq", "ts", "temperature", "setpoint", "status"} <= set(reading.payload)

        family = demo.descendants()
        names = {" ".join(child.cmdline()) for child in family}
        assert any("embedded_child" in name for name in names), names
        assert any("simulate" in name for name in names), names
        assert any("jupyterlab" in name for name in names), names
        # The broker password reaches the simulator and Lab through their environment only.
        simulator = next(child for child in family if "simulate" in child.cmdline())
        # amqtt speaks 3.1.1 only: no MQTT 5 attempt to wait out before readings flow.
        arguments = simulator.cmdline()
        assert arguments[arguments.index("--protocol") + 1] == "3.1.1"
        password = simulator.environ()["IOTCABLE_DEMO_BROKER_PASSWORD"]
        assert password
        assert not any(password in name for name in names)

        # What the demo printed is what the README shows, line for line.
        printed = [*demo.output, *demo.printed_until("Ctrl-C stops the demo.")]
        expected = readme_demo_lines()
        assert len(printed) == len(expected), (printed, expected)
        for line, readme_line in zip(printed, expected, strict=True):
            assert as_pattern(readme_line).fullmatch(line.rstrip("\n")), (line, readme_line)

        assert demo.signal(signal.SIGTERM) == 0
        _, alive = psutil.wait_procs(family, timeout=10)
        assert alive == []
        assert demo.rest_of_output().endswith("broker stopped\nstopped.\n")
        assert not workdir.exists()


def test_device_obeys_a_command_within_a_second(shared_demo: RunningDemo) -> None:
    demo = shared_demo
    with iot.connect(demo.url, token=demo.token, timeout=30) as cable:
        sub = cable.subscribe("telemetry", topic="plant/lyon/pump1/env", timeout=30)
        readings = sub.readings(timeout=30)
        before = next(readings)
        assert isinstance(before.payload, dict) and before.payload["setpoint"] != 31.5
        sent_at = time.time()
        cable.publish("commands", {"setpoint": 31.5}, topic="plant/lyon/pump1/cmd")
        # Readings stamped (by the device) more than a second after the command must all
        # carry the new setpoint; the overall deadline is generous for a loaded machine.
        later = []
        for reading in readings:
            assert isinstance(reading.payload, dict)
            if reading.payload["ts"] >= sent_at + 1.0:
                later.append(reading.payload)
                if len(later) == 3:
                    break
    assert [payload["setpoint"] for payload in later] == [31.5, 31.5, 31.5]


def test_iotcable_works_in_labs_terminal(shared_demo: RunningDemo) -> None:
    """The issue: `iotcable --help` in Lab's terminal said "command not found"."""
    shown = run_in_terminal(shared_demo, "command -v iotcable && iotcable channels")
    lines = [line.strip() for line in shown.splitlines()]
    # The venv's own script, even though the demo was started without activating it ...
    assert str(Path(sys.executable).parent / "iotcable") in lines, shown
    # ... and it finds the server by itself (the extension's IOTCABLE_URL / IOTCABLE_TOKEN).
    assert any(re.match(r"telemetry\s+read\s+plant/\+/\+/env", line) for line in lines), shown
    assert any(re.match(r"commands\s+read\+write\s+plant/\+/\+/cmd", line) for line in lines), shown
    assert "command not found" not in shown


def test_closing_the_terminal_stops_everything(tmp_path: Path) -> None:
    """SIGHUP is what the demo gets when its terminal window is closed."""
    with running_demo(tmp_path) as demo:
        (workdir,) = (tmp_path / "tmp").iterdir()
        code, alive = stops_completely(demo, signal.SIGHUP)
        assert code == 0
        assert alive == []
        assert demo.rest_of_output().endswith("broker stopped\nstopped.\n")
        assert not workdir.exists()


def test_a_killed_demo_leaves_no_process_and_the_next_one_removes_its_directory(
    tmp_path: Path,
) -> None:
    """SIGKILL runs no code of the demo: each child notices by itself that it is gone."""
    with running_demo(tmp_path) as demo:
        (workdir,) = (tmp_path / "tmp").iterdir()
        assert (workdir / OWNER_FILE).read_text() == str(demo.process.pid)
        code, alive = stops_completely(demo, signal.SIGKILL)
        assert code == -signal.SIGKILL
        assert alive == []
    # The directory stays (nobody was left to remove it) until the next demo starts.
    assert workdir.exists()
    assert remove_stale_workdirs(tmp_path / "tmp") == [workdir]
    assert not workdir.exists()


def test_lab_saves_into_the_demo_copy_not_the_checkout(shared_demo: RunningDemo) -> None:
    """Lab autosaves outputs; they must not land in the notebooks/ of the source tree.

    The session's demo runs with ``--workdir``; the quickstart it serves is put back as it
    was afterwards (the browser tests open it)."""
    demo = shared_demo
    original = (ROOT / "notebooks" / "quickstart.ipynb").read_bytes()
    workdir = demo.workdir
    assert workdir is not None, "the session's demo runs with --workdir"
    assert f"notebooks: {workdir / 'notebooks'} (a copy" in "".join(
        demo.printed_until("notebooks: ")
    )
    model = demo.api("GET", "api/contents/quickstart.ipynb")
    served = json.loads(json.dumps(model["content"]))
    notebook = model["content"]
    notebook["cells"][1]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": "saved by Lab\n"}
    ]
    notebook["cells"][1]["execution_count"] = 1
    try:
        demo.api(
            "PUT",
            "api/contents/quickstart.ipynb",
            {"type": "notebook", "format": "json", "content": notebook},
        )
        assert (ROOT / "notebooks" / "quickstart.ipynb").read_bytes() == original
        # --workdir keeps the user's copy, and a second demo does not overwrite it.
        assert "saved by Lab" in (workdir / "notebooks" / "quickstart.ipynb").read_text()
        assert copy_notebooks(workdir / "notebooks") == []
        assert "saved by Lab" in (workdir / "notebooks" / "quickstart.ipynb").read_text()
    finally:
        demo.api(
            "PUT",
            "api/contents/quickstart.ipynb",
            {"type": "notebook", "format": "json", "content": served},
        )


def test_copy_notebooks_copies_the_examples_as_lab_would_write_them_here(tmp_path: Path) -> None:
    copied = copy_notebooks(tmp_path / "notebooks")
    assert sorted(path.name for path in copied) == ["quickstart.ipynb", "tour.ipynb"]
    for path in copied:
        source = json.loads((ROOT / "notebooks" / path.name).read_text())
        copy = json.loads(path.read_text())
        # The cells as they are; the kernel and Python as Lab sets them when it opens it
        # (else it opens marked unsaved: tests/browser/test_quickstart.py).
        assert copy["cells"] == source["cells"]
        assert copy["metadata"]["kernelspec"] == {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        }
        assert copy["metadata"]["language_info"] == {
            **source["metadata"]["language_info"],
            "version": platform.python_version(),
        }


def test_the_notebooks_are_stored_as_lab_writes_them() -> None:
    """Indent 1, sorted keys, a final newline, the kernel Lab starts for them: so that
    opening and saving one changes nothing but what the user changed."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        stored = json.loads(text)["metadata"]["language_info"]["version"]
        here = text.replace(f'"version": "{stored}"', f'"version": "{platform.python_version()}"')
        assert opened_clean(text) == here, path.name


def test_opened_clean_sets_the_python_that_runs_the_kernels() -> None:
    notebook = {
        "cells": [],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.0.1"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    metadata = json.loads(opened_clean(json.dumps(notebook)))["metadata"]
    assert metadata["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    assert metadata["language_info"] == {"name": "python", "version": platform.python_version()}


def test_remove_stale_workdirs_keeps_the_live_and_the_unknown(tmp_path: Path) -> None:
    live = tmp_path / "iotcable-demo-live"
    live.mkdir()
    (live / OWNER_FILE).write_text(str(psutil.Process().pid))
    unknown = tmp_path / "iotcable-demo-unknown"  # no owner file: not ours to judge
    unknown.mkdir()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = tmp_path / "iotcable-demo-dead"
    dead.mkdir()
    (dead / OWNER_FILE).write_text(finished.stdout.strip())
    other = tmp_path / "something-else"
    other.mkdir()
    assert remove_stale_workdirs(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "iotcable-demo-live",
        "iotcable-demo-unknown",
        "something-else",
    ]


def test_a_child_launcher_without_a_module_says_how_it_is_used() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD_CODE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "usage: python -c CHILD_CODE MODULE [ARGS...] (started by iotcable demo)\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535, not 70000"),
        (["--devices", "0"], "--devices must be between 1 and 10000, not 0"),
        (["--rate", "0"], "--rate must be more than 0 and at most 1000 per second, not 0"),
        (["--rate", "fast"], "argument --rate: invalid float value: 'fast'"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: iotcable demo")
    assert f"iotcable demo: error: {message}\n" in err


def test_lab_config_channels_pass_the_extension_validation(tmp_path: Path) -> None:
    broker = EmbeddedBroker(password="pw")
    broker.port = 1883  # the config only needs the URL; nothing is started
    config = lab_config(broker, root_dir=tmp_path, port=8899, token="t", open_browser=False)
    iot_config = config["IoTCableApp"]
    assert iot_config["broker_url"] == "mqtt://127.0.0.1:1883"
    # amqtt ignores an MQTT 5 CONNECT: "auto" made Lab wait 10 s before every demo.
    assert iot_config["broker_protocol"] == "3.1.1"
    assert "pw" not in json.dumps(config)
    channels = {name: parse_channel(name, raw) for name, raw in iot_config["channels"].items()}
    owner = f"user:{getpass.getuser()}"
    assert channels["telemetry"].read == ("*",)
    assert channels["commands"].write == (owner,)
    assert channels["commands"].may_publish_to("plant/lyon/pump1/cmd")
