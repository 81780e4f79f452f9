"""MQTT topic names and topic filters (MQTT 3.1.1 section 4.7, MQTT 5.0 section 4.7 and 4.8.2).

Pure functions and two small data structures, standard library only:

- ``validate_topic`` / ``validate_filter`` check user input at the edges (config, subscribe,
  publish) and raise ``TopicError`` with a message that says what is wrong and what is allowed;
- ``matches`` and ``contains`` answer "does this filter deliver this topic?" and "does this
  filter deliver everything that one does?" with the spec's semantics, including the two rules
  people forget: ``sport/#`` also matches ``sport``, and a filter starting with a wildcard never
  matches a topic starting with ``$``;
- ``TopicIndex`` finds every value whose filter matches a topic by walking a trie of levels, so
  the cost per message grows with the topic's depth, not with the number of subscriptions;
- ``TopicTemplate`` names topic levels (``plant/{site}/{device}/env``) so that a reading's topic
  can become DataFrame columns.

``matches``, ``contains`` and ``TopicIndex.match`` expect input that was validated once at the
edge; they do not re-validate on the hot path. ``$share/{group}/{filter}`` (MQTT 5 shared
subscriptions) is accepted wherever a filter is, and matches like its inner ``{filter}``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = [
    "MAX_TOPIC_BYTES",
    "TopicError",
    "TopicIndex",
    "TopicTemplate",
    "contains",
    "is_wildcard",
    "matches",
    "split_shared",
    "validate_filter",
    "validate_topic",
]

MAX_TOPIC_BYTES = 65_535
"""MQTT encodes a topic as a UTF-8 string with a 16-bit length prefix."""

_SHARE_PREFIX = "$share/"
_WILDCARDS = ("+", "#")
_SHOW_CHARS = 60


# What MQTT (3.1.1 section 1.5.3, 5.0 section 1.5.4) says a UTF-8 string should not hold and
# brokers treat as a malformed packet (mosquitto closes the connection that sends one, which
# for the server's bridge means every channel goes quiet): the control characters
# U+0000-U+001F and U+007F-U+009F and the Unicode non-characters (U+FDD0-U+FDEF and the last
# two code points of each plane). Refused in every topic and filter a user or admin gives.
_REFUSED_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef"
    + "".join(chr(plane + 0xFFFE) + chr(plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000))
    + "]"
)


class TopicError(ValueError):
    """A topic name, topic filter or topic template that MQTT (or this package) does not allow."""


def _show(text: str) -> str:
    """The text quoted for an error message, shortened so that one message stays one line."""
    if len(text) > _SHOW_CHARS:
        text = text[: _SHOW_CHARS - 3] + "..."
    return repr(text)


def _check_string(value: object, what: str) -> str:
    """The rules shared by topic names and filters: a non-empty, encodable string without
    control characters or non-characters, at most 65,535 bytes in UTF-8."""
    if not isinstance(value, str):
        raise TopicError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise TopicError(f"{what} is empty; MQTT needs at least one character")
    refused = _REFUSED_CHARACTERS.search(value)
    if refused is not None:
        raise TopicError(_refused_character(value, what, refused))
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise TopicError(
            f"{what} {_show(value)} is not valid UTF-8 (lone surrogate {value[exc.start]!r} at "
            f"character {exc.start}); MQTT topics must be valid UTF-8"
        ) from None
    if size > MAX_TOPIC_BYTES:
        raise TopicError(
            f"{what} {_show(value)} is {size:,} bytes in UTF-8; MQTT allows at most "
            f"{MAX_TOPIC_BYTES:,}"
        )
    return value


def _refused_character(value: str, what: str, found: re.Match[str]) -> str:
    code = ord(found.group())
    if code == 0:
        return f"{what} {_show(value)} contains the null character U+0000, which MQTT forbids"
    kind = "the control character" if code <= 0x9F else "the Unicode non-character"
    return (
        f"{what} {_show(value)} contains {kind} U+{code:04X} at character {found.start()}; "
        "MQTT brokers refuse control characters (U+0000-U+001F, U+007F-U+009F) and Unicode "
        "non-characters in topics and drop the connection that sends one"
    )


def validate_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid topic *name* (what a PUBLISH carries), else raise.

    A topic name is non-empty, has no wildcard (``+`` or ``#``), no control character
    (U+0000-U+001F, U+007F-U+009F) and no Unicode non-character, and is at most 65,535 bytes
    once encoded as UTF-8. Empty levels (``a//b``, ``/``) are valid.
    """
    _check_string(topic, "topic")
    for wildcard in _WILDCARDS:
        if wildcard in topic:
            raise TopicError(
                f"topic {_show(topic)} contains the wildcard {wildcard!r}; a topic name for "
                "publishing cannot contain '+' or '#', which only subscription filters may use"
            )
    return topic


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split an MQTT 5 shared subscription: ``('group', 'inner/filter')``, or ``(None, filter)``.

    Only the ``$share/`` prefix is checked here (a group and a filter must follow it); raise
    ``TopicError`` when they are missing. Use ``validate_filter`` for the full rules.
    """
    if not topic_filter.startswith(_SHARE_PREFIX):
        return None, topic_filter
    group, slash, inner = topic_filter[len(_SHARE_PREFIX) :].partition("/")
    if not group:
        raise TopicError(
            f"shared subscription {_show(topic_filter)} has an empty group name; "
            "expected '$share/{group}/{filter}'"
        )
    if not slash or not inner:
        raise TopicError(
            f"shared subscription {_show(topic_filter)} has no topic filter after the group; "
            "expected '$share/{group}/{filter}'"
        )
    return group, inner


def validate_filter(topic_filter: str) -> str:
    """Return ``topic_filter`` if it is a valid subscription filter, else raise ``TopicError``.

    ``+`` and ``#`` must each fill a whole level, and ``#`` must be the last level. A shared
    subscription ``$share/{group}/{filter}`` needs a group without wildcards and a valid filter.
    """
    _check_string(topic_filter, "topic filter")
    group, inner = split_shared(topic_filter)
    if group is not None:
        for wildcard in _WILDCARDS:
            if wildcard in group:
                raise TopicError(
                    f"shared subscription {_show(topic_filter)} has the wildcard {wildcard!r} in "
                    f"its group name {group!r}; a group name cannot contain '+' or '#'"
                )
    if "+" not in inner and "#" not in inner:
        return topic_filter
    levels = inner.split("/")
    last = len(levels) - 1
    for position, level in enumerate(levels):
        if level in _WILDCARDS:
            if level == "#" and position != last:
                raise TopicError(
                    f"topic filter {_show(topic_filter)} has '#' before its last level; "
                    "'#' is only allowed as the last level, as in 'a/b/#'"
                )
            continue
        for wildcard in _WILDCARDS:
            if wildcard in level:
                raise TopicError(
                    f"topic filter {_show(topic_filter)} has {wildcard!r} inside the level "
                    f"{_show(level)}; a wildcard must fill a whole level, as in 'a/{wildcard}'"
                )
    return topic_filter


def is_wildcard(topic_filter: str) -> bool:
    """True if the (valid) filter has a ``+`` or ``#`` level, i.e. can match several topics."""
    inner = split_shared(topic_filter)[1]
    return any(level in _WILDCARDS for level in inner.split("/"))


