// The TypeScript client's protocol core (labextension/src/protocol, bundled by the test
// with esbuild) over node's WebSocket, for tests/integration/test_hostile_payloads.py.
//
//   node --experimental-websocket ts_client.mjs PROTOCOL_BUNDLE CONFIG_JSON
//
// CONFIG: {url, channel, topic, since (unix seconds or null), expect (rows), timeout (s)}.
// Subscribes (with history since `since` when given) and prints {"event": "confirmed"}
// once confirmed; then one JSON line when it holds `expect` rows or the time is up:
// {rows: [[offset, topic, payload as JSON, error]...], opens, closes, errors, gaps}.
// Every socket close counts: a reconnect is a failure.

import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const protocol = require(process.argv[2]);
const cfg = JSON.parse(process.argv[3]);
const { ClientConnection, HistoryRequest } = protocol;

const conn = new ClientConnection({ subprotocol: "iotcable-v1-json" });
const history = cfg.since === null ? null : new HistoryRequest({ since: cfg.since });
const params = cfg.topic ? { topic: cfg.topic } : {};
const result = { rows: [], opens: 0, closes: [], errors: [], gaps: [] };
let confirmed = false;
let done = false;

function finish() {
  if (done) return;
  done = true;
  // Exit once the pipe took it all (a large result is written in several chunks).
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}

function pump(ws) {
  for (const event of conn.eventsReceived()) {
    if (event.kind === "RowsReceived") {
      for (const [offset, , topic, payload, error] of event.rows) {
        result.rows.push([offset, topic, JSON.stringify(payload), error]);
      }
    } else if (event.kind === "SubscriptionConfirmed" && !confirmed) {
      confirmed = true;
      process.stdout.write(JSON.stringify({ event: "confirmed" }) + "\n");
    } else if (event.kind === "GapReported") {
      result.gaps.push(event.reason);
    } else if (event.kind === "ServerError" || event.kind === "SubscriptionRejected") {
      result.errors.push(JSON.stringify(event));
    }
  }
  for (const frame of conn.dataToSend()) {
    ws.send(frame);
  }
  if (result.rows.length >= cfg.expect) finish();
}

const ws = new WebSocket(cfg.url, ["iotcable-v1-json"]);
ws.onopen = () => {
  result.opens += 1;
  conn.connectionOpened(Date.now() / 1000);
  conn.subscribe(cfg.channel, params, history);
  pump(ws);
};
ws.onmessage = (message) => {
  conn.receiveText(String(message.data), Date.now() / 1000);
  pump(ws);
};
ws.onclose = (event) => {
  result.closes.push(event.code);
  finish();
};
ws.onerror = (event) => {
  result.errors.push(String(event.message ?? event.type));
};
setTimeout(finish, cfg.timeout * 1000);
