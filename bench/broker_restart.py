"""How soon the bridge is back once a crashed broker is back (issue 12).

mosquitto is killed (-9), stays down for ``--down`` seconds and is started again; the
figure is the time from the broker listening again to the bridge connected and
subscribed. Baseline in the same run: the same bridge with the plain exponential backoff
(the retry cap for a refusing port, ``RESTART_RETRY``, lifted to ``backoff_cap``), which is
what the bridge did before.

    .venv/bin/python bench/broker_restart.py [--down 1 3 6] [--repeat 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time

from jupyter_iotcable.bridge import mqtt as bridge_module
from jupyter_iotcable.bridge.mqtt import MqttBridge
from jupyter_iotcable.bridge.settings import BrokerSettings
from tests.brokers import Mosquitto


async def back_after(broker: Mosquitto, down: float) -> float:
    """Seconds from the broker listening again to the bridge connected."""
    bridge = MqttBridge(
        BrokerSettings(broker.url, client_id=f"bench-restart-{os.getpid()}"),
        ["bench/#"],
        lambda _message: None,
    )
    await bridge.start()
    try:
        assert await bridge.wait_connected(10), "the bridge did not connect"
        broker.kill()
        while await bridge.wait_connected(0.01):
            pass  # until the bridge noticed
        await asyncio.sleep(down)
        await asyncio.to_thread(broker.start)
        listening = time.perf_counter()
        assert await bridge.wait_connected(120), "the bridge did not come back"
        return time.perf_counter() - listening
    finally:
        await bridge.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, nargs="+", default=[1.0, 3.0, 6.0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("jupyter_iotcable.bridge").setLevel(logging.ERROR)
    print(f"load average {os.getloadavg()[0]:.2f} (2-core machine shared with others)")
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        restart_retry = bridge_module.RESTART_RETRY
        try:
            for down in args.down:
                figures: dict[str, list[float]] = {}
                for policy, cap in (("bridge", restart_retry), ("plain backoff", 30.0)):
                    bridge_module.RESTART_RETRY = cap
                    figures[policy] = [
                        asyncio.run(back_after(broker, down)) for _ in range(args.repeat)
                    ]
                bridge_module.RESTART_RETRY = restart_retry
                for policy, values in figures.items():
                    print(
                        f"down {down:g} s, {policy:13}: back after median "
                        f"{1000 * statistics.median(values):.0f} ms, max "
                        f"{1000 * max(values):.0f} ms ({args.repeat} restarts)"
                    )
        finally:
            bridge_module.RESTART_RETRY = restart_retry
            broker.kill()


if __name__ == "__main__":
    main()
