import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, decodeSafetensors } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, randomMask } from '@xattn/test-utils'
import { describe, expect, it, vi } from 'vitest'
import { AutoregressiveWrapper } from '../src/generation/autoregressiveWrapper.js'
import { KvCache } from '../src/generation/kvCache.js'
import { type AttentionCache, createFromXTransformers, type TransformerWrapper } from '../src/index.js'
import { fromXTransformers } from '../src/xTransformers.js'

// Token shift under the KV cache: each shifted layer's cache entry keeps the last max(shift)
// pre-shift rows of its input, so a step that feeds only the new tokens shifts them with the real
// previous rows (not zeros) and the cached logits equal the full forward's.

const BASE = { dim: 32, depth: 2, heads: 4, attn_dim_head: 8 }
const WRAPPER = { num_tokens: 64, max_seq_len: 16 }
const FIXTURES = join(import.meta.dirname, '../../../fixtures/x-transformers')

const CONFIGS: Record<string, Record<string, unknown>> = {
  shift1: { shift_tokens: 1 },
  // shifts [0, 1, 2] in every layer: two history rows per layer.
  shift2: { shift_tokens: 2 },
  // Per layer (a f a f): unshifted and differently shifted layers in one stack.
  per_layer: { shift_tokens: [2, 0, 1, 3] },
  rotary_mem_kv: { shift_tokens: [1, 2, 2, 1], rotary_pos_emb: true, attn_dim_head: 32, attn_num_mem_kv: 2 },
  // Macaron: a shifted feedforward runs before the first attention layer (its rows go to entry 0).
  macaron_gqa: { shift_tokens: 2, macaron: true, attn_kv_heads: 2 },
  alibi_cross: { shift_tokens: 1, alibi_pos_bias: true, cross_attend: true, cross_attn_dim_context: 24 },
}

function tokensOf(b: number, n: number, seed: number): tf.Tensor2D {
  const values = Int32Array.from({ length: b * n }, (_, i) => (i * 7 + seed * 13) % 64)
  return tf.tensor2d(values, [b, n], 'int32')
}

function disposeCache(cache: readonly AttentionCache[] | null): void {
  for (const { k, v, tokenShift } of cache ?? []) tf.dispose([k, v, ...(tokenShift ?? [])])
}

/** Feeds `sizes[0]` tokens, then `sizes[1]`, … (the last size repeats) through the cache hook. */
function decodeInChunks(
  model: TransformerWrapper,
  tokens: tf.Tensor2D,
  sizes: readonly number[],
  extra: { context?: tf.Tensor; mask?: tf.Tensor } = {},
): tf.Tensor {
  const [b, n] = tokens.shape
  const steps: tf.Tensor[] = []
  let cache: AttentionCache[] | null = null
  for (let start = 0, i = 0; start < n; i++) {
    const len = Math.min(sizes[Math.min(i, sizes.length - 1)] as number, n - start)
    const chunk = tf.slice(tokens, [0, start], [b, len])
    const mask = extra.mask === undefined ? null : tf.slice(extra.mask, [0, 0], [b, start + len])
    const step: ReturnType<TransformerWrapper['forwardWithCache']> = model.forwardWithCache(chunk, {
      cache,
      mask,
      context: extra.context ?? null,
    })
    tf.dispose([chunk, step.embeddings, ...(mask === null ? [] : [mask])])
    disposeCache(cache)
    cache = step.cache
    steps.push(step.logits as tf.Tensor)
    start += len
  }
  disposeCache(cache)
  const out = tf.concat(steps, 1)
  tf.dispose(steps)
  return out
}

