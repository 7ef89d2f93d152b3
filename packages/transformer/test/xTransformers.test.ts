import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, decodeSafetensors, encodeSafetensors, StateDictError } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaksAsync } from '@xattn/test-utils'
import { describe, expect, it } from 'vitest'
import {
  createFromXTransformers,
  fromXTransformers,
  toXTransformersSafetensors,
  type XTransformersConfig,
} from '../src/index.js'

const FIXTURES = fileURLToPath(new URL('../../../fixtures/x-transformers/', import.meta.url))

interface CaseJson {
  config: XTransformersConfig
  state_dict: { key: string; shape: number[] }[]
}

function caseJson(name: string): CaseJson {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'case.json'), 'utf8')) as CaseJson
}

const ALL_CASES = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort()

function inputsOf(name: string) {
  const raw = decodeSafetensors(readFileSync(join(FIXTURES, name, 'inputs.safetensors')))
  const mask = raw.get('mask')
  const contextMask = raw.get('context_mask')
  return {
    tokens: raw.get('tokens') as tf.Tensor,
    mask: mask === undefined ? null : tf.cast(mask, 'bool'),
    context: raw.get('context') ?? null,
    contextMask: contextMask === undefined ? null : tf.cast(contextMask, 'bool'),
    dispose() {
      for (const t of raw.values()) t.dispose()
    },
  }
}

describe('x-transformers state-dict names and shapes', () => {
  it('finds the fixtures', () => expect(ALL_CASES.length).toBeGreaterThanOrEqual(59))
  for (const name of ALL_CASES) {
    it(`${name}: the built model has exactly the checkpoint's keys and shapes`, () => {
      const json = caseJson(name)
      const model = createFromXTransformers(json.config)
      const ours = [...model.stateDict()].map(([key, t]) => `${key} [${t.shape.join(',')}]`).sort()
      const theirs = json.state_dict.map(({ key, shape }) => `${key} [${shape.join(',')}]`).sort()
      expect(ours).toEqual(theirs)
      model.dispose()
    })
  }
})

describe('intermediates match x-transformers (cpu)', () => {
  for (const name of ALL_CASES) {
    it(`${name}: every layer input, the last hidden and every attention map`, async () => {
      const json = caseJson(name)
      const dir = join(FIXTURES, name)
      const model = await fromXTransformers({ config: json.config, weights: join(dir, 'model.safetensors') })
      const inputs = inputsOf(name)
      const expected = decodeSafetensors(readFileSync(join(dir, 'intermediates.safetensors')))
      const result = model.forwardWithIntermediates(inputs.tokens, inputs)
      // Hiddens are O(1) and pass through ≤ 6 float32 layers; attention weights lie in [0, 1].
      result.hiddens.forEach((hidden, i) => {
        expectClose(hidden, expected.get(`layer_hiddens.${i}`) as tf.Tensor, {
          atol: 2e-5,
          label: `${name} layer_hiddens.${i}`,
        })
      })
      expect(expected.has(`layer_hiddens.${result.hiddens.length}`)).toBe(false)
      result.attention.forEach((map, i) => {
        expectClose(map, expected.get(`attn.${i}.post_softmax`) as tf.Tensor, {
          atol: 1e-5,
          label: `${name} attn.${i}`,
        })
      })
      expect(expected.has(`attn.${result.attention.length}.post_softmax`)).toBe(false)
      const memoryTokens = (json.config.wrapper as { num_memory_tokens?: number }).num_memory_tokens ?? 0
      const last = expected.get('last_hidden') as tf.Tensor
      const lastWithoutMemory = tf.slice(last, [0, memoryTokens, 0], result.embeddings.shape)
      expectClose(result.embeddings, lastWithoutMemory, { atol: 2e-5, label: `${name} last_hidden` })
      for (const t of [
        lastWithoutMemory,
        result.logits,
        result.embeddings,
        ...result.hiddens,
        ...result.attention,
      ])
        t?.dispose()
      for (const { k, v, tokenShift } of result.cache) tf.dispose([k, v, ...(tokenShift ?? [])])
      for (const t of expected.values()) t.dispose()
      inputs.dispose()
      model.dispose()
    })
  }
})

describeEachBackend('fromXTransformers on fixtures', () => {
  for (const name of [
    'decoder_base',
    'encoder_mask',
    'cross_attend_dim_context',
    'num_memory_tokens',
    'alibi_2heads',
  ]) {
    it(`${name}: logits match x-transformers`, async () => {
      const json = caseJson(name)
      const dir = join(FIXTURES, name)
      const model = await fromXTransformers({ config: json.config, weights: join(dir, 'model.safetensors') })
      const inputs = inputsOf(name)
      const expected = decodeSafetensors(readFileSync(join(dir, 'logits.safetensors')))
      const logits = model.forward(inputs.tokens, inputs)
      // The acceptance tolerance; observed errors are ~1e-6 (float32, two layers).
      expectClose(logits, expected.get('logits') as tf.Tensor, { atol: 1e-4, label: name })
      logits.dispose()
      inputs.dispose()
      for (const t of expected.values()) t.dispose()
      model.dispose()
    })
  }

  it('stateDict() exported as safetensors loads back into identical logits and leaks nothing', async () => {
    const json = caseJson('llama_like')
    const dir = join(FIXTURES, 'llama_like')
    const inputs = inputsOf('llama_like')
    await expectNoLeaksAsync(async () => {
      const model = await fromXTransformers({
        config: json.config,
        weights: readFileSync(join(dir, 'model.safetensors')),
      })
      const bytes = toXTransformersSafetensors(model)
      const again = await fromXTransformers({ config: json.config, weights: bytes })
      const a = model.forward(inputs.tokens)
      const b = again.forward(inputs.tokens)
      expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()))
      for (const t of [a, b]) t.dispose()
      model.dispose()
      again.dispose()
    })
    inputs.dispose()
  })

  it('a JS-initialised model round-trips through encodeSafetensors(stateDict())', async () => {
    const config = caseJson('combo_memkv_onekv_rotary_qknorm_glu').config
    const model = createFromXTransformers(config)
    const again = await fromXTransformers({ config, weights: encodeSafetensors(model.stateDict()) })
    const tokens = tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32')
    const a = model.eval().forward(tokens)
    const b = again.forward(tokens)
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()))
    for (const t of [a, b, tokens]) t.dispose()
    model.dispose()
    again.dispose()
  })
})

