// An @anycable/core client on the actioncable-v1-ext-json subprotocol, for
// tests/integration/test_broker_crash.py: subscribes to CHANNEL (narrowed to TOPIC)
// and prints one JSON line per thing it is told (connect, message with its meta, info).
//
//   node probe.mjs ws://HOST/iotcable/cable?token=T CHANNEL TOPIC
import { createCable } from '@anycable/core'
import WebSocket from 'ws'

const [url, channel, topic] = process.argv.slice(2)
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const cable = createCable(url, {
  protocol: 'actioncable-v1-ext-json',
  websocketImplementation: WebSocket,
  logLevel: 'error'
})
cable.on('connect', (ev) => out({ event: 'connect', restored: !!ev.restored }))
cable.on('disconnect', (ev) => out({ event: 'disconnect', reason: String(ev.reason) }))
const sub = cable.subscribeTo(channel, { topic })
sub.on('message', (message, meta) => out({ event: 'message', message, meta }))
sub.on('info', (info) => out({ event: 'info', info }))
await sub.ensureSubscribed()
out({ event: 'subscribed' })
