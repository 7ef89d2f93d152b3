import * as tf from '@tensorflow/tfjs-core'
import { SeededRandom } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import {
  type AttentionCache,
  createFromXTransformers,
  DynamicPositionBias,
  RotaryEmbedding,
  type TransformerWrapper,
} from '../src/index.js'

// The KV cache stores keys after qk-norm and rotary/xpos at their absolute positions, so that a
// cached step rotates only its own query and key (O(n) rotary work, not O(cache length)).

const BASE = { dim: 32, depth: 2, heads: 4, attn_dim_head: 32 }
const WRAPPER = { num_tokens: 64, max_seq_len: 24 }

function tokensOf(b: number, n: number): tf.Tensor2D {
  return tf.tensor2d(
    Int32Array.from({ length: b * n }, (_, i) => (i * 11 + 5) % 64),
    [b, n],
    'int32',
  )
}

function disposeCache(cache: readonly AttentionCache[] | null): void {
  for (const { k, v } of cache ?? []) tf.dispose([k, v])
}

/** Prompt of `prompt` tokens, then one token per step; returns the final cache. */
function cacheStepByStep(model: TransformerWrapper, tokens: tf.Tensor2D, prompt: number): AttentionCache[] {
  const [b, n] = tokens.shape
  let cache: AttentionCache[] | null = null
  for (let start = 0; start < n; ) {
    const len = start === 0 ? prompt : 1
    const chunk = tf.slice(tokens, [0, start], [b, len])
    const step: ReturnType<TransformerWrapper['forwardWithCache']> = model.forwardWithCache(chunk, { cache })
    tf.dispose([chunk, step.embeddings, step.logits as tf.Tensor])
    disposeCache(cache)
    cache = step.cache
    start += len
  }
  return cache as AttentionCache[]
}

describeEachBackend('KV cache holds keys after qk-norm and rotary/xpos', () => {
  it('RotaryEmbedding.applyRange gives the rows of positions offset… with xpos measured from 0', () => {
    const dim = 8
    const rotary = new RotaryEmbedding({ dim, useXpos: true, scaleBase: 4, interpolationFactor: 2 })
    const invFreq = [0, 2, 4, 6].map((i) => 1 / 10000 ** (i / dim))
    const xposScale = [0, 2, 4, 6].map((i) => (i + 0.4 * dim) / (1.4 * dim))
    const { freqs, scale } = rotary.applyRange(3, 5)
    const wantFreqs: number[] = []
    const wantScale: number[] = []
    for (const t of [5, 6, 7]) {
      for (const f of invFreq) wantFreqs.push((t * f) / 2, (t * f) / 2)
      for (const s of xposScale) wantScale.push(s ** (t / 4), s ** (t / 4))
    }
    // float32 products/powers of O(1) values: a few ulps.
    expectClose(freqs, wantFreqs, { atol: 0, rtol: 1e-6 })
    expectClose(scale as tf.Tensor, wantScale, { atol: 0, rtol: 1e-5 })
    tf.dispose([freqs, scale as tf.Tensor])
    rotary.dispose()
  })

  for (const [name, extra] of Object.entries({
    rotary_xpos: { rotary_xpos: true },
    rotary_qk_norm_gqa_mem_kv: {
      rotary_pos_emb: true,
      attn_qk_norm: true,
      attn_qk_norm_dim_scale: true,
      attn_kv_heads: 2,
      attn_num_mem_kv: 2,
    },
  })) {
    it(`${name}: the cache built one token at a time equals the cache of one forward pass`, () => {
      const model = createFromXTransformers({
        layers: 'Decoder',
        layers_kwargs: { ...BASE, ...extra },
        wrapper: WRAPPER,
      }).eval()
      const tokens = tokensOf(2, 12)
      const oneShot = model.forwardWithCache(tokens, { cache: null })
      const stepped = expectNoLeaks(() => cacheStepByStep(model, tokens, 3), { returns: 4 })
      expect(stepped.map((e) => e.k.shape)).toEqual(oneShot.cache.map((e) => e.k.shape))
      stepped.forEach((entry, i) => {
        const want = oneShot.cache[i] as AttentionCache
        // float32: keys of one projection, normalised/rotated alone or in a batch of rows: ulps.
        expectClose(entry.k, want.k, { atol: 1e-5, label: `${name} k[${i}]` })
        expectClose(entry.v, want.v, { atol: 1e-5, label: `${name} v[${i}]` })
      })
      disposeCache(stepped)
      disposeCache(oneShot.cache)
      tf.dispose([oneShot.logits as tf.Tensor, oneShot.embeddings, tokens])
      model.dispose()
    })
  }

  it('a cached step computes rotary (sin, cos, xpos pow) for the new position only', async () => {
    const model = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: { ...BASE, rotary_xpos: true },
      wrapper: WRAPPER,
    }).eval()
    const prompt = tokensOf(1, 16)
    const first = model.forwardWithCache(prompt, { cache: null })
    const next = tf.tensor2d([[7]], [1, 1], 'int32')
    let step: ReturnType<TransformerWrapper['forwardWithCache']> | null = null
    const profile = await tf.profile(() => {
      step = model.forwardWithCache(next, { cache: first.cache })
    })
    const rotaryKernels = profile.kernels.filter((k) => ['Sin', 'Cos', 'Pow'].includes(k.name))
    expect(rotaryKernels.length).toBeGreaterThan(0)
    // rotDim = 32 features of the one new position: no kernel of rotary over the 16 cached keys.
    for (const k of rotaryKernels) {
      for (const shape of k.outputShapes) expect(shape.reduce((a, d) => a * d, 1)).toBeLessThanOrEqual(32)
    }
    const done = step as unknown as ReturnType<TransformerWrapper['forwardWithCache']>
    disposeCache(done.cache)
    disposeCache(first.cache)
    tf.dispose([
      first.logits as tf.Tensor,
      first.embeddings,
      done.logits as tf.Tensor,
      done.embeddings,
      prompt,
      next,
    ])
    model.dispose()
  })

  it('DynamicPositionBias for the last i queries: the last rows of the full table, built in O(i·(i+j))', async () => {
    const dyn = new DynamicPositionBias({ dim: 4, heads: 2, logDistance: true, rng: new SeededRandom(5) })
    const j = 64
    const full = dyn.bias(j, j)
    for (const i of [1, 3]) {
      const last = dyn.bias(i, j)
      const want = tf.slice(full, [0, j - i, 0], [2, i, j])
      // Same MLP rows computed in a shorter batch: float32 ulps.
      expectClose(last, want, { atol: 1e-6, label: `bias(${i}, ${j})` })
      tf.dispose([last, want])
    }
    let step: tf.Tensor | null = null
    const profile = await tf.profile(() => {
      step = dyn.bias(1, j)
    })
    // A one-query bias reads j distances: no kernel may build a j × j (or h·j·2j) table.
    const largest = Math.max(
      ...profile.kernels.flatMap((k) => k.outputShapes.map((sh) => sh.reduce((a, d) => a * d, 1))),
    )
    expect(largest).toBeLessThanOrEqual(8 * j)
    tf.dispose([full, step as unknown as tf.Tensor])
    dyn.dispose()
  })
})
