import { existsSync, readFileSync } from 'node:fs'
import * as tf from '@tensorflow/tfjs-core'
import { describe, expect, it } from 'vitest'
import { missingTuples, type Row, uncoveredPairs } from '../src/coveringArray.js'
import { AXES, type Combination, NAMED_TRIPLES } from '../src/matrix/axes.js'
import { compatibilityPath, matrixRows, renderCompatibility } from '../src/matrix/compatDoc.js'
import { probeRejection, REJECTIONS } from '../src/matrix/rejections.js'
import { type CombinationResult, runCombination } from '../src/matrix/runCombination.js'

// The combination matrix on the built packages: every row of the covering array builds a small
// attention layer and must pass every invariant that applies to it (see runCombination.ts).
// The results also regenerate docs/compatibility.md, which must match the checked-in file.

const rows = matrixRows()
const results: CombinationResult[] = []
const label = (c: Combination) =>
  Object.entries(c)
    .map(([axis, value]) => `${axis}=${value}`)
    .join(' ')

describe('combination matrix', () => {
  it('covers every pair of axis values and every named triple', () => {
    expect(uncoveredPairs(AXES, rows as unknown as Row[])).toEqual([])
    expect(missingTuples(rows as unknown as Row[], NAMED_TRIPLES)).toEqual([])
  })

  rows.forEach((row, i) => {
    it(`#${i + 1} ${label(row)}`, async () => {
      const result = await runCombination(row)
      results.push(result)
      expect(result.status, result.rejection).toBe('ok')
      const failed = result.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`)
      expect(failed).toEqual([])
      // Every row checks at least finiteness both ways and leaks.
      expect(result.checks.map((c) => c.name)).toEqual(
        expect.arrayContaining(['finite forward', 'finite gradients', 'no tensor leaks']),
      )
    })
  })

  it('exercises every invariant somewhere', () => {
    const seen = new Set(results.flatMap((r) => r.checks.map((c) => c.name)))
    expect([...seen].sort()).toEqual(
      [
        'GQA with duplicated weights ≡ MHA',
        'cached decoding ≡ full forward',
        'dropout reproducible from its seed',
        'finite forward',
        'finite gradients',
        'flash ≡ reference',
        'no tensor leaks',
      ].sort(),
    )
  })

  const rejections: { probe: (typeof REJECTIONS)[number]; outcome: ReturnType<typeof probeRejection> }[] = []
  for (const probe of REJECTIONS) {
    it(`rejects ${probe.name} at construction with a ConfigError, before any tensor`, () => {
      const before = tf.memory().numTensors
      const outcome = probeRejection(probe)
      rejections.push({ probe, outcome })
      expect(outcome.rejected, outcome.message).toBe(true)
      expect(tf.memory().numTensors).toBe(before)
    })
  }

  it('docs/compatibility.md is current (regenerate: pnpm --filter @xattn/integration run compat)', () => {
    expect(results.length).toBe(rows.length)
    expect(rejections.length).toBe(REJECTIONS.length)
    const text = renderCompatibility(
      results,
      rejections.map(({ probe, outcome }) => ({ probe, message: outcome.message })),
    )
    const path = compatibilityPath()
    const current = existsSync(path) ? readFileSync(path, 'utf8') : ''
    expect(current === text, `${path} is stale: run pnpm --filter @xattn/integration run compat`).toBe(true)
  })
})
