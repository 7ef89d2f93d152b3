import { dirname, join, parse } from 'node:path'
import { fileURLToPath } from 'node:url'
import { coveringArray, type Row, uncoveredPairs } from '../coveringArray.js'
import { AXES, type AxisName, type Combination, MATRIX_SEED, NAMED_TRIPLES } from './axes.js'
import {
  type KnownBug,
  MODEL_AXES,
  MODEL_FORBIDDEN,
  MODEL_KNOWN_BUGS,
  MODEL_MATRIX_SEED,
  MODEL_NAMED_TRIPLES,
  type ModelCombination,
} from './modelAxes.js'
import type { CombinationResult, InvariantName } from './runCombination.js'
import type { ModelResult } from './runModelCombination.js'

/** The matrix's rows: the seeded pairwise covering array over {@link AXES} with the named triples. */
export function matrixRows(): Combination[] {
  return coveringArray(AXES, {
    seed: MATRIX_SEED,
    required: NAMED_TRIPLES,
  }) as Row[] as unknown as Combination[]
}

/** The checked-in docs/compatibility.md (found from src/ or dist/src/ of apps/integration). */
export function compatibilityPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!dir.endsWith(join('apps', 'integration'))) {
    if (dir === parse(dir).root) throw new Error('compatibilityPath: not inside apps/integration')
    dir = dirname(dir)
  }
  return join(dir, '..', '..', 'docs', 'compatibility.md')
}

/** The model matrix's rows: allowed combinations only (forbidden ones are tested for rejection). */
export function modelMatrixRows(): ModelCombination[] {
  return coveringArray(MODEL_AXES, {
    seed: MODEL_MATRIX_SEED,
    required: MODEL_NAMED_TRIPLES,
    forbidden: MODEL_FORBIDDEN.map((f) => f.tuple),
  }) as Row[] as unknown as ModelCombination[]
}

/** A configuration that must be rejected at construction, and why it is unsupported. */
export interface RejectionProbe {
  readonly name: string
  readonly why: string
}

const SHORT: Readonly<Record<InvariantName, string>> = {
  'finite forward': 'fwd',
  'finite gradients': 'grad',
  'flash ≡ reference': 'flash≡ref',
  'cached decoding ≡ full forward': 'cache≡full',
  'GQA with duplicated weights ≡ MHA': 'gqa≡mha',
  'dropout reproducible from its seed': 'dropout-seed',
  'no tensor leaks': 'no-leak',
}

const NOT_YET: readonly [string, string][] = [
  ['positions, qk-norm, memory tokens', 'model-level features: see the model matrix below'],
]

const MODEL_SHORT: Readonly<Record<ModelResult['checks'][number]['name'], string>> = {
  'finite forward': 'fwd',
  'finite gradients': 'grad',
  'flash ≡ reference': 'flash≡ref',
  'cached decoding ≡ full forward': 'cache≡full',
  'GQA with duplicated weights ≡ MHA': 'gqa≡mha',
  'train-mode dropout': 'dropout',
  'checkpoint round trip': 'ckpt',
  'generate: cached ≡ uncached': 'gen-cache',
  'no tensor leaks': 'no-leak',
}

/** The known bug that excuses `invariant` on this combination, if any. */
export function knownBugFor(combination: object, invariant: string): KnownBug | undefined {
  const row = combination as Record<string, string>
  return MODEL_KNOWN_BUGS.find(
    (bug) =>
      bug.invariant === invariant && Object.entries(bug.tuple).every(([axis, value]) => row[axis] === value),
  )
}

const cell = (text: string) => text.replaceAll('|', '\\|')

