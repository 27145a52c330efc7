// A programmable relay for the library's offline tests: it speaks enough
// NIP-01 (EVENT/OK, REQ/EOSE, CLOSE) for a client, stores nothing it is not
// told to, and lets a test decide what a subscription receives. The issue
// asks for exactly this where a real relay cannot help: a real relay refuses
// an answer with a bad signature, so only a fake one can deliver it.
import { WebSocketServer } from 'ws'

/**
 * startFakeRelay listens on a free loopback port.
 * @param {{onEvent?: (event: object, relay: FakeRelay) => void, stored?: object[]}} [opts]
 * onEvent runs for every published event after its OK; stored events are
 * sent to every REQ before EOSE (no filtering: tests store what they mean).
 */
export async function startFakeRelay(opts = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise(resolve => wss.once('listening', resolve))
  const subs = new Set() // {ws, id}
  const relay = {
    url: `ws://127.0.0.1:${wss.address().port}`,
    received: [],
    /** sends event to every open subscription, whatever its filter */
    push(event) {
      for (const s of subs) s.ws.send(JSON.stringify(['EVENT', s.id, event]))
    },
    async close() {
      for (const c of wss.clients) c.terminate()
      await new Promise(resolve => wss.close(resolve))
    },
  }
  wss.on('connection', ws => {
    ws.on('message', raw => {
      let msg
      try {
        msg = JSON.parse(String(raw))
      } catch {
        return
      }
      if (msg[0] === 'REQ') {
        const s = { ws, id: msg[1] }
        subs.add(s)
        for (const ev of opts.stored ?? []) ws.send(JSON.stringify(['EVENT', s.id, ev]))
        ws.send(JSON.stringify(['EOSE', s.id]))
      } else if (msg[0] === 'CLOSE') {
        for (const s of subs) if (s.ws === ws && s.id === msg[1]) subs.delete(s)
      } else if (msg[0] === 'EVENT') {
        const ev = msg[1]
        relay.received.push(ev)
        ws.send(JSON.stringify(['OK', ev.id, true, '']))
        opts.onEvent?.(ev, relay)
      }
    })
    ws.on('close', () => {
      for (const s of subs) if (s.ws === ws) subs.delete(s)
    })
  })
  return relay
}
