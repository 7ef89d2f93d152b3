// The kv-heads × memory-kv grid, run against the BUILT packages: for every combination of head
// counts, KV head counts, memory slots, causality, key masks and self/cross attention, the
// composed pipeline (projections → memory prepend → reference attention → merge heads) must
// equal an independent plain-loops implementation, forward and gradients (x, context, to_q,
// to_k, to_v, mem_k, mem_v). The seed of the project — one KV head together with memory KV,
// which crashed x-transformers — is named among them.

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import {
  attendReference,
  attentionMask,
  decodeSafetensors,
  groupedScores,
  type HeadLayout,
  headLayout,
  maskedSoftmax,
} from '@xattn/core'
import { expandKv, linearApply, mergeHeads, QKVProjection } from '@xattn/kv-heads'
import { MemoryKV, prependMemoryKv } from '@xattn/memory-kv'
import { describeEachBackend, expectClose, randomTensor, testRng } from '@xattn/test-utils'
import { expect, it } from 'vitest'

// ---------------------------------------------------------------------------------------------
// The oracle: everything in float64 loops, written from the conventions (torch Linear y = x·Wᵀ,
// 'b n (h d) -> b h n d', memory slots first and always visible, query head i ↔ KV head i % kvh,
// bottom-right causal over M + m keys, fully masked rows give 0), not from the packages.

interface Dims {
  b: number
  n: number // queries
  m: number // real keys (= n for self-attention)
  dim: number
  dimKv: number
  h: number
  kvh: number
  d: number
  dv: number
  mem: number
  causal: boolean
}

interface Params {
  x: ArrayLike<number> // [b n dim]
  context: ArrayLike<number> | null // [b m dimKv]
  wq: ArrayLike<number> // [h·d, dim]
  wk: ArrayLike<number> // [kvh·d, dimKv]
  wv: ArrayLike<number> // [kvh·dv, dimKv]
  memK: ArrayLike<number> | null // [kvh mem d]
  memV: ArrayLike<number> | null // [kvh mem dv]
}

function project(src: ArrayLike<number>, w: ArrayLike<number>, rows: number, inF: number, outF: number) {
  const y = new Float64Array(rows * outF)
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let acc = 0
      for (let i = 0; i < inF; i++) acc += (src[r * inF + i] as number) * (w[o * inF + i] as number)
      y[r * outF + o] = acc
    }
  return y
}

/** Output `[b n (h dv)]` (heads merged), as a flat float64 array. */
function pipelineLoops(p: Params, s: Dims, keyMask: Uint8Array | null): Float64Array {
  const { b, n, m, dim, dimKv, h, kvh, d, dv, mem } = s
  const src = p.context ?? p.x
  const q = project(p.x, p.wq, b * n, dim, h * d) // [b n (h d)]
  const k = project(src, p.wk, b * m, dimKv, kvh * d) // [b m (kvh d)]
  const v = project(src, p.wv, b * m, dimKv, kvh * dv)
  const total = mem + m
  const out = new Float64Array(b * n * h * dv)
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++) {
      const kv = hi % kvh
      for (let i = 0; i < n; i++) {
        const logits = new Float64Array(total)
        const visible: boolean[] = []
        for (let j = 0; j < total; j++) {
          let dot = 0
          for (let c = 0; c < d; c++) {
            const key =
              j < mem
                ? (p.memK?.[(kv * mem + j) * d + c] as number)
                : (k[(bi * m + j - mem) * kvh * d + kv * d + c] as number)
            dot += (q[(bi * n + i) * h * d + hi * d + c] as number) * key
          }
          logits[j] = dot / Math.sqrt(d)
          let ok = !(s.causal && j > i + (total - n))
          if (j >= mem && keyMask !== null && keyMask[bi * m + j - mem] === 0) ok = false
          visible.push(ok)
        }
        if (!visible.some(Boolean)) continue
        let max = Number.NEGATIVE_INFINITY
        for (let j = 0; j < total; j++) if (visible[j]) max = Math.max(max, logits[j] as number)
        let sum = 0
        const e = new Float64Array(total)
        for (let j = 0; j < total; j++) {
          e[j] = visible[j] ? Math.exp((logits[j] as number) - max) : 0
          sum += e[j] as number
        }
        for (let c = 0; c < dv; c++) {
          let acc = 0
          for (let j = 0; j < total; j++) {
            const value =
              j < mem
                ? (p.memV?.[(kv * mem + j) * dv + c] as number)
                : (v[(bi * m + j - mem) * kvh * dv + kv * dv + c] as number)
            acc += ((e[j] as number) / sum) * value
          }
          out[(bi * n + i) * h * dv + hi * dv + c] = acc
        }
      }
    }
  return out
}