function renderModelMatrix(
  results: readonly ModelResult[],
  forbidden: readonly { readonly forbidden: (typeof MODEL_FORBIDDEN)[number]; readonly message: string }[],
): string[] {
  const axisNames = Object.keys(MODEL_AXES) as (keyof typeof MODEL_AXES)[]
  const rows = results.map((r) => r.combination as unknown as Row)
  const uncovered = uncoveredPairs(
    MODEL_AXES,
    rows,
    MODEL_FORBIDDEN.map((f) => f.tuple),
  )
  const lines: string[] = []
  lines.push('## Model matrix (`@xattn/transformer`)')
  lines.push('')
  lines.push(
    'Each row builds a small `TransformerWrapper` (Decoder when causal, Encoder otherwise; 4 query heads of',
    'width 32, model width 16, 20 tokens, 4 positions, batch 2) and checks the invariants on its logits: `flash≡ref`',
    '(an identical model with reference attention, same weights), `cache≡full` (`forwardWithCache` one token at',
    'a time against `forward` on each prefix), `gqa≡mha` (an MHA model loaded with the KV weights, memory KV and',
    'per-KV-head qk-norm scales repeated per query head), `dropout` (train mode: finite, differs from eval),',
    '`ckpt` (`encodeModel` → `decodeModelInto` a model built from other seeds → identical logits),',
    '`gen-cache` (causal self-attention rows with the cache: `AutoregressiveWrapper.generate` greedy, prompts of',
    'lengths 3 and 2, the same tokens with and without the KV cache),',
    "`fwd`/`grad` finite and `no-leak`. With extras sparseTopk, talkingHeads, softclamp or localAttn the layer runs core's",
    'reference building blocks even when attention=flash (the kernel cannot express them; `@xattn/transformer`',
    'falls back by design); `flash≡ref` also checks which path ran (the flash kernel in every other flash row).',
  )
  lines.push('')
  lines.push('| axis | values |')
  lines.push('|---|---|')
  for (const a of axisNames) lines.push(`| ${a} | ${MODEL_AXES[a].join(', ')} |`)
  lines.push('')
  lines.push('Named combinations (each in some row):')
  lines.push('')
  for (const t of MODEL_NAMED_TRIPLES) {
    lines.push(
      `- ${Object.entries(t)
        .map(([k, v]) => `${k}=${v}`)
        .join(' × ')}`,
    )
  }
  lines.push('')
  lines.push(
    `Seed ${MODEL_MATRIX_SEED}: ${rows.length} rows; every allowed pair of values is covered` +
      (uncovered.length === 0 ? '.' : ` except: ${uncovered.join('; ')}.`),
  )
  lines.push('')
  lines.push(`| # | ${axisNames.join(' | ')} | result | invariants |`)
  lines.push(`|---|${axisNames.map(() => '---').join('|')}|---|---|`)
  results.forEach((r, i) => {
    // A known bug's invariant is written as such whatever this run measured (on wasm the bug
    // reads out of bounds, so its outcome is not reproducible), keeping the file stable.
    const bugged = (name: string) => knownBugFor(r.combination, name) !== undefined
    const failed = r.checks.filter((c) => !c.ok && !bugged(c.name))
    const hasBug = r.checks.some((c) => bugged(c.name))
    const result =
      r.status === 'rejected'
        ? `rejected: ${cell(r.rejection ?? '')}`
        : failed.length > 0
          ? 'FAIL'
          : hasBug
            ? 'known bug'
            : 'ok'
    const invariants = r.checks
      .map((c) =>
        bugged(c.name)
          ? `${MODEL_SHORT[c.name]}: known bug`
          : c.ok
            ? MODEL_SHORT[c.name]
            : `**${MODEL_SHORT[c.name]} FAILED**`,
      )
      .join(', ')
    lines.push(
      `| ${i + 1} | ${axisNames.map((a) => r.combination[a]).join(' | ')} | ${result} | ${invariants} |`,
    )
  })
  lines.push('')
  lines.push('### Known bugs')
  lines.push('')
  if (MODEL_KNOWN_BUGS.length === 0) {
    lines.push('None at present: a test checks that the list stays empty and that the last ones stay fixed.')
  } else {
    lines.push(
      'Found by this matrix and reported; the rows above that contain the combination are marked, and a test',
    )
    lines.push('checks that each bug still reproduces (so the entry goes when the bug is fixed):')
    lines.push('')
    lines.push('| combination | invariant | bug |')
    lines.push('|---|---|---|')
    for (const bug of MODEL_KNOWN_BUGS) {
      const tuple = Object.entries(bug.tuple)
        .map(([k, v]) => `${k}=${v}`)
        .join(' × ')
      lines.push(`| ${tuple} | ${bug.invariant} | ${cell(bug.why)} |`)
    }
  }
  lines.push('')
  lines.push('### Unsupported model combinations')
  lines.push('')
  lines.push('Kept out of the rows above; each is asserted to be refused, by name:')
  lines.push('')
  lines.push('| combination | why | refused | error |')
  lines.push('|---|---|---|---|')
  for (const { forbidden: f, message } of forbidden) {
    const tuple = Object.entries(f.tuple)
      .map(([k, v]) => `${k}=${v}`)
      .join(' × ')
    const when = f.rejectedAt === 'construction' ? 'at construction' : 'before decoding'
    lines.push(`| ${tuple} | ${f.why} | ${when} | ${cell(message)} |`)
  }
  lines.push('')
  return lines
}

/**
 * docs/compatibility.md from the matrix results. Only pass/fail/rejection is written (no measured
 * numbers), so the file is stable across machines and backends.
 */
