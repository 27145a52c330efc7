// Tests that need no stack: room addresses, signers, and the answer checks
// against a programmable relay (a real relay would refuse the forgeries).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { useWebSocketImplementation } from 'nostr-tools/pool'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import * as nip19 from 'nostr-tools/nip19'
import * as nip44 from 'nostr-tools/nip44'
import { bytesToHex } from 'nostr-tools/utils'
import {
  BotError, InputError, InvalidAnswerError, NestbotError, TimeoutError,
  adopt, parseRoom, restart, status, toSigner,
} from '../nestbot.js'
import { startFakeRelay } from './fakerelay.js'

useWebSocketImplementation(WebSocket)

const PK = 'a'.repeat(63) + 'b'
const D = '3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b'
const NADDR = nip19.naddrEncode({ kind: 30312, pubkey: PK, identifier: D, relays: ['wss://relay.example.com', 'https://not-a-relay.example'] })

test('parseRoom: every form a user types', () => {
  const want = { kind: 30312, pubkey: PK, identifier: D, coordinate: `30312:${PK}:${D}` }
  const cases = [
    [`30312:${PK}:${D}`, []],
    [NADDR, ['wss://relay.example.com']],
    [`nostr:${NADDR}`, ['wss://relay.example.com']],
    [`NOSTR:${NADDR}`, ['wss://relay.example.com']],
    [`  ${NADDR.toUpperCase()}\n`, ['wss://relay.example.com']],
    [`https://nostrnests.com/${NADDR}`, ['wss://relay.example.com']],
    [`https://app.example/#/rooms/nostr:${NADDR}?x=1`, ['wss://relay.example.com']],
  ]
  for (const [input, relays] of cases) {
    assert.deepEqual(parseRoom(input), { ...want, relays }, input)
  }
})

test('parseRoom: refusals say why', () => {
  const npub = nip19.npubEncode(PK)
  const other = nip19.naddrEncode({ kind: 30311, pubkey: PK, identifier: D })
  const cases = [
    ['', /empty/],
    [`30311:${PK}:${D}`, /kind 30311 is not a room/],
    [`030312:${PK}:${D}`, /kind is not a number/],
    [`30312:${PK.toUpperCase()}:${D}`, /lowercase hex/],
    [`30312:${PK}:`, /d must be/],
    [`30312:${PK}:${'x'.repeat(129)}`, /d must be/],
    [other, /kind 30311/],
    [npub, /want naddr1/],
    [`nostr:${npub}`, /not a naddr but a npub/],
    ['naddr1qqqqqq', /not a valid naddr/],
    ['https://nostrnests.com/rooms', /no naddr/],
    ['hello', /want naddr1/],
  ]
  for (const [input, re] of cases) {
    assert.throws(() => parseRoom(input), err => err instanceof InputError && err.code === 'BAD_INPUT' && re.test(err.message), input)
  }
})

test('toSigner: hex, nsec and bytes are the same key; junk is refused', async () => {
  const sk = generateSecretKey()
  const pk = getPublicKey(sk)
  for (const form of [sk, bytesToHex(sk), bytesToHex(sk).toUpperCase(), nip19.nsecEncode(sk)]) {
    assert.equal(await toSigner(form).getPublicKey(), pk)
  }
  for (const bad of ['nope', 'nsec1xyz', new Uint8Array(31), 42, {}]) {
    assert.throws(() => toSigner(bad), InputError)
  }
})

// botAnswering returns a fake relay that answers each 4312 with
// answer(request) signed by the bot: first a forgery (broken signature) and
// an answer to another request when asked, then the valid one unless told not.
async function botAnswering(botSk, answer, { forged = false, tampered = false, valid = true } = {}) {
  return startFakeRelay({
    onEvent(req, relay) {
      if (req.kind !== 4312) return
      const key = nip44.v2.utils.getConversationKey(botSk, req.pubkey)
      const payload = answer(req)
      if (payload === null) return
      const build = (tags, created) => finalizeEvent({
        kind: 4313, created_at: created, content: nip44.v2.encrypt(JSON.stringify(payload), key),
        tags: tags ?? [['p', req.pubkey], ['e', req.id], ['encryption', 'nip44_v2']],
      }, botSk)
      if (forged) {
        const bad = build(undefined, req.created_at + 1)
        bad.sig = (bad.sig[0] === '0' ? '1' : '0') + bad.sig.slice(1) // same id, broken signature
        relay.push(bad)
      }
      if (tampered) relay.push(build([['p', req.pubkey], ['e', 'f'.repeat(64)]], req.created_at + 2))
      if (valid) relay.push(build(undefined, req.created_at))
    },
  })
}

