import * as tf from '@tensorflow/tfjs-core'
import { attendReference, ConfigError } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, randomMask, randomTensor } from '@xattn/test-utils'
import { describe, expect, it } from 'vitest'
import { Attention, type AttentionOptions } from '../src/index.js'

// Options that no fixture covers are checked against an oracle assembled in the test from the
// module's own weights and core's reference attention (which is itself tested against loops).

function param(attn: Attention, name: string): tf.Tensor {
  const t = attn.stateDict().get(name)
  if (t === undefined) throw new Error(`no parameter ${name}`)
  return t
}

/** `x [b n in]` · `w [out in]`ᵀ, then `[b n (h d)] → [b h n d]`. */
function project(x: tf.Tensor, w: tf.Tensor, heads: number): tf.Tensor4D {
  const [b, n] = x.shape as [number, number]
  const y = tf.matMul(tf.reshape(x, [b * n, -1]), w, false, true)
  return tf.transpose(tf.reshape(y, [b, n, heads, -1]), [0, 2, 1, 3]) as tf.Tensor4D
}

function l2(t: tf.Tensor, groups: number): tf.Tensor {
  const shape = t.shape
  const d = shape[shape.length - 1] as number
  const g = tf.reshape(t, [...shape.slice(0, -1), groups, d / groups])
  return tf.reshape(tf.div(g, tf.maximum(tf.norm(g, 'euclidean', -1, true), 1e-12)), shape)
}

interface OracleOptions {
  heads: number
  kvHeads: number
  numMemKv: number
  causal: boolean
  qkNormGroups?: number
  qkNormScale?: number
  addZeroKv?: boolean
  valueResidual?: tf.Tensor
}

/** Attention written out from the weights: projections, qk-norm, memory KV, attendReference, to_out. */
function oracle(attn: Attention, x: tf.Tensor, keyMask: tf.Tensor | null, o: OracleOptions): tf.Tensor {
  return tf.tidy(() => {
    const [b, n] = x.shape as [number, number]
    let q = project(x, param(attn, 'to_q.weight'), o.heads)
    let k = project(x, param(attn, 'to_k.weight'), o.kvHeads)
    let v = project(x, param(attn, 'to_v.weight'), o.kvHeads)
    let scale: number | undefined
    let mask = keyMask
    if (o.qkNormGroups !== undefined) {
      q = l2(q, o.qkNormGroups) as tf.Tensor4D
      k = l2(k, o.qkNormGroups) as tf.Tensor4D
      scale = o.qkNormScale
    }
    if (o.numMemKv > 0) {
      let memK = tf.tile(tf.expandDims(param(attn, 'mem_k'), 0), [b, 1, 1, 1])
      if (o.qkNormGroups !== undefined) memK = l2(memK, 1)
      k = tf.concat([memK, k], 2) as tf.Tensor4D
      v = tf.concat([tf.tile(tf.expandDims(param(attn, 'mem_v'), 0), [b, 1, 1, 1]), v], 2) as tf.Tensor4D
      if (mask !== null) mask = tf.concat([tf.ones([b, o.numMemKv], 'bool'), mask], 1)
    }
    if (o.valueResidual !== undefined) v = tf.add(v, o.valueResidual) as tf.Tensor4D
    if (o.addZeroKv === true) {
      k = tf.concat([tf.zeros([b, o.kvHeads, 1, k.shape[3]]), k], 2) as tf.Tensor4D
      v = tf.concat([tf.zeros([b, o.kvHeads, 1, v.shape[3]]), v], 2) as tf.Tensor4D
      if (mask !== null) mask = tf.concat([tf.ones([b, 1], 'bool'), mask], 1)
    }
    const out = attendReference(
      { q, k, v },
      { causal: o.causal, keyMask: mask, ...(scale === undefined ? {} : { scale }) },
    )
    const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b * n, -1])
    let y = tf.reshape(tf.matMul(merged, param(attn, 'to_out.weight'), false, true), [b, n, -1])
    if (keyMask !== null) y = tf.mul(y, tf.expandDims(tf.cast(keyMask, 'float32'), -1))
    return y
  })
}

