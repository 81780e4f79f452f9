// Load generator of bench/fanout.py and bench/memory.py (not a test; see bench/README).
//
// One node process holds N websocket subscribers (the `ws` package) and the MQTT
// publisher (the `mqtt` package), so a reading's send time (in its payload) and its
// receive time are read from the same monotonic clock: latency = receive - send.
//
// Driven over stdio by the Python side, one JSON line each way:
//   argv[2]  the configuration (see `cfg` below)
//   stdout   {"event": "ready", ...} once every subscriber is confirmed,
//            {"event": "result", ...} after a fanout run
//   stdin    "go" starts publishing (fanout mode); "close" or EOF closes the sockets
//
// Every reading carries a sequence number; each subscriber counts what it received per
// sequence number, so the result says whether every reading reached every subscriber
// exactly once (missing, duplicates, out of order).

import { performance } from "node:perf_hooks";
import readline from "node:readline";
import mqtt from "mqtt";
import WebSocket from "ws";

const cfg = JSON.parse(process.argv[2]);
// cfg = {
//   mode: "fanout" | "idle",
//   url, protocol, headers, identifier,     websocket endpoint, subprotocol, auth, channel
//   subscribers, concurrency,               how many, how many handshakes at once
//   rate, duration, warmup, drain,          readings/s, seconds measured, seconds before,
//                                           seconds without any delivery that end the wait
//                                           for late readings (at most 10 x drain in all)
//   mqttUrl, topic, qos,                    the publisher
// }

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// Growable float64 log of latencies (ms).
class Samples {
  constructor() {
    this.data = new Float64Array(1 << 16);
    this.length = 0;
  }
  push(value) {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }
  summary() {
    const sorted = this.data.slice(0, this.length).sort();
    const n = sorted.length;
    const rank = (q) => (n ? sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] : null);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sorted[i];
    return {
      count: n,
      p50: rank(0.5),
      p90: rank(0.9),
      p99: rank(0.99),
      max: n ? sorted[n - 1] : null,
      mean: n ? sum / n : null,
    };
  }
}

const latencies = new Samples();
let lastDelivery = 0; // performance.now() of the latest reading received
let measureFromSeq = 0; // readings before this one are warm-up: counted, not timed

class Subscriber {
  constructor(index) {
    this.index = index;
    this.counts = new Uint8Array(1024);
    this.maxSeq = -1;
    this.distinct = 0;
    this.received = 0;
    this.duplicates = 0;
    this.outOfOrder = 0;
    this.malformed = 0;
    this.closed = null;
    this.disconnect = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(cfg.url, [cfg.protocol], {
        headers: cfg.headers || {},
        perMessageDeflate: false,
        handshakeTimeout: 60_000,
      });
      this.ws = ws;
      let confirmed = false;
      ws.on("message", (data) => {
        const now = performance.now();
        let msg;
        try {
          msg = JSON.parse(data.toString());
        } catch {
          this.malformed++;
          return;
        }
        if (msg.type !== undefined) {
          if (msg.type === "welcome") {
            ws.send(JSON.stringify({ command: "subscribe", identifier: cfg.identifier }));
          } else if (msg.type === "confirm_subscription") {
            confirmed = true;
            resolve();
          } else if (msg.type === "reject_subscription") {
            reject(new Error(`subscriber ${this.index} rejected: ${JSON.stringify(msg)}`));
          } else if (msg.type === "disconnect") {
            this.disconnect = msg;
          }
          return;
        }
        if (Array.isArray(msg.batch)) {
          for (const row of msg.batch) this.record(row[3], now);
        } else if (msg.message !== undefined) {
          this.record(msg.message.payload, now);
        }
      });
      ws.on("error", (err) => {
        if (!confirmed) reject(err);
      });
      ws.on("close", (code, reason) => {
        this.closed = { code, reason: reason.toString() };
        if (!confirmed) reject(new Error(`subscriber ${this.index} closed: ${code} ${reason}`));
      });
    });
  }

  record(payload, now) {
    const seq = payload && payload.seq;
    if (!Number.isInteger(seq) || seq < 0) {
      this.malformed++;
      return;
    }
    this.received++;
    lastDelivery = now;
    while (seq >= this.counts.length) {
      const bigger = new Uint8Array(this.counts.length * 2);
      bigger.set(this.counts);
      this.counts = bigger;
    }
    if (this.counts[seq] === 0) this.distinct++;
    else this.duplicates++;
    if (this.counts[seq] < 255) this.counts[seq]++;
    if (seq < this.maxSeq) this.outOfOrder++;
    else this.maxSeq = seq;
    if (seq >= measureFromSeq) latencies.push(now - payload.t);
  }

  missing(total) {
    let missing = 0;
    for (let i = 0; i < total; i++) if (i >= this.counts.length || this.counts[i] === 0) missing++;
    return missing;
  }
}