const RESULT = { roomId: D, endpoints: ['ws+livekit://127.0.0.1:7880'], token: 't', message: 'Nest restarted', isNewRoom: false, naddr: NADDR }

test('restart: a valid answer is returned; the request is well formed', async () => {
  const botSk = generateSecretKey()
  const relay = await botAnswering(botSk, () => ({ result_type: 'restart', result: RESULT }))
  try {
    const sk = generateSecretKey()
    const got = await restart(`30312:${PK}:${D}`, { signer: sk, bot: nip19.npubEncode(getPublicKey(botSk)), relays: [relay.url], timeout: 10000, reason: 'audio froze' })
    assert.deepEqual(got, RESULT)
    const [req] = relay.received
    assert.equal(req.kind, 4312)
    assert.equal(req.pubkey, getPublicKey(sk))
    assert.deepEqual(req.tags, [['a', `30312:${PK}:${D}`], ['p', getPublicKey(botSk)], ['action', 'restart']])
    assert.equal(req.content, 'audio froze')
  } finally {
    await relay.close()
  }
})

test('restart: a forged answer (bad signature) is not taken; alone it is an InvalidAnswerError', async () => {
  const botSk = generateSecretKey()
  const relay = await botAnswering(botSk, () => ({ result_type: 'restart', result: RESULT }), { forged: true, valid: false })
  try {
    await assert.rejects(
      restart(`30312:${PK}:${D}`, { signer: generateSecretKey(), bot: getPublicKey(botSk), relays: [relay.url], timeout: 1500 }),
      err => err instanceof InvalidAnswerError && err.code === 'INVALID_ANSWER' && /bad signature/.test(err.message),
    )
  } finally {
    await relay.close()
  }
})

test('restart: an answer for another request (e tag) is not taken', async () => {
  const botSk = generateSecretKey()
  const relay = await botAnswering(botSk, () => ({ result_type: 'restart', result: RESULT }), { tampered: true, valid: false })
  try {
    await assert.rejects(
      restart(`30312:${PK}:${D}`, { signer: generateSecretKey(), bot: getPublicKey(botSk), relays: [relay.url], timeout: 1500 }),
      err => err instanceof InvalidAnswerError,
    )
  } finally {
    await relay.close()
  }
})

test('restart: a valid answer after a forged one is still found', async () => {
  const botSk = generateSecretKey()
  const relay = await botAnswering(botSk, () => ({ result_type: 'restart', result: RESULT }), { forged: true, tampered: true })
  try {
    const got = await restart(`30312:${PK}:${D}`, { signer: generateSecretKey(), bot: getPublicKey(botSk), relays: [relay.url], timeout: 10000 })
    assert.equal(got.roomId, D)
  } finally {
    await relay.close()
  }
})

test('status: an error answer is a BotError carrying the code and message', async () => {
  const botSk = generateSecretKey()
  const relay = await botAnswering(botSk, () => ({ result_type: 'status', error: { code: 'UNAUTHORIZED', message: 'only the room\'s host or an admin may restart room x' } }))
  try {
    await assert.rejects(
      status(NADDR, { signer: generateSecretKey(), bot: getPublicKey(botSk), relays: [relay.url], timeout: 10000 }),
      err => err instanceof BotError && err.code === 'UNAUTHORIZED' && /host or an admin/.test(err.message),
    )
    assert.deepEqual(relay.received[0].tags[0], ['a', `30312:${PK}:${D}`, 'wss://relay.example.com'], 'the naddr hint rides in the a tag')
  } finally {
    await relay.close()
  }
})

test('restart: silence is a TimeoutError, not a BotError', async () => {
  const relay = await botAnswering(generateSecretKey(), () => null)
  try {
    await assert.rejects(
      restart(`30312:${PK}:${D}`, { signer: generateSecretKey(), bot: getPublicKey(generateSecretKey()), relays: [relay.url], timeout: 800 }),
      err => err instanceof TimeoutError && err.code === 'TIMEOUT' && /did not answer within 800 ms/.test(err.message) && /^[0-9a-f]{64}$/.test(err.requestId),
    )
  } finally {
    await relay.close()
  }
})

