"""The Python client: ``connect()`` to a Jupyter server's iotcable channels.

``connect`` gives a ``Cable``; ``cable.subscribe`` gives a ``Subscription`` whose
``frame`` is a live, bounded pandas DataFrame. See DESIGN.md section 7.
"""

from __future__ import annotations

from .cable import Cable, connect, connect_async
from .channels import ChannelInfo, Channels
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
from .gaps import Gap, GapCause
from .inbox import Reading
from .names import UnknownName
from .session import BrokerReport, PublishResult
from .subscription import Subscription

__all__ = [
    "AuthenticationFailed",
    "BlockingCallInCallback",
    "BrokerReport",
    "Cable",
    "CableClosed",
    "ChannelInfo",
    "Channels",
    "ConnectionFailed",
    "Gap",
    "GapCause",
    "InvalidPayload",
    "IoTCableError",
    "IoTCableTimeout",
    "PublishRefused",
    "PublishResult",
    "Reading",
    "ServerNotFound",
    "Subscription",
    "SubscriptionRejected",
    "UnknownName",
    "connect",
    "connect_async",
]
