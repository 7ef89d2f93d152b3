import * as tf from '@tensorflow/tfjs-core'
import { describeEachBackend, expectClose, expectNoLeaks, randomMask, randomTensor } from '@xattn/test-utils'
import { describe, expect, it } from 'vitest'
import { type AttentionCache, createFromXTransformers, type TransformerWrapper } from '../src/index.js'

const BASE = { dim: 32, depth: 2, heads: 4, attn_dim_head: 8 }
const WRAPPER = { num_tokens: 64, max_seq_len: 16 }

// Each config decodes token by token with the KV-cache hook and must give the full forward's logits.
const CONFIGS: Record<string, Record<string, unknown>> = {
  base: {},
  kv_heads2_mem_kv: { attn_kv_heads: 2, attn_num_mem_kv: 2 },
  rotary_qk_norm_one_kv: {
    attn_dim_head: 32,
    rotary_pos_emb: true,
    attn_qk_norm: true,
    attn_one_kv_head: true,
    attn_num_mem_kv: 2,
  },
  rotary_xpos: { attn_dim_head: 32, rotary_xpos: true },
  alibi: { alibi_pos_bias: true, alibi_num_heads: 2 },
  rel_pos_bias: { rel_pos_bias: true },
  dynamic_pos_bias: { dynamic_pos_bias: true },
  residual_talking_topk: {
    residual_attn: true,
    attn_pre_talking_heads: true,
    attn_post_talking_heads: true,
    attn_sparse_topk: 3,
  },
  value_residual_cross: {
    add_value_residual: true,
    attn_num_mem_kv: 1,
    cross_attend: true,
    cross_attn_dim_context: 24,
  },
  local_attention: { attn_max_attend_past: 2, attn_num_mem_kv: 1 },
  resi_dual_layerscale: { resi_dual: true, resi_dual_scale: 0.7, use_layerscale: true },
  weight_tied_add_zero_kv: { weight_tie_layers: true, attn_add_zero_kv: true, attn_gate_value_heads: true },
  cross_attend: { cross_attend: true, cross_attn_dim_context: 24, cross_attn_num_mem_kv: 1 },
}

function tokensOf(b: number, n: number, seed: number): tf.Tensor2D {
  const values = Int32Array.from({ length: b * n }, (_, i) => (i * 7 + seed * 13) % 64)
  return tf.tensor2d(values, [b, n], 'int32')
}

function decodeIncrementally(
  model: TransformerWrapper,
  tokens: tf.Tensor2D,
  prompt: number,
  extra: { context?: tf.Tensor; contextMask?: tf.Tensor; mask?: tf.Tensor },
): tf.Tensor {
  const [b, n] = tokens.shape
  const steps: tf.Tensor[] = []
  let cache: AttentionCache[] | null = null
  for (let start = 0; start < n; ) {
    const len = start === 0 ? prompt : 1
    const chunk = tf.slice(tokens, [0, start], [b, len])
    const mask = extra.mask === undefined ? null : tf.slice(extra.mask, [0, 0], [b, start + len])
    const step: ReturnType<TransformerWrapper['forwardWithCache']> = model.forwardWithCache(chunk, {
      cache,
      mask,
      context: extra.context ?? null,
      contextMask: extra.contextMask ?? null,
    })
    chunk.dispose()
    mask?.dispose()
    for (const entry of cache ?? []) {
      entry.k.dispose()
      entry.v.dispose()
    }
    cache = step.cache
    step.embeddings.dispose()
    steps.push(step.logits as tf.Tensor)
    start += len
  }
  for (const entry of cache ?? []) {
    entry.k.dispose()
    entry.v.dispose()
  }
  const out = tf.concat(steps, 1)
  for (const s of steps) s.dispose()
  return out
}

describeEachBackend('KV-cache hook: incremental decoding equals the full forward', () => {
  for (const [name, extraKwargs] of Object.entries(CONFIGS)) {
    it(name, () => {
      const model = createFromXTransformers({
        layers: 'Decoder',
        layers_kwargs: { ...BASE, ...extraKwargs },
        wrapper: WRAPPER,
      }).eval()
      const tokens = tokensOf(2, 10, 1)
      const cross = extraKwargs.cross_attend === true
      const context = cross ? randomTensor([2, 5, 24], 3) : undefined
      const contextMask = cross
        ? tf.tensor2d(
            [
              [1, 1, 1, 1, 1],
              [1, 1, 1, 0, 0],
            ],
            [2, 5],
            'bool',
          )
        : undefined
      const extra = { ...(context ? { context } : {}), ...(contextMask ? { contextMask } : {}) }
      const full = model.forward(tokens, extra)
      const incremental = expectNoLeaks(() => decodeIncrementally(model, tokens, 4, extra), { returns: 1 })
      // float32: the two orders of summation differ by a few ulps of O(1) logits.
      expectClose(incremental, full, { atol: 2e-5, label: name })
      for (const t of [full, incremental, tokens, context, contextMask]) t?.dispose()
      model.dispose()
    })
  }

  it('a padding mask covering the cached keys ([b, offset + n]) gives the masked full forward', () => {
    const model = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: { ...BASE, attn_dim_head: 32, rotary_pos_emb: true },
      wrapper: WRAPPER,
    }).eval()
    const tokens = tokensOf(2, 8, 2)
    const mask = randomMask([2, 8], 5, 0.7)
    const full = model.forward(tokens, { mask })
    const incremental = decodeIncrementally(model, tokens, 3, { mask })
    expectClose(incremental, full, { atol: 2e-5 })
    for (const t of [full, incremental, tokens, mask]) t.dispose()
    model.dispose()
  })
})

describe('KV-cache hook: unsupported configurations', () => {
  it('names the option that prevents caching', () => {
    const memTokens = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: BASE,
      wrapper: { ...WRAPPER, num_memory_tokens: 2 },
    })
    const shift = createFromXTransformers({
      // An encoder's negative shifts read later tokens (a decoder's token shift is cached: cacheTokenShift.test.ts).
      layers: 'Encoder',
      layers_kwargs: { ...BASE, depth: 1, shift_tokens: 1 },
      wrapper: WRAPPER,
    })
    const plain = createFromXTransformers({ layers: 'Decoder', layers_kwargs: BASE, wrapper: WRAPPER })
    expect(memTokens.cacheUnsupportedReason()).toBe('num_memory_tokens')
    expect(shift.cacheUnsupportedReason()).toBe('shift_tokens')
    expect(plain.cacheUnsupportedReason()).toBeNull()
    const tokens = tokensOf(1, 2, 0)
    const first = plain.forwardWithCache(tokens)
    expect(() => memTokens.forwardWithCache(tokens, { cache: first.cache })).toThrow(/num_memory_tokens/)
    for (const t of [tokens, first.logits, first.embeddings, ...first.cache.flatMap((c) => [c.k, c.v])])
      t?.dispose()
    for (const m of [memTokens, shift, plain]) m.dispose()
  })
})