describeEachBackend('token shift under the KV cache: cached decoding equals the full forward', () => {
  for (const [name, kwargs] of Object.entries(CONFIGS)) {
    it(name, () => {
      const model = createFromXTransformers({
        layers: 'Decoder',
        layers_kwargs: { ...BASE, ...kwargs },
        wrapper: WRAPPER,
      }).eval()
      expect(model.cacheUnsupportedReason()).toBeNull()
      const tokens = tokensOf(2, 11, 1)
      const context =
        kwargs.cross_attend === true ? tf.randomNormal([2, 5, 24], 0, 1, 'float32', 3) : undefined
      const extra = context === undefined ? {} : { context }
      const full = model.forward(tokens, extra)
      // Prompt 1 (history shorter than max(shift): zero rows stand in), 4 and 2-token steps.
      for (const sizes of [[1], [4, 1], [3, 2]]) {
        const cached = expectNoLeaks(() => decodeInChunks(model, tokens, sizes, extra), { returns: 1 })
        // float32: cached and full forward sum in different orders, a few ulps of O(1) logits.
        expectClose(cached, full, { atol: 1e-4, label: `${name} steps ${sizes.join(',')}` })
        cached.dispose()
      }
      tf.dispose([full, tokens, ...(context === undefined ? [] : [context])])
      model.dispose()
    })
  }

  it('a key-padding mask zeroes masked history rows as the full forward does', () => {
    const model = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: { ...BASE, shift_tokens: 2, rotary_pos_emb: true, attn_dim_head: 32 },
      wrapper: WRAPPER,
    }).eval()
    const tokens = tokensOf(2, 10, 2)
    const mask = randomMask([2, 10], 5, 0.6)
    const full = model.forward(tokens, { mask })
    for (const sizes of [[1], [3, 1]]) {
      const cached = decodeInChunks(model, tokens, sizes, { mask })
      // Same float32 argument as above.
      expectClose(cached, full, { atol: 1e-4, label: `masked, steps ${sizes.join(',')}` })
      cached.dispose()
    }
    tf.dispose([full, tokens, mask])
    model.dispose()
  })

  it('the cache without its token shift rows (or with wrong shapes) is refused by name', () => {
    const model = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: { ...BASE, shift_tokens: 2 },
      wrapper: WRAPPER,
    }).eval()
    const tokens = tokensOf(1, 3, 0)
    const next = tokensOf(1, 1, 4)
    const first = model.forwardWithCache(tokens)
    // Layers a f a f: entry 0 carries layers 0 and 1, entry 1 layers 2 and 3, each [b, 2, dim].
    expect(first.cache.map((e) => (e.tokenShift ?? []).map((t) => t.shape))).toEqual([
      [
        [1, 2, 32],
        [1, 2, 32],
      ],
      [
        [1, 2, 32],
        [1, 2, 32],
      ],
    ])
    const stripped = first.cache.map(({ k, v }) => ({ k, v }))
    expect(() => model.forwardWithCache(next, { cache: stripped })).toThrow(ConfigError)
    expect(() => model.forwardWithCache(next, { cache: stripped })).toThrow(/token shift/)
    const wrongRows = tf.zeros([1, 1, 32]) as tf.Tensor3D
    const wrong = first.cache.map(({ k, v, tokenShift }) => ({
      k,
      v,
      tokenShift: [wrongRows, ...(tokenShift ?? []).slice(1)],
    }))
    expect(() => model.forwardWithCache(next, { cache: wrong })).toThrow(/must be \[1,2,32\], got \[1,1,32\]/)
    tf.dispose([tokens, next, wrongRows, first.logits as tf.Tensor, first.embeddings])
    disposeCache(first.cache)
    model.dispose()
  })

  it('KvCache: still 2·layers·kvHeads·dimHead floats per token; the shift rows are a constant', () => {
    const [depth, kvHeads, dimHead, b, dim, shift] = [2, 2, 8, 2, 32, 2]
    const model = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: {
        dim,
        depth,
        heads: 4,
        attn_dim_head: dimHead,
        attn_kv_heads: kvHeads,
        shift_tokens: shift,
      },
      wrapper: { num_tokens: 16, max_seq_len: 32 },
    }).eval()
    const cache = new KvCache()
    const before = tf.memory().numTensors
    const step = (n: number) => {
      const x = tf.ones([b, n], 'int32')
      const { logits, cache: entries, embeddings } = model.forwardWithCache(x, { cache: cache.entries })
      cache.update(entries, n)
      tf.dispose([x, logits as tf.Tensor, embeddings])
    }
    // Every layer (2 attention + 2 feedforward) keeps `shift` rows of `dim` floats per sequence.
    const constant = b * 2 * depth * shift * dim
    step(1)
    expect(cache.floats()).toBe(b * 2 * depth * kvHeads * dimHead + constant)
    for (let i = 0; i < 4; i++) {
      const floats = cache.floats()
      step(1)
      expect(cache.floats() - floats).toBe(b * 2 * depth * kvHeads * dimHead)
    }
    expect(cache.offset).toBe(5)
    // k and v per attention layer plus one rows tensor per shifted layer.
    expect(tf.memory().numTensors - before).toBe(2 * depth + 2 * depth)
    cache.dispose()
    expect(tf.memory().numTensors).toBe(before)
    model.dispose()
  })
})

