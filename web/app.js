// The restart page: a host connects their NIP-07 signer, names a room, sees
// its status, restarts it and, when it was recreated under a new ID, takes
// it back. Everything goes through clients/js over Nostr relays; the page
// has no server of its own. Bundled by web/build.mjs (esbuild) into
// web/dist/app.js.
import {
  BotError, InputError, InvalidAnswerError, NestbotError, PublishError, TimeoutError,
  adopt, parsePubkey, parseRoom, restart, status, toNpub,
} from '../clients/js/nestbot.js'

const $ = id => document.getElementById(id)

// --- configuration: config.js, then the query string ------------------------
const params = new URLSearchParams(location.search)
const base = window.NESTBOT_CONFIG ?? {}
const config = {
  bot: params.get('bot') ?? base.bot ?? '',
  relays: params.getAll('relay').flatMap(r => r.split(',')).filter(Boolean),
  webUrl: (params.get('web') ?? base.webUrl ?? 'https://nostrnests.com').replace(/\/+$/, ''),
  timeout: Number(params.get('timeout') ?? base.timeout ?? 30000),
}
if (config.relays.length === 0 && Array.isArray(base.relays)) config.relays = base.relays
let botHex = ''
try {
  botHex = config.bot ? parsePubkey(config.bot) : ''
} catch {
  botHex = ''
}
$('cfg-bot').textContent = botHex ? toNpub(botHex) : 'not set: add ?bot=<npub> to the address'
$('cfg-relays').textContent = config.relays.length ? config.relays.join(', ') : "from the bot's relay list (kind 10002)"

// --- state --------------------------------------------------------------------
let signer = null
let busy = false
let lastAnswer = null

const roomInput = $('room')
if (params.get('room')) roomInput.value = params.get('room')

function setBusy(on) {
  busy = on
  for (const id of ['connect', 'check', 'restart', 'adopt']) $(id).disabled = on
  $('main').setAttribute('aria-busy', String(on))
  if (!on) $('progress').hidden = true
}

const STEPS = {
  relays: "Finding the bot's relays…",
  signing: 'Waiting for your signer to sign the request…',
  subscribing: 'Connecting to the relays…',
  publishing: 'Sending the request…',
  waiting: "Waiting for nestbot's answer…",
  decrypting: 'Reading the answer…',
}
function progress(text) {
  $('progress').hidden = false
  $('progress-text').textContent = STEPS[text] ?? text
}

function roomLink(naddr) {
  return `${config.webUrl}/${naddr}`
}

// outcome shows one result in words: a heading, paragraphs (strings, or
// [text, href] pairs for links), a tone and a machine-readable kind.
function outcome(kind, tone, title, ...parts) {
  const box = $('outcome')
  box.hidden = false
  box.dataset.outcome = kind
  box.dataset.seq = String(Number(box.dataset.seq ?? 0) + 1) // tells a watcher that a new outcome is shown
  box.dataset.tone = tone
  $('outcome-h').textContent = title
  const body = $('outcome-body')
  body.replaceChildren()
  for (const part of parts) {
    const p = document.createElement('p')
    if (Array.isArray(part)) {
      const [text, href, cls] = part
      if (href) {
        const a = document.createElement('a')
        a.href = href
        a.textContent = text
        a.rel = 'noopener'
        p.append(a)
      } else p.textContent = text
      if (cls) p.className = cls
    } else p.textContent = part
    body.append(p)
  }
  $('adopt').hidden = true
  box.focus()
}

function currentRoom() {
  const text = roomInput.value
  try {
    const room = parseRoom(text)
    $('room-parsed').textContent = `Room ${room.identifier}, published by ${toNpub(room.pubkey).slice(0, 16)}…`
    roomInput.removeAttribute('aria-invalid')
    return room
  } catch (err) {
    roomInput.setAttribute('aria-invalid', 'true')
    $('room-parsed').textContent = ''
    outcome('bad-input', 'bad', 'That room address cannot be read', `${err.message}.`,
      'Paste the link of your room, or its naddr1… address.')
    roomInput.focus()
    return null
  }
}

