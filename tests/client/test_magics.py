"""``%load_ext jupyter_iotcable`` in a real IPython (an in-process ``InteractiveShell``),
without a server: what a user sees for help, typing mistakes and a missing server, and
what Tab offers. With a server: tests/integration/test_magics.py."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell

from jupyter_iotcable.ipython.commands import (
    SUBCOMMANDS,
    CommandError,
    HelpRequested,
    parse,
    split_publish,
)
from jupyter_iotcable.ipython.completion import ChannelFacts, Knowledge, complete

NO_SERVER_VARIABLES = ("IOTCABLE_URL", "IOTCABLE_TOKEN", "JUPYTERHUB_SERVICE_URL", "JPY_PARENT_PID")


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """IPython with the extension loaded and no server to be found."""
    for name in NO_SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    ip = InteractiveShell.instance()
    run_cell(ip, "%load_ext jupyter_iotcable")
    try:
        yield ip
    finally:
        run_cell(ip, "%unload_ext jupyter_iotcable")


def run_cell(ip: InteractiveShell, code: str) -> bool:
    """Run ``code`` as a cell (IPython's run_cell is untyped); whether it succeeded."""
    result = ip.run_cell(code)  # type: ignore[no-untyped-call]
    return bool(result.success)


def run(
    ip: InteractiveShell, code: str, capsys: pytest.CaptureFixture[str]
) -> tuple[bool, str, str]:
    """Run ``code`` as a cell: whether it succeeded, and what it printed."""
    ok = run_cell(ip, code)
    out, err = capsys.readouterr()
    return ok, out, err


# -- what the user sees ------------------------------------------------------------------


def test_loading_without_a_server_says_so_in_one_line_and_how_to_connect(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in NO_SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    ip = InteractiveShell.instance()
    try:
        ok, out, err = run(ip, "%load_ext jupyter_iotcable", capsys)
        assert ok
        assert out == ""
        assert err.startswith(
            "iotcable: not connected: could not find a Jupyter server to connect to (tried: "
            "a URL argument: none given; IOTCABLE_URL / IOTCABLE_TOKEN: "
        )
        assert err.endswith("). %iot connect URL --token TOKEN connects by hand.\n")
        assert len(err.splitlines()) == 1
        # The magics are there all the same, and say the same when used.
        ok, out, err = run(ip, "%iot channels", capsys)
        assert not ok
        assert err.startswith("UsageError: %iot: not connected: could not find a Jupyter server")
        assert "Traceback" not in out + err
        assert len(err.splitlines()) == 1
    finally:
        run_cell(ip, "%unload_ext jupyter_iotcable")


def test_help_lists_every_subcommand_with_examples(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, out, err = run(shell, "%iot --help", capsys)
    assert ok
    assert err == ""
    assert out.startswith("usage: %iot [-h] SUBCOMMAND ...\n")
    for name, summary in SUBCOMMANDS.items():
        assert f"    {name}" in out
        assert " ".join(summary.split()[:4]) in out
    assert "%iot subscribe telemetry --topic 'plant/lyon/+/env' --window 15min" in out
    assert "%%iot publish commands --topic plant/lyon/pump1/cmd\n" in out
    # No subcommand at all: the same help, not an error.
    assert run(shell, "%iot", capsys)[1] == out


def test_a_subcommands_help(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ok, out, _ = run(shell, "%iot publish --help", capsys)
    assert ok
    assert out.startswith("usage: %iot publish CHANNEL --topic TOPIC [--text] PAYLOAD\n")
    assert 'the rest of the line, as JSON ({"setpoint": 25}); with %%iot, the' in out
    assert "--text" in out


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (
            "%iot subscrib telemetry",
            "UsageError: %iot: unknown subcommand 'subscrib': did you mean 'subscribe'? choose "
            "one of channels, status, subscribe, live, tail, publish, connect (%iot --help)",
        ),
        (
            "%iot tail telemetry -n 0",
            "UsageError: %iot tail: argument -n: expected a number of at least 1, got 0 "
            "(see %iot tail --help)",
        ),
        (
            "%iot subscribe",
            "UsageError: %iot subscribe: the following arguments are required: CHANNEL "
            "(see %iot subscribe --help)",
        ),
        (
            "%iot subscribe telemetry --name 2x",
            "UsageError: %iot subscribe: argument --name/-N: '2x' is not a Python variable name "
            "(see %iot subscribe --help)",
        ),
        (
            '%iot publish commands {"setpoint": 25}',
            "UsageError: %iot publish: the following arguments are required: --topic/-t "
            "(see %iot publish --help)",
        ),
        (
            "%iot publish commands --topic plant/lyon/pump1/cmd",
            "UsageError: %iot publish: no payload: put it after the options (%iot publish "
            'CHANNEL --topic TOPIC {"setpoint": 25}) or in the cell below %%iot publish',
        ),
        (
            "%%iot publish commands --topic a/b/c/cmd 1\n2",
            "UsageError: %iot publish: the payload is both on the line and in the cell: give it "
            "in one place",
        ),
        (
            "%%iot tail telemetry\nsomething",
            "UsageError: %%iot tail: only publish takes a cell (the payload); run %iot tail on a "
            "line of its own",
        ),
        ("%iot tail 'telemetry", 'UsageError: %iot: No closing quotation in "tail \'telemetry"'),
    ],
)
def test_a_typing_mistake_is_one_line_not_a_traceback(
    shell: InteractiveShell, code: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, out, err = run(shell, code, capsys)
    assert not ok
    assert (out, err) == ("", error + "\n")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (
            '%iot publish commands --topic plant/lyon/pump1/cmd {"setpoint": 25',
            "UsageError: %iot publish: the payload is not valid JSON: expecting ',' delimiter "
            "at column 16\n"
            '    {"setpoint": 25\n'
            "                   ^\n"
            "(to send it as text rather than JSON, add --text)\n",
        ),
        (
            '%%iot publish commands --topic plant/lyon/pump1/cmd\n{"setpoint": 25,\n "on": tru}',
            "UsageError: %iot publish: the payload is not valid JSON: expecting value at line 2, "
            "column 8\n"
            '     "on": tru}\n'
            "           ^\n"
            "(to send it as text rather than JSON, add --text)\n",
        ),
        (
            "%iot publish commands --topic plant/lyon/pump1/cmd NaN",
            "UsageError: %iot publish: the payload holds NaN, which has no JSON form, so it "
            "cannot be published: send a finite number, null, or the text itself in quotes "
            "('\"NaN\"')\n",
        ),
    ],
)
def test_malformed_json_says_where_before_anything_is_sent(
    shell: InteractiveShell, code: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # No server here: the payload is refused before the magic looks for one.
    ok, out, err = run(shell, code, capsys)
    assert not ok
    assert (out, err) == ("", error)


def test_without_a_server_subscribe_binds_nothing(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without a server the magic says so; the namespace keeps what it had.
    shell.user_ns["sub"] = "mine"
    ok, _, err = run(shell, "%iot subscribe telemetry", capsys)
    assert not ok
    assert err.startswith("UsageError: %iot: not connected:")
    assert shell.user_ns["sub"] == "mine"


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "words", "payload"),
    [
        (
            ' commands --topic a/b {"setpoint": 25}',
            ["commands", "--topic", "a/b"],
            '{"setpoint": 25}',
        ),
        (" commands -t 'a/b c' -5", ["commands", "-t", "a/b c"], "-5"),
        (" --text commands -t x hello  world", ["--text", "commands", "-t", "x"], "hello  world"),
        (' commands {"it\'s": "a \\"quote\\""} ', ["commands"], '{"it\'s": "a \\"quote\\""}'),
        (" commands --topic=a/b [1, 2]", ["commands", "--topic=a/b"], "[1, 2]"),
        (" commands", ["commands"], ""),
    ],
)
def test_a_publish_payload_is_the_rest_of_the_line_as_typed(
    rest: str, words: list[str], payload: str
) -> None:
    assert split_publish(rest) == (words, payload)


def test_subscribe_options() -> None:
    command = parse("subscribe telemetry -t 'plant/lyon/+/env' -w 500 -H 5min -N lyon")
    assert command.name == "subscribe"
    assert vars(command.options) == vars(
        argparse.Namespace(
            command="subscribe",
            channel="telemetry",
            topic="plant/lyon/+/env",
            window="500",
            history="5min",
            name="lyon",
        )
    )


def test_live_takes_several_fields() -> None:
    command = parse("live telemetry -y temperature -y vibration --by site")
    assert (command.options.y, command.options.by) == (["temperature", "vibration"], "site")


def test_help_and_errors_are_raised_not_printed() -> None:
    with pytest.raises(HelpRequested):
        parse("tail --help")
    with pytest.raises(CommandError):
        parse("tail")


# -- what Tab offers -----------------------------------------------------------------------

KNOWN = Knowledge(
    channels=[
        ChannelFacts("telemetry", ("plant/+/+/env",), read=True, write=False),
        ChannelFacts("commands", ("plant/+/+/cmd",), read=True, write=True),
        ChannelFacts("secret", ("secret/#",), read=False, write=True),
    ],
    topics={"telemetry": {"plant/lyon/pump1/env", "plant/lyon/fan2/env", "plant/porto/press1/env"}},
    fields={"telemetry": ["temperature", "seq", "status"], "commands": ["setpoint", "reset"]},
    numeric={"telemetry": {"temperature", "seq"}},
    subscriptions={"lyon": "telemetry"},
    levels={"telemetry": ["site", "device"]},
)


def offered(before: str) -> tuple[str, list[str]] | None:
    found = complete(before, KNOWN)
    return None if found is None else (found.fragment, found.texts)


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ("%iot ", ("", [*SUBCOMMANDS, "--help"])),
        ("%iot su", ("su", ["subscribe"])),
        # Channels you may read to read, channels you may write to publish.
        ("%iot subscribe ", ("", ["telemetry", "commands"])),
        ("%iot publish ", ("", ["commands", "secret"])),
        ("%iot tail t", ("t", ["telemetry"])),
        ("%iot live ", ("", ["lyon", "telemetry", "commands"])),
        ("%iot subscribe telemetry ", ("", ["--topic", "--window", "--history", "--name"])),
        ("%iot tail telemetry --", ("--", ["--topic", "--history", "--help"])),
        # Topic levels, one at a time: seen names first, then the filter's wildcard.
        ("%iot subscribe telemetry --topic ", ("", ["plant/"])),
        (
            "%iot subscribe telemetry --topic plant/",
            ("plant/", ["plant/lyon/", "plant/porto/", "plant/+/"]),
        ),
        (
            "%iot subscribe telemetry -t 'plant/lyon/",
            ("'plant/lyon/", ["'plant/lyon/fan2/", "'plant/lyon/pump1/", "'plant/lyon/+/"]),
        ),
        (
            "%iot subscribe telemetry --topic plant/+/",
            ("plant/+/", ["plant/+/fan2/", "plant/+/press1/", "plant/+/pump1/", "plant/+/+/"]),
        ),
        (
            "%iot subscribe telemetry --topic plant/lyon/pump1/",
            ("plant/lyon/pump1/", ["plant/lyon/pump1/env"]),
        ),
        ("%iot publish commands --topic plant/", ("plant/", ["plant/+/"])),
        ("%iot live lyon --topic plant/p", ("plant/p", ["plant/porto/"])),
        # Fields: numbers for -y, keys of the payload for publish.
        ("%iot live telemetry -y ", ("", ["temperature", "seq"])),
        ("%iot live lyon -y t", ("t", ["temperature"])),
        ("%iot live telemetry --by ", ("", ["site", "device", "temperature", "seq", "status"])),
        ("%iot live lyon -y temperature --", ("--", ["--topic", "--by", "--help"])),
        ('%iot publish commands --topic plant/a/b/cmd {"s', ('"s', ['"setpoint"'])),
        (
            '%iot publish commands -t plant/a/b/cmd {"setpoint": 2, ',
            ("", ['"setpoint"', '"reset"']),
        ),
        ('%iot publish commands -t plant/a/b/cmd {"setpoint": "r', None),  # a value, not a key
        ('%%iot publish commands --topic plant/a/b/cmd\n{"setpoint": 2,\n "r', ('"r', ['"reset"'])),
        ("%%iot publish comm", ("comm", ["commands"])),
        (
            "%iot subscribe telemetry --window ",
            ("", ["1min", "5min", "15min", "30min", "1h", "6h", "24h"]),
        ),
        # Not ours: other lines and other magics.
        ("x = 1\nprint(", None),
        ("%timeit ", None),
        ("%%iot tail telemetry\n", None),
    ],
)
def test_completion_offers(before: str, expected: tuple[str, list[str]] | None) -> None:
    assert offered(before) == expected


