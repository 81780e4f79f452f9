"""The only code that talks MQTT: the bridge to a broker, the embedded broker, the simulator.

Everything here is built on aiomqtt (and amqtt for the embedded broker); the rest of the
package reaches MQTT only through these names.
"""

from __future__ import annotations

from .embedded import EmbeddedBroker, EmbeddedBrokerError
from .mqtt import BridgeError, BrokerState, MqttBridge, MqttMessage
from .settings import (
    BrokerConfigError,
    BrokerSettings,
    default_client_id,
    parse_broker_url,
    redact,
)
from .simulator import SimulatorConfig, run_simulator

__all__ = [
    "BridgeError",
    "BrokerConfigError",
    "BrokerSettings",
    "BrokerState",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "MqttBridge",
    "MqttMessage",
    "SimulatorConfig",
    "default_client_id",
    "parse_broker_url",
    "redact",
    "run_simulator",
]
