// client-restart: a full restart round trip against live relays. See README.md.
import { getPublicKey } from 'nostr-tools/pure'
import { SimplePool } from 'nostr-tools/pool'
import * as nip19 from 'nostr-tools/nip19'
import { authSigner, buildRequest, hex64, main, readResponse, secretKey, verifyFresh } from './lib.mjs'

main(async input => {
  const sk = secretKey(input.sk)
  const me = getPublicKey(sk)
  const botPubkey = hex64(input.botPubkey, 'botPubkey')
  const relays = input.relays
  if (!Array.isArray(relays) || relays.length === 0) throw new Error('relays must be a non-empty array')
  const timeoutMs = input.timeoutMs ?? 10000
  const deadline = Date.now() + timeoutMs
  const left = () => Math.max(0, deadline - Date.now())

  // Prepare first so the subscription can name the request id.
  const request = buildRequest(input)
  const onauth = authSigner(sk)
  const pool = new SimplePool({ automaticallyAuth: () => onauth })

  let gotResponse
  const response = new Promise(resolve => { gotResponse = resolve })
  let subscribed
  const ready = new Promise(resolve => { subscribed = resolve })
  const filter = { kinds: [input.responseKind ?? 4313], authors: [botPubkey], '#p': [me], '#e': [request.id] }
  const sub = pool.subscribe(relays, filter, {
    onevent: event => gotResponse(event), // the pool already checked filter and signature
    oneose: () => subscribed(),
    onclose: () => subscribed(),
    onauth,
  })

  let phase = 'waiting for the subscription'
  const expired = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`timeout after ${timeoutMs} ms ${phase}`)), timeoutMs))
  expired.catch(() => {}) // handled where it is raced

  // Publish only once every relay has the REQ (EOSE or CLOSED), so nothing is missed.
  await Promise.race([ready, expired])
  const results = await Promise.allSettled(pool.publish(relays, request, { onauth }))
  const published = results.map((r, i) => ({
    relay: relays[i], ok: r.status === 'fulfilled', message: String(r.status === 'fulfilled' ? r.value : r.reason?.message ?? r.reason),
  }))
  if (!published.some(p => p.ok)) throw new Error(`no relay accepted the request: ${JSON.stringify(published)}`)

  phase = 'waiting for the response'
  const event = await Promise.race([response, expired])
  sub.close()
  if (!verifyFresh(event)) throw new Error('response has a bad id or signature')
  const read = readResponse(input.sk, event)
  if (!read.valid) throw new Error(`invalid response: ${read.problems.join('; ')}`)
  if (read.requestId !== request.id) throw new Error(`response e tag ${read.requestId} is not the request id`)

  let roomEvent = null
  const roomId = read.payload?.result?.roomId
  if (roomId) {
    let author = botPubkey
    if (read.payload.result.naddr) {
      const decoded = nip19.decode(read.payload.result.naddr)
      if (decoded.type !== 'naddr') throw new Error(`result.naddr is a ${decoded.type}`)
      author = decoded.data.pubkey
    }
    // Query by authors + #d: the test relay does not index long #a values.
    roomEvent = await pool.get(relays, { kinds: [30312], authors: [author], '#d': [roomId] }, { maxWait: Math.max(1000, left()) })
    if (roomEvent && !verifyFresh(roomEvent)) throw new Error('room event has a bad id or signature')
  }
  pool.destroy()
  return { request, response: event, payload: read.payload, roomEvent, published }
})