def matches(topic_filter: str, topic: str) -> bool:
    """True if a subscription to ``topic_filter`` delivers messages published to ``topic``.

    Both arguments are expected to be valid (see the module docstring).
    """
    filter_levels = split_shared(topic_filter)[1].split("/")
    if topic.startswith("$") and filter_levels[0] in _WILDCARDS:
        return False
    topic_levels = topic.split("/")
    depth = len(topic_levels)
    for position, level in enumerate(filter_levels):
        if level == "#":
            # '#' also matches its parent level: 'sport/#' matches 'sport'.
            return True
        if position >= depth or (level != "+" and level != topic_levels[position]):
            return False
    return len(filter_levels) == depth


def contains(outer: str, inner: str) -> bool:
    """True iff every topic that filter ``inner`` matches is also matched by filter ``outer``.

    This is how a subscriber's narrower ``topic`` is checked against a channel's filters, so
    both are validated here (``TopicError`` if either is invalid) rather than trusted.
    """
    outer_levels = split_shared(validate_filter(outer))[1].split("/")
    inner_levels = _without_empty_parent(split_shared(validate_filter(inner))[1].split("/"))
    # A filter whose first level is literal '$...' matches only '$' topics, which a filter
    # starting with a wildcard never matches.
    if inner_levels[0].startswith("$") and outer_levels[0] in _WILDCARDS:
        return False
    inner_depth = len(inner_levels)
    for position, level in enumerate(outer_levels):
        if level == "#":
            # Everything below outer's prefix is covered; inner must not be shorter than that
            # prefix (inner '#' there could end the topic earlier), which the loop has checked.
            return True
        if position >= inner_depth:
            return False
        inner_level = inner_levels[position]
        if inner_level == "#":
            # inner reaches topics of any depth (and its parent); outer has no '#' this far.
            return False
        if level != "+" and level != inner_level:
            # A literal outer level covers only the same literal, never '+'.
            return False
    # outer has no '#': it matches exactly its own depth, so inner must too and end without '#'.
    return inner_depth == len(outer_levels)


