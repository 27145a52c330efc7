// sign-event: sign an unsigned event (e.g. the `template` of a nestbot
// answer, or a client's own kind 30312) with nostr-tools' finalizeEvent and
// publish it to relays when given. See README.md.
import { finalizeEvent } from 'nostr-tools/pure'
import { SimplePool } from 'nostr-tools/pool'
import { main, secretKey } from './lib.mjs'

main(async input => {
  const t = input.template
  if (!t || typeof t !== 'object' || !Number.isInteger(t.kind) || !Array.isArray(t.tags)) {
    throw new Error('template must be {"kind", "created_at"?, "tags", "content"?}')
  }
  const event = finalizeEvent({
    kind: t.kind,
    created_at: Number.isInteger(t.created_at) ? t.created_at : Math.floor(Date.now() / 1000),
    tags: t.tags,
    content: typeof t.content === 'string' ? t.content : '',
  }, secretKey(input.sk))
  const relays = Array.isArray(input.relays) ? input.relays : []
  if (relays.length > 0) {
    const pool = new SimplePool()
    try {
      await Promise.any(pool.publish(relays, event))
    } finally {
      pool.close(relays)
    }
  }
  return { event }
})
