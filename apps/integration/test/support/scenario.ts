import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDir, tarballOf } from './scratch.js'

/** Registry packages every scenario installs (the peers users bring themselves). */
export const TFJS_PACKAGES = ['@tensorflow/tfjs-core@4.22.0', '@tensorflow/tfjs-backend-cpu@4.22.0']

export interface Scenario {
  /** Short name, also the scenario's folder name in this run's scratch folder. */
  readonly name: string
  /** The @xattn packages installed from their tarballs; nothing else from the workspace. */
  readonly packages: readonly string[]
  /** An ES module run with `node` in the scenario; it prints one JSON line as its last line. */
  readonly script: string
}

export interface ScenarioResult {
  readonly dir: string
  /** Whether this call ran `npm install` (false when an earlier call of this run installed it). */
  readonly installed: boolean
  readonly output: unknown
}

/**
 * Installs exactly `scenario.packages` (from this run's `pnpm pack` tarballs) plus tfjs into a
 * fresh npm project in this run's scratch folder, then runs the script there. The folder belongs
 * to this run alone (globalSetup.ts), so a later call of the same scenario in the same run reuses
 * the install; call it from one test file only (tests in a file run one after another).
 */
export function runScenario(scenario: Scenario): ScenarioResult {
  const tarballs = scenario.packages.map((name) => tarballOf(name))
  const dir = join(scratchDir(), 'scenarios', scenario.name)
  const stamp = join(dir, '.installed')
  let installed = false
  if (!existsSync(stamp)) {
    mkdirSync(dir, { recursive: true })
    writeFileSync(
      join(dir, 'package.json'),
      `${JSON.stringify({ name: `scenario-${scenario.name}`, private: true, type: 'module' })}\n`,
    )
    // --prefer-offline: tfjs comes from npm's cache (shared, safe for concurrent use) when it is
    // there; --ignore-scripts: none of these packages needs an install script, and a scenario must
    // not depend on one.
    execFileSync(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--ignore-scripts',
        '--loglevel=error',
        ...tarballs,
        ...TFJS_PACKAGES,
      ],
      { cwd: dir, stdio: 'pipe' },
    )
    writeFileSync(stamp, 'ok\n')
    installed = true
  }
  const scriptPath = join(dir, 'scenario.mjs')
  writeFileSync(scriptPath, scenario.script)
  const run = spawnSync(process.execPath, [scriptPath], { cwd: dir, encoding: 'utf8' })
  if (run.status !== 0) {
    throw new Error(`scenario ${scenario.name} exited ${run.status}:\n${run.stdout}\n${run.stderr}`)
  }
  const lines = run.stdout.trim().split('\n')
  return { dir, installed, output: JSON.parse(lines[lines.length - 1] ?? 'null') }
}

/** The names under node_modules/@xattn of a scenario: what npm actually installed. */
export function installedXattn(dir: string): string[] {
  const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, unknown>
  }
  return Object.keys(lock.packages)
    .filter((path) => path.startsWith('node_modules/@xattn/'))
    .map((path) => path.slice('node_modules/'.length))
    .sort()
}
