// sign-request: sign a nestbot restart request (kind 4312). See README.md.
import { buildRequest, main } from './lib.mjs'

main(async input => buildRequest(input))
