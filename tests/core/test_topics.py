"""MQTT topic names, filters, matching, containment, the topic index and topic templates."""

from __future__ import annotations

import contextlib
import itertools
import re
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jupyter_iotcable.topics import (
    MAX_TOPIC_BYTES,
    TopicError,
    TopicIndex,
    TopicTemplate,
    contains,
    is_wildcard,
    matches,
    split_shared,
    validate_filter,
    validate_topic,
)

# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    ["a", "sport/tennis/player1", "/", "a//b", "/finance", "$SYS/broker", "é/ü/漢字", "a b/c"],
)
def test_valid_topic_names_are_returned_unchanged(topic: str) -> None:
    assert validate_topic(topic) == topic


def test_topic_length_limit_counts_utf8_bytes_not_characters() -> None:
    assert validate_topic("a" * MAX_TOPIC_BYTES) == "a" * MAX_TOPIC_BYTES
    # 'é' is two bytes: 32,768 characters are 65,536 bytes, one too many.
    with pytest.raises(TopicError) as info:
        validate_topic("é" * 32_768)
    assert str(info.value).endswith("is 65,536 bytes in UTF-8; MQTT allows at most 65,535")
    assert validate_topic("é" * 32_767 + "a") == "é" * 32_767 + "a"


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "topic is empty; MQTT needs at least one character"),
        (
            "a/+",
            "topic 'a/+' contains the wildcard '+'; a topic name for publishing cannot contain "
            "'+' or '#', which only subscription filters may use",
        ),
        (
            "a/#",
            "topic 'a/#' contains the wildcard '#'; a topic name for publishing cannot contain "
            "'+' or '#', which only subscription filters may use",
        ),
        (
            "a+b",
            "topic 'a+b' contains the wildcard '+'; a topic name for publishing cannot contain "
            "'+' or '#', which only subscription filters may use",
        ),
        (
            "a/\x00",
            "topic 'a/\\x00' contains the null character U+0000, which MQTT forbids",
        ),
        (
            "a/\ud800",
            "topic 'a/\\ud800' is not valid UTF-8 (lone surrogate '\\ud800' at character 2); "
            "MQTT topics must be valid UTF-8",
        ),
        (
            "x" * 65_536,
            "topic '" + "x" * 57 + "...' is 65,536 bytes in UTF-8; MQTT allows at most 65,535",
        ),
        (42, "topic must be a string, not int"),
    ],
)
def test_invalid_topic_names_say_what_is_wrong(topic: str, message: str) -> None:
    with pytest.raises(TopicError) as info:
        validate_topic(topic)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "topic_filter",
    [
        "#",
        "+",
        "sport/#",
        "sport/tennis/+",
        "+/tennis/#",
        "+/+",
        "/+",
        "/",
        "a//b",
        "$SYS/#",
        "$share",
        "$share/g/a/+",
        "$share/g/#",
        "$share/g/$SYS/#",
        "$share/g/a//b",
    ],
)
def test_valid_filters_are_returned_unchanged(topic_filter: str) -> None:
    assert validate_filter(topic_filter) == topic_filter


