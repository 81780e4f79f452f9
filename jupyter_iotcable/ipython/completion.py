"""Tab completion for ``%iot`` (pure): what to offer for the text before the cursor.

``complete(before, knowledge)`` looks at a cell's text up to the cursor and, when the
cursor is on an ``%iot`` line (or in the body of ``%%iot publish``), returns the fragment
to replace and the candidates: subcommands, options, channel names (readable ones to
read, writable ones to publish), topics level by level (from the channel's filters, which
the server knows, and the topics the subscriptions have seen), payload fields (from the
subscriptions' readings, the channel's units and what was published) and durations.
``Knowledge`` is gathered by the IPython glue (``magics.py``); nothing here does I/O, so
completion never waits for the server.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from .commands import SUBCOMMANDS, split_publish

__all__ = ["ChannelFacts", "Completions", "Knowledge", "complete", "wants_completion"]

_OPTIONS: dict[str, tuple[str, ...]] = {
    "channels": (),
    "status": (),
    "subscribe": ("--topic", "--window", "--history", "--name"),
    "live": ("--topic", "-y", "--by"),
    "tail": ("--topic", "-n", "--history"),
    "publish": ("--topic", "--text"),
    "connect": ("--token",),
}
_TOPIC = ("--topic", "-t")
_DURATION = ("--window", "-w", "--history", "-H")
_DURATIONS = ("1min", "5min", "15min", "30min", "1h", "6h", "24h")
_VALUED = frozenset({*_TOPIC, *_DURATION, "-y", "--by", "-n", "--name", "-N", "--token"})
"""Options followed by a value (the value is not a positional argument)."""
_MAGIC_LINE = re.compile(r"^\s*(?:[\w.]+\s*=\s*)?%iot(?:\s|$)")
_NOT_FIELDS = frozenset({"value", "error", "topic"})


@dataclass(frozen=True)
class ChannelFacts:
    name: str
    topics: tuple[str, ...]
    read: bool
    write: bool


@dataclass
class Knowledge:
    """What the completer may offer; ``magics.py`` fills it from the cable and the user's
    namespace each time the user presses Tab."""

    channels: Sequence[ChannelFacts] = ()
    topics: Mapping[str, Collection[str]] = field(default_factory=dict)
    """Per channel: topics its subscriptions have seen."""
    fields: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per channel: payload fields known (flattened as ``a.b``), numbers first."""
    numeric: Mapping[str, Collection[str]] = field(default_factory=dict)
    """Per channel: the fields known to hold numbers (what ``-y`` can chart)."""
    subscriptions: Mapping[str, str] = field(default_factory=dict)
    """Variables of the user's namespace holding a subscription -> its channel."""
    levels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per channel: the topic levels its template names (``site``, ``device``)."""


@dataclass(frozen=True)
class Completions:
    fragment: str
    """The end of the text before the cursor that a completion replaces."""
    texts: list[str]


def wants_completion(before: str) -> bool:
    """Whether the cursor is in an ``%iot`` command (cheap: checked on every Tab press,
    before anything is gathered)."""
    return before.startswith("%%iot") or bool(_MAGIC_LINE.match(before.rpartition("\n")[2]))


def complete(before: str, knowledge: Knowledge) -> Completions | None:
    """Completions for a cell whose text up to the cursor is ``before``; None when the
    cursor is not in an ``%iot`` command (other completers then have their turn)."""
    if before.startswith("%%iot"):
        magic_line, newline, body = before.partition("\n")
        if newline:
            return _cell_body(magic_line[len("%%iot") :], body, knowledge)
        return _line(magic_line[len("%%iot") :], knowledge)
    line = before.rpartition("\n")[2]
    found = _MAGIC_LINE.match(line)
    if found is None:
        return None
    return _line(line[line.index("%iot") + len("%iot") :], knowledge)


def _line(text: str, knowledge: Knowledge) -> Completions | None:
    words, fragment = _words(text)
    if not words:
        return _offer(fragment, [*SUBCOMMANDS, "--help"])
    command = words[0]
    if command not in SUBCOMMANDS:
        return None
    if command == "publish":
        head, payload = split_publish(text.lstrip()[len("publish") :])
        if payload and not (payload == fragment and fragment.startswith("-")):
            return _payload(payload, _positionals(head, 0)[:1], knowledge)
    if fragment.startswith("-"):
        return _offer(fragment, [*_OPTIONS[command], "--help"])
    previous = words[-1] if len(words) > 1 else ""
    positionals = _positionals(words, 1)
    channel = _channel_of(positionals[:1], knowledge)
    if previous in _TOPIC:
        if channel is None:
            return None
        return _topics(fragment, channel, knowledge)
    if previous == "-y":
        numbers = knowledge.numeric.get(channel, ()) if channel else ()
        fields = [f for f in knowledge.fields.get(channel, ()) if f in numbers] if channel else []
        return _offer(fragment, fields)
    if previous == "--by":
        if channel is None:
            return None
        return _offer(
            fragment, [*knowledge.levels.get(channel, ()), *knowledge.fields.get(channel, ())]
        )
    if previous in _DURATION:
        return _offer(fragment, list(_DURATIONS))
    if previous in _VALUED:
        return None
    if positionals:  # the channel is given; the rest are options
        return _offer(fragment, list(_OPTIONS[command])) if not fragment else None
    if command == "publish":
        return _offer(fragment, [c.name for c in knowledge.channels if c.write])
    if command in ("subscribe", "tail"):
        return _offer(fragment, [c.name for c in knowledge.channels if c.read])
    if command == "live":
        names = [c.name for c in knowledge.channels if c.read]
        return _offer(fragment, [*sorted(knowledge.subscriptions), *names])
    return None


def _cell_body(magic_line: str, body: str, knowledge: Knowledge) -> Completions | None:
    words, _ = _words(magic_line)
    if not words or words[0] != "publish":
        return None
    head, _ = split_publish(magic_line.lstrip()[len("publish") :])
    return _payload(body, _positionals(head, 0)[:1], knowledge)


def _words(text: str) -> tuple[list[str], str]:
    """The words before the cursor (quotes removed) and the one being typed (raw)."""
    raw = re.findall(r"""(?:[^\s"']+|"[^"]*"?|'[^']*'?)+""", text)
    fragment = "" if not raw or text[-1:].isspace() else raw.pop()
    return [word.replace('"', "").replace("'", "") for word in raw], fragment


def _positionals(words: Sequence[str], start: int) -> list[str]:
    """The positional arguments among ``words[start:]`` (options and their values skipped)."""
    found = []
    skip = False
    for word in words[start:]:
        if skip:
            skip = False
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            found.append(word)
    return found


def _channel_of(positionals: Sequence[str], knowledge: Knowledge) -> str | None:
    if not positionals:
        return None
    name = positionals[0]
    return knowledge.subscriptions.get(name, name)


def _offer(fragment: str, candidates: Sequence[str]) -> Completions:
    seen = dict.fromkeys(c for c in candidates if c.startswith(fragment))
    return Completions(fragment, list(seen))


def _topics(fragment: str, channel: str, knowledge: Knowledge) -> Completions:
    """Topic levels: ``plant/l`` -> ``plant/lyon/`` (a level at a time, ``/`` added while
    more levels follow), from the channel's filters and the topics seen on it."""
    quote = fragment[:1] if fragment[:1] in ("'", '"') else ""
    typed = fragment[len(quote) :].split("/")
    done, partial = typed[:-1], typed[-1]
    facts = next((c for c in knowledge.channels if c.name == channel), None)
    filters = facts.topics if facts is not None else ()
    candidates: dict[str, None] = {}
    # Seen topics first (concrete names), then the filters (with their wildcards).
    for topic in [*sorted(knowledge.topics.get(channel, ())), *filters]:
        levels = topic.split("/")
        if len(levels) <= len(done) or "#" in levels[: len(done)]:
            continue
        if not all(_level_fits(mine, theirs) for mine, theirs in zip(done, levels, strict=False)):
            continue
        following = levels[len(done)]
        if following.startswith(partial):
            more = "/" if len(levels) > len(done) + 1 else ""
            candidates["/".join([*done, following]) + more] = None
    # Names first, in order; the filters' wildcards after them.
    ordered = sorted(candidates, key=lambda c: (c.rstrip("/").rpartition("/")[2] in ("+", "#"), c))
    return Completions(fragment, [quote + c for c in ordered])


def _level_fits(mine: str, theirs: str) -> bool:
    return mine == theirs or theirs in ("+", "#") or mine == "+"


def _payload(text: str, channel: Sequence[str], knowledge: Knowledge) -> Completions | None:
    """A JSON key being typed in a publish payload: ``{"set`` -> ``{"setpoint"``."""
    name = channel[0] if channel else None
    fields = dict.fromkeys(
        f.split(".", 1)[0] for f in knowledge.fields.get(name or "", ()) if f not in _NOT_FIELDS
    )
    key = _key_being_typed(text)
    if key is None:
        return None
    if key.startswith('"'):  # inside the quotes
        return _offer(key, [f'"{f}"' for f in fields])
    return _offer("", [f'"{f}"' for f in fields])  # right after { or ,


def _key_being_typed(text: str) -> str | None:
    """In a JSON text cut at the cursor: the key typed so far (with its opening quote) when
    the cursor is in an object's key, ``""`` right where a key may start, else None."""
    stack: list[str] = []
    last = ""
    start: int | None = None
    key_position = False
    escaped = False
    for index, char in enumerate(text):
        if start is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                start = None
                last = '"'
            continue
        if char == '"':
            start = index
            key_position = bool(stack) and stack[-1] == "{" and last in ("{", ",")
        elif char in "{[":
            stack.append(char)
            last = char
        elif char in "}]":
            if stack:
                stack.pop()
            last = char
        elif not char.isspace():
            last = char
    if start is not None:
        return text[start:] if key_position else None
    if stack and stack[-1] == "{" and last in ("{", ",") and text[-1:] in ("{", ",", " "):
        return ""
    return None
