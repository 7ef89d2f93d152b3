import * as tf from '@tensorflow/tfjs-core'
import { attendReference, ConfigError, headLayout } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, maxAbsDiff, randomTensor } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import {
  type KvHeadMapping,
  kvHeadOf,
  linearApply,
  mergeHeads,
  QKVProjection,
  queryHeadPermutation,
  regroupKvWeights,
} from '../src/index.js'
import { linearLoops } from './helpers.js'

// Float32 tolerance: the converted model runs the same products in another order; rounding is
// ~1e-6 for these sizes, so 2e-5 is a safe margin while a wrong head pairing is off by ~1e-1.
const ATOL = 2e-5

interface Dims {
  b: number
  n: number
  dim: number
  h: number
  kvh: number
  d: number
  dv: number
}

/** A whole attention layer in loops, llama-style: query head i reads KV head floor(i / groups). */
function llamaAttentionLoops(
  x: ArrayLike<number>,
  w: { q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number>; o: ArrayLike<number> },
  { b, n, dim, h, kvh, d, dv }: Dims,
): Float64Array {
  const groups = h / kvh
  const q = linearLoops(x, w.q, b * n, dim, h * d)
  const k = linearLoops(x, w.k, b * n, dim, kvh * d)
  const v = linearLoops(x, w.v, b * n, dim, kvh * dv)
  const merged = new Float64Array(b * n * h * dv)
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++) {
      const kv = Math.floor(hi / groups)
      for (let i = 0; i < n; i++) {
        const logits: number[] = []
        for (let j = 0; j < n; j++) {
          let dot = 0
          for (let c = 0; c < d; c++)
            dot +=
              (q[(bi * n + i) * h * d + hi * d + c] as number) *
              (k[(bi * n + j) * kvh * d + kv * d + c] as number)
          logits.push(dot / Math.sqrt(d))
        }
        const max = Math.max(...logits)
        const e = logits.map((l) => Math.exp(l - max))
        const total = e.reduce((s, a) => s + a, 0)
        for (let c = 0; c < dv; c++) {
          let acc = 0
          for (let j = 0; j < n; j++)
            acc += ((e[j] as number) / total) * (v[(bi * n + j) * kvh * dv + kv * dv + c] as number)
          merged[(bi * n + i) * h * dv + hi * dv + c] = acc
        }
      }
    }
  return linearLoops(merged, w.o, b * n, h * dv, dim)
}