function ready() {
  if (!botHex) {
    outcome('no-bot', 'bad', 'This page does not know which bot to ask',
      'Open it with ?bot=<the bot\'s npub> in the address, or from the link in the bot\'s profile.')
    return false
  }
  if (!signer) {
    outcome('no-signer', 'warn', 'Connect your signer first', 'Press "Connect Nostr signer" above.')
    $('connect').focus()
    return false
  }
  return true
}

function opts() {
  return {
    signer, bot: botHex, timeout: config.timeout, onProgress: progress,
    ...(config.relays.length ? { relays: config.relays } : {}),
  }
}

// explain turns any error into words for the host.
function explain(err, action) {
  const verb = action === 'status' ? 'check' : 'restart'
  if (err instanceof BotError) {
    const said = [`nestbot said: “${err.message}”`, null, 'said']
    switch (err.code) {
      case 'UNAUTHORIZED':
        return outcome('refused', 'bad', 'Refused: this is not your room',
          `nestbot only lets the room's host or one of its admins ${verb} it, and your key is neither.`,
          'If you host this room from another account, connect that account\'s signer.', said)
      case 'NOT_FOUND':
        return outcome('refused', 'bad', 'Refused: nestbot does not run this room',
          'This room is not one nestbot can restart; it is hosted elsewhere, or it is gone.', said)
      case 'RATE_LIMITED':
        return outcome('refused', 'warn', 'Slow down', 'You asked too often. Wait a minute, then try again.', said)
      case 'UNAVAILABLE':
        return outcome('refused', 'warn', 'nestbot cannot do it right now',
          'A service it needs is not answering. Try again in a minute.', said)
      case 'BAD_REQUEST':
        return outcome('refused', 'bad', 'nestbot could not read the request', said)
      default:
        return outcome('refused', 'bad', 'Something went wrong on nestbot\'s side', 'Try again later.', said)
    }
  }
  if (err instanceof TimeoutError) {
    return outcome('timeout', 'warn', 'No answer from nestbot',
      `nestbot did not answer within ${Math.round(err.timeout / 1000)} seconds. It may be offline, or not on these relays.`,
      'Nothing is known to have changed. You can try again.')
  }
  if (err instanceof InvalidAnswerError) {
    return outcome('invalid', 'bad', 'An answer came, but not a valid one',
      'Something answered in nestbot\'s name without its valid signature, or for another request. It was ignored.', [err.message, null, 'said'])
  }
  if (err instanceof PublishError) {
    return outcome('not-sent', 'bad', 'The request could not be sent', 'None of the bot\'s relays accepted it.', [err.message, null, 'said'])
  }
  if (err instanceof InputError) {
    return outcome('bad-input', 'bad', 'That did not work', `${err.message}.`)
  }
  if (err instanceof NestbotError) return outcome('error', 'bad', 'That did not work', `${err.message}.`)
  return outcome('error', 'bad', 'That did not work', `Your signer or the network said: ${err?.message ?? err}.`)
}

function showStatus(st) {
  $('status-section').hidden = false
  $('st-live').textContent = st.live ? 'Yes' : 'No'
  $('st-participants').textContent = String(st.participants ?? 0)
  $('st-record').textContent = st.record ? 'Present' : 'Gone (a restart makes a new room)'
  $('st-restarted').textContent = st.restartedAt ? new Date(st.restartedAt).toLocaleString() : 'Not known'
}

async function checkStatus() {
  if (busy || !ready()) return
  const room = currentRoom()
  if (!room) return
  setBusy(true)
  try {
    const st = await status(room, opts())
    showStatus(st)
    $('outcome').hidden = true
  } catch (err) {
    explain(err, 'status')
  } finally {
    setBusy(false)
  }
}