function perturb(attn: Attention, seed: number): void {
  // Parameters that initialise to constants (scales) get noise so that they matter.
  let s = seed
  for (const [, variable] of attn.namedParameters()) {
    tf.tidy(() => variable.assign(tf.add(variable, randomTensor([...variable.shape], s++, 0.05))))
  }
}

describeEachBackend('Attention against an oracle built on core attendReference', () => {
  const cases: [string, AttentionOptions, OracleOptions][] = [
    [
      'GQA + valueDimHead + memory KV + causal + padding',
      { dim: 16, heads: 4, dimHead: 6, kvHeads: 2, valueDimHead: 5, numMemKv: 3, causal: true },
      { heads: 4, kvHeads: 2, numMemKv: 3, causal: true },
    ],
    [
      'MQA + qk-norm with groups and a custom scale',
      { dim: 16, heads: 4, dimHead: 8, oneKvHead: true, qkNorm: true, qkNormGroups: 2, qkNormScale: 5 },
      { heads: 4, kvHeads: 1, numMemKv: 0, causal: false, qkNormGroups: 2, qkNormScale: 5 },
    ],
    [
      'addZeroKv: one zero key/value in front of the memory, always visible',
      { dim: 16, heads: 4, dimHead: 4, kvHeads: 2, numMemKv: 1, addZeroKv: true },
      { heads: 4, kvHeads: 2, numMemKv: 1, causal: true, addZeroKv: true },
    ],
    [
      'qk-norm + memory KV (memory keys normalised too)',
      { dim: 16, heads: 2, dimHead: 8, numMemKv: 2, qkNorm: true },
      { heads: 2, kvHeads: 2, numMemKv: 2, causal: true, qkNormGroups: 1, qkNormScale: 10 },
    ],
  ]
  for (const [title, options, o] of cases) {
    it(title, () => {
      const attn = new Attention({ ...options, causal: o.causal })
      perturb(attn, 11)
      const x = randomTensor([2, 5, 16], 3)
      const keyMask = tf.tensor2d(
        [
          [1, 1, 1, 1, 1],
          [1, 1, 1, 0, 0],
        ],
        [2, 5],
        'bool',
      )
      const { out, cache } = expectNoLeaks(() => attn.forward(x, { mask: keyMask }), { returns: 3 })
      const want = oracle(attn, x, keyMask, o)
      // Same float32 operations in a different order: agreement to ~1e-6 on O(1) outputs.
      expectClose(out, want, { atol: 1e-5, label: title })
      for (const t of [out, cache.k, cache.v, want, x, keyMask]) t.dispose()
      attn.dispose()
    })
  }

  it('valueResidual (ResFormer) is added to the values, memory slots included', () => {
    const attn = new Attention({ dim: 16, heads: 4, dimHead: 4, kvHeads: 2, numMemKv: 2, causal: true })
    perturb(attn, 2)
    const x = randomTensor([2, 5, 16], 3)
    const residual = randomTensor([2, 2, 7, 4], 4)
    const r = attn.forward(x, { valueResidual: residual, returnValues: true })
    const want = oracle(attn, x, null, {
      heads: 4,
      kvHeads: 2,
      numMemKv: 2,
      causal: true,
      valueResidual: residual,
    })
    expectClose(r.out, want, { atol: 1e-5 })
    expect(r.values?.shape).toEqual([2, 2, 7, 4])
    const wrong = tf.zeros([2, 2, 5, 4])
    expect(() => attn.forward(x, { valueResidual: wrong })).toThrow(/valueResidual must be \[2,2,7,4\]/)
    tf.dispose([x, residual, wrong, want, r.out, r.cache.k, r.cache.v, r.values ?? []])
    attn.dispose()
  })

  it('the registered-kernel path and the building-block path give the same numbers', () => {
    const attn = new Attention({
      dim: 16,
      heads: 4,
      dimHead: 4,
      kvHeads: 2,
      numMemKv: 2,
      causal: true,
      addZeroKv: true,
    })
    perturb(attn, 5)
    const x = randomTensor([2, 6, 16], 9)
    const mask = randomMask([2, 6], 4, 0.8)
    const slopes = [0.5, 0.25, 0.125, 0]
    const plain = attn.forward(x, { mask, alibiSlopes: slopes })
    const blocks = attn.forward(x, { mask, alibiSlopes: slopes, returnAttention: true })
    expectClose(blocks.out, plain.out, { atol: 1e-6 })
    expect(blocks.postSoftmax?.shape).toEqual([2, 4, 6, 9])
    for (const r of [plain, blocks]) {
      for (const t of [r.out, r.cache.k, r.cache.v, r.preSoftmax, r.postSoftmax]) t?.dispose()
    }
    for (const t of [x, mask]) t.dispose()
    attn.dispose()
  })

  it('swigluValues gates the merged heads with SiLU', () => {
    const sig = new Attention({ dim: 8, heads: 2, dimHead: 4, gateValues: true })
    const silu = new Attention({ dim: 8, heads: 2, dimHead: 4, gateValues: true, swigluValues: true })
    perturb(sig, 1)
    silu.loadStateDict(sig.stateDict())
    // A gate bias of 0 makes sigmoid(0) = 0.5 and silu(0) = 0 on a zero gate weight: silu output 0.
    for (const a of [sig, silu]) {
      const w = param(a, 'to_v_gate.weight') as tf.Variable
      const bias = param(a, 'to_v_gate.bias') as tf.Variable
      tf.tidy(() => {
        w.assign(tf.zerosLike(w))
        bias.assign(tf.zerosLike(bias))
      })
    }
    const x = randomTensor([1, 3, 8], 2)
    const a = sig.forward(x)
    const b = silu.forward(x)
    const ungated = tf.tidy(() => {
      const plain = new Attention({ dim: 8, heads: 2, dimHead: 4 })
      for (const name of ['to_q.weight', 'to_k.weight', 'to_v.weight', 'to_out.weight']) {
        ;(param(plain, name) as tf.Variable).assign(param(sig, name))
      }
      const r = plain.forward(x)
      plain.dispose()
      return r.out
    })
    expectClose(a.out, tf.mul(ungated, 0.5), { atol: 1e-6 })
    expectClose(b.out, tf.zerosLike(ungated), { atol: 1e-7 })
    for (const t of [a.out, a.cache.k, a.cache.v, b.out, b.cache.k, b.cache.v, x, ungated]) t.dispose()
    sig.dispose()
    silu.dispose()
  })

  it('gateValueHeads scales each head by σ(to_v_head_gate(x))', () => {
    const gated = new Attention({ dim: 8, heads: 2, dimHead: 4, gateValueHeads: true })
    const plain = new Attention({ dim: 8, heads: 2, dimHead: 4 })
    perturb(plain, 3)
    for (const name of ['to_q.weight', 'to_k.weight', 'to_v.weight', 'to_out.weight']) {
      ;(param(gated, name) as tf.Variable).assign(param(plain, name))
    }
    // Zero gate weights and bias 0.5: every head is scaled by σ(0.5), so the output is too.
    const bias = param(gated, 'to_v_head_gate.bias') as tf.Variable
    tf.tidy(() => bias.assign(tf.fill(bias.shape, 0.5)))
    expect(param(gated, 'to_v_head_gate.weight').shape).toEqual([2, 8])
    const x = randomTensor([2, 3, 8], 4)
    const a = gated.forward(x)
    const b = plain.forward(x)
    expectClose(a.out, tf.mul(b.out, 1 / (1 + Math.exp(-0.5))), { atol: 1e-6 })
    for (const r of [a, b]) for (const t of [r.out, r.cache.k, r.cache.v]) t.dispose()
    x.dispose()
    gated.dispose()
    plain.dispose()
  })

  it('maxAttendPast 0: each query sees only itself; a window covering everything changes nothing', () => {
    const local = new Attention({ dim: 8, heads: 2, dimHead: 4, causal: true, maxAttendPast: 0 })
    const wide = new Attention({ dim: 8, heads: 2, dimHead: 4, causal: true, maxAttendPast: 10 })
    const plain = new Attention({ dim: 8, heads: 2, dimHead: 4, causal: true })
    perturb(plain, 8)
    local.loadStateDict(plain.stateDict())
    wide.loadStateDict(plain.stateDict())
    const x = randomTensor([2, 5, 8], 6)
    const a = local.forward(x)
    // One visible key: the output is to_out(merged values of the query's own position).
    const want = tf.tidy(() => {
      const v = tf.matMul(tf.reshape(x, [10, 8]), param(plain, 'to_v.weight'), false, true)
      return tf.reshape(tf.matMul(v, param(plain, 'to_out.weight'), false, true), [2, 5, 8])
    })
    expectClose(a.out, want, { atol: 1e-6 })
    const b = wide.forward(x)
    const c = plain.forward(x)
    expectClose(b.out, c.out, { atol: 1e-6 })
    for (const r of [a, b, c]) for (const t of [r.out, r.cache.k, r.cache.v]) t.dispose()
    tf.dispose([x, want])
    for (const m of [local, wide, plain]) m.dispose()
  })

  it('dropout acts only in training mode', () => {
    const attn = new Attention({ dim: 8, heads: 2, dimHead: 4, dropout: 0.5 })
    const x = randomTensor([1, 6, 8], 2)
    attn.eval()
    const a = attn.forward(x)
    const b = attn.forward(x)
    expect(Array.from(a.out.dataSync())).toEqual(Array.from(b.out.dataSync()))
    attn.train()
    const c = attn.forward(x)
    expect(Math.max(...Array.from(tf.abs(tf.sub(c.out, a.out)).dataSync()))).toBeGreaterThan(1e-4)
    for (const r of [a, b, c]) for (const t of [r.out, r.cache.k, r.cache.v]) t.dispose()
    x.dispose()
    attn.dispose()
  })
})

