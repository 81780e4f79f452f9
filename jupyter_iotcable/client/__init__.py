"""The Python client: ``connect()`` to a Jupyter server's iotcable channels.

``connect`` gives a ``Cable``; ``cable.subscribe`` gives a ``Subscription`` whose
``frame`` is a live, bounded pandas DataFrame. See DESIGN.md section 7.
"""

from __future__ import annotations

from .cable import Cable, ChannelInfo, PublishResult, connect, connect_async
from .errors import (
    AuthenticationFailed,
    BlockingCallInCallback,
    CableClosed,
    ConnectionFailed,
    InvalidPayload,
    IoTCableError,
    IoTCableTimeout,
    PublishRefused,
    ServerNotFound,
    SubscriptionRejected,
)
from .subscription import Reading, Subscription

__all__ = [
    "AuthenticationFailed",
    "BlockingCallInCallback",
    "Cable",
    "CableClosed",
    "ChannelInfo",
    "ConnectionFailed",
    "InvalidPayload",
    "IoTCableError",
    "IoTCableTimeout",
    "PublishRefused",
    "PublishResult",
    "Reading",
    "ServerNotFound",
    "Subscription",
    "SubscriptionRejected",
    "connect",
    "connect_async",
]