describe('fromXTransformers rejects what it cannot honour', () => {
  const base = caseJson('decoder_base').config

  it('lists every unsupported kwarg by name in one ConfigError', () => {
    const config = {
      ...base,
      layers_kwargs: {
        ...base.layers_kwargs,
        attn_sigmoid: true,
        unet_skips: true,
        ff_dim_out: 16,
        made_up: 1,
      },
      wrapper: { ...base.wrapper, recycling: true },
    }
    let error: unknown
    try {
      createFromXTransformers(config)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    const message = (error as ConfigError).message
    const names = ['attn_sigmoid', 'unet_skips', 'ff_dim_out', 'made_up', 'recycling']
    for (const kwarg of names) expect(message).toContain(kwarg)
    expect(names).toContain((error as ConfigError).option)
  })

  it('accepts default-valued kwargs it does not implement, rejects other values', () => {
    const ok = createFromXTransformers({
      ...base,
      layers_kwargs: { ...base.layers_kwargs, layer_dropout: 0, attn_hard: false },
    })
    ok.dispose()
    expect(() =>
      createFromXTransformers({
        ...base,
        layers_kwargs: { ...base.layers_kwargs, cross_attn_tokens_dropout: 0.1 },
      }),
    ).toThrow(/cross_attn_tokens_dropout \(only the default 0 is supported, got 0.1\)/)
  })

  it('rejects other layer classes, causal, and wrongly typed values', () => {
    expect(() => createFromXTransformers({ ...base, layers: 'CrossAttender' })).toThrow(
      /layers \(only Decoder and Encoder/,
    )
    expect(() =>
      createFromXTransformers({ ...base, layers_kwargs: { ...base.layers_kwargs, causal: true } }),
    ).toThrow(/causal/)
    expect(() =>
      createFromXTransformers({ ...base, layers_kwargs: { ...base.layers_kwargs, attn_qk_norm: 'yes' } }),
    ).toThrow(/attn_qk_norm \(expected bool/)
  })

  it('rejects flash attention when @xattn/flash is not imported, saying what to install', () => {
    expect(() =>
      createFromXTransformers({ ...base, layers_kwargs: { ...base.layers_kwargs, attn_flash: true } }),
    ).toThrow(/install @xattn\/flash/)
  })

  it('reports every missing and mis-shaped state-dict entry in one StateDictError', async () => {
    const dir = join(FIXTURES, 'decoder_base')
    const weights = decodeSafetensors(readFileSync(join(dir, 'model.safetensors')))
    weights.get('to_logits.weight')?.dispose()
    weights.delete('to_logits.weight')
    const wrong = weights.get('attn_layers.layers.0.1.to_q.weight') as tf.Tensor
    weights.set('attn_layers.layers.0.1.to_q.weight', tf.zeros([16, 32]))
    wrong.dispose()
    const bytes = encodeSafetensors(weights)
    for (const t of weights.values()) t.dispose()
    const before = tf.memory().numTensors
    const error = await fromXTransformers({ config: base, weights: bytes }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StateDictError)
    expect((error as StateDictError).missing).toEqual(['to_logits.weight'])
    expect((error as StateDictError).misShaped.join()).toContain('attn_layers.layers.0.1.to_q.weight')
    expect(tf.memory().numTensors).toBe(before)
  })

  it('loads an AutoregressiveWrapper state dict with prefix net., and hints at it when missing', async () => {
    const dir = join(FIXTURES, 'decoder_base')
    const weights = decodeSafetensors(readFileSync(join(dir, 'model.safetensors')))
    const prefixed = encodeSafetensors(new Map([...weights].map(([k, t]) => [`net.${k}`, t])))
    for (const t of weights.values()) t.dispose()
    const model = await fromXTransformers({ config: base, weights: prefixed, prefix: 'net.' })
    expect(model.stateDict().size).toBe(caseJson('decoder_base').state_dict.length)
    model.dispose()
    await expect(fromXTransformers({ config: base, weights: prefixed })).rejects.toThrow(
      /pass prefix: 'net.'/,
    )
  })

  it('checks given non-persistent buffers against the recomputed ones', async () => {
    const dir = join(FIXTURES, 'alibi')
    const config = caseJson('alibi').config
    const weights = readFileSync(join(dir, 'model.safetensors'))
    const model = await fromXTransformers({
      config,
      weights,
      buffers: readFileSync(join(dir, 'buffers.safetensors')),
    })
    model.dispose()
    const wrong = tf.fill([4, 1, 1], 0.5)
    const bad = encodeSafetensors({ 'attn_layers.rel_pos.slopes': wrong })
    wrong.dispose()
    await expect(fromXTransformers({ config, weights, buffers: bad })).rejects.toThrow(
      /attn_layers.rel_pos.slopes/,
    )
  })
})
