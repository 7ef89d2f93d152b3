import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import { decodeSafetensors, encodeSafetensors } from '@xattn/core'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  findCases,
  flashAvailable,
  type ParityCase,
  runVariant,
  setBackend,
  type VariantResult,
} from '../src/parity.js'

// The acceptance test of issue 5, against the built packages: every x-transformers fixture case
// through `fromXTransformers` on cpu and wasm, with reference and flash attention, plus loss and
// gradients where the case has train.safetensors. The models are tiny, so
// the whole matrix takes seconds; `pnpm parity` prints the same matrix.

const FIXTURES = fileURLToPath(new URL('../../../fixtures/x-transformers/', import.meta.url))
const CASES = findCases([FIXTURES])
const byName = new Map(CASES.map((c) => [c.name, c]))

/** Fixture cases that fromXTransformers rejects (kwarg named in the ConfigError). None today. */
const REJECTED: Readonly<Record<string, string>> = {}

const TRAIN_CASES = [
  'alibi',
  'combo_memkv_onekv_rotary_qknorm_glu',
  'decoder_base',
  'kv_heads2',
  'llama_like',
  'num_mem_kv_one_kv_head',
  'num_memory_tokens',
  'qk_norm',
  'rotary',
]

function expectPass(result: VariantResult): void {
  const expectedRejection = REJECTED[result.caseName]
  if (expectedRejection !== undefined) {
    expect(result.status, result.detail).toBe('rejected')
    expect(result.rejectedOption).toBe(expectedRejection)
    return
  }
  expect(result.status, `${result.caseName} ${result.backend} ${result.attention}: ${result.detail}`).toBe(
    'ok',
  )
  // The acceptance tolerance is 1e-4; runVariant already applies it, this states it here too.
  expect(result.maxAbsErr).toBeLessThanOrEqual(1e-4)
}

function caseNamed(name: string): ParityCase {
  const c = byName.get(name)
  if (c === undefined) throw new Error(`fixture case ${name} is missing`)
  return c
}

it('finds every fixture case', () => {
  expect(CASES.length).toBe(59)
  for (const name of [...TRAIN_CASES, ...Object.keys(REJECTED)]) caseNamed(name)
})

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`parity: ${backend}, reference attention, every case (with loss and gradients where recorded)`, () => {
    beforeAll(async () => {
      await setBackend(backend)
    })
    for (const c of CASES) {
      it(c.name, async () => {
        const result = await runVariant(c, backend, 'reference', { train: true })
        expectPass(result)
        if (TRAIN_CASES.includes(c.name)) {
          expect(result.train, 'train check ran').toBeDefined()
          expect(result.train?.lossRelErr).toBeLessThanOrEqual(1e-5)
          expect(result.train?.maxGradErr).toBeLessThanOrEqual(1e-4)
        }
      })
    }
  })

  describe(`parity: ${backend}, flash attention, every case (with loss and gradients where recorded)`, () => {
    beforeAll(async () => {
      await setBackend(backend)
    })
    it('@xattn/flash registers the flash implementation', async () => {
      expect(await flashAvailable()).toBe(true)
    })
    for (const c of CASES) {
      it(c.name, async () => {
        const result = await runVariant(c, backend, 'flash', { train: true })
        expectPass(result)
        if (TRAIN_CASES.includes(c.name)) expect(result.train?.ok, 'flash loss and gradients').toBe(true)
      })
    }
  })
}

describe('parity: unsupported kwargs are rejected by name, not run', () => {
  it('a case whose kwargs x-transformers accepts but xattn does not is reported as rejected', async () => {
    const base = caseNamed('decoder_base')
    const json = JSON.parse(readFileSync(join(base.dir, 'case.json'), 'utf8')) as {
      config: ParityCase['config']
    }
    const unsupported: ParityCase = {
      name: 'decoder_base+attn_l2_distance',
      dir: base.dir,
      config: { ...json.config, layers_kwargs: { ...json.config.layers_kwargs, attn_l2_distance: true } },
    }
    await setBackend('cpu')
    const result = await runVariant(unsupported, 'cpu', 'reference')
    expect(result.status).toBe('rejected')
    expect(result.rejectedOption).toBe('attn_l2_distance')
    expect(result.detail).toContain('attn_l2_distance')
  })
})

describe('parity: a wrong checkpoint fails and names the first diverging layer', () => {
  it('perturbing layer 2 (the second attention) is reported at layer_hiddens.3', async () => {
    await setBackend('cpu')
    const base = caseNamed('decoder_base')
    const dir = mkdtempSync(join(tmpdir(), 'xattn-parity-'))
    for (const file of [
      'case.json',
      'inputs.safetensors',
      'logits.safetensors',
      'intermediates.safetensors',
    ]) {
      copyFileSync(join(base.dir, file), join(dir, file))
    }
    const weights = decodeSafetensors(readFileSync(join(base.dir, 'model.safetensors')))
    const key = 'attn_layers.layers.2.1.to_v.weight'
    const original = weights.get(key) as tf.Tensor
    weights.set(key, tf.add(original, tf.scalar(0.05)))
    original.dispose()
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(weights))
    for (const t of weights.values()) t.dispose()
    const [corrupted] = findCases([dir])
    const result = await runVariant(corrupted as ParityCase, 'cpu', 'reference')
    expect(result.status).toBe('FAIL')
    expect(result.detail).toContain('first diverging: layer_hiddens.3')
  })
})