describe('token shift: where the cache stays unsupported', () => {
  it('an encoder (negative shifts read later tokens) still names shift_tokens', () => {
    const encoder = createFromXTransformers({
      layers: 'Encoder',
      layers_kwargs: { ...BASE, depth: 1, shift_tokens: 1 },
      wrapper: WRAPPER,
    })
    const decoder = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: { ...BASE, shift_tokens: 1 },
      wrapper: WRAPPER,
    })
    expect(encoder.cacheUnsupportedReason()).toBe('shift_tokens')
    expect(decoder.cacheUnsupportedReason()).toBeNull()
    encoder.dispose()
    decoder.dispose()
  })
})

describeEachBackend('shift_tokens fixture (x-transformers)', () => {
  const load = async () => {
    const caseJson = JSON.parse(readFileSync(join(FIXTURES, 'shift_tokens', 'case.json'), 'utf8'))
    const model = await fromXTransformers({
      config: caseJson.config,
      weights: readFileSync(join(FIXTURES, 'shift_tokens', 'model.safetensors')),
    })
    const inputs = decodeSafetensors(readFileSync(join(FIXTURES, 'shift_tokens', 'inputs.safetensors')))
    const logits = decodeSafetensors(readFileSync(join(FIXTURES, 'shift_tokens', 'logits.safetensors')))
    return { model, inputs, logits }
  }

  it("cached token-by-token logits equal x-transformers' full-forward logits", async () => {
    const { model, inputs, logits } = await load()
    const tokens = inputs.get('tokens') as tf.Tensor2D
    const want = logits.get('logits') as tf.Tensor
    expect(want).toBeDefined()
    for (const sizes of [[1], [5, 1]]) {
      const cached = decodeInChunks(model, tokens, sizes)
      // float32 against PyTorch float32 through 2 blocks, the tolerance of the fixture parity tests.
      expectClose(cached, want, { atol: 1e-4, label: `shift_tokens steps ${sizes.join(',')}` })
      cached.dispose()
    }
    tf.dispose([...inputs.values(), ...logits.values()])
    model.dispose()
  })

  it('greedy generation with the cache equals without it and the full-forward argmax sequence', async () => {
    const { model, inputs, logits } = await load()
    const all = inputs.get('tokens') as tf.Tensor2D
    const prompt = tf.slice(all, [0, 0], [2, 4]) as tf.Tensor2D
    const seqLen = 10
    const ar = new AutoregressiveWrapper(model)
    expect(ar.cacheUnsupportedReason()).toBeNull()
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const cached = await ar.generate(prompt, { seqLen })
    const uncached = await ar.generate(prompt, { seqLen, cache: false })
    expect(warn).not.toHaveBeenCalled()
    warn.mockRestore()
    // Reference: re-run the full forward on the growing sequence and take each last argmax.
    let seq = tf.clone(prompt)
    for (let i = 0; i < seqLen; i++) {
      const out = model.forward(seq)
      const last = tf.slice(out, [0, seq.shape[1] - 1, 0], [2, 1, out.shape[2]])
      const next = tf.cast(tf.argMax(tf.reshape(last, [2, out.shape[2]]), -1), 'int32')
      const grown = tf.concat([seq, tf.reshape(next, [2, 1])], 1) as tf.Tensor2D
      tf.dispose([out, last, next, seq])
      seq = grown
    }
    const reference = tf.slice(seq, [0, 4], [2, seqLen])
    const ints = (t: tf.Tensor) => Array.from(t.dataSync())
    expect(ints(cached)).toEqual(ints(reference))
    expect(ints(uncached)).toEqual(ints(reference))
    tf.dispose([prompt, cached, uncached, seq, reference, ...inputs.values(), ...logits.values()])
    model.dispose()
  })
})