// ---------------------------------------------------------------------------------------------
// The grid.

interface Combo {
  heads: 4 | 6
  kv: 'all' | 'half' | 'one'
  mem: 0 | 1 | 3
  causal: boolean
  masked: boolean
  cross: boolean
}

const GRID: Combo[] = []
for (const heads of [4, 6] as const)
  for (const kv of ['all', 'half', 'one'] as const)
    for (const mem of [0, 1, 3] as const)
      for (const causal of [false, true])
        for (const masked of [false, true])
          for (const cross of [false, true]) GRID.push({ heads, kv, mem, causal, masked, cross })

const isSeed = (c: Combo) => c.kv === 'one' && c.mem > 0

function comboName(c: Combo): string {
  const kvh = c.kv === 'all' ? c.heads : c.kv === 'half' ? c.heads / 2 : 1
  return [
    isSeed(c) ? 'seed (one KV head + memory KV): ' : '',
    `heads=${c.heads} kvHeads=${kvh} numMemKv=${c.mem}`,
    c.causal ? ' causal' : '',
    c.masked ? ' keyMask' : '',
    c.cross ? ' cross m≠n' : ' self',
  ].join('')
}

function dimsOf(c: Combo): { dims: Dims; layout: HeadLayout } {
  const kvh = c.kv === 'all' ? c.heads : c.kv === 'half' ? c.heads / 2 : 1
  // valueDimHead ≠ dimHead for 4 heads, so a swapped d/dv anywhere shows up.
  const layout = headLayout({ heads: c.heads, kvHeads: kvh, dimHead: 2, valueDimHead: c.heads === 4 ? 3 : 2 })
  const n = 3
  return {
    layout,
    dims: {
      b: 2,
      n,
      m: c.cross ? 4 : n,
      dim: 8,
      dimKv: c.cross ? 6 : 8,
      h: c.heads,
      kvh,
      d: layout.dimHead,
      dv: layout.valueDimHead,
      mem: c.mem,
      causal: c.causal,
    },
  }
}

/** Batch 0: some keys hidden; batch 1: only the last key visible (fully masked causal rows without memory). */
function keyMaskValues(b: number, m: number): Uint8Array {
  const values = new Uint8Array(b * m)
  for (let j = 0; j < m; j++) values[j] = j % 2 === 0 ? 1 : 0
  values[b * m - 1] = 1
  return values
}

interface Built {
  qkv: QKVProjection
  memory: MemoryKV | null
  x: tf.Variable
  context: tf.Variable | null
  keyMask: tf.Tensor | null
  keyMaskData: Uint8Array | null
  weights: tf.Tensor // [b n (h dv)]: the loss is Σ out · weights
  dispose(): void
}

function build(c: Combo, dims: Dims, layout: HeadLayout, seed: number): Built {
  const qkv = new QKVProjection({ layout, dim: dims.dim, dimKv: dims.dimKv, rng: seed })
  const memory = c.mem > 0 ? new MemoryKV({ layout, numMemKv: c.mem, rng: seed + 1 }) : null
  const xInit = randomTensor([dims.b, dims.n, dims.dim], seed + 2)
  const x = tf.variable(xInit)
  xInit.dispose()
  let context: tf.Variable | null = null
  if (c.cross) {
    const init = randomTensor([dims.b, dims.m, dims.dimKv], seed + 3)
    context = tf.variable(init)
    init.dispose()
  }
  const keyMaskData = c.masked ? keyMaskValues(dims.b, dims.m) : null
  const keyMask = keyMaskData === null ? null : tf.tensor(keyMaskData, [dims.b, dims.m], 'bool')
  const weights = randomTensor([dims.b, dims.n, dims.h * dims.dv], seed + 4)
  return {
    qkv,
    memory,
    x,
    context,
    keyMask,
    keyMaskData,
    weights,
    dispose() {
      qkv.dispose()
      memory?.dispose()
      tf.dispose([x, weights])
      if (context !== null) context.dispose()
      if (keyMask !== null) keyMask.dispose()
    },
  }
}