def test_completion_of_a_magic_on_a_later_line_or_assigned() -> None:
    assert offered("import time\nframe = %iot tail tel") == ("tel", ["telemetry"])


def test_tab_in_ipython_uses_the_extensions_matcher(shell: InteractiveShell) -> None:
    """The matcher is wired into IPython's completer (API v2): it replaces just the word,
    and nothing else (jedi, file names) is mixed in."""
    text = "%iot subscribe telemetry --wi"
    with provisionalcompleter():
        completions = list(shell.Completer.completions(text, len(text)))
    assert [(c.start, c.end, c.text) for c in completions] == [(25, 29, "--window")]
    text = "%iot "
    with provisionalcompleter():
        completions = list(shell.Completer.completions(text, len(text)))
    assert [c.text for c in completions] == [*SUBCOMMANDS, "--help"]
    # Outside %iot the usual completions are back.
    text = "impo"
    with provisionalcompleter():
        assert "import" in [c.text for c in shell.Completer.completions(text, len(text))]


def test_variables_expand_in_the_words_but_never_in_a_payload(shell: InteractiveShell) -> None:
    """IPython's ``$name`` / ``{expr}``: in the channel and topic, as in any magic; a JSON
    payload's braces are left alone (and do not stop the topic's expansion)."""
    from jupyter_iotcable.ipython.magics import _LOADED

    expand = _LOADED[id(shell)]._expand
    shell.user_ns.update(device="pump1", site="lyon", setpoint=25)
    command = parse(
        'publish commands --topic plant/$site/{device}/cmd {"setpoint": 25, "why": "$x {y}"}',
        expand=expand,
    )
    assert command.options.topic == "plant/lyon/pump1/cmd"
    assert command.payload == '{"setpoint": 25, "why": "$x {y}"}'
    command = parse('tail telemetry --topic "plant/$site/+/env" -n {setpoint}', expand=expand)
    assert (command.options.topic, command.options.rows) == ("plant/lyon/+/env", 25)
    # As in a shell (and in IPython), single quotes keep a $ as it is.
    command = parse("tail telemetry --topic 'plant/$site/+/env'", expand=expand)
    assert command.options.topic == "plant/$site/+/env"
    # What does not expand stays as typed, as IPython leaves it ($SYS topics, unknown names).
    command = parse("subscribe telemetry --topic '$SYS/broker/#'", expand=expand)
    assert command.options.topic == "$SYS/broker/#"
