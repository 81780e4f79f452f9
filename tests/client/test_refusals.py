"""What a refused publish or subscription says: the server's reason, and the user's channels.

A channel the user may not use is not an unknown channel: the server says why it refused
(for a hub user, which scope would grant it), and the client adds the channels the user
may read or write. Only a name the server does not know gets "did you mean".
"""

from __future__ import annotations

import pytest

from jupyter_iotcable.client.errors import PublishRefused, SubscriptionRejected
from jupyter_iotcable.client.session import PublishResult

TOPIC = "plant/lyon/pump1/cmd"
REFUSED = "you may not read or publish to channel 'commands'"


@pytest.mark.parametrize(
    ("channels", "ending"),
    [
        (["telemetry"], ". The channels you may read or write are 'telemetry'."),
        ([], ". There are no channels you may read or write."),
        (["commands", "telemetry"], ""),  # may read it, may not write: the reason says it
        (None, ""),  # the channels could not be listed
    ],
)
def test_a_refused_publish_says_the_servers_reason_not_unknown_channel(
    channels: list[str] | None, ending: str
) -> None:
    error = PublishRefused("commands", PublishResult(False, TOPIC, REFUSED), channels)
    assert str(error) == (
        f"publish to {TOPIC!r} on channel 'commands' was refused: {REFUSED}{ending}"
    )


def test_a_publish_to_a_channel_the_server_does_not_know_says_did_you_mean() -> None:
    result = PublishResult(False, TOPIC, "unknown channel 'comands'; see GET iotcable/api/channels")
    error = PublishRefused("comands", result, ["commands", "telemetry"])
    assert str(error) == (
        "unknown channel 'comands': did you mean 'commands'? The channels you may read or "
        "write are 'commands' and 'telemetry'."
    )


def test_a_refused_subscription_names_the_users_channels_without_did_you_mean() -> None:
    error = SubscriptionRejected("commands", None, REFUSED, ["command-log", "telemetry"])
    assert str(error) == (
        f"subscription to channel 'commands' was rejected: {REFUSED}. The channels you may "
        "read or write are 'command-log' and 'telemetry'."
    )
