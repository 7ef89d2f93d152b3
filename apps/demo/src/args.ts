/** Command-line options of the demo, with their defaults (the default run reaches `target`). */
export interface DemoOptions {
  readonly task: 'reverse' | 'copy' | 'mixed'
  readonly digits: number
  readonly steps: number
  readonly batch: number
  readonly dim: number
  readonly depth: number
  readonly heads: number
  readonly kvHeads: number
  readonly dimHead: number
  readonly memKv: number
  readonly rotary: boolean
  readonly attention: 'auto' | 'flash' | 'reference'
  readonly backend: 'cpu' | 'wasm'
  readonly lr: number
  readonly warmup: number
  readonly seed: number
  readonly evalSize: number
  readonly samples: number
  readonly cache: boolean
  readonly target: number
  readonly checkpoint: string | null
  readonly resume: boolean
  readonly quiet: boolean
}

export const DEFAULTS: DemoOptions = {
  task: 'mixed',
  digits: 6,
  steps: 600,
  batch: 32,
  dim: 64,
  depth: 2,
  heads: 4,
  kvHeads: 2,
  dimHead: 32,
  memKv: 4,
  rotary: true,
  attention: 'auto',
  backend: 'wasm',
  lr: 3e-3,
  warmup: 40,
  seed: 0,
  evalSize: 256,
  samples: 4,
  cache: true,
  target: 0.95,
  checkpoint: 'checkpoints/latest',
  resume: false,
  quiet: false,
}

export const HELP = `xattn demo: train a small decoder on a sequence task, then sample it with the KV cache.

Task: every example is  <task> d1 … dN <sep> answer  with N random digits; the answer is the
digits reversed (reverse), repeated (copy), or either as chosen by the task token (mixed).
The model only sees the answer through attention to the digits, so learning it shows attention
works. The run reports exact-match accuracy on held-out sequences decoded greedily with the KV
cache; the default run's target is ${DEFAULTS.target * 100}% (--target).

Usage: npm run demo -- [options]        (or: pnpm --filter @xattn/demo run start [options])

Task and training
  --task reverse|copy|mixed   the task (default ${DEFAULTS.task})
  --digits N                  digits per example (default ${DEFAULTS.digits})
  --steps N                   optimiser steps (default ${DEFAULTS.steps}; stops early at the target)
  --batch N                   sequences per step (default ${DEFAULTS.batch})
  --lr X                      peak learning rate of AdamW (default ${DEFAULTS.lr}), warmup + cosine
  --warmup N                  warmup steps (default ${DEFAULTS.warmup})
  --seed N                    seed of the data and the initial parameters (default ${DEFAULTS.seed})
Model
  --dim N --depth N --heads N model width, layers, query heads (default ${DEFAULTS.dim}, ${DEFAULTS.depth}, ${DEFAULTS.heads})
  --kv-heads N                key/value heads: < heads is GQA, 1 is MQA (default ${DEFAULTS.kvHeads})
  --dim-head N                features per head (default ${DEFAULTS.dimHead})
  --mem-kv N                  learned memory key/values per layer, 0 = none (default ${DEFAULTS.memKv})
  --no-rotary                 absolute position embedding instead of rotary
  --attention auto|flash|reference
                              attention kernel; auto = flash when @xattn/flash loads (default ${DEFAULTS.attention})
  --backend wasm|cpu          TensorFlow.js backend (default ${DEFAULTS.backend})
Evaluation and output
  --eval N                    held-out sequences for the accuracy (default ${DEFAULTS.evalSize})
  --samples N                 sampled examples printed (default ${DEFAULTS.samples})
  --no-cache                  decode without the KV cache
  --target X                  accuracy to reach, 0…1 (default ${DEFAULTS.target})
  --checkpoint DIR            where to save (default apps/demo/${DEFAULTS.checkpoint}; relative paths
                              are under apps/demo)
  --no-save                   do not save a checkpoint
  --resume                    continue training from --checkpoint (model, optimiser and step);
                              the model flags must match the saved ones
  --quiet                     no progress bar
  --help                      this text
`

/** A bad command line; the message says which flag and what it accepts. */
export class UsageError extends Error {
  override name = 'UsageError'
}

type Kind = 'int' | 'posInt' | 'number' | 'fraction' | { choices: readonly string[] }

