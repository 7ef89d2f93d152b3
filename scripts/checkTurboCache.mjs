#!/usr/bin/env node
// Checks that the tasks of `pnpm test` are served from the Turborepo cache: run it right after a
// `pnpm test` (nothing changed in between) and every task that has a command must be a cache HIT.
// A MISS means a task's inputs changed while it ran, or its hash depends on something that is not
// deterministic (a timestamp, a file a task writes into its own inputs, an unpinned env var).
//
//   node scripts/checkTurboCache.mjs                 # after `pnpm test`: all HIT, or exit 1
//   node scripts/checkTurboCache.mjs --config-only   # only: every task is cacheable, builds declare dist/**
//   node scripts/checkTurboCache.mjs -- --filter=@xattn/core...   # extra turbo arguments
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const TASKS = ['lint', 'build', 'typecheck', 'test']
const args = process.argv.slice(2)
const configOnly = args.includes('--config-only')
const separator = args.indexOf('--')
const turboArgs = separator < 0 ? [] : args.slice(separator + 1)

// The workspace's own turbo binary: no dependence on pnpm being on PATH.
const turbo = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'turbo.cmd' : 'turbo')
const run = spawnSync(turbo, ['run', ...TASKS, '--dry=json', ...turboArgs], {
  cwd: root,
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
})
if (run.status !== 0) {
  process.stderr.write(`turbo --dry=json failed (${run.status}):\n${run.stderr}\n`)
  process.exit(2)
}
const dry = JSON.parse(run.stdout.slice(run.stdout.indexOf('{')))
const real = dry.tasks.filter((t) => t.command !== '<NONEXISTENT>')
const problems = []
for (const t of real) {
  if (t.resolvedTaskDefinition.cache !== true) problems.push(`${t.taskId}: caching is off`)
  if (t.task === 'build' && !t.resolvedTaskDefinition.outputs.some((o) => o.startsWith('dist'))) {
    problems.push(
      `${t.taskId}: build declares no dist outputs (${JSON.stringify(t.resolvedTaskDefinition.outputs)})`,
    )
  }
}
if (!configOnly) {
  for (const t of real) if (t.cache.status !== 'HIT') problems.push(`${t.taskId}: cache ${t.cache.status}`)
}
const summary = `${real.length} tasks with a command (${TASKS.join(', ')})`
if (problems.length > 0) {
  process.stderr.write(`${summary}; ${problems.length} problem(s):\n  ${problems.join('\n  ')}\n`)
  process.exit(1)
}
process.stdout.write(`${summary}: ${configOnly ? 'all cacheable' : 'all served from the cache'}\n`)
