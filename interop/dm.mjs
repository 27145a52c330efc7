// dm: NIP-17 and NIP-04 direct messages, offline and against relays. See README.md.
import { finalizeEvent, getEventHash, getPublicKey } from 'nostr-tools/pure'
import { SimplePool } from 'nostr-tools/pool'
import * as nip04 from 'nostr-tools/nip04'
import * as nip17 from 'nostr-tools/nip17'
import * as nip44 from 'nostr-tools/nip44'
import * as nip59 from 'nostr-tools/nip59'
import { authSigner, conversationKey, hex64, main, now, secretKey, verifyFresh } from './lib.mjs'

// nip17Wrap builds the same kind 14 rumor as nip17.wrapEvent (p tag with the
// optional relay hint), then seals and gift-wraps it with nip59, so that the
// rumor id, which nip17.wrapEvent keeps to itself, can be reported.
function nip17Wrap(sk, recipient, message, relayHint) {
  const rumor = nip59.createRumor({
    kind: 14,
    created_at: now(),
    tags: [relayHint ? ['p', recipient, relayHint] : ['p', recipient]],
    content: message,
  }, sk)
  const wrap = nip59.createWrap(nip59.createSeal(rumor, sk, recipient), recipient)
  return { wrap, rumor }
}

function nip17Unwrap(sk, wrap) {
  const rumor = nip17.unwrapEvent(wrap, sk) // checks seal signature and rumor.pubkey == seal.pubkey
  const seal = JSON.parse(nip44.v2.decrypt(wrap.content, conversationKey(sk, wrap.pubkey)))
  const { id, ...unsigned } = rumor
  return { rumor, sealPubkey: seal.pubkey, wrapValid: verifyFresh(wrap), rumorIdValid: getEventHash(unsigned) === id }
}

function nip04Event(sk, recipient, message) {
  return finalizeEvent({
    kind: 4, created_at: now(), tags: [['p', recipient]], content: nip04.encrypt(sk, recipient, message),
  }, sk)
}

function nip04Decrypt(sk, event) {
  const me = getPublicKey(sk)
  const peer = event.pubkey === me ? event.tags.find(t => t[0] === 'p')?.[1] : event.pubkey
  return nip04.decrypt(sk, peer, event.content)
}

async function sendAndWait(input) {
  const sk = secretKey(input.sk)
  const me = getPublicKey(sk)
  const recipient = hex64(input.recipient, 'recipient')
  const { relays, message, protocol } = input
  if (!Array.isArray(relays) || relays.length === 0) throw new Error('relays must be a non-empty array')
  if (protocol !== 'nip17' && protocol !== 'nip04') throw new Error('protocol must be "nip17" or "nip04"')
  const timeoutMs = input.timeoutMs ?? 10000

  let sent, sentAt
  if (protocol === 'nip17') {
    const { wrap, rumor } = nip17Wrap(sk, recipient, message, input.relayHint)
    sent = wrap
    sentAt = rumor.created_at
  } else {
    sent = nip04Event(sk, recipient, message)
    sentAt = sent.created_at
  }
  // Gift wraps are backdated by up to 2 days, hence the wide since; rumors
  // older than our message are skipped. A kind 4 reply must not predate ours.
  const filter = protocol === 'nip17'
    ? { kinds: [1059], '#p': [me], since: now() - 3 * 24 * 3600 }
    : { kinds: [4], authors: [recipient], '#p': [me], since: sentAt }

  const onauth = authSigner(sk)
  const pool = new SimplePool({ automaticallyAuth: () => onauth })
  let gotReply, subscribed
  const reply = new Promise(resolve => { gotReply = resolve })
  const ready = new Promise(resolve => { subscribed = resolve })
  const sub = pool.subscribe(relays, filter, {
    onevent: event => {
      try {
        if (protocol === 'nip04') return gotReply({ reply: nip04Decrypt(sk, event), replyEvent: event })
        const { rumor } = nip17Unwrap(sk, event)
        if (rumor.pubkey === recipient && rumor.kind === 14 && rumor.created_at >= sentAt) {
          gotReply({ reply: rumor.content, replyEvent: event, replyRumor: rumor })
        }
      } catch { /* not for us or undecryptable: ignore */ }
    },
    oneose: () => subscribed(),
    onclose: () => subscribed(),
    onauth,
  })
  let phase = 'waiting for the subscription'
  const expired = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`timeout after ${timeoutMs} ms ${phase}`)), timeoutMs))
  expired.catch(() => {})

  await Promise.race([ready, expired])
  const results = await Promise.allSettled(pool.publish(relays, sent, { onauth }))
  if (!results.some(r => r.status === 'fulfilled')) {
    throw new Error(`no relay accepted the DM: ${results.map(r => String(r.reason?.message ?? r.reason)).join('; ')}`)
  }
  phase = 'waiting for the reply'
  const got = await Promise.race([reply, expired])
  sub.close()
  pool.destroy()
  return { sent, ...got }
}

main(async input => {
  switch (input.op) {
    case 'nip17-wrap': {
      const { wrap, rumor } = nip17Wrap(secretKey(input.sk), hex64(input.recipient, 'recipient'), String(input.message ?? ''), input.relayHint)
      return { wrap, rumorId: rumor.id }
    }
    case 'nip17-unwrap':
      return nip17Unwrap(secretKey(input.sk), input.wrap)
    case 'nip04-encrypt':
      return nip04Event(secretKey(input.sk), hex64(input.recipient, 'recipient'), String(input.message ?? ''))
    case 'nip04-decrypt':
      return { plaintext: nip04Decrypt(secretKey(input.sk), input.event) }
    case 'send-and-wait':
      return sendAndWait(input)
    default:
      throw new Error('op must be one of nip17-wrap, nip17-unwrap, nip04-encrypt, nip04-decrypt, send-and-wait')
  }
})