@pytest.mark.parametrize(
    ("topic_filter", "message"),
    [
        ("", "topic filter is empty; MQTT needs at least one character"),
        (
            "a/#/b",
            "topic filter 'a/#/b' has '#' before its last level; '#' is only allowed as the "
            "last level, as in 'a/b/#'",
        ),
        (
            "#/",
            "topic filter '#/' has '#' before its last level; '#' is only allowed as the last "
            "level, as in 'a/b/#'",
        ),
        (
            "a+",
            "topic filter 'a+' has '+' inside the level 'a+'; a wildcard must fill a whole "
            "level, as in 'a/+'",
        ),
        (
            "+a",
            "topic filter '+a' has '+' inside the level '+a'; a wildcard must fill a whole "
            "level, as in 'a/+'",
        ),
        (
            "a/b#",
            "topic filter 'a/b#' has '#' inside the level 'b#'; a wildcard must fill a whole "
            "level, as in 'a/#'",
        ),
        (
            "a/\x00/b",
            "topic filter 'a/\\x00/b' contains the null character U+0000, which MQTT forbids",
        ),
        (
            "$share//a",
            "shared subscription '$share//a' has an empty group name; expected "
            "'$share/{group}/{filter}'",
        ),
        (
            "$share/g",
            "shared subscription '$share/g' has no topic filter after the group; expected "
            "'$share/{group}/{filter}'",
        ),
        (
            "$share/g/",
            "shared subscription '$share/g/' has no topic filter after the group; expected "
            "'$share/{group}/{filter}'",
        ),
        (
            "$share/g+/a",
            "shared subscription '$share/g+/a' has the wildcard '+' in its group name 'g+'; "
            "a group name cannot contain '+' or '#'",
        ),
        (
            "$share/#/a",
            "shared subscription '$share/#/a' has the wildcard '#' in its group name '#'; "
            "a group name cannot contain '+' or '#'",
        ),
        (
            "$share/g/a/#/b",
            "topic filter '$share/g/a/#/b' has '#' before its last level; '#' is only allowed "
            "as the last level, as in 'a/b/#'",
        ),
        (None, "topic filter must be a string, not NoneType"),
    ],
)
def test_invalid_filters_say_what_is_wrong(topic_filter: str, message: str) -> None:
    with pytest.raises(TopicError) as info:
        validate_filter(topic_filter)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("a/b", (None, "a/b")),
        ("$share/g/a/+", ("g", "a/+")),
        ("$share/g/#", ("g", "#")),
        ("$share/g/a/b/c", ("g", "a/b/c")),
        ("$share", (None, "$share")),
        ("$SHARE/g/a", (None, "$SHARE/g/a")),
    ],
)
def test_split_shared(topic_filter: str, expected: tuple[str | None, str]) -> None:
    assert split_shared(topic_filter) == expected


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("a/b", False),
        ("/", False),
        ("+", True),
        ("a/#", True),
        ("$share/g/a/b", False),
        ("$share/g/a/+", True),
    ],
)
def test_is_wildcard(topic_filter: str, expected: bool) -> None:
    assert is_wildcard(topic_filter) is expected


# -- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        # The examples of MQTT 5.0 section 4.7.1.
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+/+", "/", True),
        ("#", "/", True),
        ("#", "a", True),
        # '$' topics (section 4.7.2): no wildcard at the first level reaches them.
        ("#", "$SYS/x", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("+/monitor", "$SYS/monitor", False),
        ("$SYS/#", "$SYS/x", True),
        ("$SYS/#", "$SYS", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("a/+", "a/$x", True),
        # Exact levels, case and empty levels.
        ("a/b", "a/b", True),
        ("a/b", "a/b/", False),
        ("a/b", "a", False),
        ("ACCOUNTS", "Accounts", False),
        ("a//b", "a//b", True),
        ("a/+/b", "a//b", True),
        # Shared subscriptions match like their inner filter.
        ("$share/g/a/+", "a/b", True),
        ("$share/g/a/+", "$share/g/a/b", False),
        ("$share/g/#", "$SYS/x", False),
        ("$share/g/$SYS/#", "$SYS/x", True),
    ],
)
def test_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("plant/+/+/env", "plant/lyon/+/env", True),
        ("plant/+/+/env", "plant/lyon/pump3/env", True),
        ("plant/lyon/+/env", "plant/+/+/env", False),
        ("plant/+/+/env", "plant/+/+", False),
        ("plant/+/+/env", "plant/+/+/env/x", False),
        ("a/+", "a/#", False),
        ("a/#", "a/+", True),
        ("a/#", "a", True),
        ("a/#", "a/#", True),
        ("a/#", "a/b/#", True),
        ("a/b/#", "a/#", False),
        ("a/+/#", "a/#", False),
        ("a/b", "a/b", True),
        ("a/b", "a/+", False),
        ("#", "a/b", True),
        ("#", "#", True),
        ("#", "+/#", True),
        # '+/#' matches every non-'$' topic, exactly like '#'.
        ("+/#", "#", True),
        ("+/+/#", "#", False),
        ("#", "$SYS/x", False),
        ("#", "$SYS/#", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("$SYS/#", "#", False),
        ("$share/g/a/#", "a/b", True),
        ("a/#", "$share/g/a/b", True),
        ("/#", "/a", True),
        ("+/#", "/a", True),
        # '/#' cannot match its parent '' (the empty topic is invalid): it matches '/' and
        # deeper, so a filter that needs a second level still holds all of it.
        ("+/+/#", "/#", True),
        ("/+/#", "/#", True),
        ("/+/#", "/", True),
        ("+/+/+/#", "/#", False),
        ("/+", "/#", False),
    ],
)
def test_contains(outer: str, inner: str, expected: bool) -> None:
    assert contains(outer, inner) is expected


