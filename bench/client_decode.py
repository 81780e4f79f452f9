"""The client's share of ingest: frames in, rows in ``sub.frame``'s buffer, per reading.

    .venv/bin/python -m bench.client_decode [--readings 100000] [--batch 50]

No sockets: the frames are what the server sends (``iotcable-v1-json`` batches encoded
by the server's own code), fed to the client's session as its transport would. Stages,
each timed alone in this run, best of three:

- ``orjson.loads``: decoding the frames and nothing else (the floor of any client);
- ``json.loads``: the standard library's decoder, for scale;
- ``machine``: ``ClientConnection.receive_text`` with the client's frame codec (decode,
  checks of each row, duplicate check) and its events;
- ``session + buffer``: the whole client path into the subscription's buffer
  (``ClientSession`` -> ``Inbox`` -> ``ReadingBuffer``), as a cable runs it;
- ``sub.frame``: building the DataFrame once from the full buffer (per reading).

Ratios are against ``orjson.loads`` in the same run: they travel between machines, the
microseconds do not. One core does this work in a notebook's kernel while the server
runs elsewhere, so readings/s of ``session + buffer`` is the most a client ingests.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

import orjson

from jupyter_iotcable.client.codec import FRAME_CODEC
from jupyter_iotcable.client.inbox import Inbox
from jupyter_iotcable.client.session import ClientSession
from jupyter_iotcable.client.subscription import Subscription
from jupyter_iotcable.protocol import ClientConnection, EncodedRows, Subprotocol
from jupyter_iotcable.server.codec import ORJSON_CODEC
from tests.client.memory import MemoryControl

if TYPE_CHECKING:
    from collections.abc import Callable

    from jupyter_iotcable.protocol import Row

IDENTIFIER = '{"channel":"telemetry"}'
T0 = 1_700_000_000.0
WELCOME = '{"type":"welcome","sid":"s"}'
CONFIRM = json.dumps(
    {
        "type": "confirm_subscription",
        "identifier": IDENTIFIER,
        "meta": {"columns": "plant/{site}/{device}/env", "format": "json", "time_field": "ts"},
    }
)


def frames(readings: int, batch: int) -> list[str]:
    """The demo's readings (8 devices), as the server batches them."""
    rows: list[Row] = [
        (
            n + 1,
            T0 + n / 1000,
            f"plant/lyon/pump{n % 8}/env",
            {
                "seq": n,
                "ts": T0 + n / 1000,
                "temperature": 21.5 + n % 7 / 4,
                "humidity": 45.2,
                "setpoint": 22.0,
                "status": "ok",
            },
            None,
        )
        for n in range(readings)
    ]
    out: list[str] = []
    for start in range(0, readings, batch):
        encoded = EncodedRows.encode(
            Subprotocol.IOTCABLE, "telemetry", "e1", rows[start : start + batch], codec=ORJSON_CODEC
        )
        out.extend(encoded.frames(IDENTIFIER))
    return out


def best(run: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    n = args.readings
    texts = frames(n, args.batch)

    def orjson_only() -> None:
        for text in texts:
            orjson.loads(text)

    def stdlib_only() -> None:
        for text in texts:
            json.loads(text)

    def machine() -> None:
        conn = ClientConnection(subprotocol=Subprotocol.IOTCABLE, codec=FRAME_CODEC)
        conn.connection_opened(T0)
        conn.receive_text(WELCOME, T0)
        conn.subscribe("telemetry")
        conn.receive_text(CONFIRM, T0)
        conn.events_received()
        for text in texts:
            conn.receive_text(text, T0)
            conn.events_received()

    holder: list[Subscription] = []

    def session() -> None:
        cable = ClientSession("http://bench/")
        cable.connection_opened(T0)
        cable.receive_text(WELCOME, T0)
        inbox = Inbox("telemetry", None, max_rows=n, window=None)
        cable.subscribe(inbox)
        cable.data_to_send()
        cable.receive_text(CONFIRM, T0)
        for text in texts:
            cable.receive_text(text, T0)
        assert len(inbox.buffer) == n, len(inbox.buffer)
        holder[:] = [Subscription(inbox, MemoryControl())]

    def frame() -> None:
        assert len(holder[0].frame) == n

    base = best(orjson_only)
    print(f"{n:,} readings in {len(texts):,} frames of {args.batch}")
    print(f"{'stage':22} {'us/reading':>10} {'readings/s':>12} {'x orjson.loads':>15}")
    for name, run in (
        ("orjson.loads", orjson_only),
        ("json.loads", stdlib_only),
        ("machine", machine),
        ("session + buffer", session),
        ("sub.frame", frame),
    ):
        seconds = best(run)
        print(f"{name:22} {seconds / n * 1e6:10.2f} {n / seconds:12,.0f} {seconds / base:15.1f}")


if __name__ == "__main__":
    main()
