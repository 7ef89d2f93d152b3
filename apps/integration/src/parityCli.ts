import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findCases, flashAvailable, formatResult, runVariant, setBackend } from './parity.js'

// `pnpm parity [fixture-dir…]`: every case on cpu and wasm, with reference and flash attention.
const here = dirname(fileURLToPath(import.meta.url))
const defaultDir = join(here, '..', '..', '..', '..', 'fixtures', 'x-transformers')
// pnpm runs this script in apps/integration; paths given at the repo root are relative to INIT_CWD.
const invokedFrom = process.env.INIT_CWD ?? process.cwd()
const dirs = process.argv
  .slice(2)
  .filter((arg) => arg !== '--')
  .map((arg) => resolve(invokedFrom, arg))
let cases: ReturnType<typeof findCases>
try {
  cases = findCases(dirs.length > 0 ? dirs : [defaultDir])
} catch (error) {
  console.error((error as Error).message)
  process.exit(2)
}
if (cases.length === 0) {
  console.error(`parity: no case.json found under ${dirs.join(', ') || defaultDir}`)
  process.exit(2)
}
const hasFlash = await flashAvailable()
let failures = 0
let rejected = 0
let passed = 0
console.log('case backend attention max_abs_err status')
for (const backend of ['cpu', 'wasm']) {
  await setBackend(backend)
  for (const c of cases) {
    for (const attention of ['reference', 'flash']) {
      if (attention === 'flash' && !hasFlash) {
        console.log(`${c.name} ${backend} flash - skipped (flash not available)`)
        continue
      }
      const result = await runVariant(c, backend, attention, { train: true })
      console.log(formatResult(result))
      if (result.status === 'FAIL') failures++
      else if (result.status === 'rejected') rejected++
      else passed++
    }
  }
}
console.log(
  `\n${cases.length} cases: ${passed} variants ok, ${rejected} rejected (unsupported kwargs), ${failures} failed`,
)
process.exitCode = failures > 0 ? 1 : 0
