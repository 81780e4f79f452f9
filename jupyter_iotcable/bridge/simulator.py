"""``iotcable simulate``: a small plant of devices that publish readings and obey commands.

Each device publishes, with QoS 1, a JSON reading on ``plant/{site}/{device}/env`` ``rate``
times per second::

    {"seq": 17, "ts": 1718000000.125, "temperature": 21.43, "humidity": 45.2,
     "pressure": 1013.1, "vibration": 2.61, "setpoint": 21.5, "status": "ok"}

The values behave like a plant's: the temperature follows the setpoint with a first-order
lag plus a slowly drifting heat load and sensor noise; humidity and pressure wander around
their usual values; vibration has occasional spikes. Now and then a device goes silent for
a few seconds (a dropout) or develops a fault (``status`` ``"fault"``, vibration jumps,
the temperature runs 2 degrees high). A fault lasts until the device is reset or, like a
real machine's transient trip, clears by itself after a few minutes, so a long-running
plant does not end up with every device faulted. ``seq`` counts the readings a device
sent, so a gap downstream is a reading lost on the way, never a dropout.

Devices obey JSON commands on ``plant/{site}/{device}/cmd``: ``{"setpoint": 25.0}`` (the
next reading carries the new setpoint and the temperature starts moving towards it) and
``{"reset": true}`` (clears a fault). Anything else is logged and ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .mqtt import BridgeError, BrokerState, MqttBridge
from .settings import PROTOCOLS, BrokerConfigError, BrokerSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .mqtt import MqttMessage

__all__ = [
    "CommandError",
    "Device",
    "SimulatorConfig",
    "main",
    "make_devices",
    "run_simulator",
]

logger = logging.getLogger("jupyter_iotcable.bridge.simulator")

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
KINDS = ("pump", "fan", "compressor", "press")
VIBRATION = {"pump": 2.5, "fan": 1.2, "compressor": 3.5, "press": 4.0}
"""Typical vibration velocity of each kind of machine, mm/s RMS."""
SETPOINT_RANGE = (-20.0, 120.0)
THERMAL_LAG = 20.0
"""Time constant of the temperature's first-order response to the setpoint, seconds."""
SPIKE_INTERVAL = 30.0
"""Mean seconds between two vibration spikes of a healthy device."""
DROPOUT_INTERVAL = 900.0
FAULT_INTERVAL = 1800.0
FAULT_DURATION = 180.0
"""Defaults: with these, about one device in eleven is faulted at any time."""


class CommandError(ValueError):
    """A command a device does not understand; the message says what was expected."""


def _chance(dt: float, mean_interval: float) -> float:
    """Probability that an event with this mean interval happens within ``dt`` seconds."""
    if mean_interval <= 0:
        return 0.0
    return 1.0 - math.exp(-dt / mean_interval)