def _without_empty_parent(levels: list[str]) -> list[str]:
    """The same filter, spelled so that its final '#' never stands for the parent level.

    '#' also matches its parent ('a/#' matches 'a'), except when the parent would be the
    empty topic, which is invalid: '#' alone and '/#' (parent '') need at least one more
    level. They match exactly what '+/#' and '/+/#' match, the spelling the walk in
    ``contains`` compares level by level (so that '+/+/#' is seen to contain '/#').
    """
    if levels[-1] == "#" and levels[:-1] in ([], [""]):
        return [*levels[:-1], "+", "#"]
    return levels


T = TypeVar("T", bound=Hashable)


class _Node(Generic[T]):
    """One level of the trie: children by level text ('+' and '#' included) and the values of
    the filters that end here, with a count of how many distinct filters added each value (a
    plain filter and its ``$share/...`` forms end at the same node)."""

    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.values: dict[T, int] = {}


class TopicIndex(Generic[T]):
    """Values keyed by topic filter, found by topic without scanning every filter.

    The filters are stored as a trie over their levels with '+' and '#' as ordinary branches;
    ``match`` follows, at each topic level, the literal branch, the '+' branch and the '#'
    branch, so its cost depends on the topic's depth and the number of matching branches,
    not on how many filters are stored.

    A (filter, value) pair is stored once: adding it again changes nothing. ``remove`` of a
    pair that is not stored raises ``KeyError`` (like ``set.remove``), because removing what
    was never added is a bookkeeping bug in the caller, not something to hide.
    """

    __slots__ = ("_pairs", "_root")

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._pairs: set[tuple[str, T]] = set()

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"<TopicIndex of {len(self._pairs)} filter-value pairs>"

    def add(self, topic_filter: str, value: T) -> None:
        """Store ``value`` under ``topic_filter`` (validated: ``TopicError`` if invalid)."""
        validate_filter(topic_filter)
        pair = (topic_filter, value)
        if pair in self._pairs:
            return
        node = self._root
        for level in split_shared(topic_filter)[1].split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        node.values[value] = node.values.get(value, 0) + 1
        self._pairs.add(pair)

    def remove(self, topic_filter: str, value: T) -> None:
        """Remove the pair; ``KeyError`` if it is not stored. Empty branches are pruned."""
        pair = (topic_filter, value)
        if pair not in self._pairs:
            raise KeyError(pair)
        self._pairs.remove(pair)
        path: list[tuple[_Node[T], str]] = []
        node = self._root
        for level in split_shared(topic_filter)[1].split("/"):
            path.append((node, level))
            node = node.children[level]
        count = node.values[value] - 1
        if count:
            node.values[value] = count
            return
        del node.values[value]
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.values or child.children:
                break
            del parent.children[level]

    def match(self, topic: str) -> set[T]:
        """The values of every stored filter that matches the (valid) topic name."""
        found: set[T] = set()
        levels = topic.split("/")
        depth = len(levels)
        # The '$' rule only concerns wildcards at the first level (depth 0).
        wildcards_at_root = not topic.startswith("$")
        pending: list[tuple[_Node[T], int]] = [(self._root, 0)]
        while pending:
            node, position = pending.pop()
            children = node.children
            if position == depth:
                found.update(node.values)
                below = children.get("#")
                if below is not None:
                    # 'a/#' also matches 'a'.
                    found.update(below.values)
                continue
            if position or wildcards_at_root:
                below = children.get("#")
                if below is not None:
                    found.update(below.values)
                below = children.get("+")
                if below is not None:
                    pending.append((below, position + 1))
            below = children.get(levels[position])
            if below is not None:
                pending.append((below, position + 1))
        return found


