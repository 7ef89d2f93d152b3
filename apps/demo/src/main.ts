#!/usr/bin/env node
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { HELP, parseArgs, UsageError } from './args.js'
import { runDemo } from './demo.js'

// dist/main.js → the app folder (checkpoints/ lives there and is gitignored).
const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')

async function main(): Promise<number> {
  let options: ReturnType<typeof parseArgs>
  try {
    options = parseArgs(process.argv.slice(2))
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`xattn demo: ${error.message}\n`)
      return 2
    }
    throw error
  }
  if (options === 'help') {
    process.stdout.write(HELP)
    return 0
  }
  const result = await runDemo(
    options,
    { out: (line) => process.stdout.write(`${line}\n`), progress: process.stderr },
    appDir,
  )
  // A missed target is reported in the output (✗ line); the exit status is for errors only.
  void result
  return 0
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`xattn demo: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  },
)