@dataclass
class Device:
    """One simulated machine; pure (time comes in as arguments), so tests can step it."""

    site: str
    name: str
    kind: str
    rng: random.Random
    setpoint: float = 21.5
    dropout_interval: float = DROPOUT_INTERVAL
    fault_interval: float = FAULT_INTERVAL
    fault_duration: float = FAULT_DURATION
    """Mean seconds a fault lasts before it clears by itself; 0: until a reset command."""
    seq: int = 0
    fault: bool = False
    fault_until: float = math.inf
    silent_until: float = 0.0
    temperature: float = field(init=False)
    load: float = field(default=0.0, init=False)
    humidity: float = field(init=False)
    pressure: float = field(init=False)

    def __post_init__(self) -> None:
        self.temperature = self.setpoint + self.rng.gauss(0, 0.5)
        self.humidity = 45.0 + self.rng.gauss(0, 3)
        self.pressure = 1013.25 + self.rng.gauss(0, 2)

    @property
    def topic(self) -> str:
        return f"plant/{self.site}/{self.name}/env"

    @property
    def command_topic(self) -> str:
        return f"plant/{self.site}/{self.name}/cmd"

    def step(self, dt: float, now: float) -> dict[str, object] | None:
        """Advance the physics by ``dt`` seconds; the reading taken at ``now``, or None if
        the device is silent (a dropout)."""
        rng = self.rng
        # The heat load drifts slowly (a random walk pulled back towards zero) and offsets
        # the temperature the controller reaches.
        self.load += -self.load * dt / 300 + rng.gauss(0, 0.05 * math.sqrt(dt))
        target = self.setpoint + self.load + (2.0 if self.fault else 0.0)
        self.temperature += (target - self.temperature) * (1 - math.exp(-dt / THERMAL_LAG))
        self.humidity += (45.0 - self.humidity) * dt / 600 + rng.gauss(0, 0.2 * math.sqrt(dt))
        self.humidity = min(95.0, max(5.0, self.humidity))
        self.pressure += (1013.25 - self.pressure) * dt / 900 + rng.gauss(0, 0.05 * math.sqrt(dt))

        if now < self.silent_until:
            return None
        if rng.random() < _chance(dt, self.dropout_interval):
            self.silent_until = now + rng.uniform(2.0, 6.0)
            return None
        if self.fault and now >= self.fault_until:
            self.fault = False
        elif not self.fault and rng.random() < _chance(dt, self.fault_interval):
            self.fault = True
            self.fault_until = (
                now + rng.uniform(0.5, 1.5) * self.fault_duration
                if self.fault_duration > 0
                else math.inf
            )

        vibration = VIBRATION[self.kind] * (1 + rng.gauss(0, 0.05))
        if rng.random() < _chance(dt, SPIKE_INTERVAL):
            vibration *= rng.uniform(2.0, 4.0)
        if self.fault:
            vibration *= rng.uniform(3.0, 5.0)
        self.seq += 1
        return {
            "seq": self.seq,
            "ts": round(now, 3),
            "temperature": round(self.temperature + rng.gauss(0, 0.05), 2),
            "humidity": round(self.humidity, 1),
            "pressure": round(self.pressure, 1),
            "vibration": round(max(0.0, vibration), 2),
            "setpoint": self.setpoint,
            "status": "fault" if self.fault else "ok",
        }

    def command(self, payload: bytes) -> str:
        """Apply a command; returns what changed, raises ``CommandError`` if it is invalid."""
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"not JSON ({exc})") from None
        if not isinstance(data, dict) or not data:
            raise CommandError(
                'expected a JSON object such as {"setpoint": 25.0} or {"reset": true}'
            )
        unknown = sorted(set(data) - {"setpoint", "reset"})
        if unknown:
            raise CommandError(
                f"unknown field(s) {', '.join(map(repr, unknown))}; known: 'setpoint', 'reset'"
            )
        setpoint = data.get("setpoint")
        if "setpoint" in data:
            low, high = SETPOINT_RANGE
            if (
                isinstance(setpoint, bool)
                or not isinstance(setpoint, int | float)
                or not low <= setpoint <= high
            ):
                raise CommandError(
                    f"setpoint must be a number of degrees C between {low:g} and {high:g}, "
                    f"not {setpoint!r}"
                )
        if "reset" in data and data["reset"] is not True:
            raise CommandError(f'"reset" must be true, not {data["reset"]!r}')
        changes = []
        if setpoint is not None:
            self.setpoint = float(setpoint)
            changes.append(f"setpoint {self.setpoint:g} C")
        if data.get("reset"):
            changes.append("fault cleared" if self.fault else "reset (no fault)")
            self.fault = False
        return ", ".join(changes)