def test_contains_validates_both_filters() -> None:
    with pytest.raises(TopicError, match=re.escape("topic filter 'a/#/b' has '#' before")):
        contains("a/#", "a/#/b")
    with pytest.raises(TopicError, match=re.escape("topic filter 'a+' has '+' inside")):
        contains("a+", "a")


# -- properties over a small alphabet --------------------------------------------------------

# Few distinct levels, so that random filters and topics collide often; '' and '$SYS' cover
# the empty-level and '$' rules.
LEVELS = ["a", "b", "", "$SYS"]


def _join_filter(levels: list[str], multi: bool) -> str:
    return "/".join([*levels, "#"] if multi else levels)


filters = (
    st.builds(_join_filter, st.lists(st.sampled_from([*LEVELS, "+"]), max_size=3), st.booleans())
    .filter(bool)
    .map(validate_filter)
)
topics = st.lists(st.sampled_from([*LEVELS, "z"]), min_size=1, max_size=4).map("/".join)

# Every topic name of up to 4 levels over LEVELS and one level ('z') no filter names. Filters
# have at most 3 levels before a '#', so any difference between two of them shows in here.
UNIVERSE = [
    topic
    for depth in range(1, 5)
    for topic in ("/".join(levels) for levels in itertools.product([*LEVELS, "z"], repeat=depth))
    if topic
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(filters, st.integers(0, 5)), max_size=12), st.lists(topics, max_size=8))
def test_index_match_equals_brute_force(pairs: list[tuple[str, int]], probes: list[str]) -> None:
    index: TopicIndex[int] = TopicIndex()
    for topic_filter, value in pairs:
        index.add(topic_filter, value)
    assert len(index) == len(set(pairs))
    for topic in probes:
        assert index.match(topic) == {v for f, v in pairs if matches(f, topic)}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(filters, st.integers(0, 5)), min_size=1, max_size=12, unique=True),
    st.data(),
)
def test_index_remove_keeps_matching_exact_and_prunes(
    pairs: list[tuple[str, int]], data: st.DataObject
) -> None:
    index: TopicIndex[int] = TopicIndex()
    for topic_filter, value in pairs:
        index.add(topic_filter, value)
    order = data.draw(st.permutations(pairs))
    remaining = set(pairs)
    for topic_filter, value in order:
        index.remove(topic_filter, value)
        remaining.discard((topic_filter, value))
        assert len(index) == len(remaining)
        topic = data.draw(topics)
        assert index.match(topic) == {v for f, v in remaining if matches(f, topic)}
    # Removing the last value prunes every branch (an implementation detail the module
    # promises, so that churn in subscriptions does not leak trie nodes).
    assert index._root.children == {}


@settings(max_examples=300, deadline=None)
@given(filters, filters)
@example("+/+/#", "/#")
@example("/+/#", "/#")
@example("+/#", "#")
@example("$SYS/+/#", "$SYS/#")
def test_contains_is_exact_over_the_universe(outer: str, inner: str) -> None:
    covered = all(matches(outer, t) for t in UNIVERSE if matches(inner, t))
    assert contains(outer, inner) is covered


@settings(max_examples=300, deadline=None)
@given(filters, filters, st.lists(topics, min_size=1, max_size=10))
def test_contains_is_sound_for_random_topics(outer: str, inner: str, probes: list[str]) -> None:
    if contains(outer, inner):
        for topic in probes:
            assert not matches(inner, topic) or matches(outer, topic)


# -- an independent reference -----------------------------------------------------------------


