// nip44: NIP-44 v2 encrypt/decrypt between sk and peer. See README.md.
import * as nip44 from 'nostr-tools/nip44'
import { hexToBytes } from 'nostr-tools/utils'
import { conversationKey, main, secretKey } from './lib.mjs'

main(async input => {
  const key = conversationKey(secretKey(input.sk), input.peer)
  if (input.op === 'encrypt') {
    if (typeof input.plaintext !== 'string') throw new Error('plaintext must be a string')
    const nonce = input.nonce ? hexToBytes(input.nonce) : undefined // optional, for fixed vectors
    return { ciphertext: nip44.v2.encrypt(input.plaintext, key, nonce) }
  }
  if (input.op === 'decrypt') {
    if (typeof input.ciphertext !== 'string') throw new Error('ciphertext must be a string')
    return { plaintext: nip44.v2.decrypt(input.ciphertext, key) }
  }
  throw new Error('op must be "encrypt" or "decrypt"')
})