/** The composed pipeline under test: `[b n (h dv)]`. */
function pipeline(t: Built, layout: HeadLayout, causal: boolean): tf.Tensor {
  return tf.tidy(() => {
    const { q, k, v } = t.qkv.forward(t.x, t.context)
    if (t.memory === null) {
      return mergeHeads(attendReference({ q, k, v }, { causal, keyMask: t.keyMask }))
    }
    const p = t.memory.prepend({ k, v }, { keyMask: t.keyMask })
    expect(p.k.shape[1], 'memory keys carry the KV head count').toBe(layout.kvHeads)
    return mergeHeads(attendReference({ q, k: p.k, v: p.v }, { causal, keyMask: p.keyMask }))
  })
}

function paramsOf(t: Built): Params {
  return {
    x: t.x.dataSync(),
    context: t.context === null ? null : t.context.dataSync(),
    wq: t.qkv.toQ.weight.dataSync(),
    wk: t.qkv.toK.weight.dataSync(),
    wv: t.qkv.toV.weight.dataSync(),
    memK: t.memory === null ? null : t.memory.memK.dataSync(),
    memV: t.memory === null ? null : t.memory.memV.dataSync(),
  }
}

// Float32 tolerances. Forward: projections sum ≤8 products (x in ±1, weights in ±0.36), memory is
// standard normal; logits stay O(1–10), so float32 rounding is ~1e-6 and 3e-5 is a safe margin,
// while any wrong head pairing, slot order, mask or alignment moves outputs by ≥1e-2.
// Gradients: float32 backprop through softmax against float64 central differences (truncation
// ~1e-10); errors are ~1e-6 relative to values O(1), so atol 2e-4 + rtol 1e-3.
const FORWARD_ATOL = 3e-5
const GRAD_TOL = { atol: 2e-4, rtol: 1e-3 }

/** Central differences of Σ pipelineLoops · weights over one parameter array, in float64. */
function finiteDifferences(
  params: Params,
  key: keyof Params,
  dims: Dims,
  keyMask: Uint8Array | null,
  weights: ArrayLike<number>,
): Float64Array {
  const base = params[key] as ArrayLike<number>
  const loss = (p: Params) => {
    const out = pipelineLoops(p, dims, keyMask)
    let s = 0
    for (let i = 0; i < out.length; i++) s += (out[i] as number) * (weights[i] as number)
    return s
  }
  const eps = 1e-5
  const grad = new Float64Array(base.length)
  const work = Float64Array.from(base)
  for (let i = 0; i < base.length; i++) {
    const x0 = work[i] as number
    work[i] = x0 + eps
    const plus = loss({ ...params, [key]: work })
    work[i] = x0 - eps
    const minus = loss({ ...params, [key]: work })
    work[i] = x0
    grad[i] = (plus - minus) / (2 * eps)
  }
  return grad
}

function checkCombo(c: Combo, seed: number, { gradients }: { gradients: boolean }): void {
  const { dims, layout } = dimsOf(c)
  const t = build(c, dims, layout, seed)
  const before = tf.memory().numTensors
  try {
    const params = paramsOf(t)
    const expected = pipelineLoops(params, dims, t.keyMaskData)
    const out = pipeline(t, layout, c.causal)
    expectClose(out, expected, { atol: FORWARD_ATOL, label: `${comboName(c)} forward` })
    out.dispose()
    expect(tf.memory().numTensors, 'forward leaves no tensors').toBe(before)
    if (!gradients) return

    const vars: [keyof Params, tf.Variable][] = [
      ['x', t.x],
      ['wq', t.qkv.toQ.weight],
      ['wk', t.qkv.toK.weight],
      ['wv', t.qkv.toV.weight],
    ]
    if (t.context !== null) vars.push(['context', t.context])
    if (t.memory !== null) vars.push(['memK', t.memory.memK], ['memV', t.memory.memV])
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(pipeline(t, layout, c.causal), t.weights)) as tf.Scalar,
      vars.map(([, v]) => v),
    )
    const weights = t.weights.dataSync()
    for (const [key, variable] of vars) {
      const grad = grads[variable.name] as tf.Tensor
      expect(grad.shape, `${key} gradient shape`).toEqual(variable.shape)
      expectClose(grad, finiteDifferences(params, key, dims, t.keyMaskData, weights), {
        ...GRAD_TOL,
        label: `${comboName(c)} d loss / d ${key}`,
      })
    }
    tf.dispose([value, ...Object.values(grads)])
    expect(tf.memory().numTensors, 'gradients leave no tensors').toBe(before)
  } finally {
    t.dispose()
  }
}