def reference_matches(topic_filter: str, topic: str) -> bool:
    """The spec read literally, written separately from ``matches``: level by level,
    recursively. '+' takes one level, '#' takes the rest (none included), and a filter
    whose first level is a wildcard never matches a topic starting with '$'."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False

    def walk(f: list[str], t: list[str]) -> bool:
        if not f:
            return not t
        if f[0] == "#":
            return True
        return bool(t) and f[0] in ("+", t[0]) and walk(f[1:], t[1:])

    return walk(topic_filter.split("/"), topic.split("/"))


# Every filter of up to 3 levels (then optionally '#') over LEVELS and '+', with a few
# shared forms; every valid topic of up to 4 levels over LEVELS and 'z' (UNIVERSE).
ALL_FILTERS = sorted(
    {
        _join_filter(list(levels), multi)
        for depth in range(4)
        for levels in itertools.product([*LEVELS, "+"], repeat=depth)
        for multi in (False, True)
    }
    - {""}
)
ALL_FILTERS += ["$share/g/" + f for f in ("#", "+/#", "/#", "a/+", "$SYS/#")]


def test_the_reference_universe_is_what_the_test_assumes() -> None:
    assert len(ALL_FILTERS) == 315
    assert all(validate_filter(f) == f for f in ALL_FILTERS)
    assert "" not in UNIVERSE and all(validate_topic(t) == t for t in UNIVERSE)
    # The reference itself, on the spec's examples.
    assert reference_matches("sport/#", "sport")
    assert not reference_matches("+/monitor", "$SYS/monitor")
    assert reference_matches("/#", "/") and not reference_matches("/#", "a")


def test_matches_equals_the_reference_everywhere() -> None:
    wrong = [
        (f, t) for f in ALL_FILTERS for t in UNIVERSE if matches(f, t) != reference_matches(f, t)
    ]
    assert wrong == []


def test_contains_equals_the_reference_for_every_pair() -> None:
    matched = {f: frozenset(t for t in UNIVERSE if reference_matches(f, t)) for f in ALL_FILTERS}
    wrong = [
        (outer, inner)
        for outer in ALL_FILTERS
        for inner in ALL_FILTERS
        if contains(outer, inner) != (matched[inner] <= matched[outer])
    ]
    assert wrong == []


def test_the_index_equals_the_reference_for_every_topic() -> None:
    index: TopicIndex[str] = TopicIndex()
    for topic_filter in ALL_FILTERS:
        index.add(topic_filter, topic_filter)
    wrong = [
        topic
        for topic in UNIVERSE
        if index.match(topic) != {f for f in ALL_FILTERS if reference_matches(f, topic)}
    ]
    assert wrong == []


arbitrary_text = st.one_of(
    st.text(),
    st.text(
        st.one_of(
            st.sampled_from("/+#${}\x00ab"),
            st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        )
    ),
    st.text(st.sampled_from("/+#ab")).map(lambda rest: "$share/" + rest),
)


@settings(max_examples=500, deadline=None)
@given(arbitrary_text)
def test_validation_raises_only_topic_error(text: str) -> None:
    for check in (validate_topic, validate_filter, TopicTemplate):
        with contextlib.suppress(TopicError):
            check(text)


# Control characters and Unicode non-characters: mosquitto takes a packet holding one as
# malformed and closes the connection that sent it, which for the bridge means every
# channel. The edges of each range are here, so that a range narrowed by one fails.
REFUSED_CHARACTERS = [
    "\x01", "\t", "\n", "\r", "\x1f", "\x7f", "\x80", "\x85", "\x9f",
    "\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U0001ffff", "\U0010fffe",
    "\U0010ffff",
]  # fmt: skip
ACCEPTED_NEIGHBOURS = [" ", "~", "\xa0", "\ufdcf", "\ufdf0", "\ufffd", "\U00010000", "\U0010fffd"]


@pytest.mark.parametrize("char", REFUSED_CHARACTERS)
def test_control_characters_and_non_characters_are_refused(char: str) -> None:
    code = f"U+{ord(char):04X}"
    kind = "control character" if ord(char) <= 0x9F else "Unicode non-character"
    for check, what in ((validate_topic, "topic"), (validate_filter, "topic filter")):
        with pytest.raises(TopicError) as info:
            check(f"plant/a{char}/cmd")
        message = str(info.value)
        assert message.startswith(
            f"{what} {'plant/a' + char + '/cmd'!r} contains the {kind} {code}"
        )
        assert "at character 7;" in message
        assert "drop the connection" in message
    with pytest.raises(TopicError):
        TopicTemplate(f"plant/{{site}}/{char}")


@pytest.mark.parametrize("char", ACCEPTED_NEIGHBOURS)
def test_the_neighbours_of_refused_characters_are_accepted(char: str) -> None:
    assert validate_topic(f"plant/a{char}/cmd") == f"plant/a{char}/cmd"
    assert validate_filter(f"plant/+/a{char}") == f"plant/+/a{char}"


def broker_accepts(text: str) -> bool:
    """What mosquitto 2 accepts in a PUBLISH topic (lib/utf8_mosq.c, written independently:
    valid UTF-8, no U+0000, no control character, no non-character, at most 65,535 bytes)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    for char in text:
        code = ord(char)
        if unicodedata.category(char) == "Cc":  # exactly U+0000-U+001F and U+007F-U+009F
            return False
        if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
            return False
    return 0 < len(data) <= 65_535