describeEachBackend('regroupKvWeights', () => {
  it('the permutation pairs every query head with the same KV head in both conventions', () => {
    const layout = headLayout({ heads: 6, kvHeads: 2, dimHead: 2 })
    expect(queryHeadPermutation(layout, 'llama', 'x-transformers')).toEqual([0, 3, 1, 4, 2, 5])
    expect(queryHeadPermutation(layout, 'x-transformers', 'llama')).toEqual([0, 2, 4, 1, 3, 5])
    for (const [from, to] of [
      ['llama', 'x-transformers'],
      ['x-transformers', 'llama'],
    ] as [KvHeadMapping, KvHeadMapping][]) {
      queryHeadPermutation(layout, from, to).forEach((old, p) => {
        expect(kvHeadOf(p, layout, to)).toBe(kvHeadOf(old, layout, from))
      })
    }
    // MHA and MQA: every convention agrees, nothing moves.
    expect(queryHeadPermutation(headLayout({ heads: 4, dimHead: 2 }), 'llama', 'x-transformers')).toEqual([
      0, 1, 2, 3,
    ])
    expect(
      queryHeadPermutation(headLayout({ heads: 4, oneKvHead: true, dimHead: 2 }), 'llama', 'x-transformers'),
    ).toEqual([0, 1, 2, 3])
  })

  it('a llama-convention model converted to this library gives identical outputs', () => {
    const dims: Dims = { b: 2, n: 3, dim: 8, h: 6, kvh: 2, d: 2, dv: 3 }
    const layout = headLayout({ heads: dims.h, kvHeads: dims.kvh, dimHead: dims.d, valueDimHead: dims.dv })
    const wq = randomTensor([dims.h * dims.d, dims.dim], 1)
    const wk = randomTensor([dims.kvh * dims.d, dims.dim], 2)
    const wv = randomTensor([dims.kvh * dims.dv, dims.dim], 3)
    const wo = randomTensor([dims.dim, dims.h * dims.dv], 4)
    const x = randomTensor([dims.b, dims.n, dims.dim], 5)
    const expected = llamaAttentionLoops(
      x.dataSync(),
      { q: wq.dataSync(), k: wk.dataSync(), v: wv.dataSync(), o: wo.dataSync() },
      dims,
    )

    const converted = expectNoLeaks(
      () => regroupKvWeights({ toQ: wq, toOut: wo }, layout, { from: 'llama', to: 'x-transformers' }),
      { returns: 2 },
    )
    const qkv = new QKVProjection({ layout, dim: dims.dim })
    qkv.loadStateDict({ 'to_q.weight': converted.toQ, 'to_k.weight': wk, 'to_v.weight': wv })
    const run = (toOut: tf.Tensor) =>
      tf.tidy(() => {
        const { q, k, v } = qkv.forward(x)
        return linearApply(mergeHeads(attendReference({ q, k, v })), toOut)
      })
    const actual = run(converted.toOut as tf.Tensor)
    expectClose(actual, expected, { atol: ATOL, label: 'converted llama model' })

    // Without conversion the heads pair differently: the test can fail.
    qkv.loadStateDict({ 'to_q.weight': wq, 'to_k.weight': wk, 'to_v.weight': wv })
    const unconverted = run(wo)
    expect(maxAbsDiff(unconverted, expected)).toBeGreaterThan(1e-3)

    // And back: x-transformers → llama restores the original weights exactly.
    const back = regroupKvWeights({ toQ: converted.toQ, toOut: converted.toOut }, layout, {
      from: 'x-transformers',
      to: 'llama',
    })
    expectClose(back.toQ, wq, { atol: 0, label: 'round trip to_q' })
    expectClose(back.toOut as tf.Tensor, wo, { atol: 0, label: 'round trip to_out' })
    tf.dispose([
      wq,
      wk,
      wv,
      wo,
      x,
      converted.toQ,
      converted.toOut as tf.Tensor,
      actual,
      unconverted,
      back.toQ,
      back.toOut as tf.Tensor,
    ])
    qkv.dispose()
  })

  it('to_out is optional', () => {
    const layout = headLayout({ heads: 4, kvHeads: 2, dimHead: 2 })
    const wq = randomTensor([8, 5], 1)
    const out = regroupKvWeights({ toQ: wq }, layout, { from: 'llama', to: 'x-transformers' })
    expect(out.toOut).toBeNull()
    const rows = Array.from(out.toQ.dataSync())
    const src = Array.from(wq.dataSync())
    // New head 1 is old head 2 (rows 4–5 of 2-row heads, 5 columns each).
    expect(rows.slice(10, 20)).toEqual(src.slice(20, 30))
    tf.dispose([wq, out.toQ])
  })

  it('rejects mis-shaped weights and unknown conventions by name', () => {
    const layout = headLayout({ heads: 4, kvHeads: 2, dimHead: 2, valueDimHead: 3 })
    const wq = tf.zeros([6, 5])
    expect(() => regroupKvWeights({ toQ: wq }, layout, { from: 'llama', to: 'x-transformers' })).toThrow(
      "@xattn/kv-heads regroupKvWeights: toQ has shape [6,5] but the contract is '(h d) dim', axis 0 must be (h d)=8, got 6 (bindings so far: h=4, d=2, dv=3, dim=5)",
    )
    const wq8 = tf.zeros([8, 5])
    const wo = tf.zeros([5, 8])
    expect(() =>
      regroupKvWeights({ toQ: wq8, toOut: wo }, layout, { from: 'llama', to: 'x-transformers' }),
    ).toThrow(
      "@xattn/kv-heads regroupKvWeights: toOut has shape [5,8] but the contract is 'dimOut (h dv)', axis 1 must be (h dv)=12, got 8 (bindings so far: h=4, d=2, dv=3, dim=5, dimOut=5)",
    )
    expect(() =>
      regroupKvWeights({ toQ: wq8 }, layout, { from: 'llama', to: 'torch' as KvHeadMapping }),
    ).toThrow(
      new ConfigError(
        '@xattn/kv-heads',
        'to',
        "regroupKvWeights: to must be one of 'x-transformers', 'llama', got torch",
      ),
    )
    tf.dispose([wq, wq8, wo])
  })
})
