// keygen: a fresh key pair in hex and NIP-19. See README.md.
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import * as nip19 from 'nostr-tools/nip19'
import { bytesToHex } from 'nostr-tools/utils'
import { main } from './lib.mjs'

main(async () => {
  const sk = generateSecretKey()
  const pk = getPublicKey(sk)
  return { sk: bytesToHex(sk), pk, nsec: nip19.nsecEncode(sk), npub: nip19.npubEncode(pk) }
})
