"""The channel server as a JupyterHub service: fan-out capacity, next to the floor, same run.

    sudo .venv/bin/python bench/hub_service.py                       # default scenarios
    sudo .venv/bin/python bench/hub_service.py --scenario 200x50 --path service

Starts the test hub of ``tests/hub`` (a real JupyterHub with configurable-http-proxy, the
service as its own OS user, bob as a user whose server relays to the service: root is
needed to create those OS users) and measures, per scenario ``NxR`` (N websocket
subscribers of ``telemetry``, R readings/s published to it, for ``--warmup`` +
``--duration`` seconds, ``bench/loadgen.mjs`` as the load generator):

- **the floor** (``bench/floor.py``, on an anonymous mosquitto of its own: it speaks no
  broker auth), the least a Python server does for the same fan-out;
- **service**: the subscribers connect straight to the service's port with bob's hub token
  (as scripts outside the hub may), so the service's CPU per delivered reading is its own;
- **relay**: the subscribers connect to bob's server (``/user/bob/iotcable/cable`` through
  the hub's proxy), which relays each socket to the service (how the sidebar, kernels and
  the CLI reach it); the CPU of bob's server and of the proxy is printed as well;
- **server** (``--path server`` or ``all``): the same relay at bob's server's own port,
  without the hub's proxy in front (to tell the proxy's share from the relay's).

Printed: latency p50/p99, delivery exactly once, microseconds of service CPU per
delivered reading and what that makes on one core (deliveries per second at 100 % of a
core: the service's capacity in subscriptions x readings/s), and the ratio to the floor.
Raw results: ``bench/results/hub-service-*.json`` (not committed). Not a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import json
import os
import secrets
import tempfile
import time
from typing import Any

import psutil

from bench.fanout import Scenario
from bench.harness import (
    BENCH,
    IDENTIFIER,
    PROTOCOLS,
    Floor,
    LoadGen,
    cpu_seconds,
    ensure_node_deps,
    floor_target,
    git_revision,
    start_broker,
    wait_quiet,
)
from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.hub.conftest import Hub
from tests.hub.jupyterhub import SERVICE, UsersLock, make_workdir, remove_workdir

SCENARIOS = ("50x100", "200x50")
TOPIC = "plant/bench/r/env"  # inside the hub's telemetry channel (plant/+/+/env)


Measured = tuple[dict[str, Any], float, float, float, float]


def run_once(
    node: str,
    target: dict[str, Any],
    server_pid: int,
    broker_pid: int,
    protocol: str,
    scenario: Scenario,
    args: argparse.Namespace,
    broker_url: str,
) -> Measured:
    """``bench.fanout.run_once`` with the target's own channel identifier."""
    config = {
        "mode": "fanout",
        "identifier": IDENTIFIER,
        **target,
        "protocol": protocol,
        "subscribers": scenario.subscribers,
        "concurrency": 50,
        "rate": scenario.rate,
        "duration": args.duration,
        "warmup": args.warmup,
        "drain": args.drain,
        "mqttUrl": broker_url,
        "qos": args.qos,
    }
    gen = LoadGen(node, config)
    try:
        gen.event(timeout=300)  # every subscriber confirmed
        wait_quiet(server_pid)
        cpu0 = (cpu_seconds(server_pid), cpu_seconds(broker_pid), cpu_seconds(gen.pid))
        start = time.monotonic()
        gen.say("go")
        result = gen.event(timeout=args.warmup + args.duration + args.drain * 10 + 300)
        wall = time.monotonic() - start
        cpu1 = (cpu_seconds(server_pid), cpu_seconds(broker_pid), cpu_seconds(gen.pid))
    finally:
        gen.close()
    wait_quiet(server_pid)
    return result, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], cpu1[2] - cpu0[2], wall


def _service_pid(hub: Hub) -> int:
    assert hub.process is not None
    for child in psutil.Process(hub.process.pid).children(recursive=True):
        if "jupyter_iotcable.hubservice" in " ".join(child.cmdline()):
            return int(child.pid)
    raise RuntimeError("the service's process was not found among the hub's children")


def _pids(hub: Hub, needle: str) -> list[int]:
    assert hub.process is not None
    return [
        c.pid
        for c in psutil.Process(hub.process.pid).children(recursive=True)
        if needle in " ".join(c.cmdline())
    ]


def _listening_port(pid: int) -> int:
    for conn in psutil.Process(pid).net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN:
            return int(conn.laddr.port)
    raise RuntimeError(f"process {pid} listens on no TCP port")


