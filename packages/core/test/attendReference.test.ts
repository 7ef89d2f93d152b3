import * as tf from '@tensorflow/tfjs-core'
import {
  describeEachBackend,
  expectClose,
  expectNoLeaks,
  randomMask,
  randomTensor,
  testRng,
} from '@xattn/test-utils'
import { expect, it } from 'vitest'
import { attendReference, ShapeContractError } from '../src/index.js'
import { attentionLoops } from './attentionLoops.js'

// Float32 tolerance: logits are dot products of ≤32 terms of magnitude ≤1, so their float32
// rounding error is ~1e-6; softmax and the weighted sum keep it at that order. 2e-5 leaves a
// 10× margin while any real bug (wrong head, wrong mask, wrong alignment) shows as ≥1e-2.
const ATOL = 2e-5

interface Case {
  b: number
  h: number
  kvh: number
  n: number
  m: number
  d: number
  dv: number
  causal: boolean
  withMask: boolean
  withBias: 'none' | 'full' | 'broadcast'
  alibi: boolean
  fullyMaskedRow: boolean
}

function randomCase(seed: number): Case {
  const rng = testRng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)] as T
  const kvh = pick([1, 2, 3])
  const h = kvh * pick([1, 2, 3])
  const n = pick([1, 3, 5, 8])
  return {
    b: pick([1, 2]),
    h,
    kvh,
    n,
    m: n + pick([0, 0, 2, 5]),
    d: pick([4, 8]),
    dv: pick([4, 6]),
    causal: rng() < 0.5,
    withMask: rng() < 0.5,
    withBias: pick(['none', 'full', 'broadcast'] as const),
    alibi: rng() < 0.3,
    fullyMaskedRow: rng() < 0.3,
  }
}

function runCase(c: Case, seed: number) {
  const q = randomTensor([c.b, c.h, c.n, c.d], seed)
  const k = randomTensor([c.b, c.kvh, c.m, c.d], seed + 1)
  const v = randomTensor([c.b, c.kvh, c.m, c.dv], seed + 2)
  let keyMask: tf.Tensor | null = null
  if (c.withMask || c.fullyMaskedRow) {
    const maskValues = randomMask([c.b, c.m], seed + 3).dataSync() as Uint8Array
    const values = Uint8Array.from(maskValues)
    if (c.fullyMaskedRow) values.fill(0, 0, c.m) // batch 0 sees no key at all
    keyMask = tf.tensor(values, [c.b, c.m], 'bool')
  }
  const bias =
    c.withBias === 'none'
      ? null
      : randomTensor(c.withBias === 'full' ? [c.b, c.h, c.n, c.m] : [1, c.h, c.n, c.m], seed + 4)
  const alibiSlopes = c.alibi ? Array.from({ length: c.h }, (_, i) => 0.5 ** (i + 1)) : null
  const fullBias = bias ? tf.broadcastTo(bias, [c.b, c.h, c.n, c.m]) : null
  const expected = attentionLoops({
    ...c,
    q: q.dataSync() as Float32Array,
    k: k.dataSync() as Float32Array,
    v: v.dataSync() as Float32Array,
    keyMask: keyMask ? (keyMask.dataSync() as Uint8Array) : null,
    bias: fullBias ? (fullBias.dataSync() as Float32Array) : null,
    alibiSlopes,
    alibiFreeKeys: c.alibi ? Math.min(1, c.m) : 0,
  })
  const out = expectNoLeaks(
    () =>
      attendReference(
        { q, k, v },
        { causal: c.causal, keyMask, bias, alibiSlopes, alibiFreeKeys: c.alibi ? Math.min(1, c.m) : 0 },
      ),
    { returns: 1 },
  )
  expectClose(out, expected, { atol: ATOL, label: JSON.stringify(c) })
  expect(out.shape).toEqual([c.b, c.h, c.n, c.dv])
  tf.dispose([q, k, v, keyMask, bias, fullBias, out].filter((t): t is tf.Tensor => t !== null))
}

describeEachBackend('attendReference vs plain loops', () => {
  it('matches over 60 randomised cases (GQA/MQA, m > n, masks, fully-masked rows, bias, ALiBi)', () => {
    for (let seed = 1; seed <= 60; seed++) runCase(randomCase(seed * 7919), seed * 100)
  })

  it('gives 0 for a fully masked row and never NaN', () => {
    const q = randomTensor([1, 2, 3, 4], 1)
    const k = randomTensor([1, 2, 3, 4], 2)
    const v = randomTensor([1, 2, 3, 4], 3)
    const keyMask = tf.tensor([[false, false, false]], [1, 3], 'bool')
    const out = attendReference({ q, k, v }, { keyMask })
    expect(Array.from(out.dataSync())).toEqual(new Array(24).fill(0))
    tf.dispose([q, k, v, keyMask, out])
  })

  it('aligns causal masking bottom-right when m > n: the last query sees every key', () => {
    const q = randomTensor([1, 1, 2, 4], 4)
    const k = randomTensor([1, 1, 5, 4], 5)
    const v = tf.reshape(tf.eye(5), [1, 1, 5, 5])
    const attn = attendReference({ q, k, v }, { causal: true }).dataSync()
    // Row 0 (position 3 of 5) must give zero weight to key 4 only; row 1 sees all five keys.
    expect(attn[4]).toBe(0)
    expect(attn[3]).toBeGreaterThan(0)
    for (let j = 0; j < 5; j++) expect(attn[5 + j]).toBeGreaterThan(0)
    tf.dispose([q, k, v])
  })

  it('maps query head i to KV head i % kvHeads', () => {
    // Two KV heads whose values are constant 0 and 1: query heads 0,2 must read 0 and 1,3 read 1.
    const q = randomTensor([1, 4, 2, 4], 6)
    const k = randomTensor([1, 2, 3, 4], 7)
    const v = tf.concat([tf.zeros([1, 1, 3, 2]), tf.ones([1, 1, 3, 2])], 1)
    const out = attendReference({ q, k, v }).dataSync()
    const headMeans = [0, 1, 2, 3].map((hi) => out[hi * 4] as number)
    expectClose(headMeans, [0, 1, 0, 1], { atol: 1e-6 })
    tf.dispose([q, k, v])
  })
})