async function doRestart() {
  if (busy || !ready()) return
  const room = currentRoom()
  if (!room) return
  setBusy(true)
  try {
    const res = await restart(room, opts())
    lastAnswer = res
    if (!res.isNewRoom) {
      outcome('restarted', 'ok', 'Restarted in place',
        'Your room is running again under the same address. Everyone can rejoin it now.',
        ['Open the room', roomLink(res.naddr)],
        [`nestbot said: “${res.message}”`, null, 'said'])
    } else {
      outcome('recreated', 'ok', 'Recreated under a new ID',
        'Your room was gone, so nestbot made a new one. The old address no longer works: share this one.',
        ['Open the new room', roomLink(res.naddr)],
        [`New room ID: ${res.roomId}`, null, 'said'],
        res.template
          ? 'For now nestbot holds the new room. Take it back to rename it, add speakers or close it yourself.'
          : 'nestbot holds the new room.')
      $('adopt').hidden = !res.template
      if (res.template) $('adopt').focus()
    }
    // Show the live room's status now, quietly (no progress line): after a
    // new ID that is the new room, which is also what the box now names.
    if (res.isNewRoom) {
      roomInput.value = res.naddr
      currentRoom()
    }
    progress('Checking the room now…')
    try {
      showStatus(await status(res.naddr, { ...opts(), onProgress: undefined }))
    } catch {
      $('status-section').hidden = true // stale: it described the room before the restart
    }
  } catch (err) {
    explain(err, 'restart')
  } finally {
    setBusy(false)
  }
}

async function doAdopt() {
  if (busy || !lastAnswer?.template || !ready()) return
  setBusy(true)
  progress('Waiting for your signer to sign the room…')
  try {
    const relays = config.relays.length ? config.relays : undefined
    const got = await adopt(lastAnswer, { signer, relays })
    outcome('adopted', 'ok', 'The room is yours again',
      'It is now published under your own key, so you can rename it, add speakers and close it from your app.',
      ['Open your room', roomLink(got.naddr)])
    roomInput.value = got.naddr
    currentRoom()
  } catch (err) {
    explain(err, 'adopt')
    $('adopt').hidden = false
  } finally {
    setBusy(false)
  }
}

async function connect() {
  if (busy) return
  if (!window.nostr || typeof window.nostr.signEvent !== 'function') {
    outcome('no-signer', 'warn', 'No Nostr signer found',
      'Install a NIP-07 signer extension (such as Alby or nos2x), unlock it, then press Connect again.')
    return
  }
  try {
    const pk = await window.nostr.getPublicKey()
    signer = window.nostr
    $('signer-state').textContent = `Connected as ${toNpub(pk)}`
    $('signer-state').dataset.pubkey = pk
    $('connect').textContent = 'Reconnect signer'
    if (!window.nostr.nip44) {
      outcome('no-nip44', 'warn', 'Your signer cannot read the answer',
        'nestbot answers with NIP-44 encryption, which this signer does not offer. Update it or use another one.')
      return
    }
    if (roomInput.value.trim()) await checkStatus()
  } catch (err) {
    outcome('no-signer', 'bad', 'The signer did not connect', `${err?.message ?? err}.`)
  }
}

$('connect').addEventListener('click', connect)
$('room-form').addEventListener('submit', ev => { ev.preventDefault(); checkStatus() })
$('restart').addEventListener('click', doRestart)
$('adopt').addEventListener('click', doAdopt)
roomInput.addEventListener('change', () => { if (roomInput.value.trim()) currentRoom() })
if (roomInput.value.trim()) {
  try {
    const room = parseRoom(roomInput.value)
    $('room-parsed').textContent = `Room ${room.identifier}, published by ${toNpub(room.pubkey).slice(0, 16)}…`
  } catch {
    // shown when used
  }
}
document.documentElement.dataset.ready = 'true'