export function renderCompatibility(
  results: readonly CombinationResult[],
  rejections: readonly { probe: RejectionProbe; message: string }[],
  model: {
    readonly results: readonly ModelResult[]
    readonly forbidden: readonly {
      readonly forbidden: (typeof MODEL_FORBIDDEN)[number]
      readonly message: string
    }[]
  },
): string {
  const axisNames = Object.keys(AXES) as AxisName[]
  const rows = results.map((r) => r.combination as unknown as Row)
  const pairCount = axisNames.reduce(
    (sum, a, i) => sum + axisNames.slice(i + 1).reduce((s, b) => s + AXES[a].length * AXES[b].length, 0),
    0,
  )
  const uncovered = uncoveredPairs(AXES, rows)
  const lines: string[] = []
  lines.push('# Compatibility matrix')
  lines.push('')
  lines.push(
    '<!-- Generated by `pnpm --filter @xattn/integration run compat` from apps/integration/src/matrix; do not edit. A test fails when this file is stale. -->',
  )
  lines.push('')
  lines.push(
    'Every feature with every other: a seeded pairwise covering array over the axes below (every pair of values',
    'of any two axes meets in at least one row, plus the named triples). Each row builds a small attention layer',
    'from the published packages (`@xattn/kv-heads` projections, `@xattn/memory-kv` memory, the core registry',
    "for 'reference' or `@xattn/flash`), runs forward and backward on the built packages and checks the",
    'invariants listed per row.',
  )
  lines.push('')
  lines.push('## Axes')
  lines.push('')
  lines.push('| axis | values |')
  lines.push('|---|---|')
  for (const a of axisNames) lines.push(`| ${a} | ${AXES[a].join(', ')} |`)
  lines.push('')
  lines.push('Not in the matrix yet:')
  lines.push('')
  for (const [what, why] of NOT_YET) lines.push(`- ${what}: ${why}.`)
  lines.push('')
  lines.push('Named triples (each in some row):')
  lines.push('')
  for (const t of NAMED_TRIPLES) {
    lines.push(
      `- ${Object.entries(t)
        .map(([k, v]) => `${k}=${v}`)
        .join(' × ')}`,
    )
  }
  lines.push('')
  lines.push(
    `Seed ${MATRIX_SEED}: ${rows.length} rows cover ${pairCount - uncovered.length} of ${pairCount} value pairs` +
      (uncovered.length === 0 ? ' (all).' : `; uncovered: ${uncovered.join('; ')}.`),
  )
  lines.push('')
  lines.push('## Invariants')
  lines.push('')
  lines.push(
    '- `fwd`, `grad`: forward output and every parameter gradient finite (no NaN, also with fully padded rows).',
  )
  lines.push(
    '- `flash≡ref`: flash outputs and gradients equal the reference (same weights) within float32 tolerance.',
  )
  lines.push(
    '- `cache≡full`: decoding one position at a time with a key/value cache equals the full forward on each prefix.',
  )
  lines.push(
    '- `gqa≡mha`: the GQA/MQA layer equals an MHA layer whose KV weights and memory are duplicated per query head.',
  )
  lines.push(
    '- `dropout-seed`: in train mode, the same dropout seed gives the same output, which differs from eval mode;',
    '  output and gradients are finite.',
  )
  lines.push('- `no-leak`: `tf.memory().numTensors` is unchanged after the whole row.')
  lines.push('')
  lines.push(
    '`flash≡ref`, `cache≡full` and `gqa≡mha` compare eval-mode runs: the implementations draw different (each',
    'reproducible) dropout masks. Rows with dropout on also run the train-mode checks of `dropout-seed`.',
  )
  lines.push('')
  lines.push('## Combinations')
  lines.push('')
  lines.push(`| # | ${axisNames.join(' | ')} | result | invariants |`)
  lines.push(`|---|${axisNames.map(() => '---').join('|')}|---|---|`)
  results.forEach((r, i) => {
    const values = axisNames.map((a) => r.combination[a])
    const failed = r.checks.filter((c) => !c.ok)
    const result = r.status === 'rejected' ? `rejected: ${r.rejection}` : failed.length === 0 ? 'ok' : 'FAIL'
    const invariants = r.checks.map((c) => (c.ok ? SHORT[c.name] : `**${SHORT[c.name]} FAILED**`)).join(', ')
    lines.push(`| ${i + 1} | ${values.join(' | ')} | ${result} | ${invariants} |`)
  })
  lines.push('')
  lines.push(...renderModelMatrix(model.results, model.forbidden))
  lines.push('## Rejected at construction (attention layer)')
  lines.push('')
  lines.push('Unsupported configurations throw a `ConfigError` before any tensor is made:')
  lines.push('')
  lines.push('| configuration | why | error |')
  lines.push('|---|---|---|')
  for (const { probe, message } of rejections)
    lines.push(`| ${probe.name} | ${probe.why} | ${message.replaceAll('|', '\\|')} |`)
  lines.push('')
  return lines.join('\n')
}