hostile_text = st.text(
    st.one_of(
        st.characters(),
        st.sampled_from("/+#$ab"),
        st.characters(max_codepoint=0xA0),
        st.sampled_from(REFUSED_CHARACTERS + ACCEPTED_NEIGHBOURS),
    ),
    max_size=12,
)


@settings(max_examples=1000, deadline=None)
@given(hostile_text)
@example("a\tb")
@example("\ufdd0")
def test_whatever_validate_topic_accepts_the_broker_accepts(text: str) -> None:
    try:
        validate_topic(text)
    except TopicError:
        assert not broker_accepts(text) or "+" in text or "#" in text
    else:
        assert broker_accepts(text)
    with contextlib.suppress(TopicError):
        assert broker_accepts(validate_filter(text))


# -- the index -------------------------------------------------------------------------------


def test_index_add_is_idempotent_and_remove_of_absent_pair_raises() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a/+", "x")
    index.add("a/+", "x")
    assert len(index) == 1
    index.remove("a/+", "x")
    assert len(index) == 0
    with pytest.raises(KeyError):
        index.remove("a/+", "x")
    with pytest.raises(KeyError):
        index.remove("never/added", "x")


def test_index_keeps_shared_and_plain_forms_of_one_filter_apart() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a/b", "x")
    index.add("$share/g/a/b", "x")
    assert len(index) == 2
    index.remove("a/b", "x")
    assert index.match("a/b") == {"x"}
    index.remove("$share/g/a/b", "x")
    assert index.match("a/b") == set()


def test_index_add_validates_the_filter() -> None:
    index: TopicIndex[str] = TopicIndex()
    with pytest.raises(TopicError, match=re.escape("has '#' before its last level")):
        index.add("a/#/b", "x")
    assert len(index) == 0


def test_index_applies_the_dollar_rule() -> None:
    index: TopicIndex[str] = TopicIndex()
    for topic_filter in ("#", "+/x", "$SYS/#", "$SYS/+"):
        index.add(topic_filter, topic_filter)
    assert index.match("$SYS/x") == {"$SYS/#", "$SYS/+"}
    assert index.match("$SYS") == {"$SYS/#"}
    assert index.match("a/x") == {"#", "+/x"}


# -- templates -------------------------------------------------------------------------------


def test_template_names_filter_and_extraction() -> None:
    template = TopicTemplate("plant/{site}/{device}/env")
    assert template.pattern == "plant/{site}/{device}/env"
    assert template.names == ("site", "device")
    assert template.as_filter() == "plant/+/+/env"
    assert template.extract("plant/lyon/pump3/env") == {"site": "lyon", "device": "pump3"}
    assert template.extract("plant/lyon//env") == {"site": "lyon", "device": ""}
    assert template.extract("plant/lyon/pump3/cmd") is None
    assert template.extract("plant/lyon/pump3") is None
    assert template.extract("plant/lyon/pump3/env/x") is None
    assert template.extract("factory/lyon/pump3/env") is None