def _user_server_pid(hub: Hub, user: str) -> int:
    """``user``'s server of this hub (other sessions' hubs may run servers as the same user)."""
    assert hub.process is not None
    for child in psutil.Process(hub.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.username() == user and "jupyterhub.singleuser" in " ".join(child.cmdline()):
                return int(child.pid)
    raise RuntimeError(f"{user}'s server process was not found among the hub's children")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", type=Scenario.parse)
    parser.add_argument(
        "--path",
        choices=("service", "relay", "server", "both", "all"),
        default="both",
        help="service: straight to it; relay: bob's server through the hub's proxy; server: "
        "bob's server's own port, no proxy; both: service and relay (default); all: the three",
    )
    parser.add_argument("--protocol", choices=("plain", "iotcable"), default="iotcable")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the test hub creates OS users (see tests/hub)")
    scenarios = args.scenario or [Scenario.parse(s) for s in SCENARIOS]
    protocol = PROTOCOLS[args.protocol]
    paths = {"both": ["service", "relay"], "all": ["service", "relay", "server"]}.get(
        args.path, [args.path]
    )

    node = ensure_node_deps()
    print(f"jupyter-iotcable hub-service bench at {git_revision()}", flush=True)
    lock = UsersLock()
    workdir = make_workdir()
    password = f"broker-{secrets.token_hex(16)}"
    broker = Mosquitto(
        workdir / "mosquitto",
        username="iotcable-service",
        password=password,
        max_queued_messages=1_000_000,
    )
    hub = Hub(workdir, broker, password)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="iotcable-hub-bench-") as tmp:
        floor_broker = start_broker(Path(tmp))
        floor = Floor(floor_broker)
        try:
            broker.start()
            hub.start()
            floor.start()
            token = hub.token("bob")
            hub.server("bob")
            service_pid = _service_pid(hub)
            bob_pid = _user_server_pid(hub, "bob")
            proxy_pids = _pids(hub, "configurable-http-proxy")
            identifier = make_identifier("telemetry")
            mqtt_url = f"mqtt://{broker.username}:{password}@127.0.0.1:{broker.port}"
            headers = {"Authorization": f"token {token}"}
            targets = {
                "service": {
                    "url": f"ws://127.0.0.1:{hub.service_port}/services/{SERVICE}/iotcable/cable",
                    "headers": headers,
                    "topic": TOPIC,
                },
                "relay": {
                    "url": hub.server_url("bob").replace("http://", "ws://") + "iotcable/cable",
                    "headers": headers,
                    "topic": TOPIC,
                },
                "server": {
                    "url": f"ws://127.0.0.1:{_listening_port(bob_pid)}/user/bob/iotcable/cable",
                    "headers": headers,
                    "topic": TOPIC,
                },
            }
            assert broker.process is not None and floor_broker.process is not None
            for scenario in scenarios:
                floor_run = run_once(
                    node,
                    floor_target(floor),
                    floor.pid,
                    floor_broker.process.pid,
                    PROTOCOLS["plain"],
                    scenario,
                    args,
                    floor_broker.url,
                )
                report(str(scenario), "floor", floor_run, {}, results)
                for path in paths:
                    others = [bob_pid, *proxy_pids] if path != "service" else []
                    before = {pid: cpu_seconds(pid) for pid in others}
                    started = time.monotonic()
                    run = run_once(
                        node,
                        {**targets[path], "identifier": identifier},
                        service_pid,
                        broker.process.pid,
                        protocol,
                        scenario,
                        args,
                        mqtt_url,
                    )
                    spent = time.monotonic() - started
                    extra = {
                        "bob_server_cpu": cpu_seconds(bob_pid) - before[bob_pid]
                        if path != "service"
                        else None,
                        "proxy_cpu": sum(cpu_seconds(p) - before[p] for p in proxy_pids)
                        if path != "service"
                        else None,
                        "outer_wall": spent,
                    }
                    report(str(scenario), path, run, extra, results)
        finally:
            floor.stop()
            floor_broker.kill()
            hub.stop()
            broker.kill()
            lock.release()
            remove_workdir(workdir)
    out = BENCH / "results" / f"hub-service-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"raw results: {out}")


def report(
    scenario: str,
    path: str,
    run: Measured,
    extra: dict[str, Any],
    results: list[dict[str, Any]],
) -> None:
    result, server_cpu, broker_cpu, gen_cpu, wall = run
    delivered = max(1, int(result["delivered"]))
    once = (
        result["missing"] == 0
        and result["duplicates"] == 0
        and result["delivered"] == result["expected"]
    )
    us = server_cpu / delivered * 1e6
    lat = result["latency_ms"]
    line = (
        f"{scenario:>8} {path:7} p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} ms | "
        f"{result['delivered']} delivered{' all once' if once else ' NOT ONCE'} | "
        f"server {us:.1f} us/reading ({server_cpu / wall:.0%} cpu) = "
        f"{1e6 / us:,.0f} deliveries/s per core | loadgen {gen_cpu / wall:.0%} cpu"
    )
    if extra.get("bob_server_cpu") is not None:
        line += (
            f" | bob's server {extra['bob_server_cpu'] / delivered * 1e6:.1f} us/reading,"
            f" proxy {extra['proxy_cpu'] / delivered * 1e6:.1f} us/reading (whole run)"
        )
    print(line, flush=True)
    results.append(
        {
            "scenario": scenario,
            "path": path,
            "result": result,
            "server_cpu": server_cpu,
            "broker_cpu": broker_cpu,
            "loadgen_cpu": gen_cpu,
            "wall": wall,
            "us_per_reading": us,
            "once": once,
            **extra,
        }
    )


if __name__ == "__main__":
    main()