describeEachBackend('kv-heads × memory-kv grid (built packages)', () => {
  it('covers all 144 combinations', () => {
    expect(GRID.length).toBe(144)
    expect(new Set(GRID.map(comboName)).size).toBe(144)
  })

  GRID.forEach((c, index) => {
    it(`${comboName(c)}: forward and gradients (incl. mem_k, mem_v) equal the loops oracle`, () => {
      checkCombo(c, 1000 + 10 * index, { gradients: true })
    })
  })
}, ['cpu'])

describeEachBackend('kv-heads × memory-kv grid on wasm (built packages)', () => {
  // wasm runs a representative slice (every seed combination and the MHA/GQA neighbours with
  // 3 memory slots); the cpu block above covers all 144 with gradients.
  GRID.filter((c) => c.mem === 3 && c.masked && (isSeed(c) || c.causal)).forEach((c, index) => {
    it(`${comboName(c)}: forward and gradients equal the loops oracle`, () => {
      checkCombo(c, 5000 + 10 * index, { gradients: true })
    })
  })
}, ['wasm'])

// ---------------------------------------------------------------------------------------------
// Invariants.

describeEachBackend('kv-heads × memory-kv invariants (built packages)', () => {
  it.each([
    [4, 2, 0],
    [6, 3, 3],
    [6, 1, 2],
  ])(
    'GQA (heads=%i, kvHeads=%i, numMemKv=%i) equals MHA with the KV weights and memory duplicated to full heads',
    (heads, kvHeads, mem) => {
      const gqaLayout = headLayout({ heads, kvHeads, dimHead: 2, valueDimHead: 3 })
      const mhaLayout = headLayout({ heads, dimHead: 2, valueDimHead: 3 })
      const gqa = new QKVProjection({ layout: gqaLayout, dim: 8, rng: 1 })
      const mha = new QKVProjection({ layout: mhaLayout, dim: 8, rng: 2 })
      const groups = heads / kvHeads
      // Full head i must hold KV head i % kvHeads: tiling the whole [kvh·d, dim] block does that.
      const dup = (w: tf.Tensor) => tf.tile(w, [groups, 1])
      const wk = dup(gqa.toK.weight)
      const wv = dup(gqa.toV.weight)
      mha.loadStateDict({ 'to_q.weight': gqa.toQ.weight, 'to_k.weight': wk, 'to_v.weight': wv })
      const gqaMemory = mem > 0 ? new MemoryKV({ layout: gqaLayout, numMemKv: mem, rng: 3 }) : null
      const mhaMemory = mem > 0 ? new MemoryKV({ layout: mhaLayout, numMemKv: mem, rng: 4 }) : null
      const memKFull = gqaMemory === null ? null : expandKv(tf.expandDims(gqaMemory.memK, 0), gqaLayout)
      const memVFull = gqaMemory === null ? null : expandKv(tf.expandDims(gqaMemory.memV, 0), gqaLayout)
      if (mhaMemory !== null && memKFull !== null && memVFull !== null) {
        mhaMemory.loadStateDict({ mem_k: tf.squeeze(memKFull, [0]), mem_v: tf.squeeze(memVFull, [0]) })
      }
      const x = randomTensor([2, 4, 8], 5)
      const keyMask = tf.tensor([1, 1, 0, 1, 0, 1, 1, 1], [2, 4], 'bool')
      const run = (proj: QKVProjection, memory: MemoryKV | null) =>
        tf.tidy(() => {
          const { q, k, v } = proj.forward(x)
          const p = memory === null ? { k, v, keyMask } : memory.prepend({ k, v }, { keyMask })
          return attendReference({ q, k: p.k, v: p.v }, { keyMask: p.keyMask, causal: true })
        })
      const a = run(gqa, gqaMemory)
      const b = run(mha, mhaMemory)
      // Identical products and sums, only the head bookkeeping differs: agreement to rounding.
      expectClose(a, b, { atol: 1e-6, label: 'GQA vs duplicated MHA' })
      tf.dispose([wk, wv, x, keyMask, a, b, memKFull, memVFull].filter((t): t is tf.Tensor => t !== null))
      gqa.dispose()
      mha.dispose()
      gqaMemory?.dispose()
      mhaMemory?.dispose()
    },
  )

  it.each([
    [4, 4],
    [4, 2],
    [4, 1],
  ])(
    'memory KV whose keys sit at −∞ logits and whose values are 0 equals no memory KV (heads=%i, kvHeads=%i)',
    (heads, kvHeads) => {
      const layout = headLayout({ heads, kvHeads, dimHead: 2 })
      const qkv = new QKVProjection({ layout, dim: 8, rng: 6 })
      // Make feature 0 of every query head a constant positive 1: x[..., 0] = 1 and to_q's row
      // for (head, feature 0) picks it. Memory keys −1e30 along feature 0 then give logits
      // ≈ −7e29, finite in float32 and far below any real logit, so their softmax weight is 0.
      const rng = testRng(7)
      const xValues = Float32Array.from({ length: 2 * 4 * 8 }, (_, i) => (i % 8 === 0 ? 1 : rng() * 2 - 1))
      const x = tf.tensor(xValues, [2, 4, 8])
      const wq = qkv.toQ.weight.arraySync() as number[][]
      for (let h = 0; h < heads; h++) wq[h * 2] = [1, 0, 0, 0, 0, 0, 0, 0]
      const wqT = tf.tensor(wq)
      qkv.toQ.weight.assign(wqT)
      const memory = new MemoryKV({ layout, numMemKv: 3, rng: 8 })
      const memK = tf.tensor(
        Float32Array.from({ length: kvHeads * 3 * 2 }, (_, i) => (i % 2 === 0 ? -1e30 : 0)),
        [kvHeads, 3, 2],
      )
      const memV = tf.zeros([kvHeads, 3, 2])
      memory.loadStateDict({ mem_k: memK, mem_v: memV })
      const keyMask = tf.tensor([1, 0, 1, 1, 1, 1, 0, 1], [2, 4], 'bool')
      for (const causal of [false, true]) {
        const [withMemory, without] = tf.tidy(() => {
          const { q, k, v } = qkv.forward(x)
          const p = prependMemoryKv({ k, v }, { memK: memory.memK, memV: memory.memV }, { layout, keyMask })
          return [
            attendReference({ q, k: p.k, v: p.v }, { keyMask: p.keyMask, causal }),
            attendReference({ q, k, v }, { keyMask, causal }),
          ]
        }) as [tf.Tensor, tf.Tensor]
        // Exp of the memory logits underflows to exactly 0, so the weights on real keys are the
        // same numbers; only summation order may differ.
        expectClose(withMemory, without, { atol: 1e-6, label: `causal=${causal}` })
        tf.dispose([withMemory, without])
      }
      tf.dispose([x, wqT, memK, memV, keyMask])
      qkv.dispose()
      memory.dispose()
    },
  )
}, ['cpu', 'wasm'])

