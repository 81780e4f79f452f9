"""The only code that talks MQTT: the bridge to a broker, the embedded broker, the simulator.

Everything here is built on aiomqtt (and amqtt for the embedded broker); the rest of the
package reaches MQTT only through these names. The engine depends on the interface
(``Bridge``, ``BridgeSink``, ``BridgeFactory``), which ``MqttBridge``, ``EmbeddedBridge``
(an ``MqttBridge`` to the embedded broker) and ``MemoryBridge`` (tests) implement.
"""

from __future__ import annotations

from .embedded import EmbeddedBroker, EmbeddedBrokerError
from .embedded_bridge import EmbeddedBridge
from .interface import Bridge, BridgeError, BridgeFactory, BridgeSink, BrokerState
from .memory import MemoryBridge
from .mqtt import MqttBridge, MqttMessage
from .settings import (
    BrokerConfigError,
    BrokerSettings,
    default_client_id,
    parse_broker_url,
    redact,
)
from .simulator import SimulatorConfig, run_simulator

__all__ = [
    "Bridge",
    "BridgeError",
    "BridgeFactory",
    "BridgeSink",
    "BrokerConfigError",
    "BrokerSettings",
    "BrokerState",
    "EmbeddedBridge",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "MemoryBridge",
    "MqttBridge",
    "MqttMessage",
    "SimulatorConfig",
    "default_client_id",
    "parse_broker_url",
    "redact",
    "run_simulator",
]
