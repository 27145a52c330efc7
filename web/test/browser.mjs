// Drives the restart page in a real headless Chromium (Debian's chromium,
// through puppeteer-core) the way a host would: open it, connect the NIP-07
// signer, read the status, press Restart and, when offered, "Take the room
// back". The signer is a NIP-07 shim injected before the page loads; it
// signs and encrypts in this process with the test key, so the page sees
// exactly what a browser extension gives it.
//
// e2e/web_test.go (TestWebConsole) runs it with one JSON object in
// NESTBOT_WEB_TEST: {url, sk, name, screenshots, adopt: bool} and reads one
// JSON object from stdout: what the page showed at each step. It writes
// screenshots <screenshots>/<name>-<n>-<step>.png. Exit 1 with a message when
// the page cannot be driven (an element missing, no outcome).
import { mkdtemp, mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import puppeteer from 'puppeteer-core'
import { finalizeEvent, getPublicKey } from 'nostr-tools/pure'
import * as nip44 from 'nostr-tools/nip44'
import { hexToBytes } from 'nostr-tools/utils'

const input = JSON.parse(process.env.NESTBOT_WEB_TEST ?? 'null')
if (!input) {
  console.error('NESTBOT_WEB_TEST is not set: run through `go test -run TestWebConsole ./e2e/`')
  process.exit(2)
}
const sk = hexToBytes(input.sk)
const WAIT = 60_000 // bounds every wait; the page's own timeout is shorter

// signer answers the shim's calls: a NIP-07 extension's behaviour. While a
// gate is set, it holds the signing of a request (kind 4312) the way an
// extension holds it until the user approves, so that the page's progress
// can be seen and photographed without racing it.
const calls = []
let gate = null
function holdNextRequest() {
  let reached, release
  const g = { reached: new Promise(r => { reached = r }), released: new Promise(r => { release = r }) }
  g.arrive = reached
  g.release = release
  gate = g
  return g
}
async function signer(op, ...args) {
  calls.push(op)
  if (op === 'signEvent' && args[0]?.kind === 4312 && gate) {
    const g = gate
    gate = null
    g.arrive()
    await g.released
  }
  switch (op) {
    case 'getPublicKey': return getPublicKey(sk)
    case 'signEvent': return finalizeEvent(args[0], sk)
    case 'nip44.encrypt': return nip44.v2.encrypt(args[1], nip44.v2.utils.getConversationKey(sk, args[0]))
    case 'nip44.decrypt': return nip44.v2.decrypt(args[1], nip44.v2.utils.getConversationKey(sk, args[0]))
    default: throw new Error(`unknown signer call ${op}`)
  }
}

const profile = await mkdtemp(join(tmpdir(), 'nestbot-chromium-'))
await mkdir(input.screenshots, { recursive: true })
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', `--user-data-dir=${profile}`],
  defaultViewport: { width: 900, height: 1100 },
})
let shot = 0
const out = { steps: [], console: [] }
try {
  const page = await browser.newPage()
  page.on('console', m => out.console.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', e => out.console.push(`pageerror: ${e.message}`))
  await page.exposeFunction('__nestbotSigner', signer)
  await page.evaluateOnNewDocument(() => {
    const call = (op, ...args) => window.__nestbotSigner(op, ...args)
    window.nostr = {
      getPublicKey: () => call('getPublicKey'),
      signEvent: t => call('signEvent', t),
      nip44: { encrypt: (pk, pt) => call('nip44.encrypt', pk, pt), decrypt: (pk, ct) => call('nip44.decrypt', pk, ct) },
    }
  })

  const snap = async step => {
    shot++
    await page.screenshot({ path: join(input.screenshots, `${input.name}-${shot}-${step}.png`), fullPage: true })
  }
  // seen reads what the page shows: the outcome box, the status panel, links.
  const seen = () => page.evaluate(() => {
    const el = id => document.getElementById(id)
    const o = el('outcome')
    return {
      seq: Number(o.dataset.seq ?? 0),
      outcome: o.hidden ? null : o.dataset.outcome,
      title: o.hidden ? '' : el('outcome-h').textContent,
      text: o.hidden ? '' : el('outcome-body').innerText,
      links: o.hidden ? [] : [...el('outcome-body').querySelectorAll('a')].map(a => a.href),
      adoptShown: !el('adopt').hidden,
      status: el('status-section').hidden ? null : {
        live: el('st-live').textContent, participants: el('st-participants').textContent, record: el('st-record').textContent,
      },
      signer: el('signer-state').textContent,
      busy: document.getElementById('main').getAttribute('aria-busy') === 'true',
    }
  })
  // press clicks a button and waits until the page is idle with something new shown.
  const press = async (id, done) => {
    const before = await seen()
    await page.click(`#${id}`)
    await page.waitForFunction((seq, wantStatus) => {
      const main = document.getElementById('main')
      if (main.getAttribute('aria-busy') === 'true') return false
      const o = document.getElementById('outcome')
      if (Number(o.dataset.seq ?? 0) > seq) return true
      return wantStatus && !document.getElementById('status-section').hidden
    }, { timeout: WAIT, polling: 50 }, before.seq, done === 'status')
    return seen()
  }

  await page.goto(input.url, { waitUntil: 'load' })
  await page.waitForSelector('html[data-ready=true]', { timeout: WAIT })
  await snap('opened')

  const connected = await press('connect', 'status')
  out.steps.push({ step: 'connect', ...connected })
  await snap(connected.outcome ? `status-${connected.outcome}` : 'status')

  // Restart, with the signer held: the page must say what it waits for.
  const held = holdNextRequest()
  const pressed = press('restart')
  await held.reached
  await page.waitForFunction(() => !document.getElementById('progress').hidden, { timeout: WAIT, polling: 50 })
  out.progress = await page.evaluate(() => ({
    text: document.getElementById('progress-text').textContent,
    busy: document.getElementById('main').getAttribute('aria-busy'),
    restartDisabled: document.getElementById('restart').disabled,
  }))
  await snap('waiting')
  held.release()
  const restarted = await pressed
  out.steps.push({ step: 'restart', ...restarted })
  await snap(restarted.outcome ?? 'restart')

  if (input.adopt && restarted.adoptShown) {
    const adopted = await press('adopt')
    out.steps.push({ step: 'adopt', ...adopted })
    await snap(adopted.outcome ?? 'adopt')
  }
  // Accessibility: every control has a name in Chromium's accessibility
  // tree, and the result took the focus so a screen reader reads it.
  const tree = await page.accessibility.snapshot({ interestingOnly: true })
  const unnamed = []
  const walk = n => {
    if (['button', 'textbox', 'link', 'checkbox', 'combobox'].includes(n.role) && !(n.name ?? '').trim()) unnamed.push(n.role)
    for (const c of n.children ?? []) walk(c)
  }
  if (tree) walk(tree)
  out.a11y = {
    unnamed,
    lang: await page.evaluate(() => document.documentElement.lang),
    focus: await page.evaluate(() => document.activeElement?.id ?? ''),
  }
  out.signerCalls = calls
  process.stdout.write(JSON.stringify(out) + '\n')
} catch (err) {
  console.error(`browser: ${err?.stack ?? err}\nconsole:\n${out.console.join('\n')}`)
  process.exitCode = 1
} finally {
  await browser.close()
  await rm(profile, { recursive: true, force: true })
}
