// @nestbot/client: ask nestbot to restart or check a Nostr audio room
// (NIP-53 kind 30312 on LiveKit) and take a recreated room back, with the
// user's own signer. The wire contract is docs/protocol.md in the nestbot
// repository: a signed kind 4312 request, a NIP-44 v2 encrypted kind 4313
// answer. nostr-tools is the only dependency; it runs in browsers and in
// Node 20+ (call useWebSocketImplementation from 'nostr-tools/pool' with the
// `ws` package first on Node 20, which has no global WebSocket).

import { finalizeEvent, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { SimplePool } from 'nostr-tools/pool'
import * as nip19 from 'nostr-tools/nip19'
import * as nip44 from 'nostr-tools/nip44'
import { hexToBytes } from 'nostr-tools/utils'

/** Kind of the request (the Nests admin-command kind). */
export const REQUEST_KIND = 4312
/** Kind of the bot's encrypted answer. */
export const RESPONSE_KIND = 4313
/** NIP-53 interactive room. */
export const ROOM_KIND = 30312
/** NIP-65 relay list, where the bot names its relays. */
export const RELAY_LIST_KIND = 10002

/** The closed set of error codes the bot answers with (docs/protocol.md, Errors). */
export const BOT_CODES = Object.freeze(['BAD_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND', 'RATE_LIMITED', 'NOT_IMPLEMENTED', 'UNAVAILABLE', 'INTERNAL'])

/** Relays asked for the bot's kind 10002 when neither `relays` nor `lookupRelays` is given (besides the room's own hints). */
export const DEFAULT_LOOKUP_RELAYS = Object.freeze(['wss://purplepag.es', 'wss://relay.damus.io', 'wss://nos.lol'])

const DEFAULT_TIMEOUT_MS = 30_000
const DEFAULT_LOOKUP_TIMEOUT_MS = 5_000
const MAX_REASON_BYTES = 1024
const MAX_RELAYS = 10
const HEX64 = /^[0-9a-f]{64}$/
const D_PATTERN = /^[A-Za-z0-9._-]{1,128}$/

// --- errors ----------------------------------------------------------------

/**
 * Base class of every error this library throws. `code` is one of the bot's
 * codes (BOT_CODES) for a refusal, else one of this library's own:
 * TIMEOUT, INVALID_ANSWER, NOT_PUBLISHED, BAD_INPUT, NO_RELAYS, ABORTED.
 */
export class NestbotError extends Error {
  /** @param {string} code @param {string} message @param {Record<string, unknown>} [details] */
  constructor(code, message, details = {}) {
    super(message)
    this.name = 'NestbotError'
    /** @type {string} */
    this.code = code
    Object.assign(this, details)
  }
}

/** The bot answered with an error: `code` is in BOT_CODES, `message` is the bot's own sentence, to be shown as is. */
export class BotError extends NestbotError {
  constructor(code, message, details) {
    super(code, message, details)
    this.name = 'BotError'
  }
}

/** No answer from the bot before the timeout. `phase` says what was awaited; `requestId` names the request. */
export class TimeoutError extends NestbotError {
  constructor(message, details) {
    super('TIMEOUT', message, details)
    this.name = 'TimeoutError'
  }
}

/** Something answered, but not validly: a bad signature, another request's `e` tag, content that does not decrypt. `problems` lists why. */
export class InvalidAnswerError extends NestbotError {
  constructor(message, details) {
    super('INVALID_ANSWER', message, details)
    this.name = 'InvalidAnswerError'
  }
}

/** No relay accepted an event; `published` has each relay's reply. */
export class PublishError extends NestbotError {
  constructor(message, details) {
    super('NOT_PUBLISHED', message, details)
    this.name = 'PublishError'
  }
}

/** The caller's input is unusable: a room address, a key, a signer, a template. */
export class InputError extends NestbotError {
  constructor(message, details) {
    super('BAD_INPUT', message, details)
    this.name = 'InputError'
  }
}

// --- rooms -----------------------------------------------------------------

/**
 * @typedef {object} Room
 * @property {number} kind always 30312
 * @property {string} pubkey the room author's 64-hex pubkey
 * @property {string} identifier the room's `d`
 * @property {string[]} relays ws:// or wss:// hints from a naddr, else []
 * @property {string} coordinate "30312:<pubkey>:<d>", the request's `a` value
 */

/**
 * parseRoom reads a room address as a user types it: `naddr1…`,
 * `nostr:naddr1…` (any case of the prefix), a web link whose path or
 * fragment holds one, or `30312:<64 lowercase hex>:<d>`. The same forms and
 * rules as the bot (docs/protocol.md, Room addresses).
 * @param {string} input
 * @returns {Room}
 * @throws {InputError} with a one-line reason
 */
export function parseRoom(input) {
  if (typeof input !== 'string') throw new InputError('room address must be a string')
  const s = input.trim()
  if (s === '') throw new InputError('room address is empty')
  if (s.length > 4096) throw new InputError('room address is too long')
  if (/^[0-9]/.test(s)) return parseCoordinate(s)
  const lower = s.toLowerCase()
  if (lower.startsWith('nostr:')) return parseNaddr(s, s.slice(6))
  if (lower.startsWith('naddr1')) return parseNaddr(s, s)
  let url
  try {
    url = new URL(s)
  } catch {
    url = null
  }
  if (url && (url.protocol === 'http:' || url.protocol === 'https:')) {
    const parts = (decodeURIComponent(url.pathname) + '/' + decodeURIComponent(url.hash)).split(/[/#?]/)
    for (const part of parts) {
      const p = part.toLowerCase().replace(/^nostr:/, '')
      if (p.startsWith('naddr1')) return parseNaddr(s, p)
    }
    throw new InputError('the link contains no naddr')
  }
  throw new InputError('want naddr1…, nostr:naddr1…, a link with a naddr, or 30312:<hex>:<d>')
}

function parseCoordinate(s) {
  const m = /^([0-9]+):([^:]*):(.*)$/s.exec(s)
  if (!m) throw new InputError('want 30312:<hex pubkey>:<d>')
  if (m[1] !== String(Number(m[1]))) throw new InputError('kind is not a number')
  return makeRoom(Number(m[1]), m[2], m[3], [])
}

function parseNaddr(input, code) {
  let decoded
  try {
    decoded = nip19.decode(code.toLowerCase())
  } catch (err) {
    throw new InputError(`not a valid naddr: ${err?.message ?? err}`)
  }
  if (decoded.type !== 'naddr') throw new InputError(`not a naddr but a ${decoded.type}`)
  const relays = (decoded.data.relays ?? []).filter(isRelayURL)
  return makeRoom(decoded.data.kind, decoded.data.pubkey, decoded.data.identifier, relays)
}

function makeRoom(kind, pubkey, identifier, relays) {
  if (kind !== ROOM_KIND) throw new InputError(`kind ${kind} is not a room (30312)`)
  if (typeof pubkey !== 'string' || !HEX64.test(pubkey)) throw new InputError('author is not a 64-character lowercase hex pubkey')
  if (typeof identifier !== 'string' || !D_PATTERN.test(identifier)) throw new InputError('d must be 1-128 characters of A-Z a-z 0-9 . _ -')
  return { kind, pubkey, identifier, relays, coordinate: `${kind}:${pubkey}:${identifier}` }
}

/**
 * roomNaddr encodes a room as NIP-19 naddr with up to 3 relay hints.
 * @param {{pubkey: string, identifier: string}} room
 * @param {string[]} [relays]
 * @returns {string}
 */
export function roomNaddr(room, relays = []) {
  return nip19.naddrEncode({ kind: ROOM_KIND, pubkey: room.pubkey, identifier: room.identifier, relays: relays.filter(isRelayURL).slice(0, 3) })
}

/** @param {unknown} s @returns {boolean} whether s is a ws:// or wss:// URL with a host */
export function isRelayURL(s) {
  if (typeof s !== 'string' || s.length > 512) return false
  try {
    const u = new URL(s)
    return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.hostname !== ''
  } catch {
    return false
  }
}

/**
 * parsePubkey reads a pubkey as 64 hex characters (any case) or npub1….
 * @param {string} s
 * @returns {string} lowercase hex
 * @throws {InputError}
 */
export function parsePubkey(s) {
  if (typeof s !== 'string') throw new InputError('bot pubkey must be a string')
  const t = s.trim().replace(/^nostr:/i, '')
  if (t.startsWith('npub1')) {
    try {
      const d = nip19.decode(t)
      if (d.type === 'npub') return d.data
    } catch {
      // fall through to the error below
    }
    throw new InputError('bot pubkey is not a valid npub')
  }
  if (HEX64.test(t.toLowerCase())) return t.toLowerCase()
  throw new InputError('bot pubkey must be 64 hex characters or an npub')
}

/**
 * toNpub renders a 64-hex pubkey as NIP-19 npub1… for people to read.
 * @param {string} hex
 * @returns {string}
 */
export function toNpub(hex) {
  return nip19.npubEncode(parsePubkey(hex))
}

// --- signers ---------------------------------------------------------------

/**
 * @typedef {object} Signer a NIP-07 signer (`window.nostr`) or the same shape built from a secret key
 * @property {() => Promise<string>} getPublicKey
 * @property {(template: {kind: number, created_at: number, tags: string[][], content: string}) => Promise<import('nostr-tools/pure').Event>} signEvent
 * @property {{encrypt: (pubkey: string, plaintext: string) => Promise<string>, decrypt: (pubkey: string, ciphertext: string) => Promise<string>}} [nip44]
 */

/**
 * toSigner turns what the caller holds into a Signer: a NIP-07 object is
 * used as is; a secret key (64 hex characters, nsec1…, or 32 bytes) becomes
 * a local signer that also offers nip44.
 * @param {Signer | string | Uint8Array} s
 * @returns {Signer}
 * @throws {InputError}
 */
export function toSigner(s) {
  if (s && typeof s === 'object' && !(s instanceof Uint8Array)) {
    if (typeof s.getPublicKey !== 'function' || typeof s.signEvent !== 'function') {
      throw new InputError('signer must offer getPublicKey and signEvent (NIP-07), or be a secret key')
    }
    return s
  }
  const sk = secretKeyBytes(s)
  const pk = getPublicKey(sk)
  const keys = new Map()
  const conv = peer => {
    if (!keys.has(peer)) keys.set(peer, nip44.v2.utils.getConversationKey(sk, peer))
    return keys.get(peer)
  }
  return {
    getPublicKey: async () => pk,
    signEvent: async template => finalizeEvent({ ...template }, sk),
    nip44: {
      encrypt: async (peer, plaintext) => nip44.v2.encrypt(plaintext, conv(peer)),
      decrypt: async (peer, ciphertext) => nip44.v2.decrypt(ciphertext, conv(peer)),
    },
  }
}

function secretKeyBytes(s) {
  if (s instanceof Uint8Array) {
    if (s.length !== 32) throw new InputError('secret key must be 32 bytes')
    return s
  }
  if (typeof s !== 'string') throw new InputError('signer must be a NIP-07 object or a secret key (hex, nsec or bytes)')
  const t = s.trim()
  if (t.startsWith('nsec1')) {
    try {
      const d = nip19.decode(t)
      if (d.type === 'nsec') return d.data
    } catch {
      // fall through
    }
    throw new InputError('secret key is not a valid nsec')
  }
  if (HEX64.test(t.toLowerCase())) return hexToBytes(t.toLowerCase())
  throw new InputError('secret key must be 64 hex characters, an nsec or 32 bytes')
}

// --- the exchange ------------------------------------------------------------

/**
 * @typedef {object} AskOptions
 * @property {Signer | string | Uint8Array} signer NIP-07 object (window.nostr) or the requester's secret key
 * @property {string} bot the bot's pubkey, hex or npub
 * @property {string[]} [relays] the bot's relays; default: read from the bot's kind 10002
 * @property {string[]} [lookupRelays] where to look for the bot's kind 10002, besides the room's hints; default DEFAULT_LOOKUP_RELAYS
 * @property {number} [timeout] milliseconds to wait for the answer once the request is signed; default 30000
 * @property {number} [lookupTimeout] milliseconds for the kind 10002 look-up; default 5000
 * @property {string} [reason] free text for humans, at most 1024 UTF-8 bytes (it is public)
 * @property {AbortSignal} [signal] gives up early, with code ABORTED
 * @property {(step: string) => void} [onProgress] told 'relays', 'signing', 'subscribing', 'publishing', 'waiting', 'decrypting'
 * @property {import('nostr-tools/pool').SimplePool} [pool] a pool to reuse; by default one of its own, closed afterwards
 */

/**
 * @typedef {object} Exchange one request and its answer
 * @property {import('nostr-tools/pure').Event} request the signed kind 4312
 * @property {import('nostr-tools/pure').Event} response the bot's kind 4313
 * @property {{result_type: string, result?: any, error?: {code: string, message: string}}} payload the decrypted answer
 * @property {string[]} relays where the request went
 */

/**
 * restart asks the bot to restart a room. Resolves with the bot's restart
 * result: `{roomId, endpoints, token, message, isNewRoom, originalRoomId?,
 * naddr, event?, template?}` (docs/protocol.md). When `isNewRoom` and
 * `template` is present, pass the result to adopt() to take the room back.
 * @param {string} room any address parseRoom accepts
 * @param {AskOptions} opts
 * @returns {Promise<Record<string, any>>}
 * @throws {BotError | TimeoutError | InvalidAnswerError | PublishError | InputError | NestbotError}
 */
export async function restart(room, opts) {
  return (await ask(room, 'restart', opts)).payload.result
}

/**
 * status asks the bot how a room is. Resolves with `{roomId, live,
 * participants, record, restartedAt?, naddr}`; changes nothing.
 * @param {string} room
 * @param {AskOptions} opts
 * @returns {Promise<Record<string, any>>}
 */
export async function status(room, opts) {
  return (await ask(room, 'status', opts)).payload.result
}

/**
 * ask runs one exchange: it signs the kind 4312 for `action`, subscribes for
 * the answer, publishes, waits, checks the answer (the bot's signature, its
 * `e` tag names this request, its `p` tag names the requester), decrypts it
 * with NIP-44 (through the signer's nip44 when it offers one) and throws a
 * BotError when the bot refused.
 * @param {string} room
 * @param {'restart' | 'status' | string} action
 * @param {AskOptions} opts
 * @returns {Promise<Exchange>}
 */
export async function ask(room, action, opts = /** @type {AskOptions} */ ({})) {
  // A Room from parseRoom is checked again: its coordinate is what is signed.
  const coord = room && typeof room === 'object'
    ? { ...parseRoom(String(room.coordinate)), relays: (Array.isArray(room.relays) ? room.relays : []).filter(isRelayURL) }
    : parseRoom(room)
  const signer = toSigner(opts.signer)
  const bot = parsePubkey(opts.bot)
  const reason = opts.reason ?? ''
  if (typeof reason !== 'string' || new TextEncoder().encode(reason).length > MAX_REASON_BYTES) {
    throw new InputError(`reason must be a string of at most ${MAX_REASON_BYTES} bytes`)
  }
  const timeout = positive(opts.timeout, DEFAULT_TIMEOUT_MS, 'timeout')
  const progress = typeof opts.onProgress === 'function' ? opts.onProgress : () => {}
  const ownPool = !opts.pool
  const pool = opts.pool ?? new SimplePool()
  let sub
  let timerHandle
  try {
    throwIfAborted(opts.signal)
    let relays = opts.relays
    if (relays === undefined) {
      progress('relays')
      relays = await botRelays(bot, {
        pool,
        lookupRelays: [...coord.relays, ...(opts.lookupRelays ?? DEFAULT_LOOKUP_RELAYS)],
        timeout: positive(opts.lookupTimeout, DEFAULT_LOOKUP_TIMEOUT_MS, 'lookupTimeout'),
        signal: opts.signal,
      })
    }
    relays = cleanRelays(relays)
    if (relays.length === 0) throw new InputError('relays must name at least one ws:// or wss:// relay')

    progress('signing')
    const me = await signer.getPublicKey()
    if (typeof me !== 'string' || !HEX64.test(me)) throw new InputError('signer returned a pubkey that is not 64 lowercase hex')
    const aTag = coord.relays.length ? ['a', coord.coordinate, coord.relays[0]] : ['a', coord.coordinate]
    const request = await signer.signEvent({
      kind: REQUEST_KIND,
      created_at: Math.floor(Date.now() / 1000),
      tags: [aTag, ['p', bot], ['action', action]],
      content: reason,
    })
    if (!request || request.pubkey !== me || !verifyEvent(copy(request))) {
      throw new InputError('signer returned an event that is not validly signed by its own pubkey')
    }
    throwIfAborted(opts.signal)

    // From here on the clock runs: subscribe first, so that a fast answer is
    // never missed, then publish, then wait.
    const deadline = Date.now() + timeout
    const problems = []
    let phase = 'subscribing'
    let resolveAnswer, resolveReady
    const answer = new Promise(resolve => { resolveAnswer = resolve })
    const ready = new Promise(resolve => { resolveReady = resolve })
    progress('subscribing')
    sub = pool.subscribe(relays, { kinds: [RESPONSE_KIND], authors: [bot], '#p': [me], '#e': [request.id] }, {
      oneose: () => resolveReady(),
      onclose: () => resolveReady(),
      oninvalidevent: event => problems.push(`an event ${short(event?.id)} with a bad signature or outside the filter`),
      onevent: event => {
        const why = answerProblem(event, bot, me, request.id)
        if (why) problems.push(why)
        else resolveAnswer(event)
      },
      onauth: template => signer.signEvent(template),
    })
    // The pool counts a relay that cannot be reached as closed, and calls
    // oneose once every relay has sent EOSE or closed; the deadline covers
    // a relay that does neither.

    const timer = new Promise((_, reject) => {
      timerHandle = setTimeout(() => {
        if (problems.length) reject(new InvalidAnswerError(`no valid answer within ${timeout} ms: ${problems.join('; ')}`, { problems, requestId: request.id }))
        else reject(new TimeoutError(`the bot did not answer within ${timeout} ms (${phase})`, { phase, requestId: request.id, timeout }))
      }, Math.max(0, deadline - Date.now()))
    })
    timer.catch(() => {})
    const aborted = abortPromise(opts.signal)

    await Promise.race([ready, timer, aborted])
    phase = 'publishing'
    progress('publishing')
    const settled = await Promise.race([Promise.allSettled(pool.publish(relays, request, { onauth: t => signer.signEvent(t) })), timer, aborted])
    const published = settled.map((r, i) => ({
      relay: relays[i],
      ok: r.status === 'fulfilled',
      message: String(r.status === 'fulfilled' ? r.value : r.reason?.message ?? r.reason),
    }))
    if (!published.some(p => p.ok)) {
      throw new PublishError(`no relay accepted the request: ${published.map(p => `${p.relay}: ${p.message}`).join('; ')}`, { published, requestId: request.id })
    }

    phase = 'waiting for the answer'
    progress('waiting')
    const response = await Promise.race([answer, timer, aborted])
    sub.close()
    sub = null
    progress('decrypting')
    let payload
    try {
      const plaintext = signer.nip44 && typeof signer.nip44.decrypt === 'function'
        ? await signer.nip44.decrypt(bot, response.content)
        : missingNip44()
      payload = JSON.parse(plaintext)
    } catch (err) {
      if (err instanceof NestbotError) throw err
      throw new InvalidAnswerError(`the answer does not decrypt to JSON: ${err?.message ?? err}`, { problems: [String(err?.message ?? err)], requestId: request.id })
    }
    const shapeProblem = payloadProblem(payload)
    if (shapeProblem) throw new InvalidAnswerError(`the answer is malformed: ${shapeProblem}`, { problems: [shapeProblem], requestId: request.id })
    if (payload.error) {
      throw new BotError(payload.error.code, payload.error.message, { requestId: request.id, resultType: payload.result_type, request, response })
    }
    return { request, response, payload, relays }
  } finally {
    clearTimeout(timerHandle)
    sub?.close()
    if (ownPool) destroyLater(pool)
  }
}

function missingNip44() {
  throw new InputError('the signer offers no nip44.decrypt: use a NIP-07 extension with NIP-44 support, or a secret key')
}

// answerProblem says why event is not the bot's answer to requestId for me, or ''.
function answerProblem(event, bot, me, requestId) {
  if (!event || typeof event !== 'object') return 'not an event'
  if (event.kind !== RESPONSE_KIND) return `event ${short(event.id)} has kind ${event.kind}, not ${RESPONSE_KIND}`
  if (event.pubkey !== bot) return `event ${short(event.id)} is not signed by the bot`
  if (!verifyEvent(copy(event))) return `event ${short(event.id)} has a bad id or signature`
  const tags = Array.isArray(event.tags) ? event.tags : []
  const e = tags.filter(t => Array.isArray(t) && t[0] === 'e').map(t => t[1])
  if (e.length !== 1 || e[0] !== requestId) return `event ${short(event.id)} answers another request (e tag ${e.map(short).join(',') || 'missing'})`
  if (!tags.some(t => Array.isArray(t) && t[0] === 'p' && t[1] === me)) return `event ${short(event.id)} is not addressed to the requester`
  if (typeof event.content !== 'string' || event.content.length > 65536) return `event ${short(event.id)} has unusable content`
  return ''
}

// payloadProblem checks the NIP-47-shaped answer: a result_type and exactly one of result and error.
function payloadProblem(p) {
  if (!p || typeof p !== 'object' || Array.isArray(p)) return 'not a JSON object'
  if (typeof p.result_type !== 'string') return 'no result_type'
  const hasResult = p.result !== undefined && p.result !== null
  const hasError = p.error !== undefined && p.error !== null
  if (hasResult === hasError) return 'want exactly one of result and error'
  if (hasError) {
    if (typeof p.error.code !== 'string' || typeof p.error.message !== 'string') return 'error without code or message'
    if (!BOT_CODES.includes(p.error.code)) return `unknown error code ${JSON.stringify(p.error.code).slice(0, 40)}`
  } else if (typeof p.result !== 'object' || Array.isArray(p.result)) return 'result is not an object'
  return ''
}

/**
 * botRelays reads the bot's relays from its newest kind 10002 (NIP-65):
 * every `r` tag without a marker or marked `read` (where it reads
 * requests), ws:// or wss:// only, at most 10.
 * @param {string} bot hex or npub
 * @param {{pool?: import('nostr-tools/pool').SimplePool, lookupRelays?: string[], timeout?: number, signal?: AbortSignal}} [opts]
 * @returns {Promise<string[]>}
 * @throws {NestbotError} code NO_RELAYS when no list is found
 */
export async function botRelays(bot, opts = {}) {
  const pk = parsePubkey(bot)
  const lookup = cleanRelays(opts.lookupRelays ?? DEFAULT_LOOKUP_RELAYS)
  if (lookup.length === 0) throw new NestbotError('NO_RELAYS', 'no relay to look up the bot\'s relay list on: pass relays')
  const pool = opts.pool ?? new SimplePool()
  try {
    const events = await Promise.race([
      pool.querySync(lookup, { kinds: [RELAY_LIST_KIND], authors: [pk] }, { maxWait: opts.timeout ?? DEFAULT_LOOKUP_TIMEOUT_MS }),
      abortPromise(opts.signal),
    ])
    const newest = events.filter(e => e.pubkey === pk && e.kind === RELAY_LIST_KIND)
      .sort((a, b) => b.created_at - a.created_at)[0]
    const relays = cleanRelays((newest?.tags ?? [])
      .filter(t => Array.isArray(t) && t[0] === 'r' && (t[2] === undefined || t[2] === '' || t[2] === 'read'))
      .map(t => t[1]))
    if (relays.length === 0) {
      throw new NestbotError('NO_RELAYS', `found no relay list (kind 10002) of the bot on ${lookup.join(', ')}: pass its relays`)
    }
    return relays
  } finally {
    if (!opts.pool) destroyLater(pool)
  }
}

// --- adoption ----------------------------------------------------------------

/**
 * adopt takes a room recreated under a new ID back into the host's hands:
 * it signs the answer's `template` (an unsigned kind 30312 the bot prepared
 * for the requester) with the signer and publishes it. The bot then closes
 * its own replacement and points at the host's event.
 * @param {Record<string, any>} answer the result restart() resolved with (or a payload holding it as `result`)
 * @param {{signer: Signer | string | Uint8Array, relays?: string[], timeout?: number}} opts relays default to the template's `relays` tag and the naddr's hints
 * @returns {Promise<{event: import('nostr-tools/pure').Event, naddr: string, published: {relay: string, ok: boolean, message: string}[]}>}
 * @throws {InputError} when the answer has no usable template; {PublishError} when no relay took it
 */
export async function adopt(answer, opts = /** @type {any} */ ({})) {
  const result = answer && typeof answer === 'object' && answer.result && typeof answer.result === 'object' ? answer.result : answer
  const template = result?.template
  if (!template || typeof template !== 'object') throw new InputError('the answer carries no template: there is nothing to adopt')
  if (template.kind !== ROOM_KIND) throw new InputError(`the template is kind ${template.kind}, not ${ROOM_KIND}`)
  if (!Array.isArray(template.tags) || template.tags.length > 2000 ||
      !template.tags.every(t => Array.isArray(t) && t.length > 0 && t.every(v => typeof v === 'string'))) {
    throw new InputError('the template\'s tags are not lists of strings')
  }
  const d = template.tags.find(t => t[0] === 'd')?.[1]
  if (!d || !D_PATTERN.test(d)) throw new InputError('the template has no valid d tag')
  if (typeof result.roomId === 'string' && result.roomId !== d) throw new InputError(`the template is for room ${d}, the answer for ${result.roomId}`)
  if (template.content !== undefined && typeof template.content !== 'string') throw new InputError('the template\'s content is not a string')
  // The template's created_at is when the bot made the replacement; the
  // host's own version is at least as new (docs/protocol.md allows the
  // signer's clock), so clients that age rooms out see it as fresh.
  const createdAt = Math.max(Number.isSafeInteger(template.created_at) ? template.created_at : 0, Math.floor(Date.now() / 1000))

  const signer = toSigner(opts.signer)
  const me = await signer.getPublicKey()
  const event = await signer.signEvent({ kind: ROOM_KIND, created_at: createdAt, tags: template.tags.map(t => [...t]), content: template.content ?? '' })
  if (!event || event.pubkey !== me || !verifyEvent(copy(event))) throw new InputError('signer returned an event that is not validly signed by its own pubkey')

  let relays = opts.relays
  if (relays === undefined) {
    const fromTag = template.tags.filter(t => t[0] === 'relays').flatMap(t => t.slice(1))
    let hints = []
    try {
      if (typeof result.naddr === 'string') hints = parseRoom(result.naddr).relays
    } catch {
      hints = []
    }
    relays = [...fromTag, ...hints]
  }
  relays = cleanRelays(relays)
  if (relays.length === 0) throw new InputError('no relay to publish the room on: pass relays')
  const pool = new SimplePool()
  try {
    const timeout = positive(opts.timeout, DEFAULT_TIMEOUT_MS, 'timeout')
    const settled = await Promise.allSettled(pool.publish(relays, event, { onauth: t => signer.signEvent(t), maxWait: timeout }))
    const published = settled.map((r, i) => ({
      relay: relays[i], ok: r.status === 'fulfilled',
      message: String(r.status === 'fulfilled' ? r.value : r.reason?.message ?? r.reason),
    }))
    if (!published.some(p => p.ok)) {
      throw new PublishError(`no relay accepted the room event: ${published.map(p => `${p.relay}: ${p.message}`).join('; ')}`, { published })
    }
    return { event, naddr: roomNaddr({ pubkey: me, identifier: d }, relays), published }
  } finally {
    pool.destroy()
  }
}

// --- helpers -----------------------------------------------------------------

function cleanRelays(list) {
  if (!Array.isArray(list)) throw new InputError('relays must be a list of ws:// or wss:// URLs')
  const out = []
  for (const r of list) {
    if (!isRelayURL(r)) continue
    const norm = r.replace(/\/+$/, '')
    if (!out.includes(norm)) out.push(norm)
    if (out.length === MAX_RELAYS) break
  }
  return out
}

function positive(v, dflt, name) {
  if (v === undefined || v === null) return dflt
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new InputError(`${name} must be a positive number of milliseconds`)
  return v
}

function throwIfAborted(signal) {
  if (signal?.aborted) throw new NestbotError('ABORTED', 'cancelled')
}

function abortPromise(signal) {
  if (!signal) return new Promise(() => {})
  return new Promise((_, reject) => {
    const fail = () => reject(new NestbotError('ABORTED', 'cancelled'))
    if (signal.aborted) fail()
    else signal.addEventListener('abort', fail, { once: true })
  })
}

// destroyLater closes a pool's connections once the CLOSE messages of its
// subscriptions have gone out: nostr-tools sends them a microtask after
// close(), and a socket closed before that makes browsers log an error.
function destroyLater(pool) {
  setTimeout(() => pool.destroy(), 0)
}

// copy drops nostr-tools' cached "verified" mark so verifyEvent really checks.
function copy(event) {
  return JSON.parse(JSON.stringify(event))
}

function short(id) {
  return typeof id === 'string' ? id.slice(0, 12) : String(id)
}
