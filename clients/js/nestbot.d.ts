// Types for @nestbot/client (nestbot.js). The wire contract is docs/protocol.md.
import type { Event, EventTemplate } from 'nostr-tools/pure'
import type { SimplePool } from 'nostr-tools/pool'

export declare const REQUEST_KIND: 4312
export declare const RESPONSE_KIND: 4313
export declare const ROOM_KIND: 30312
export declare const RELAY_LIST_KIND: 10002
export declare const BOT_CODES: readonly BotCode[]
export declare const DEFAULT_LOOKUP_RELAYS: readonly string[]

/** The bot's closed set of error codes. */
export type BotCode = 'BAD_REQUEST' | 'UNAUTHORIZED' | 'NOT_FOUND' | 'RATE_LIMITED' | 'NOT_IMPLEMENTED' | 'UNAVAILABLE' | 'INTERNAL'
/** This library's own codes. */
export type LocalCode = 'TIMEOUT' | 'INVALID_ANSWER' | 'NOT_PUBLISHED' | 'BAD_INPUT' | 'NO_RELAYS' | 'ABORTED'

export declare class NestbotError extends Error {
  code: BotCode | LocalCode
  constructor(code: string, message: string, details?: Record<string, unknown>)
}
/** The bot refused; show `message` as is. */
export declare class BotError extends NestbotError {
  code: BotCode
  requestId: string
  resultType: string
  request: Event
  response: Event
}
/** No answer in time. */
export declare class TimeoutError extends NestbotError {
  code: 'TIMEOUT'
  phase: string
  requestId: string
  timeout: number
}
/** Answers came, none valid (bad signature, wrong `e` tag, undecryptable, malformed). */
export declare class InvalidAnswerError extends NestbotError {
  code: 'INVALID_ANSWER'
  problems: string[]
  requestId: string
}
export interface PublishReport { relay: string; ok: boolean; message: string }
/** No relay accepted the event. */
export declare class PublishError extends NestbotError {
  code: 'NOT_PUBLISHED'
  published: PublishReport[]
}
/** Unusable input: room address, key, signer, template. */
export declare class InputError extends NestbotError {
  code: 'BAD_INPUT'
}

export interface Room {
  kind: 30312
  /** the room author's 64-hex pubkey */
  pubkey: string
  /** the room's d */
  identifier: string
  /** ws:// or wss:// hints from a naddr */
  relays: string[]
  /** "30312:<pubkey>:<d>" */
  coordinate: string
}

/** A NIP-07 signer (window.nostr), or the same shape toSigner builds from a secret key. */
export interface Signer {
  getPublicKey(): Promise<string>
  signEvent(template: EventTemplate): Promise<Event>
  nip44?: {
    encrypt(pubkey: string, plaintext: string): Promise<string>
    decrypt(pubkey: string, ciphertext: string): Promise<string>
  }
}
/** A Signer, or a secret key as 64 hex characters, nsec1… or 32 bytes. */
export type SignerInput = Signer | string | Uint8Array

export type Progress = 'relays' | 'signing' | 'subscribing' | 'publishing' | 'waiting' | 'decrypting'

export interface AskOptions {
  signer: SignerInput
  /** the bot's pubkey, hex or npub */
  bot: string
  /** the bot's relays; default: from the bot's kind 10002 */
  relays?: string[]
  /** where to find the bot's kind 10002 besides the room's hints; default DEFAULT_LOOKUP_RELAYS */
  lookupRelays?: string[]
  /** ms to wait for the answer once the request is signed (default 30000) */
  timeout?: number
  /** ms for the kind 10002 look-up (default 5000) */
  lookupTimeout?: number
  /** public free text, at most 1024 UTF-8 bytes */
  reason?: string
  signal?: AbortSignal
  onProgress?: (step: Progress) => void
  pool?: SimplePool
}

/** An unsigned kind 30312 the bot prepared for the new room's host to sign. */
export interface RoomTemplate {
  kind: 30312
  created_at: number
  tags: string[][]
  content: string
}

export interface RestartResult {
  roomId: string
  endpoints: string[]
  token: string
  message: string
  isNewRoom: boolean
  originalRoomId?: string
  naddr: string
  /** the 30312 the bot published, when it did */
  event?: Event
  /** present when the room was recreated under a new ID: pass the result to adopt() */
  template?: RoomTemplate
  [key: string]: unknown
}

export interface StatusResult {
  roomId: string
  live: boolean
  participants: number
  record: boolean
  /** unix milliseconds */
  restartedAt?: number
  naddr: string
  [key: string]: unknown
}

export interface Exchange {
  request: Event
  response: Event
  payload: { result_type: string; result?: Record<string, unknown>; error?: { code: BotCode; message: string } }
  relays: string[]
}

export declare function parseRoom(input: string): Room
export declare function roomNaddr(room: { pubkey: string; identifier: string }, relays?: string[]): string
export declare function isRelayURL(s: unknown): boolean
export declare function parsePubkey(s: string): string
export declare function toNpub(hex: string): string
export declare function toSigner(s: SignerInput): Signer
export declare function botRelays(bot: string, opts?: { pool?: SimplePool; lookupRelays?: string[]; timeout?: number; signal?: AbortSignal }): Promise<string[]>
export declare function ask(room: string | Room, action: 'restart' | 'status' | string, opts: AskOptions): Promise<Exchange>
export declare function restart(room: string | Room, opts: AskOptions): Promise<RestartResult>
export declare function status(room: string | Room, opts: AskOptions): Promise<StatusResult>
export declare function adopt(
  answer: RestartResult | { result: RestartResult },
  opts: { signer: SignerInput; relays?: string[]; timeout?: number },
): Promise<{ event: Event; naddr: string; published: PublishReport[] }>