const VALUE_FLAGS: Readonly<Record<string, readonly [keyof DemoOptions, Kind]>> = {
  '--task': ['task', { choices: ['reverse', 'copy', 'mixed'] }],
  '--digits': ['digits', 'posInt'],
  '--steps': ['steps', 'int'],
  '--batch': ['batch', 'posInt'],
  '--dim': ['dim', 'posInt'],
  '--depth': ['depth', 'posInt'],
  '--heads': ['heads', 'posInt'],
  '--kv-heads': ['kvHeads', 'posInt'],
  '--dim-head': ['dimHead', 'posInt'],
  '--mem-kv': ['memKv', 'int'],
  '--attention': ['attention', { choices: ['auto', 'flash', 'reference'] }],
  '--backend': ['backend', { choices: ['wasm', 'cpu'] }],
  '--lr': ['lr', 'number'],
  '--warmup': ['warmup', 'int'],
  '--seed': ['seed', 'int'],
  '--eval': ['evalSize', 'posInt'],
  '--samples': ['samples', 'int'],
  '--target': ['target', 'fraction'],
  '--checkpoint': ['checkpoint', { choices: [] }],
}

const SWITCHES: Readonly<Record<string, readonly [keyof DemoOptions, unknown]>> = {
  '--no-rotary': ['rotary', false],
  '--no-cache': ['cache', false],
  '--no-save': ['checkpoint', null],
  '--quiet': ['quiet', true],
  '--resume': ['resume', true],
}

function convert(flag: string, raw: string, kind: Kind): unknown {
  if (typeof kind === 'object') {
    if (kind.choices.length > 0 && !kind.choices.includes(raw)) {
      throw new UsageError(`${flag} must be one of ${kind.choices.join(', ')}, got '${raw}'`)
    }
    return raw
  }
  const value = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(value))
    throw new UsageError(`${flag} needs a number, got '${raw}'`)
  if ((kind === 'int' || kind === 'posInt') && !Number.isInteger(value)) {
    throw new UsageError(`${flag} needs an integer, got '${raw}'`)
  }
  if (kind === 'int' && value < 0) throw new UsageError(`${flag} must be ≥ 0, got ${raw}`)
  if (kind === 'posInt' && value < 1) throw new UsageError(`${flag} must be ≥ 1, got ${raw}`)
  if (kind === 'number' && value <= 0) throw new UsageError(`${flag} must be > 0, got ${raw}`)
  if (kind === 'fraction' && !(value >= 0 && value <= 1))
    throw new UsageError(`${flag} must be in [0, 1], got ${raw}`)
  return value
}

/**
 * Parses the demo's arguments (`--flag value` or `--flag=value`). Returns `'help'` for `--help`.
 * Throws {@link UsageError} naming the flag for anything unknown or invalid.
 */
export function parseArgs(argv: readonly string[]): DemoOptions | 'help' {
  const options: Record<string, unknown> = { ...DEFAULTS }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') continue
    if (arg === '--help' || arg === '-h') return 'help'
    const eq = arg.indexOf('=')
    const flag = eq > 0 ? arg.slice(0, eq) : arg
    const switchSpec = SWITCHES[flag]
    if (switchSpec !== undefined) {
      if (eq > 0) throw new UsageError(`${flag} takes no value`)
      options[switchSpec[0]] = switchSpec[1]
      continue
    }
    const spec = VALUE_FLAGS[flag]
    if (spec === undefined) throw new UsageError(`unknown option '${arg}' (see --help)`)
    let raw: string | undefined
    if (eq > 0) raw = arg.slice(eq + 1)
    else {
      raw = argv[i + 1]
      i++
    }
    if (raw === undefined || (eq < 0 && raw.startsWith('--'))) throw new UsageError(`${flag} needs a value`)
    options[spec[0]] = convert(flag, raw, spec[1])
  }
  const parsed = options as unknown as DemoOptions
  if (parsed.resume && parsed.checkpoint === null)
    throw new UsageError('--resume needs a checkpoint (not --no-save)')
  if (parsed.heads % parsed.kvHeads !== 0) {
    throw new UsageError(`--kv-heads (${parsed.kvHeads}) must divide --heads (${parsed.heads})`)
  }
  // x-transformers rotates max(dimHead / 2, 32) features, so rotary needs dimHead ≥ 32.
  if (parsed.rotary && (parsed.dimHead % 2 !== 0 || parsed.dimHead < 32)) {
    throw new UsageError(
      `--dim-head must be even and ≥ 32 with rotary positions (or use --no-rotary), got ${parsed.dimHead}`,
    )
  }
  return parsed
}