def test_template_with_unnamed_wildcards() -> None:
    template = TopicTemplate("{kind}/+/{device}/#")
    assert template.names == ("kind", "device")
    assert template.as_filter() == "+/+/+/#"
    assert template.extract("plant/lyon/pump3") == {"kind": "plant", "device": "pump3"}
    assert template.extract("plant/lyon/pump3/env/t") == {"kind": "plant", "device": "pump3"}
    assert template.extract("plant/lyon") is None
    # A named first level is a wildcard there, so '$' topics do not fit.
    assert template.extract("$SYS/lyon/pump3") is None


def test_template_without_placeholders_is_a_plain_filter() -> None:
    template = TopicTemplate("$SYS/broker/#")
    assert template.names == ()
    assert template.as_filter() == "$SYS/broker/#"
    assert template.extract("$SYS/broker/clients") == {}
    assert template.extract("$SYS/other") is None


def test_templates_compare_by_pattern() -> None:
    assert TopicTemplate("a/{x}") == TopicTemplate("a/{x}")
    assert TopicTemplate("a/{x}") != TopicTemplate("a/{y}")
    assert len({TopicTemplate("a/{x}"), TopicTemplate("a/{x}")}) == 1
    assert repr(TopicTemplate("a/{x}")) == "TopicTemplate('a/{x}')"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "topic template is empty; MQTT needs at least one character"),
        (
            "plant/{1site}",
            "topic template 'plant/{1site}' has the placeholder '{1site}'; a placeholder name "
            "must be an identifier, as in '{site}'",
        ),
        (
            "plant/{}",
            "topic template 'plant/{}' has the placeholder '{}'; a placeholder name must be an "
            "identifier, as in '{site}'",
        ),
        (
            "plant/{site}/{site}",
            "topic template 'plant/{site}/{site}' names {site} twice; each placeholder name "
            "must be unique",
        ),
        (
            "plant/x{site}",
            "topic template 'plant/x{site}' has a brace in the level 'x{site}'; a placeholder "
            "must fill a whole level, as in 'plant/{site}/env'",
        ),
        (
            "plant/{site",
            "topic template 'plant/{site' has a brace in the level '{site'; a placeholder must "
            "fill a whole level, as in 'plant/{site}/env'",
        ),
        (
            "plant/#/{site}",
            "topic template 'plant/#/{site}' is not a valid filter: topic filter "
            "'plant/#/+' has '#' before its last level; '#' is only allowed as the last level, "
            "as in 'a/b/#'",
        ),
        (
            "plant/a+/{site}",
            "topic template 'plant/a+/{site}' is not a valid filter: topic filter "
            "'plant/a+/+' has '+' inside the level 'a+'; a wildcard must fill a whole level, "
            "as in 'a/+'",
        ),
        (
            "$share/g/{site}",
            "topic template '$share/g/{site}' starts with '$share/'; a template describes "
            "topic levels, put the shared subscription in the channel's topics instead",
        ),
    ],
)
def test_invalid_templates_say_what_is_wrong(pattern: str, message: str) -> None:
    with pytest.raises(TopicError) as info:
        TopicTemplate(pattern)
    assert str(info.value) == message


templates = st.lists(
    st.sampled_from(["a", "", "$SYS", "+", "{x}", "{y}", "{z}"]), min_size=1, max_size=3
).flatmap(lambda levels: st.booleans().map(lambda multi: _join_filter(levels, multi)))


def _template_or_none(pattern: str) -> TopicTemplate | None:
    try:
        return TopicTemplate(pattern)
    except TopicError:  # e.g. '{x}' twice
        return None


@settings(max_examples=300, deadline=None)
@given(templates.map(_template_or_none).filter(lambda t: t is not None), topics)
def test_template_extracts_exactly_what_its_filter_matches(
    template: TopicTemplate | None, topic: str
) -> None:
    assert template is not None
    extracted = template.extract(topic)
    assert (extracted is not None) is matches(template.as_filter(), topic)
    if extracted is not None:
        levels = topic.split("/")
        pattern_levels = template.pattern.split("/")
        for name, value in extracted.items():
            assert levels[pattern_levels.index("{" + name + "}")] == value
