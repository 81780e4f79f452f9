"""Property: whatever topic a user sends, what reaches the broker is a topic no broker can
take as a malformed packet (issue 12). Any text goes through the server's publish path
(the engine over a MemoryBridge): it is refused with a reason, or what the bridge was
handed is a well-formed MQTT topic name inside the channel's write filters."""

from __future__ import annotations

import asyncio
import unicodedata

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jupyter_iotcable.server.publish import Refusal
from jupyter_iotcable.topics import matches
from tests.core.sessions import bridge, engine

MAX_TOPIC_BYTES = 65_535


def well_formed(topic: str) -> bool:
    """What MQTT (and mosquitto) require of a topic name to publish to."""
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return (
        0 < size <= MAX_TOPIC_BYTES
        and "+" not in topic
        and "#" not in topic
        and not any(
            unicodedata.category(c) == "Cc"
            or 0xFDD0 <= ord(c) <= 0xFDEF
            or (ord(c) & 0xFFFE) == 0xFFFE
            for c in topic
        )
    )


LEVEL = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="/+#"), min_size=1, max_size=6),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=6),
    st.sampled_from(["", "+", "#", "\t", "\n", "\x00", "\x85", "\ufdd0", "\uffff", "\ud800"]),
)
TOPICS = st.one_of(
    st.lists(LEVEL, min_size=1, max_size=6).map("/".join),
    st.tuples(LEVEL, LEVEL).map(lambda p: f"plant/{p[0]}/{p[1]}/cmd"),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=TOPICS)
def test_any_topic_is_refused_or_reaches_the_broker_well_formed(topic: str) -> None:
    eng = engine()
    commands = eng.channels["commands"]
    refused: Refusal | None = None
    try:
        sent = asyncio.run(eng.publish(commands, topic, {"on": True}))
    except Refusal as refusal:
        refused = refusal
    if refused is not None:
        event("refused")
        assert refused.reason
        assert bridge(eng).published == []
        return
    event("sent to the broker")
    [(published, _payload, qos, _retain)] = bridge(eng).published
    assert published == sent == topic
    assert qos == 1
    assert well_formed(published), repr(published)
    assert any(matches(f, published) for f in commands.write_topics)
