// Bundles web/app.js (and clients/js with nostr-tools) into web/dist/app.js,
// the one build step of the page. `make web` runs it; so do the browser tests.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const here = dirname(fileURLToPath(import.meta.url))
await build({
  entryPoints: [join(here, 'app.js')],
  outfile: join(here, 'dist', 'app.js'),
  bundle: true,
  format: 'esm',
  target: ['es2020'],
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
})
console.log(`web: built ${join(here, 'dist', 'app.js')}`)