test('restart: a NIP-07 signer decrypts through its own nip44; one without nip44 is told so', async () => {
  const botSk = generateSecretKey()
  const relay = await botAnswering(botSk, () => ({ result_type: 'restart', result: RESULT }))
  try {
    const local = toSigner(generateSecretKey())
    let decrypts = 0
    const nip07 = {
      getPublicKey: () => local.getPublicKey(),
      signEvent: t => local.signEvent(t),
      nip44: { encrypt: local.nip44.encrypt, decrypt: (p, c) => { decrypts++; return local.nip44.decrypt(p, c) } },
    }
    assert.equal((await restart(`30312:${PK}:${D}`, { signer: nip07, bot: getPublicKey(botSk), relays: [relay.url], timeout: 10000 })).roomId, D)
    assert.equal(decrypts, 1)
    const bare = { getPublicKey: nip07.getPublicKey, signEvent: nip07.signEvent }
    await assert.rejects(
      restart(`30312:${PK}:${D}`, { signer: bare, bot: getPublicKey(botSk), relays: [relay.url], timeout: 10000 }),
      err => err instanceof InputError && /nip44/.test(err.message),
    )
  } finally {
    await relay.close()
  }
})

test('restart: the bot\'s relays come from its kind 10002 on the room\'s hint', async () => {
  const botSk = generateSecretKey()
  const answering = await botAnswering(botSk, () => ({ result_type: 'restart', result: RESULT }))
  const list = finalizeEvent({ kind: 10002, created_at: 1, tags: [['r', answering.url], ['r', 'wss://write-only.example', 'write']], content: '' }, botSk)
  const directory = await startFakeRelay({ stored: [list] })
  try {
    const naddr = nip19.naddrEncode({ kind: 30312, pubkey: PK, identifier: D, relays: [directory.url] })
    const got = await restart(naddr, { signer: generateSecretKey(), bot: getPublicKey(botSk), lookupRelays: [], timeout: 10000 })
    assert.equal(got.roomId, D)
    assert.equal(answering.received.length, 1, 'the request went to the relay the 10002 names')
    assert.equal(directory.received.length, 0, 'not to the directory relay')
    await assert.rejects(
      restart(`30312:${PK}:${D}`, { signer: generateSecretKey(), bot: getPublicKey(botSk), lookupRelays: [answering.url], lookupTimeout: 2000, timeout: 10000 }),
      err => err instanceof NestbotError && err.code === 'NO_RELAYS',
    )
  } finally {
    await answering.close()
    await directory.close()
  }
})

test('adopt: refuses an answer without a template, signs and publishes one with it', async () => {
  await assert.rejects(adopt(RESULT, { signer: generateSecretKey(), relays: ['ws://127.0.0.1:1'] }), err => err instanceof InputError && /no template/.test(err.message))
  const relay = await startFakeRelay()
  try {
    const sk = generateSecretKey()
    const template = { kind: 30312, created_at: 1760000001, tags: [['d', 'new-id'], ['title', 'Friday Nest'], ['relays', relay.url]], content: '' }
    const got = await adopt({ ...RESULT, roomId: 'new-id', isNewRoom: true, template }, { signer: sk })
    assert.equal(got.event.pubkey, getPublicKey(sk))
    assert.deepEqual(got.event.tags, template.tags)
    assert.ok(got.event.created_at >= Math.floor(Date.now() / 1000) - 5, 'signed at the signer\'s clock, not the template\'s old one')
    assert.equal(relay.received[0].id, got.event.id)
    assert.equal(nip19.decode(got.naddr).data.identifier, 'new-id')
    await assert.rejects(adopt({ roomId: 'other', template }, { signer: sk }), /template is for room new-id/)
  } finally {
    await relay.close()
  }
})

test('a Room object is checked again before it is signed', async () => {
  await assert.rejects(
    restart({ coordinate: `30311:${PK}:${D}`, relays: [] }, { signer: generateSecretKey(), bot: PK, relays: ['ws://127.0.0.1:1'], timeout: 1000 }),
    err => err instanceof InputError && /kind 30311/.test(err.message),
  )
})
