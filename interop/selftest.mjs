// selftest: the offline checks of every CLI, run as real subprocesses.
// Run: node interop/selftest.mjs (node:test; exit code non-zero on failure).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { finalizeEvent, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import * as nip17 from 'nostr-tools/nip17'
import * as nip19 from 'nostr-tools/nip19'
import * as nip44 from 'nostr-tools/nip44'
import { bytesToHex } from 'nostr-tools/utils'

const dir = dirname(fileURLToPath(import.meta.url))

// run feeds one JSON value (or raw text) to a CLI and returns its exit code and JSON output.
function run(script, input) {
  const r = spawnSync(process.execPath, [join(dir, script)], {
    input: typeof input === 'string' ? input : JSON.stringify(input), encoding: 'utf8', timeout: 20000,
  })
  const lines = r.stdout.trim().split('\n')
  assert.equal(lines.length, 1, `${script} must print exactly one line, got: ${r.stdout}${r.stderr}`)
  return { code: r.status, out: JSON.parse(lines[0]) }
}
function ok(script, input) {
  const { code, out } = run(script, input)
  assert.equal(code, 0, `${script} failed: ${JSON.stringify(out)}`)
  return out
}
function fails(script, input, pattern) {
  const { code, out } = run(script, input)
  assert.equal(code, 1)
  assert.equal(typeof out.error, 'string')
  if (pattern) assert.match(out.error, pattern)
}

const key = () => ok('keygen.mjs', {})
const D = '550e8400-e29b-41d4-a716-446655440000'

test('keygen gives hex and matching NIP-19 keys', () => {
  const k = key()
  assert.match(k.sk, /^[0-9a-f]{64}$/)
  assert.equal(getPublicKey(nip19.decode(k.nsec).data), k.pk)
  assert.equal(nip19.decode(k.npub).data, k.pk)
  assert.equal(bytesToHex(nip19.decode(k.nsec).data), k.sk)
})

test('sign-request: defaults, tag order, signature', () => {
  const user = key(), bot = key()
  const coord = `30312:${user.pk}:${D}`
  const ev = ok('sign-request.mjs', { sk: user.sk, botPubkey: bot.pk, coord })
  assert.equal(ev.kind, 4312)
  assert.equal(ev.pubkey, user.pk)
  assert.equal(ev.content, '')
  assert.deepEqual(ev.tags, [['a', coord], ['p', bot.pk], ['action', 'restart']])
  assert.ok(Math.abs(ev.created_at - Date.now() / 1000) < 60)
  assert.ok(verifyEvent(ev))
})

test('sign-request: every option', () => {
  const user = key(), bot = key()
  const coord = `30312:${user.pk}:${D}`
  const ev = ok('sign-request.mjs', {
    sk: user.sk, botPubkey: bot.pk, coord, relayHint: 'ws://127.0.0.1:7777', reason: 'stuck audio',
    createdAt: 1700000000, expiration: 1700000060, action: 'restart', kind: 4314,
  })
  assert.equal(ev.kind, 4314)
  assert.equal(ev.created_at, 1700000000)
  assert.equal(ev.content, 'stuck audio')
  assert.deepEqual(ev.tags, [['a', coord, 'ws://127.0.0.1:7777'], ['p', bot.pk], ['action', 'restart'], ['expiration', '1700000060']])
  assert.ok(verifyEvent(ev))
})

test('sign-request rejects bad input', () => {
  const user = key()
  fails('sign-request.mjs', { sk: user.sk, botPubkey: 'xyz', coord: `30312:${user.pk}:${D}` }, /botPubkey/)
  fails('sign-request.mjs', { sk: user.sk, botPubkey: user.pk, coord: '1:2:3' }, /coord/)
  fails('sign-request.mjs', 'not json', /JSON/)
  fails('sign-request.mjs', '[1]', /object/)
})

test('nip44: CLI roundtrip both ways and the NIP-44 spec vector', () => {
  const a = key(), b = key()
  const plaintext = 'héllo 🌍 ' + 'x'.repeat(500)
  const { ciphertext } = ok('nip44.mjs', { op: 'encrypt', sk: a.sk, peer: b.pk, plaintext })
  assert.equal(ok('nip44.mjs', { op: 'decrypt', sk: b.sk, peer: a.pk, ciphertext }).plaintext, plaintext)
  // And against nostr-tools used directly.
  const direct = nip44.v2.encrypt('from lib', nip44.v2.utils.getConversationKey(skBytes(b.sk), a.pk))
  assert.equal(ok('nip44.mjs', { op: 'decrypt', sk: a.sk, peer: b.pk, ciphertext: direct }).plaintext, 'from lib')
  // First encrypt_decrypt vector of nip44.vectors.json (sec1=1, sec2=2, nonce=1, "a").
  const one = '0'.repeat(63) + '1'
  const vec = ok('nip44.mjs', {
    op: 'encrypt', sk: one, peer: 'c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5', plaintext: 'a', nonce: one,
  })
  assert.equal(vec.ciphertext, 'AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABee0G5VSK0/9YypIObAtDKfYEAjD35uVkHyB0F4DwrcNaCXlCWZKaArsGrY6M9wnuTMxWfp1RTN9Xga8no+kF5Vsb')
  fails('nip44.mjs', { op: 'decrypt', sk: a.sk, peer: key().pk, ciphertext }, /MAC/)
  fails('nip44.mjs', { op: 'sign', sk: a.sk, peer: b.pk }, /op/)
})

