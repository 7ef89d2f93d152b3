#!/usr/bin/env node
// Entry point for the README's quick-start commands (`npm test`, `npm run demo`, …).
// A fresh machine has only Node 20 and npm, so this makes sure pnpm (pinned) and the workspace
// install are present before handing the task to turbo. It only ever installs what is missing.
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const PNPM_VERSION = '12.4.2'
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const localToolsDir = join(root, '.tools')

const tasks = {
  test: [['exec', 'turbo', 'run', 'lint', 'build', 'typecheck', 'test', '--continue']],
  build: [['exec', 'turbo', 'run', 'build']],
  demo: [
    ['exec', 'turbo', 'run', 'build', '--filter=@xattn/demo...', '--output-logs=errors-only'],
    ['--filter', '@xattn/demo', 'run', 'start', 'ARGS'],
  ],
  bench: [
    ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'],
    ['exec', 'turbo', 'run', 'bench', '--concurrency=1', '--force'],
    ['exec', 'node', 'scripts/benchSummary.mjs'],
  ],
  parity: [
    ['exec', 'turbo', 'run', 'build', '--filter=@xattn/integration...', '--output-logs=errors-only'],
    ['--filter', '@xattn/integration', 'run', 'parity', 'ARGS'],
  ],
}

function log(message) {
  process.stderr.write(`[xattn] ${message}\n`)
}

function pnpmVersionOf(command) {
  const result = spawnSync(command, ['--version'], { encoding: 'utf8', shell: process.platform === 'win32' })
  return result.status === 0 ? result.stdout.trim() : null
}

function findPnpm() {
  const localPnpm = join(localToolsDir, 'node_modules', '.bin', 'pnpm')
  if (pnpmVersionOf('pnpm') === PNPM_VERSION) return 'pnpm'
  if (existsSync(localPnpm) && pnpmVersionOf(localPnpm) === PNPM_VERSION) return localPnpm
  log(`installing pnpm@${PNPM_VERSION} (npm i -g pnpm@${PNPM_VERSION})`)
  const global = spawnSync('npm', ['i', '-g', `pnpm@${PNPM_VERSION}`], { stdio: 'inherit' })
  if (global.status === 0 && pnpmVersionOf('pnpm') === PNPM_VERSION) return 'pnpm'
  // No permission for a global install (or another pnpm earlier on PATH): keep a private copy.
  log(`global install unavailable; installing pnpm@${PNPM_VERSION} into .tools/`)
  mkdirSync(localToolsDir, { recursive: true })
  execFileSync('npm', ['i', '--no-save', '--prefix', localToolsDir, `pnpm@${PNPM_VERSION}`], {
    stdio: 'inherit',
  })
  return localPnpm
}

function manifestFiles() {
  const files = ['pnpm-lock.yaml', 'pnpm-workspace.yaml', 'package.json']
  for (const group of ['packages', 'apps']) {
    const dir = join(root, group)
    if (!existsSync(dir)) continue
    for (const name of readdirSync(dir).sort()) {
      const manifest = join(group, name, 'package.json')
      if (existsSync(join(root, manifest))) files.push(manifest)
    }
  }
  return files
}

function installStamp() {
  const hash = createHash('sha256')
  hash.update(process.version)
  for (const file of manifestFiles()) {
    const path = join(root, file)
    hash.update(file)
    if (existsSync(path)) hash.update(readFileSync(path))
  }
  return hash.digest('hex')
}

function ensureInstalled(pnpm) {
  const stampPath = join(root, 'node_modules', '.xattn-install-stamp')
  const stamp = installStamp()
  if (existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp) return
  log('installing workspace dependencies (pnpm install --frozen-lockfile)')
  run(pnpm, ['install', '--frozen-lockfile'])
  writeFileSync(stampPath, stamp)
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}

const [task, ...userArgs] = process.argv.slice(2)
const steps = tasks[task]
if (!steps) {
  log(`unknown task '${task}'; expected one of ${Object.keys(tasks).join(', ')}`)
  process.exit(2)
}
const pnpm = findPnpm()
ensureInstalled(pnpm)
for (const step of steps) {
  const args = step.flatMap((arg) => (arg === 'ARGS' ? userArgs : [arg]))
  run(pnpm, args)
}