class TopicTemplate:
    """A filter whose levels may be named: ``plant/{site}/{device}/env``.

    Each ``{name}`` is a whole level that matches like ``+`` and is extracted under its name
    (the DataFrame column). Unnamed ``+`` and a final ``#`` are allowed too. Names are Python
    identifiers and unique. Shared-subscription prefixes are refused: a template describes the
    topics themselves, the share group belongs in the channel's ``topics``.
    """

    __slots__ = (
        "_depth",
        "_literals",
        "_named",
        "_open_ended",
        "_wildcard_first",
        "names",
        "pattern",
    )

    def __init__(self, pattern: str) -> None:
        _check_string(pattern, "topic template")
        if pattern.startswith(_SHARE_PREFIX):
            raise TopicError(
                f"topic template {_show(pattern)} starts with '$share/'; a template describes "
                "topic levels, put the shared subscription in the channel's topics instead"
            )
        levels = pattern.split("/")
        filter_levels: list[str] = []
        named: list[tuple[int, str]] = []
        literals: list[tuple[int, str]] = []
        for position, level in enumerate(levels):
            if level.startswith("{") and level.endswith("}") and len(level) >= 2:
                name = level[1:-1]
                if not name.isidentifier():
                    raise TopicError(
                        f"topic template {_show(pattern)} has the placeholder {_show(level)}; "
                        "a placeholder name must be an identifier, as in '{site}'"
                    )
                if any(name == seen for _, seen in named):
                    raise TopicError(
                        f"topic template {_show(pattern)} names {{{name}}} twice; "
                        "each placeholder name must be unique"
                    )
                named.append((position, name))
                filter_levels.append("+")
            elif "{" in level or "}" in level:
                raise TopicError(
                    f"topic template {_show(pattern)} has a brace in the level {_show(level)}; "
                    "a placeholder must fill a whole level, as in 'plant/{site}/env'"
                )
            else:
                if level not in _WILDCARDS:
                    literals.append((position, level))
                filter_levels.append(level)
        as_filter = "/".join(filter_levels)
        try:
            validate_filter(as_filter)
        except TopicError as exc:
            raise TopicError(
                f"topic template {_show(pattern)} is not a valid filter: {exc}"
            ) from None
        self.pattern: str = pattern
        self.names: tuple[str, ...] = tuple(name for _, name in named)
        self._named = tuple(named)
        self._literals = tuple(literals)
        self._open_ended = filter_levels[-1] == "#"
        # With a final '#', topics need at least the levels before it ('a/#' matches 'a').
        self._depth = len(levels) - 1 if self._open_ended else len(levels)
        self._wildcard_first = filter_levels[0] in _WILDCARDS

    def __repr__(self) -> str:
        return f"TopicTemplate({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopicTemplate):
            return NotImplemented
        return self.pattern == other.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def as_filter(self) -> str:
        """The MQTT filter this template matches: each ``{name}`` becomes ``+``."""
        levels = self.pattern.split("/")
        for position, _ in self._named:
            levels[position] = "+"
        return "/".join(levels)

    def extract(self, topic: str) -> dict[str, str] | None:
        """The named levels of ``topic`` (``{'site': 'lyon', ...}``), or None if it does not fit.

        A topic fits exactly when ``matches(self.as_filter(), topic)`` is true.
        """
        levels = topic.split("/")
        depth = len(levels)
        if depth < self._depth or (depth > self._depth and not self._open_ended):
            return None
        if self._wildcard_first and topic.startswith("$"):
            return None
        for position, literal in self._literals:
            if levels[position] != literal:
                return None
        return {name: levels[position] for position, name in self._named}
