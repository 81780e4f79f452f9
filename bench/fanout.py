"""Fan-out latency: the extension next to the floor, same broker, same load, same run.

    .venv/bin/python bench/fanout.py                       # all scenarios, both protocols
    .venv/bin/python bench/fanout.py --scenario 10x1000 --protocol iotcable --repeat 3
    .venv/bin/python bench/fanout.py --scenario 50x400 --duration 20

A scenario ``NxR`` is N websocket subscribers of one channel and a publisher sending R
readings per second to it, for ``--warmup`` + ``--duration`` seconds. The load generator
(``bench/loadgen.mjs``, node, its own process) stamps each reading's payload with its send
time and reads the receive time on the same clock; latency (p50/p99) counts the readings
after the warm-up, and every reading must reach every subscriber exactly once.

Each repetition measures, one after the other on the same mosquitto:

- **the floor** (``bench/floor.py``: tornado, plain ActionCable, encode once, no auth, no
  history, TCP_NODELAY), always with ``actioncable-v1-json``;
- **the extension** (a real ``jupyter server`` with jupyter-iotcable) with each protocol
  asked for (``actioncable-v1-json``: one frame per reading; ``iotcable-v1-json``: batches).

The ratios (extension p99 / floor p99 of the same repetition) are the figures that
travel; the absolute ones depend on the machine and on what else runs on it. Also
printed: the server's CPU per delivered reading (psutil on the server process over the
run) and the load generator's own CPU (it must not be the bottleneck). The raw results
are written as JSON to ``bench/results/`` (not committed).

Not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from bench.harness import (
    BENCH,
    IDENTIFIER,
    PROTOCOLS,
    Floor,
    LoadGen,
    cpu_seconds,
    ensure_node_deps,
    extension_target,
    floor_target,
    git_revision,
    start_broker,
    start_extension,
    wait_quiet,
)

SCENARIOS = ("10x1000", "200x100", "1000x10")


@dataclass(frozen=True)
class Scenario:
    subscribers: int
    rate: float

    @classmethod
    def parse(cls, text: str) -> Scenario:
        try:
            n, r = text.lower().split("x")
            scenario = cls(int(n), float(r))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"scenario {text!r}: write SUBSCRIBERSxRATE, e.g. 200x100"
            ) from None
        if scenario.subscribers < 1 or scenario.rate <= 0:
            raise argparse.ArgumentTypeError(f"scenario {text!r}: both numbers must be positive")
        return scenario

    def __str__(self) -> str:
        return f"{self.subscribers}x{self.rate:g}"


@dataclass
class Run:
    """One load-generator run against one server with one protocol."""

    scenario: str
    repeat: int
    server: str  # "floor" | "ext"
    protocol: str
    result: dict[str, Any]
    server_cpu: float  # CPU seconds of the server process during the run
    broker_cpu: float
    loadgen_cpu: float
    wall: float
    load: tuple[float, float]  # the machine's 1-minute load average before and after

    @property
    def latency(self) -> dict[str, float]:
        lat: dict[str, float] = self.result["latency_ms"]
        return lat

    @property
    def once(self) -> bool:
        r = self.result
        return bool(r["missing"] == 0 and r["duplicates"] == 0 and r["delivered"] == r["expected"])

    @property
    def us_per_reading(self) -> float:
        delivered = max(1, int(self.result["delivered"]))
        return self.server_cpu / delivered * 1e6

    def line(self) -> str:
        r, lat = self.result, self.latency
        delivery = (
            "all once"
            if self.once
            else f"MISSING {r['missing']} DUP {r['duplicates']} of {r['expected']}"
        )
        if r["closed_count"]:
            delivery += f", {r['closed_count']} closed (first: {r['closed'][:1]})"
        return (
            f"{self.scenario:>8} #{self.repeat} {self.server:5} {self.protocol:19} "
            f"p50 {_ms(lat['p50'])} p99 {_ms(lat['p99'])} max {_ms(lat['max'])} ms | "
            f"{r['delivered']} delivered, {delivery} | "
            f"server {self.us_per_reading:.1f} us/reading ({self.server_cpu / self.wall:.0%} cpu)"
            f" | loadgen {self.loadgen_cpu / self.wall:.0%} cpu, "
            f"publish {r['publish_rate']:.0f}/s | load {self.load[0]:.1f}-{self.load[1]:.1f}"
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_once(
    node: str,
    target: dict[str, Any],
    server_pid: int,
    broker_pid: int,
    protocol: str,
    scenario: Scenario,
    args: argparse.Namespace,
    broker_url: str,
) -> tuple[dict[str, Any], float, float, float, float]:
    config = {
        "mode": "fanout",
        **target,
        "protocol": protocol,
        "identifier": IDENTIFIER,
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


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """Median, and [min-max] when there is more than one value."""
    if not values:
        return "-"
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def summary(runs: list[Run], scenarios: list[Scenario], protocols: list[str]) -> str:
    head = (
        "| subscribers x readings/s | extension protocol | floor p50 / p99 ms | "
        "extension p50 / p99 ms | p99 ratio | p50 diff ms | delivered once (floor / ext) | "
        "server us/reading (floor / ext) | loadgen cpu |"
    )
    rows = [head, "|---" * (head.count("|") - 1) + "|"]
    for scenario in scenarios:
        name = str(scenario)
        floors = {r.repeat: r for r in runs if r.scenario == name and r.server == "floor"}
        for protocol in protocols:
            exts = [
                r
                for r in runs
                if r.scenario == name and r.server == "ext" and r.protocol == protocol
            ]
            pairs = [(floors[e.repeat], e) for e in exts if e.repeat in floors]
            if not pairs:
                continue
            fl = [f for f, _ in pairs]
            ratios = [e.latency["p99"] / f.latency["p99"] for f, e in pairs if f.latency["p99"]]
            diffs = [e.latency["p50"] - f.latency["p50"] for f, e in pairs]
            gen_cpu = [r.loadgen_cpu / r.wall for pair in pairs for r in pair]
            rows.append(
                f"| {name} | {protocol} "
                f"| {spread([f.latency['p50'] for f in fl])} / "
                f"{spread([f.latency['p99'] for f in fl])} "
                f"| {spread([e.latency['p50'] for _, e in pairs])} / "
                f"{spread([e.latency['p99'] for _, e in pairs])} "
                f"| {spread(ratios, '{:.1f}x')} | {spread(diffs)} "
                f"| {sum(f.once for f in fl)}/{len(fl)} / {sum(e.once for _, e in pairs)}/"
                f"{len(pairs)} "
                f"| {spread([f.us_per_reading for f in fl], '{:.1f}')} / "
                f"{spread([e.us_per_reading for _, e in pairs], '{:.1f}')} "
                f"| max {max(gen_cpu):.0%} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        action="append",
        type=Scenario.parse,
        help=f"SUBSCRIBERSxRATE, repeatable (default: {', '.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--protocol",
        choices=("plain", "iotcable", "both"),
        default="both",
        help="the extension's subprotocol(s); the floor always speaks plain (default: both)",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds (8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not timed (2)")
    parser.add_argument(
        "--drain",
        type=float,
        default=10.0,
        help="late readings are waited for until none came for this many seconds (10)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of each scenario (1)")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1, help="publish QoS (1)")
    parser.add_argument("--json", type=Path, help="raw results file (default: bench/results/)")
    args = parser.parse_args()
    scenarios: list[Scenario] = args.scenario or [Scenario.parse(s) for s in SCENARIOS]
    protocols = list(PROTOCOLS.values()) if args.protocol == "both" else [PROTOCOLS[args.protocol]]

    node = ensure_node_deps()
    revision = git_revision()
    print(f"jupyter-iotcable fanout bench at {revision}", flush=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="iotcable-fanout-") as tmp:
        broker = start_broker(Path(tmp))
        floor = Floor(broker)
        server = None
        try:
            floor.start()
            server = start_extension(Path(tmp) / "ext", broker)
            assert server.process is not None and broker.process is not None
            targets = {
                "floor": (floor_target(floor), floor.pid),
                "ext": (extension_target(server), server.process.pid),
            }
            for scenario in scenarios:
                for repeat in range(1, args.repeat + 1):
                    plan = [("floor", PROTOCOLS["plain"])] + [("ext", p) for p in protocols]
                    for name, protocol in plan:
                        target, pid = targets[name]
                        load0 = os.getloadavg()[0]
                        result, server_cpu, broker_cpu, gen_cpu, wall = run_once(
                            node,
                            target,
                            pid,
                            broker.process.pid,
                            protocol,
                            scenario,
                            args,
                            broker.url,
                        )
                        run = Run(
                            str(scenario),
                            repeat,
                            name,
                            protocol,
                            result,
                            server_cpu,
                            broker_cpu,
                            gen_cpu,
                            wall,
                            (load0, os.getloadavg()[0]),
                        )
                        runs.append(run)
                        print(run.line(), flush=True)
        finally:
            if server is not None:
                server.stop()
            floor.stop()
            broker.kill()

    print()
    print(
        f"fanout at {revision}: {args.warmup:g} s warm-up + {args.duration:g} s measured, "
        f"QoS {args.qos}, {args.repeat} repetition(s); median [min-max]"
    )
    print(summary(runs, scenarios, protocols))
    if runs:
        loads = [x for r in runs for x in r.load]
        print(
            f"machine load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f} "
            f"on {os.cpu_count()} cores (above ~1 the figures include other work's noise)"
        )
    out = args.json or BENCH / "results" / f"fanout-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "revision": revision,
                "args": {k: str(v) for k, v in vars(args).items()},
                "runs": [vars(r) for r in runs],
            },
            indent=1,
        )
    )
    print(f"raw results: {out}")


if __name__ == "__main__":
    main()
