import { existsSync, readFileSync } from 'node:fs'
import * as tf from '@tensorflow/tfjs-core'
import { useBackend } from '@xattn/core'
import { describe, expect, it } from 'vitest'
import { missingTuples, type Row, uncoveredPairs } from '../src/coveringArray.js'
import { AXES, type Combination, NAMED_TRIPLES } from '../src/matrix/axes.js'
import {
  compatibilityPath,
  knownBugFor,
  matrixRows,
  modelMatrixRows,
  renderCompatibility,
} from '../src/matrix/compatDoc.js'
import {
  MODEL_AXES,
  MODEL_FORBIDDEN,
  MODEL_KNOWN_BUGS,
  MODEL_NAMED_TRIPLES,
} from '../src/matrix/modelAxes.js'
import { probeRejection, REJECTIONS } from '../src/matrix/rejections.js'
import { type CombinationResult, runCombination } from '../src/matrix/runCombination.js'
import {
  buildModel,
  combinationWith,
  type ModelResult,
  probeForbidden,
  runModelCombination,
} from '../src/matrix/runModelCombination.js'

// The combination matrices on the built packages. Every row of each covering array builds a
// small model and must pass every invariant that applies to it (runCombination.ts for the
// attention layer composed from kv-heads/memory-kv/flash, runModelCombination.ts for the
// TransformerWrapper). Unsupported combinations are asserted to be refused. The results
// regenerate docs/compatibility.md, which must match the checked-in file.

const label = (c: object) =>
  Object.entries(c)
    .map(([axis, value]) => `${axis}=${value}`)
    .join(' ')

const layerRows = matrixRows()
const layerResults: CombinationResult[] = []
const modelRows = modelMatrixRows()
const modelResults: ModelResult[] = []
const rejections: { probe: (typeof REJECTIONS)[number]; message: string }[] = []
const forbiddenOutcomes: { forbidden: (typeof MODEL_FORBIDDEN)[number]; message: string }[] = []

describe('attention-layer matrix (kv-heads × memory-kv × flash)', () => {
  it('covers every pair of axis values and every named triple', () => {
    expect(uncoveredPairs(AXES, layerRows as unknown as Row[])).toEqual([])
    expect(missingTuples(layerRows as unknown as Row[], NAMED_TRIPLES)).toEqual([])
  })

  layerRows.forEach((row: Combination, i) => {
    it(`#${i + 1} ${label(row)}`, async () => {
      const result = await runCombination(row)
      layerResults[i] = result
      expect(result.status, result.rejection).toBe('ok')
      expect(result.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`)).toEqual([])
      expect(result.checks.map((c) => c.name)).toEqual(
        expect.arrayContaining(['finite forward', 'finite gradients', 'no tensor leaks']),
      )
    })
  })

  it('exercises every invariant somewhere', () => {
    const seen = new Set(layerResults.flatMap((r) => r.checks.map((c) => c.name)))
    expect(seen.size).toBe(7)
  })

  for (const probe of REJECTIONS) {
    it(`rejects ${probe.name} at construction with a ConfigError, before any tensor`, () => {
      const before = tf.memory().numTensors
      const outcome = probeRejection(probe)
      rejections.push({ probe, message: outcome.message })
      expect(outcome.rejected, outcome.message).toBe(true)
      expect(tf.memory().numTensors).toBe(before)
    })
  }
})

describe('model matrix (TransformerWrapper)', () => {
  it('covers every allowed pair and every named combination, and no forbidden one', () => {
    const forbidden = MODEL_FORBIDDEN.map((f) => f.tuple)
    expect(uncoveredPairs(MODEL_AXES, modelRows as unknown as Row[], forbidden)).toEqual([])
    expect(missingTuples(modelRows as unknown as Row[], MODEL_NAMED_TRIPLES)).toEqual([])
    expect(missingTuples(modelRows as unknown as Row[], forbidden)).toEqual(forbidden)
  })

  modelRows.forEach((row, i) => {
    it(`#${i + 1} ${label(row)}`, async () => {
      const result = await runModelCombination(row)
      modelResults[i] = result
      expect(result.status, result.rejection).toBe('ok')
      // A known bug (MODEL_KNOWN_BUGS, reproduced below) excuses only its own invariant.
      const failed = result.checks.filter((c) => !c.ok && knownBugFor(row, c.name) === undefined)
      expect(failed.map((c) => `${c.name}: ${c.detail}`)).toEqual([])
    })
  })

  it('exercises every invariant somewhere', () => {
    const seen = new Set(modelResults.flatMap((r) => r.checks.map((c) => c.name)))
    expect(seen.size).toBe(9)
  })

  it('has no known bugs; the last two stay fixed', async () => {
    expect(MODEL_KNOWN_BUGS).toEqual([])
    await useBackend('cpu')
    // DynamicPositionBias with one key position: a 1-token forward (it used to throw on cpu).
    const dynamic = buildModel(combinationWith({ positions: 'dynamic' }, MODEL_AXES))
    const one = tf.tensor2d([[3]], [1, 1], 'int32')
    try {
      const logits = dynamic.forward(one)
      expect(logits.shape).toEqual([1, 1, 20])
      logits.dispose()
    } finally {
      one.dispose()
      dynamic.dispose()
    }
    // A non-causal stack of two layers names causal as the reason it cannot cache.
    const encoder = buildModel(combinationWith({ causal: 'off', depth: '2' }, MODEL_AXES))
    try {
      expect(encoder.cacheUnsupportedReason()).toBe('causal')
    } finally {
      encoder.dispose()
    }
  })

  for (const forbidden of MODEL_FORBIDDEN) {
    it(`refuses ${label(forbidden.tuple)} by name (${forbidden.option})`, () => {
      const outcome = probeForbidden(forbidden, MODEL_AXES)
      forbiddenOutcomes.push({ forbidden, message: outcome.message })
      expect(outcome.ok, outcome.message).toBe(true)
    })
  }
})

describe('docs/compatibility.md', () => {
  it('is current (regenerate: pnpm --filter @xattn/integration run compat)', () => {
    expect(layerResults.filter(Boolean).length).toBe(layerRows.length)
    expect(modelResults.filter(Boolean).length).toBe(modelRows.length)
    expect(rejections.length).toBe(REJECTIONS.length)
    expect(forbiddenOutcomes.length).toBe(MODEL_FORBIDDEN.length)
    const text = renderCompatibility(layerResults, rejections, {
      results: modelResults,
      forbidden: forbiddenOutcomes,
    })
    const path = compatibilityPath()
    const current = existsSync(path) ? readFileSync(path, 'utf8') : ''
    expect(current === text, `${path} is stale: run pnpm --filter @xattn/integration run compat`).toBe(true)
  })
})