describeEachBackend('attendReference gradients', () => {
  it('match central finite differences for q, k, v and bias (GQA, causal, mask, m > n)', () => {
    const shapes = { b: 1, h: 4, kvh: 2, n: 3, m: 5, d: 4, dv: 3 }
    const q = randomTensor([1, 4, 3, 4], 11)
    const k = randomTensor([1, 2, 5, 4], 12)
    const v = randomTensor([1, 2, 5, 3], 13)
    const bias = randomTensor([1, 4, 3, 5], 14, 0.5)
    const keyMask = tf.tensor([[true, false, true, true, true]], [1, 5], 'bool')
    const weights = randomTensor([1, 4, 3, 3], 15)
    // A random projection of the output makes every output element matter to the loss.
    const loss = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor, bb: tf.Tensor) =>
      tf.sum(tf.mul(attendReference({ q: qq, k: kk, v: vv }, { causal: true, keyMask, bias: bb }), weights))
    const grads = tf.grads(loss)([q, k, v, bias])
    const inputs = [q, k, v, bias]
    // float64 finite differences of the float32 loss: step 1e-2 keeps rounding noise (~1e-7/h)
    // below the truncation error (~h²·|f'''| ≈ 1e-4), so 2e-3 is a safe absolute tolerance.
    const step = 1e-2
    inputs.forEach((input, which) => {
      const base = input.dataSync() as Float32Array
      const analytic = grads[which]!.dataSync()
      const numeric = new Float64Array(base.length)
      for (let i = 0; i < base.length; i++) {
        const plus = Float32Array.from(base)
        const minus = Float32Array.from(base)
        plus[i] = (plus[i] as number) + step
        minus[i] = (minus[i] as number) - step
        const evalAt = (values: Float32Array) =>
          tf.tidy(() => {
            const args = inputs.map((t, j) => (j === which ? tf.tensor(values, t.shape) : t))
            return loss(args[0]!, args[1]!, args[2]!, args[3]!).dataSync()[0] as number
          })
        numeric[i] = (evalAt(plus) - evalAt(minus)) / (2 * step)
      }
      expectClose(analytic, numeric, { atol: 2e-3, label: ['dq', 'dk', 'dv', 'dbias'][which] ?? 'grad' })
    })
    expect(shapes.h % shapes.kvh).toBe(0)
    tf.dispose([q, k, v, bias, keyMask, weights, ...grads])
  })
})

describeEachBackend('attendReference contract', () => {
  it('rejects a KV head count that does not divide the query heads, before any tensor work', () => {
    const q = tf.zeros([1, 6, 2, 4])
    const k = tf.zeros([1, 4, 2, 4])
    const v = tf.zeros([1, 4, 2, 4])
    const before = tf.memory().numTensors
    expect(() => attendReference({ q, k, v })).toThrow(
      new ShapeContractError(
        '@xattn/core attendReference',
        'q',
        'h=6 must be divisible by kvh (bindings so far: b=1, h=6, n=2, d=4, kvh=4, m=2, dv=4)',
      ),
    )
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([q, k, v])
  })

  it('rejects a key mask of the wrong length with the exact message', () => {
    const q = tf.zeros([2, 2, 3, 4])
    const k = tf.zeros([2, 2, 5, 4])
    const v = tf.zeros([2, 2, 5, 4])
    const keyMask = tf.ones([2, 4], 'bool')
    expect(() => attendReference({ q, k, v }, { keyMask })).toThrow(
      "@xattn/core attendReference: keyMask has shape [2,4] but the contract is 'b m' with m=5 (from k), got m=4 (bindings so far: b=2, h=2, n=3, d=4, kvh=2, m=5, dv=4)",
    )
    tf.dispose([q, k, v, keyMask])
  })

  it('rejects a float mask and an int32 query by dtype', () => {
    const q = tf.zeros([1, 1, 2, 4], 'int32')
    const k = tf.zeros([1, 1, 2, 4])
    expect(() => attendReference({ q, k, v: k })).toThrow(
      '@xattn/core attendReference: q has dtype int32 but the contract requires float32 (no bindings yet)',
    )
    tf.dispose([q, k])
  })
})