// ---------------------------------------------------------------------------------------------
// x-transformers parity of one attention layer (self-attention layer 0, or cross-attention layer 1): pre-norm, the
// projections of @xattn/kv-heads, the memory of @xattn/memory-kv loaded from the checkpoint's
// `mem_k`/`mem_v`, core's softmax, merge heads and `to_out`. Checks the shapes of the real
// checkpoints (memory has kvHeads heads) and the numbers (post-softmax and the layer output).

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'fixtures', 'x-transformers')

interface FixtureCase {
  config: {
    layers: 'Decoder' | 'Encoder'
    layers_kwargs: {
      dim: number
      heads: number
      attn_dim_head: number
      attn_num_mem_kv?: number
      attn_one_kv_head?: boolean
      attn_kv_heads?: number
      cross_attn_num_mem_kv?: number
      cross_attn_one_kv_head?: boolean
      attn_qk_norm?: boolean
    }
  }
}

function loadFixture(name: string) {
  const dir = join(FIXTURES, name)
  const meta = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as FixtureCase
  return {
    meta,
    model: decodeSafetensors(readFileSync(join(dir, 'model.safetensors'))),
    inputs: decodeSafetensors(readFileSync(join(dir, 'inputs.safetensors'))),
    intermediates: decodeSafetensors(readFileSync(join(dir, 'intermediates.safetensors'))),
  }
}

