import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isStale, packPackage, publicPackages, SCRATCH_ROOT } from './packing.js'

/** Registry packages every scenario installs (the peers users bring themselves). */
export const TFJS_PACKAGES = ['@tensorflow/tfjs-core@4.22.0', '@tensorflow/tfjs-backend-cpu@4.22.0']

export interface Scenario {
  /** Short name, also the scratch folder's prefix. */
  readonly name: string
  /** The @xattn packages installed from their tarballs; nothing else from the workspace. */
  readonly packages: readonly string[]
  /** An ES module run with `node` in the scenario; it prints one JSON line as its last line. */
  readonly script: string
}

export interface ScenarioResult {
  readonly dir: string
  /** Whether this call ran `npm install` (false when an identical install was cached). */
  readonly installed: boolean
  readonly output: unknown
}

/**
 * Installs exactly `scenario.packages` (from `pnpm pack` tarballs) plus tfjs into a fresh npm
 * project outside the workspace, then runs the script there. The install is cached by the hash
 * of the tarballs and registry specs, so a rerun costs only the script.
 */
export function runScenario(scenario: Scenario): ScenarioResult {
  const all = publicPackages()
  const tarballs = scenario.packages.map((name) => {
    const pkg = all.find((p) => p.name === name)
    if (pkg === undefined) throw new Error(`scenario ${scenario.name}: no public package named ${name}`)
    return packPackage(pkg).tarball
  })
  const hash = createHash('sha256')
    .update(JSON.stringify([tarballs, TFJS_PACKAGES]))
    .digest('hex')
    .slice(0, 16)
  const dir = join(SCRATCH_ROOT, 'scenarios', `${scenario.name}-${hash}`)
  const stamp = join(dir, '.installed')
  let installed = false
  // A cached install is reused only if every package's entry is really there.
  const complete = scenario.packages.every((name) =>
    existsSync(join(dir, 'node_modules', name, 'package.json')),
  )
  if (!existsSync(stamp) || !complete) {
    pruneOtherVersions(join(SCRATCH_ROOT, 'scenarios'), `${scenario.name}-`, dir)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    writeFileSync(
      join(dir, 'package.json'),
      `${JSON.stringify({ name: `scenario-${scenario.name}`, private: true, type: 'module' })}\n`,
    )
    // --prefer-offline: tfjs comes from the shared npm cache when it is there; --ignore-scripts:
    // none of these packages needs an install script, and a scenario must not depend on one.
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

/** Removes stale installs of a scenario (other hashes), so the scratch space does not grow. */
function pruneOtherVersions(parent: string, prefix: string, keep: string): void {
  if (!existsSync(parent)) return
  for (const entry of readdirSync(parent)) {
    const path = join(parent, entry)
    if (entry.startsWith(prefix) && path !== keep && isStale(path))
      rmSync(path, { recursive: true, force: true })
  }
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
