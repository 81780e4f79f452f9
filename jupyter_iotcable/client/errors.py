"""The client's exceptions: one base class, and one subclass per thing a user can fix.

Every message says what went wrong and what to do about it, because the person reading
it is usually in a notebook, far from the server's logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .session import PublishResult


class IoTCableError(Exception):
    """Base class of every error the iotcable client raises."""


class ServerNotFound(IoTCableError):
    """``connect()`` without a URL found no server (the message lists where it looked)."""

    def __init__(self, tried: list[str]) -> None:
        self.tried = tried
        super().__init__(
            self.explained(
                "Pass the server's URL and token yourself:\n"
                '    cable = jupyter_iotcable.connect("http://127.0.0.1:8888/", token="...")\n'
                "or set IOTCABLE_URL and IOTCABLE_TOKEN in the environment."
            )
        )

    def explained(self, advice: str) -> str:
        """The places tried, then ``advice`` (the CLI's names its own options)."""
        lines = ["could not find a Jupyter server to connect to. Tried, in this order:"]
        lines += [f"  - {entry}" for entry in self.tried]
        return "\n".join([*lines, advice])


class ConnectionFailed(IoTCableError):
    """The server could not be reached, or it has no iotcable endpoint at that URL."""


class AuthenticationFailed(ConnectionFailed):
    """The server refused the token (HTTP 401/403, or a ``disconnect unauthorized``).

    ``problem`` says what happened; the message adds how to pass a token in Python, and
    ``explained(advice)`` lets the CLI say it with its own options instead.
    """

    def __init__(self, problem: str, advice: str = 'connect(url, token="...")') -> None:
        self.problem = problem
        super().__init__(self.explained(advice))

    def explained(self, advice: str) -> str:
        return f"{self.problem}: {advice}"


class CableClosed(IoTCableError):
    """The cable is closed (by ``close()``, or for good by the server), so it cannot do that."""


class IoTCableTimeout(IoTCableError, TimeoutError):
    """The server did not answer within the timeout."""


class SubscriptionRejected(IoTCableError):
    """The server rejected a subscription; ``reason`` is the server's explanation.

    ``channels`` are the names of the channels the user may read or write, when the
    client could list them: an unknown channel's message then says "did you mean" and
    names them.
    """

    def __init__(
        self,
        channel: str,
        topic: str | None,
        reason: str,
        channels: Sequence[str] | None = None,
    ) -> None:
        self.channel = channel
        self.topic = topic
        self.reason = reason
        self.channels = None if channels is None else list(channels)
        super().__init__(self.explained("cable.channels()"))

    @property
    def unknown_channel(self) -> bool:
        """The server does not know the channel (a typo, most often)."""
        return self.reason.startswith("unknown channel")

    def explained(self, lister: str) -> str:
        """The message, pointing at ``lister`` (``iotcable channels`` in a shell) unless the
        channels the user may use are known: then they are named (after a "did you mean"
        when the server does not know the channel)."""
        from .names import listing, unknown_name_message

        label = "channels you may read or write"
        if self.unknown_channel and self.channels is not None:
            return unknown_name_message("channel", self.channel, self.channels, label)
        where = f"channel {self.channel!r}" + (f" with topic {self.topic!r}" if self.topic else "")
        text = f"subscription to {where} was rejected: {self.reason}"
        if self.channels is not None and self.channel not in self.channels:
            # The channel exists but is not this user's: name theirs, no "did you mean".
            if not self.channels:
                return f"{text}. There are no {label}."
            return f"{text}. The {label} are {listing(self.channels)}."
        return f"{text}. {lister} lists the channels you may read or write and their topics."


class PublishRefused(IoTCableError):
    """The server refused a publish; ``result`` holds the topic and the server's reason."""

    def __init__(
        self, channel: str, result: PublishResult, channels: Sequence[str] | None = None
    ) -> None:
        self.channel = channel
        self.result = result
        self.channels = None if channels is None else list(channels)
        reason = result.reason or ""
        label = "channels you may read or write"
        if self.channels is not None and reason.startswith("unknown channel"):
            from .names import unknown_name_message

            message = unknown_name_message("channel", channel, self.channels, label)
        else:
            message = f"publish to {result.topic!r} on channel {channel!r} was refused: {reason}"
            if self.channels is not None and channel not in self.channels:
                # The channel exists (the server said why it refused, not that it does
                # not know it): name the ones this user may use, no "did you mean".
                from .names import listing

                message += (
                    f". The {label} are {listing(self.channels)}."
                    if self.channels
                    else f". There are no {label}."
                )
        super().__init__(message)


class InvalidPayload(IoTCableError, ValueError):
    """A publish payload cannot be sent as JSON (NaN, infinity, an unknown type, ...)."""


class BlockingCallInCallback(IoTCableError, RuntimeError):
    """A method that waits for the server was called on the cable's own thread (a callback)."""
