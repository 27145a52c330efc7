// The page's defaults. `make run` (cmd/nestweb) serves its own config.js with
// the local bot's pubkey and relays instead of this file; a deployment can
// replace it. Query parameters (?bot=&relay=&web=&room=) override it.
window.NESTBOT_CONFIG = window.NESTBOT_CONFIG || {}
