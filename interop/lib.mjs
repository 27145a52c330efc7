// Shared helpers for the interop CLIs. Every CLI reads ONE JSON object on
// stdin and writes ONE JSON object on stdout: exit 0 on success, exit 1 with
// {"error": "..."} on failure.
import WebSocket from 'ws'
import { finalizeEvent, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { useWebSocketImplementation } from 'nostr-tools/pool'
import * as nip44 from 'nostr-tools/nip44'
import { hexToBytes } from 'nostr-tools/utils'

useWebSocketImplementation(WebSocket) // Node 20 has no global WebSocket

const HEX64 = /^[0-9a-f]{64}$/

export function hex64(value, name) {
  if (typeof value !== 'string' || !HEX64.test(value)) throw new Error(`${name} must be 64 lowercase hex characters`)
  return value
}

// secretKey parses a hex secret key into the bytes nostr-tools wants.
export function secretKey(hex, name = 'sk') {
  return hexToBytes(hex64(hex, name))
}

export function now() {
  return Math.floor(Date.now() / 1000)
}

export function tagValue(event, name) {
  const tag = (event.tags || []).find(t => t[0] === name)
  return tag ? tag[1] : undefined
}

// cleanCopy drops nostr-tools' cached "verified" symbol so verifyEvent really
// recomputes the id and checks the signature.
export function verifyFresh(event) {
  try {
    return verifyEvent(JSON.parse(JSON.stringify(event)))
  } catch {
    return false
  }
}

export function conversationKey(skBytes, peerHex) {
  return nip44.v2.utils.getConversationKey(skBytes, hex64(peerHex, 'peer'))
}

// buildRequest signs a nestbot restart request (kind 4312 by default).
// Tag order: a, p, action, expiration (only when given).
export function buildRequest(input) {
  const sk = secretKey(input.sk)
  const botPubkey = hex64(input.botPubkey, 'botPubkey')
  if (typeof input.coord !== 'string' || !/^30312:[0-9a-f]{64}:.+$/.test(input.coord)) {
    throw new Error('coord must be "30312:<hex pubkey>:<d>"')
  }
  const tags = [input.relayHint ? ['a', input.coord, input.relayHint] : ['a', input.coord]]
  tags.push(['p', botPubkey])
  tags.push(['action', input.action ?? 'restart'])
  if (input.expiration !== undefined && input.expiration !== null) tags.push(['expiration', String(input.expiration)])
  return finalizeEvent({
    kind: input.kind ?? 4312,
    created_at: input.createdAt ?? now(),
    tags,
    content: input.reason ?? '',
  }, sk)
}

// readResponse checks a bot response addressed to the holder of skHex and
// decrypts its NIP-44 v2 content from the event's author.
export function readResponse(skHex, event) {
  const sk = secretKey(skHex)
  if (!event || typeof event !== 'object') throw new Error('event must be an object')
  const me = getPublicKey(sk)
  const problems = []
  if (!verifyFresh(event)) problems.push('bad id or signature')
  const pTags = (event.tags || []).filter(t => t[0] === 'p').map(t => t[1])
  if (!pTags.includes(me)) problems.push(`no p tag for requester ${me}`)
  const requestId = tagValue(event, 'e') ?? null
  if (!requestId) problems.push('no e tag')
  const exp = tagValue(event, 'expiration')
  let payload = null
  try {
    payload = JSON.parse(nip44.v2.decrypt(event.content, conversationKey(sk, event.pubkey)))
  } catch (err) {
    problems.push(`cannot decrypt or parse content: ${err.message}`)
  }
  return {
    valid: problems.length === 0,
    problems,
    requestId,
    a: tagValue(event, 'a') ?? null,
    encryption: tagValue(event, 'encryption') ?? null,
    expiration: exp === undefined ? null : Number(exp),
    payload,
  }
}

// Signer for NIP-42 AUTH, in case a test relay gates reads or writes.
export function authSigner(sk) {
  return template => finalizeEvent(template, sk)
}

function emit(obj, code) {
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code))
}

// main runs fn(input) with the stdin JSON object and prints its result.
export async function main(fn) {
  try {
    let text = ''
    for await (const chunk of process.stdin) text += chunk
    let input
    try {
      input = JSON.parse(text)
    } catch {
      throw new Error('stdin is not valid JSON')
    }
    if (!input || typeof input !== 'object' || Array.isArray(input)) throw new Error('stdin must be one JSON object')
    emit(await fn(input), 0)
  } catch (err) {
    emit({ error: err?.message ?? String(err) }, 1)
  }
}
