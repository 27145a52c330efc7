// verify-response: check and decrypt a bot response addressed to sk. See README.md.
import { main, readResponse } from './lib.mjs'

main(async input => readResponse(input.sk, input.event))
