"""Idle memory: what one subscribed, idle websocket connection costs the server (RSS).

    .venv/bin/python bench/memory.py                      # 1000 connections, 1 repetition
    .venv/bin/python bench/memory.py --connections 2000 --repeat 3

For each server (the floor, a bare tornado websocket bridge: ``bench/floor.py``; the
extension with ``actioncable-v1-json``; the extension with ``iotcable-v1-json``), a fresh
process is started on a private mosquitto and warmed up with a few connections (so that
one-time allocations are not counted); then the load generator (``bench/loadgen.mjs``,
idle mode) opens N connections, each subscribed to one channel, and the server's RSS
growth divided by N is the cost of one connection. Nothing is published.

Goal (issue #11): at most 20 KiB per connection for the extension. Not a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

from bench.harness import (
    IDENTIFIER,
    PROTOCOLS,
    Floor,
    LoadGen,
    ensure_node_deps,
    extension_target,
    floor_target,
    git_revision,
    rss_bytes,
    start_broker,
    start_extension,
    wait_quiet,
)
from tests.brokers import Mosquitto

WARMUP_CONNECTIONS = 50


def connect_idle(node: str, target: dict[str, Any], protocol: str, n: int) -> LoadGen:
    gen = LoadGen(
        node,
        {
            "mode": "idle",
            **target,
            "protocol": protocol,
            "identifier": IDENTIFIER,
            "subscribers": n,
            "concurrency": 50,
        },
    )
    gen.event(timeout=600)  # every connection subscribed
    return gen


def settled_rss(pid: int) -> int:
    wait_quiet(pid)
    time.sleep(1.0)
    wait_quiet(pid)
    return rss_bytes(pid)


def measure(node: str, target: dict[str, Any], pid: int, protocol: str, n: int) -> tuple[int, int]:
    """RSS before and with ``n`` idle subscribed connections (after a warm-up round)."""
    warm = connect_idle(node, target, protocol, WARMUP_CONNECTIONS)
    warm.close()
    before = settled_rss(pid)
    gen = connect_idle(node, target, protocol, n)
    try:
        after = settled_rss(pid)
    finally:
        gen.close()
    return before, after


def one(
    node: str, workdir: Path, broker: Mosquitto, server: str, protocol: str, n: int
) -> tuple[int, int]:
    if server == "floor":
        floor = Floor(broker)
        try:
            floor.start()
            return measure(node, floor_target(floor), floor.pid, protocol, n)
        finally:
            floor.stop()
    ext = start_extension(workdir, broker)
    try:
        assert ext.process is not None
        return measure(node, extension_target(ext), ext.process.pid, protocol, n)
    finally:
        ext.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000, help="connections (1000)")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions (1)")
    args = parser.parse_args()
    n: int = args.connections
    node = ensure_node_deps()
    revision = git_revision()
    print(f"jupyter-iotcable idle-memory bench at {revision}: {n} subscribed connections")
    plan = [
        ("floor", PROTOCOLS["plain"]),
        ("ext", PROTOCOLS["plain"]),
        ("ext", PROTOCOLS["iotcable"]),
    ]
    per_conn: dict[tuple[str, str], list[float]] = {key: [] for key in plan}
    with tempfile.TemporaryDirectory(prefix="iotcable-memory-") as tmp:
        broker = start_broker(Path(tmp))
        try:
            for repeat in range(1, args.repeat + 1):
                for i, (server, protocol) in enumerate(plan):
                    workdir = Path(tmp) / f"ext-{repeat}-{i}"
                    before, after = one(node, workdir, broker, server, protocol, n)
                    kib = (after - before) / n / 1024
                    per_conn[(server, protocol)].append(kib)
                    print(
                        f"#{repeat} {server:5} {protocol:19} RSS {before / 2**20:7.1f} -> "
                        f"{after / 2**20:7.1f} MiB: {kib:5.1f} KiB per connection | "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        finally:
            broker.kill()

    floor = per_conn[plan[0]]
    print()
    print(f"idle memory at {revision}, {n} connections; median [min-max] of {args.repeat}")
    print("| server | protocol | KiB per subscribed connection | vs the floor |")
    print("|---|---|---|---|")
    for (server, protocol), values in per_conn.items():
        ratio = statistics.median(values) / statistics.median(floor) if floor else 0.0
        spread = f"{statistics.median(values):.1f}"
        if len(values) > 1:
            spread += f" [{min(values):.1f}-{max(values):.1f}]"
        name = "floor (bare tornado)" if server == "floor" else "jupyter-iotcable"
        print(f"| {name} | {protocol} | {spread} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