/** `F.normalize(t, dim=-1)`: t / max(‖t‖, 1e-12). */
function l2normalize(t: tf.Tensor4D): tf.Tensor4D {
  return tf.div(t, tf.maximum(tf.norm(t, 'euclidean', -1, true), tf.scalar(1e-12)))
}

/**
 * GPT-J interleaved rotary over the first 2·len(invFreq) features at positions 0…n-1:
 * t·cos + rotate_pairs(t)·sin, with rotate_pairs(…, x1, x2, …) = (…, -x2, x1, …).
 */
function rotary(t: tf.Tensor4D, invFreq: tf.Tensor): tf.Tensor4D {
  const [b, h, n, d] = t.shape
  const half = invFreq.shape[0] as number
  const rot = 2 * half
  const freqs = tf.mul(tf.reshape(tf.range(0, n, 1, 'float32'), [n, 1]), tf.reshape(invFreq, [1, half]))
  const angles = tf.reshape(tf.stack([freqs, freqs], -1), [n, rot]) // each frequency twice, interleaved
  const rotated = tf.slice(t, [0, 0, 0, 0], [b, h, n, rot])
  const pairs = tf.reshape(rotated, [b, h, n, half, 2])
  const [x1, x2] = tf.split(pairs, 2, -1) as [tf.Tensor, tf.Tensor]
  const turned = tf.reshape(tf.concat([tf.neg(x2), x1], -1), [b, h, n, rot])
  const out = tf.add(tf.mul(rotated, tf.cos(angles)), tf.mul(turned, tf.sin(angles)))
  return (
    rot === d ? out : tf.concat([out, tf.slice(t, [0, 0, 0, rot], [b, h, n, d - rot])], -1)
  ) as tf.Tensor4D
}

function required(map: Map<string, tf.Tensor>, key: string): tf.Tensor {
  const t = map.get(key)
  if (t === undefined) throw new Error(`fixture has no ${key}`)
  return t
}