@dataclass
class SimulatorConfig:
    """What to simulate and where to publish. Invalid values raise ``ValueError``."""

    broker_url: str = DEFAULT_BROKER
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    devices: int = 4
    rate: float = 1.0
    sites: tuple[str, ...] = ("lyon", "porto")
    seed: int | None = None
    dropout_interval: float = DROPOUT_INTERVAL
    """Mean seconds between two dropouts of one device; 0 turns dropouts off."""
    fault_interval: float = FAULT_INTERVAL
    """Mean seconds before a healthy device develops a fault; 0 turns faults off."""
    fault_duration: float = FAULT_DURATION
    """Mean seconds a fault lasts before it clears by itself; 0: until a reset command."""
    protocol: str = "auto"
    """MQTT version: ``auto`` (5, else 3.1.1), ``5`` or ``3.1.1``. A 3.1.1-only broker that
    ignores an MQTT 5 CONNECT (amqtt, the embedded one) costs ``auto`` a timeout first."""

    def __post_init__(self) -> None:
        self.settings()  # validates the URL and credentials
        if isinstance(self.devices, bool) or not 1 <= self.devices <= 10_000:
            raise ValueError(f"devices must be between 1 and 10000, not {self.devices!r}")
        if not (math.isfinite(self.rate) and 0 < self.rate <= 1000):
            raise ValueError(
                f"rate must be more than 0 and at most 1000 readings per second, not {self.rate!r}"
            )
        if not self.sites:
            raise ValueError("at least one site is needed")
        for site in self.sites:
            if (
                not site
                or any(c in site for c in "/+#\0")
                or site.startswith("$")
                or site != site.strip()
            ):
                raise ValueError(
                    f"site {site!r} cannot be a topic level: use letters, digits, '-' or '_' "
                    "(no '/', '+', '#', leading '$' or surrounding spaces)"
                )
        if len(set(self.sites)) != len(self.sites):
            raise ValueError(f"sites must be unique, got {', '.join(self.sites)}")
        for name in ("dropout_interval", "fault_interval", "fault_duration"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")

    def settings(self) -> BrokerSettings:
        """Broker settings for the simulator's own connection.

        A client id of its own (several simulators may run at once) and no persistent
        session: a simulator that is gone for good must not leave a session on the broker.
        """
        return BrokerSettings(
            self.broker_url,
            username=self.username,
            password=self.password,
            client_id=f"iotcable-sim-{secrets.token_hex(4)}",
            session_expiry=0,
            protocol=self.protocol,
        )


def make_devices(config: SimulatorConfig) -> list[Device]:
    """``config.devices`` devices spread over the sites: lyon/pump1, porto/pump1, lyon/fan2...

    With a seed, each device gets its own generator seeded from it and its name, so a
    device behaves the same whatever the number of devices.
    """
    devices = []
    for index in range(config.devices):
        site = config.sites[index % len(config.sites)]
        number = index // len(config.sites) + 1
        kind = KINDS[(number - 1) % len(KINDS)]
        name = f"{kind}{number}"
        rng = (
            random.Random(f"{config.seed}/{site}/{name}")
            if config.seed is not None
            else random.Random()
        )
        devices.append(
            Device(
                site=site,
                name=name,
                kind=kind,
                rng=rng,
                setpoint=round(20.0 + rng.uniform(-2, 4), 1),
                dropout_interval=config.dropout_interval,
                fault_interval=config.fault_interval,
                fault_duration=config.fault_duration,
            )
        )
    return devices


async def run_simulator(
    config: SimulatorConfig,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run the devices until ``stop`` is set (forever without one).

    ``on_ready`` is called once the simulator is connected and listens for commands; the
    devices start then. If the broker goes away later, readings are dropped (their ``seq``
    numbers are spent) until the connection is back; the simulator reconnects by itself.
    """
    stop = stop or asyncio.Event()
    devices = make_devices(config)
    by_topic = {device.command_topic: device for device in devices}
    ready = False

    def on_command(message: MqttMessage) -> None:
        device = by_topic.get(message.topic)
        if device is None:
            logger.warning("ignored a command on %s: no such device", message.topic)
            return
        try:
            change = device.command(message.payload)
        except CommandError as exc:
            logger.warning("ignored a command on %s: %s", message.topic, exc)
            return
        logger.info("%s/%s: %s", device.site, device.name, change)

    def on_state(state: BrokerState, _reason: str) -> None:
        nonlocal ready
        if state is BrokerState.CONNECTED and not ready:
            ready = True
            if on_ready is not None:
                on_ready()

    bridge = MqttBridge(
        config.settings(),
        [f"plant/{site}/+/cmd" for site in config.sites],
        on_command,
        on_state,
    )
    logger.info(
        "simulating %d device(s) at %g reading(s)/s on %s: %s",
        len(devices),
        config.rate,
        bridge.settings.address,
        ", ".join(f"{d.site}/{d.name}" for d in devices),
    )
    await bridge.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        # The plant starts once the broker is there: readings taken before would only be
        # lost, and their sequence numbers with them (the first reading of each device is
        # seq 1). A broker that is down for good keeps the simulator waiting, not failing.
        while not stop.is_set() and not await bridge.wait_connected(1.0):
            pass
        period = 1 / config.rate
        tasks = [asyncio.create_task(_run_device(d, bridge, period, stop)) for d in devices]
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bridge.stop()


async def _run_device(
    device: Device, bridge: MqttBridge, period: float, stop: asyncio.Event
) -> None:
    loop = asyncio.get_running_loop()
    last = loop.time()
    next_at = last + device.rng.uniform(0, period)  # spread the devices over the period
    failing = False
    while not stop.is_set():
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        now = loop.time()
        # Never try to catch up after a stall: a burst of stale readings helps nobody.
        next_at = max(next_at + period, now)
        reading = device.step(now - last, time.time())
        last = now
        if reading is None:
            continue
        try:
            await bridge.publish(device.topic, json.dumps(reading).encode(), qos=1)
        except BridgeError as exc:
            if not failing:
                logger.warning("%s/%s: readings are being lost: %s", device.site, device.name, exc)
            failing = True
        else:
            failing = False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotcable simulate",
        description=(
            "Simulate a plant: devices publish JSON readings on plant/{site}/{device}/env "
            'and obey {"setpoint": C} or {"reset": true} on plant/{site}/{device}/cmd.'
        ),
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("IOTCABLE_BROKER_URL", DEFAULT_BROKER),
        metavar="URL",
        help="mqtt://host:port or mqtts://host:port (default: $IOTCABLE_BROKER_URL or %(default)s)",
    )
    parser.add_argument("--username", metavar="U", help="broker username")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="auto",
        help="MQTT version; auto tries 5, then 3.1.1 (default: %(default)s)",
    )
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="name of the environment variable that holds the broker password",
    )
    parser.add_argument("--devices", type=int, default=4, metavar="N", help="default: %(default)s")
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        metavar="HZ",
        help="readings per second per device (default: %(default)s)",
    )
    parser.add_argument(
        "--sites",
        default="lyon,porto",
        metavar="A,B",
        help="comma-separated site names (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, metavar="N", help="make the values reproducible")
    parser.add_argument(
        "--dropout-interval",
        type=float,
        default=DROPOUT_INTERVAL,
        metavar="S",
        help="mean seconds between two dropouts of a device; 0: none (default: %(default)g)",
    )
    parser.add_argument(
        "--fault-interval",
        type=float,
        default=FAULT_INTERVAL,
        metavar="S",
        help="mean seconds before a healthy device faults; 0: never (default: %(default)g)",
    )
    parser.add_argument(
        "--fault-duration",
        type=float,
        default=FAULT_DURATION,
        metavar="S",
        help='mean seconds a fault lasts unless reset with {"reset": true}; '
        "0: until reset (default: %(default)g)",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> SimulatorConfig:
    """The configuration the command line asks for; exits with status 2 and a message if
    it cannot work."""
    parser = _parser()
    args = parser.parse_args(argv)
    password = None
    if args.password_env is not None:
        password = os.environ.get(args.password_env)
        if password is None:
            parser.error(f"--password-env: the environment variable {args.password_env} is not set")
    try:
        return SimulatorConfig(
            broker_url=args.broker,
            username=args.username,
            password=password,
            devices=args.devices,
            rate=args.rate,
            sites=tuple(site.strip() for site in args.sites.split(",")),
            seed=args.seed,
            dropout_interval=args.dropout_interval,
            fault_interval=args.fault_interval,
            fault_duration=args.fault_duration,
            protocol=args.protocol,
        )
    except (BrokerConfigError, ValueError) as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """``iotcable simulate``: run until Ctrl-C or SIGTERM, then exit 0."""
    try:
        config = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_until_signalled(config))
    return 0


async def _run_until_signalled(config: SimulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run_simulator(config, stop=stop)
    logger.info("simulator stopped")


if __name__ == "__main__":
    sys.exit(main())
