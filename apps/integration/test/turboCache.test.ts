import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from './support/packing.js'

// A second `pnpm test` right after a first must be served from the Turborepo cache. Running the
// whole of `pnpm test` inside itself is out of the question, so this checks (with turbo's
// --dry=json) that every lint/build/typecheck/test task is cacheable and every build declares
// its dist outputs; `node scripts/checkTurboCache.mjs` (no flag) run after `pnpm test` checks
// that every task is then a cache HIT.
describe('turbo cache', () => {
  it('every task of pnpm test is cacheable and builds declare their outputs', () => {
    const run = spawnSync(
      process.execPath,
      [join(REPO_ROOT, 'scripts', 'checkTurboCache.mjs'), '--config-only'],
      {
        cwd: REPO_ROOT,
        encoding: 'utf8',
      },
    )
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0)
    expect(run.stdout).toMatch(/all cacheable/)
  })
})