function skBytes(hex) {
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

// botResponse plays the bot with nostr-tools directly, answering a request.
function botResponse(botSk, request, payload, extraTags = []) {
  const sk = skBytes(botSk)
  const content = nip44.v2.encrypt(JSON.stringify(payload), nip44.v2.utils.getConversationKey(sk, request.pubkey))
  return finalizeEvent({
    kind: 4313, created_at: Math.floor(Date.now() / 1000), content,
    tags: [['p', request.pubkey], ['e', request.id], ['a', request.tags[0][1]], ['encryption', 'nip44_v2'], ...extraTags],
  }, sk)
}

test('sign-request → bot response → verify-response', () => {
  const user = key(), bot = key()
  const request = ok('sign-request.mjs', { sk: user.sk, botPubkey: bot.pk, coord: `30312:${user.pk}:${D}` })
  const payload = { result_type: 'restart', error: null, result: { roomId: D, token: 'secret-token' } }
  const response = botResponse(bot.sk, request, payload, [['expiration', '1900000000']])
  const out = ok('verify-response.mjs', { sk: user.sk, event: response })
  assert.deepEqual(out, {
    valid: true, problems: [], requestId: request.id, a: `30312:${user.pk}:${D}`,
    encryption: 'nip44_v2', expiration: 1900000000, payload,
  })
})

test('verify-response flags forged, misaddressed and unreadable responses', () => {
  const user = key(), bot = key(), other = key()
  const request = ok('sign-request.mjs', { sk: user.sk, botPubkey: bot.pk, coord: `30312:${user.pk}:${D}` })
  const response = botResponse(bot.sk, request, { result_type: 'restart', error: null, result: {} })
  const tampered = { ...response, tags: response.tags.map(t => t[0] === 'e' ? ['e', '0'.repeat(64)] : t) }
  let out = ok('verify-response.mjs', { sk: user.sk, event: tampered })
  assert.equal(out.valid, false)
  assert.deepEqual(out.problems, ['bad id or signature'])
  out = ok('verify-response.mjs', { sk: other.sk, event: response })
  assert.equal(out.valid, false)
  assert.equal(out.payload, null)
  assert.equal(out.expiration, null)
  const notJson = finalizeEvent({ ...response, content: nip44.v2.encrypt('nope', nip44.v2.utils.getConversationKey(skBytes(bot.sk), user.pk)) }, skBytes(bot.sk))
  out = ok('verify-response.mjs', { sk: user.sk, event: notJson })
  assert.equal(out.valid, false)
  assert.match(out.problems[0], /parse/)
  fails('verify-response.mjs', { sk: user.sk }, /event/)
})

test('dm: nip17 wrap → unwrap, and interop with nip17.wrapEvent', () => {
  const a = key(), b = key()
  const { wrap, rumorId } = ok('dm.mjs', { op: 'nip17-wrap', sk: a.sk, recipient: b.pk, message: 'hi bot', relayHint: 'ws://127.0.0.1:7777' })
  assert.equal(wrap.kind, 1059)
  assert.notEqual(wrap.pubkey, a.pk)
  assert.deepEqual(wrap.tags, [['p', b.pk]])
  assert.ok(verifyEvent(wrap))
  const out = ok('dm.mjs', { op: 'nip17-unwrap', sk: b.sk, wrap })
  assert.equal(out.rumor.id, rumorId)
  assert.equal(out.rumor.kind, 14)
  assert.equal(out.rumor.content, 'hi bot')
  assert.equal(out.rumor.pubkey, a.pk)
  assert.deepEqual(out.rumor.tags, [['p', b.pk, 'ws://127.0.0.1:7777']])
  assert.equal(out.sealPubkey, a.pk)
  assert.equal(out.wrapValid, true)
  assert.equal(out.rumorIdValid, true)
  // Our wrap opens with nostr-tools' own nip17.unwrapEvent, and theirs with our CLI.
  assert.equal(nip17.unwrapEvent(wrap, skBytes(b.sk)).id, rumorId)
  const theirs = nip17.wrapEvent(skBytes(b.sk), { publicKey: a.pk }, 'reply')
  assert.equal(ok('dm.mjs', { op: 'nip17-unwrap', sk: a.sk, wrap: theirs }).rumor.content, 'reply')
  fails('dm.mjs', { op: 'nip17-unwrap', sk: key().sk, wrap }, /MAC/)
})

test('dm: nip04 encrypt → decrypt by either side', () => {
  const a = key(), b = key()
  const ev = ok('dm.mjs', { op: 'nip04-encrypt', sk: a.sk, recipient: b.pk, message: 'old school' })
  assert.equal(ev.kind, 4)
  assert.equal(ev.pubkey, a.pk)
  assert.deepEqual(ev.tags, [['p', b.pk]])
  assert.ok(verifyEvent(ev))
  assert.equal(ok('dm.mjs', { op: 'nip04-decrypt', sk: b.sk, event: ev }).plaintext, 'old school')
  assert.equal(ok('dm.mjs', { op: 'nip04-decrypt', sk: a.sk, event: ev }).plaintext, 'old school')
  fails('dm.mjs', { op: 'nope', sk: a.sk }, /op/)
})

test('relay CLIs fail cleanly without a relay', () => {
  const user = key(), bot = key()
  const base = { sk: user.sk, botPubkey: bot.pk, coord: `30312:${user.pk}:${D}`, timeoutMs: 3000 }
  fails('client-restart.mjs', { ...base, relays: [] }, /relays/)
  fails('client-restart.mjs', { ...base, relays: ['ws://127.0.0.1:1'] }, /no relay accepted/)
  fails('dm.mjs', { op: 'send-and-wait', sk: user.sk, recipient: bot.pk, relays: ['ws://127.0.0.1:1'], message: 'x', protocol: 'nip17', timeoutMs: 3000 }, /no relay accepted/)
  fails('dm.mjs', { op: 'send-and-wait', sk: user.sk, recipient: bot.pk, relays: ['ws://127.0.0.1:1'], message: 'x', protocol: 'smoke' }, /protocol/)
})