describeEachBackend('kv-heads × memory-kv against x-transformers fixtures, one attention layer (built packages)', () => {
  it.each([
    ['num_mem_kv_one_kv_head', 0, 'seed: one KV head + memory KV'],
    ['encoder_num_mem_kv_one_kv_head_mask', 0, 'seed: one KV head + memory KV, encoder with padding mask'],
    [
      'cross_attend_num_mem_kv_one_kv_head',
      1,
      'seed: one KV head + memory KV, cross-attention with context mask',
    ],
    ['cross_attend_dim_context', 1, 'cross-attention with dimKv 24 ≠ dim 32'],
    ['num_mem_kv_kv_heads2', 0, 'GQA + memory KV'],
    ['num_mem_kv', 0, 'MHA + memory KV'],
    ['one_kv_head', 0, 'one KV head, no memory'],
    ['kv_heads2', 0, 'GQA, no memory'],
    [
      'combo_memkv_onekv_rotary_qknorm_glu',
      0,
      'seed + rotary + qk-norm: memory keys normalised through the hook',
    ],
  ] as [string, 0 | 1, string][])('%s layer %i (%s): post-softmax and layer output match', (name, layer) => {
    const { meta, model, inputs, intermediates } = loadFixture(name)
    const kw = meta.config.layers_kwargs
    // Layer 1 of the cross-attention cases is the cross-attention block (layer types a, c, f).
    const cross = layer === 1
    const causal = meta.config.layers === 'Decoder' && !cross
    const numMemKv = (cross ? kw.cross_attn_num_mem_kv : kw.attn_num_mem_kv) ?? 0
    const oneKvHead = cross ? kw.cross_attn_one_kv_head : kw.attn_one_kv_head
    const kvHeads = cross ? undefined : kw.attn_kv_heads
    const layout = headLayout({
      heads: kw.heads,
      dimHead: kw.attn_dim_head,
      ...(oneKvHead === true ? { oneKvHead: true } : {}),
      ...(kvHeads !== undefined ? { kvHeads } : {}),
    })
    const context = cross ? required(inputs, 'context') : null
    const prefix = `attn_layers.layers.${layer}.1.`
    const qkv = new QKVProjection({ layout, dim: kw.dim, dimKv: context?.shape[2] ?? kw.dim })
    qkv.loadStateDict({
      'to_q.weight': required(model, `${prefix}to_q.weight`),
      'to_k.weight': required(model, `${prefix}to_k.weight`),
      'to_v.weight': required(model, `${prefix}to_v.weight`),
    })
    const memory = numMemKv > 0 ? new MemoryKV({ layout, numMemKv }) : null
    // Loading checks names and shapes: the checkpoint's memory has kvHeads heads, like ours.
    memory?.loadStateDict({
      mem_k: required(model, `${prefix}mem_k`),
      mem_v: required(model, `${prefix}mem_v`),
    })

    const maskU8 = inputs.get('mask') ?? null
    const keyMaskU8 = cross ? required(inputs, 'context_mask') : maskU8
    const [probs, layerOut] = tf.tidy(() => {
      const x = required(intermediates, `layer_hiddens.${layer}`)
      // Pre-norm: LayerNorm without bias, eps 1e-5, gamma stored with the unit offset removed.
      const { mean, variance } = tf.moments(x, -1, true)
      const gamma = tf.add(required(model, `attn_layers.layers.${layer}.0.0.gamma`), tf.scalar(1))
      const normed = tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, tf.scalar(1e-5)))), gamma)
      const keyMask = keyMaskU8 === null ? null : tf.cast(keyMaskU8, 'bool')
      const projected = qkv.forward(normed, context)
      let { q, k } = projected
      const { v } = projected
      const qkNorm = kw.attn_qk_norm === true
      if (qkNorm) [q, k] = [l2normalize(q), l2normalize(k)]
      const invFreq = model.get('attn_layers.rotary_pos_emb.inv_freq')
      if (invFreq !== undefined && !cross) [q, k] = [rotary(q, invFreq), rotary(k, invFreq)]
      // Memory keys are never rotated, but under qk-norm they are l2-normalised like the real keys.
      const p =
        memory === null
          ? { k, v, keyMask }
          : memory.prepend({ k, v }, { keyMask, transformMemoryKeys: qkNorm ? l2normalize : null })
      const [, , n] = q.shape
      const m = p.k.shape[2]
      const scale = qkNorm ? 10 : layout.dimHead ** -0.5 // x-transformers' qk_norm_scale default
      const logits = tf.mul(groupedScores(q, p.k), tf.scalar(scale)) as tf.Tensor4D
      const attnProbs = maskedSoftmax(logits, attentionMask(n, m, { causal, keyMask: p.keyMask }))
      const attnOut = attendReference({ q, k: p.k, v: p.v }, { causal, keyMask: p.keyMask, scale })
      const out = tf.add(x, linearApply(mergeHeads(attnOut), required(model, `${prefix}to_out.weight`)))
      return [attnProbs, out]
    })
    // PyTorch and tfjs both compute in float32 but in different orders: ~1e-6 apart for
    // probabilities, ~1e-5 for the O(1) layer output; a wrong head, slot or mask is ≥1e-2.
    expectClose(probs, required(intermediates, `attn.${layer}.post_softmax`), {
      atol: 2e-5,
      label: `${name} post_softmax`,
    })
    const expectedOut = required(intermediates, `layer_hiddens.${layer + 1}`)
    if (maskU8 === null) {
      expectClose(layerOut, expectedOut, { atol: 1e-4, label: `${name} layer output` })
    } else {
      // Padded query rows are zeroed by the Attention layer (DESIGN §3), not by these packages:
      // compare the unpadded rows only.
      const keep = tf.tidy(() => tf.reshape(tf.cast(maskU8, 'float32'), [...maskU8.shape, 1]))
      const a = tf.mul(layerOut, keep)
      const e = tf.mul(expectedOut, keep)
      expectClose(a, e, { atol: 1e-4, label: `${name} layer output (unpadded rows)` })
      tf.dispose([keep, a, e])
    }
    tf.dispose([probs, layerOut, ...model.values(), ...inputs.values(), ...intermediates.values()])
    qkv.dispose()
    memory?.dispose()
  })
}, ['cpu'])