async function connectAll() {
  const subs = [];
  for (let i = 0; i < cfg.subscribers; i++) subs.push(new Subscriber(i));
  const started = performance.now();
  const step = cfg.concurrency || 50;
  for (let i = 0; i < subs.length; i += step) {
    await Promise.all(subs.slice(i, i + step).map((s) => s.connect()));
  }
  return { subs, seconds: (performance.now() - started) / 1000 };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Publishes `total` readings at `rate`/s; each payload carries its sequence number and
// its send time. Returns the seconds it took.
function publish(client, total) {
  const interval = 1000 / cfg.rate;
  return new Promise((resolve) => {
    let seq = 0;
    const start = performance.now();
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      while (seq < due) {
        const payload = JSON.stringify({
          seq,
          t: performance.now(),
          temperature: 21.5,
          humidity: 40.0,
        });
        client.publish(cfg.topic, payload, { qos: cfg.qos });
        seq++;
      }
      if (seq < total) {
        setTimeout(tick, Math.max(0, start + seq * interval - performance.now()));
      } else {
        resolve((performance.now() - start) / 1000);
      }
    };
    tick();
  });
}

function lines() {
  const rl = readline.createInterface({ input: process.stdin });
  const queue = [];
  let waiting = null;
  rl.on("line", (line) => {
    if (waiting) {
      const w = waiting;
      waiting = null;
      w(line.trim());
    } else queue.push(line.trim());
  });
  rl.on("close", () => {
    if (waiting) waiting("close");
    queue.push("close");
  });
  return () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => (waiting = r)));
}

async function main() {
  const next = lines();
  const { subs, seconds } = await connectAll();
  if (cfg.mode === "idle") {
    emit({ event: "ready", connect_seconds: seconds });
    while ((await next()) !== "close");
    for (const s of subs) s.ws.close();
    await sleep(500);
    process.exit(0);
  }
  const client = await mqtt.connectAsync(cfg.mqttUrl, {
    clientId: `bench-pub-${process.pid}`,
    clean: true,
  });
  emit({ event: "ready", connect_seconds: seconds });
  while ((await next()) !== "go");
  const total = Math.round(cfg.rate * (cfg.warmup + cfg.duration));
  measureFromSeq = Math.round(cfg.rate * cfg.warmup);
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const publishSeconds = await publish(client, total);
  // Late readings are waited for while they keep coming: "missing" means that nothing
  // arrived for `drain` seconds, not that the server was merely behind.
  const published = performance.now();
  lastDelivery = Math.max(lastDelivery, published);
  while (
    subs.some((s) => s.distinct < total && !s.closed) &&
    performance.now() - lastDelivery < cfg.drain * 1000 &&
    performance.now() - published < cfg.drain * 10_000
  ) {
    await sleep(20);
  }
  const lateSeconds = (performance.now() - published) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - wall0) / 1000;
  let missing = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let malformed = 0;
  let delivered = 0;
  const closed = [];
  for (const s of subs) {
    missing += s.missing(total);
    duplicates += s.duplicates;
    outOfOrder += s.outOfOrder;
    malformed += s.malformed;
    delivered += s.received;
    if (s.closed) closed.push({ index: s.index, ...s.closed, disconnect: s.disconnect });
  }
  emit({
    event: "result",
    sent: total,
    subscribers: subs.length,
    publish_seconds: publishSeconds,
    publish_rate: total / publishSeconds,
    expected: total * subs.length,
    delivered,
    missing,
    duplicates,
    out_of_order: outOfOrder,
    malformed,
    closed: closed.slice(0, 5),
    closed_count: closed.length,
    latency_ms: latencies.summary(),
    wall_seconds: wall,
    drain_seconds: lateSeconds,
    cpu_seconds: (cpu.user + cpu.system) / 1e6,
  });
  await client.endAsync();
  for (const s of subs) s.ws.close();
  await sleep(300);
  process.exit(0);
}

main().catch((err) => {
  emit({ event: "error", message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