describe('Attention configuration errors', () => {
  it('asks for @xattn/flash when flash is not registered', () => {
    expect(() => new Attention({ dim: 8, heads: 2, dimHead: 4, flash: true })).toThrow(ConfigError)
    expect(() => new Attention({ dim: 8, heads: 2, dimHead: 4, attention: 'flash' })).toThrow(
      /install @xattn\/flash/,
    )
  })
  it('rejects bad head layouts and options by name', () => {
    expect(() => new Attention({ dim: 8, heads: 4, dimHead: 2, kvHeads: 3 })).toThrow(/kvHeads/)
    expect(() => new Attention({ dim: 8, heads: 2, dimHead: 4, qkNorm: true, qkNormGroups: 3 })).toThrow(
      /qkNormGroups/,
    )
    expect(() => new Attention({ dim: 8, heads: 2, dimHead: 4, sparseTopk: 0 })).toThrow(/sparseTopk/)
    expect(() => new Attention({ dim: 8, heads: 2, dimHead: 4, dropout: 1 })).toThrow(/dropout/)
  })
  it('rejects rotary frequencies that do not cover the keys', () => {
    const attn = new Attention({ dim: 8, heads: 2, dimHead: 4 })
    const x = tf.zeros([1, 3, 8])
    const rotary = { freqs: tf.zeros([2, 4]) as tf.Tensor2D, scale: null }
    expect(() => attn.forward(x, { rotary })).toThrow(/rotary frequencies must cover the 3 key positions/)
    tf.dispose([x, rotary.freqs])
    attn.dispose()
  })

  it('rejects a context mask that does not fit the context', () => {
    const attn = new Attention({ dim: 8, heads: 2, dimHead: 4 })
    const x = tf.zeros([1, 3, 8])
    const context = tf.zeros([1, 5, 8])
    const wrong = tf.ones([1, 4], 'bool')
    expect(() => attn.forward(x, { context, contextMask: wrong })).toThrow(
      /contextMask must be bool \[b, mc\]/,
    )
    expect(() => attn.forward(x, { contextMask: wrong })).toThrow(/no context given/)
    for (const t of [x, context, wrong]) t.dispose()
    attn.dispose()
  })

  it('rejects a mask of the wrong shape before any tensor work', () => {
    const attn = new Attention({ dim: 8, heads: 2, dimHead: 4 })
    const x = tf.zeros([1, 3, 8])
    const mask = tf.ones([1, 4], 'bool')
    const before = tf.memory().numTensors
    expect(() => attn.forward(x, { mask })).toThrow(/mask must be bool \[b, 3\]/)
    expect(tf.memory().numTensors).toBe(before)
    for (const t of [x, mask]) t.dispose()
    attn.dispose()
  })
})
