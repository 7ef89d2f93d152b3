import * as tf from '@tensorflow/tfjs-core'
import { attendReference, ConfigError, headLayout, Module, ShapeContractError } from '@xattn/core'
import {
  describeEachBackend,
  expectClose,
  expectNoLeaks,
  randomMask,
  randomTensor,
  testRng,
} from '@xattn/test-utils'
import { expect, it } from 'vitest'
import { initMemoryKv, MemoryKV, memoryKvShapes, prependMemoryKv } from '../src/index.js'
import { attentionWithMemoryLoops } from './loops.js'

// Float32 tolerance: logits are dot products of ≤4 terms of magnitude ≤3 (standard-normal memory),
// rounding ~1e-6; softmax and the weighted sum keep that order. 2e-5 leaves a margin while a
// wrong head, slot order or mask shows as ≥1e-2.
const ATOL = 2e-5

const LAYOUTS = {
  mha: headLayout({ heads: 4, dimHead: 3 }),
  gqa: headLayout({ heads: 6, kvHeads: 2, dimHead: 3, valueDimHead: 4 }),
  mqa: headLayout({ heads: 4, oneKvHead: true, dimHead: 3 }),
}

describeEachBackend('MemoryKV parameters', () => {
  it.each(Object.entries(LAYOUTS))('%s: mem_k/mem_v are shaped from the head layout only', (_, layout) => {
    const memory = new MemoryKV({ layout, numMemKv: 5, rng: 1 })
    expect([...memory.namedParameters()].map(([name, p]) => [name, p.shape])).toEqual([
      ['mem_k', [layout.kvHeads, 5, layout.dimHead]],
      ['mem_v', [layout.kvHeads, 5, layout.valueDimHead]],
    ])
    expect(memoryKvShapes(layout, 5)).toEqual({
      mem_k: [layout.kvHeads, 5, layout.dimHead],
      mem_v: [layout.kvHeads, 5, layout.valueDimHead],
    })
    memory.dispose()
  })

  it('seed combination (attn_one_kv_head + attn_num_mem_kv): one memory head, not one per query head', () => {
    const layout = headLayout({ heads: 8, oneKvHead: true, dimHead: 16 })
    const memory = new MemoryKV({ layout, numMemKv: 4 })
    expect(memory.memK.shape).toEqual([1, 4, 16])
    expect(memory.memV.shape).toEqual([1, 4, 16])
    memory.dispose()
  })

  it('initialises standard normal, reproducibly from a seed', () => {
    const layout = headLayout({ heads: 4, dimHead: 16 })
    const a = initMemoryKv({ layout, numMemKv: 64, rng: 9 })
    const b = initMemoryKv({ layout, numMemKv: 64, rng: 9 })
    expect(Array.from(a.mem_v.dataSync())).toEqual(Array.from(b.mem_v.dataSync()))
    const values = Array.from(a.mem_k.dataSync())
    const mean = values.reduce((s, x) => s + x, 0) / values.length
    const std = Math.sqrt(values.reduce((s, x) => s + (x - mean) ** 2, 0) / values.length)
    // 4096 draws: the sample mean's std is 1/64, the sample std's about 1/90; 0.08 is > 5σ.
    expect(Math.abs(mean)).toBeLessThan(0.08)
    expect(Math.abs(std - 1)).toBeLessThan(0.08)
    tf.dispose([a.mem_k, a.mem_v, b.mem_k, b.mem_v])
  })

  it('a host can own the parameters under x-transformers names', () => {
    class Attention extends Module {
      readonly memK: tf.Variable
      readonly memV: tf.Variable
      constructor() {
        super()
        const init = initMemoryKv({ layout: LAYOUTS.mqa, numMemKv: 2, rng: 0 })
        this.memK = this.addParameter('mem_k', init.mem_k)
        this.memV = this.addParameter('mem_v', init.mem_v)
      }
    }
    const before = tf.memory().numTensors
    const attn = new Attention()
    expect([...attn.stateDict().keys()]).toEqual(['mem_k', 'mem_v'])
    attn.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })

  it('rejects a bad numMemKv by name', () => {
    expect(() => new MemoryKV({ layout: LAYOUTS.mha, numMemKv: 0 })).toThrow(
      new ConfigError(
        '@xattn/memory-kv',
        'numMemKv',
        'numMemKv must be a positive integer (leave memory KV out for 0), got 0',
      ),
    )
    expect(() => memoryKvShapes(LAYOUTS.mha, 2.5)).toThrow(ConfigError)
  })
}, ['cpu'])

describeEachBackend('prependMemoryKv', () => {
  it('puts the memory slots first, tiled over the batch; pads mask with true and bias with 0', () => {
    const layout = LAYOUTS.gqa
    const memory = new MemoryKV({ layout, numMemKv: 2, rng: 4 })
    const k = randomTensor([3, 2, 5, 3], 1)
    const v = randomTensor([3, 2, 5, 4], 2)
    const keyMask = randomMask([3, 5], 3)
    const bias = randomTensor([1, 6, 4, 5], 4)
    const out = expectNoLeaks(() => memory.prepend({ k, v }, { keyMask, bias }), { returns: 4 })
    expect(out.k.shape).toEqual([3, 2, 7, 3])
    expect(out.v.shape).toEqual([3, 2, 7, 4])
    expect(out.numMemKv).toBe(2)
    const kOut = out.k.arraySync() as number[][][][]
    const vOut = out.v.arraySync() as number[][][][]
    const memK = memory.memK.arraySync() as number[][][]
    const memV = memory.memV.arraySync() as number[][][]
    const kIn = k.arraySync() as number[][][][]
    for (let b = 0; b < 3; b++)
      for (let h = 0; h < 2; h++) {
        // Pure data movement: exact.
        expect(kOut[b]?.[h]?.slice(0, 2)).toEqual(memK[h])
        expect(vOut[b]?.[h]?.slice(0, 2)).toEqual(memV[h])
        expect(kOut[b]?.[h]?.slice(2)).toEqual(kIn[b]?.[h])
      }
    const maskOut = out.keyMask?.arraySync() as number[][]
    const maskIn = keyMask.arraySync() as number[][]
    for (let b = 0; b < 3; b++) expect(maskOut[b]).toEqual([1, 1, ...(maskIn[b] ?? [])])
    expect(out.bias?.shape).toEqual([1, 6, 4, 7])
    const biasOut = out.bias?.arraySync() as number[][][][]
    const biasIn = bias.arraySync() as number[][][][]
    for (let h = 0; h < 6; h++)
      for (let i = 0; i < 4; i++) expect(biasOut[0]?.[h]?.[i]).toEqual([0, 0, ...(biasIn[0]?.[h]?.[i] ?? [])])
    tf.dispose([k, v, keyMask, bias, out.k, out.v, out.keyMask as tf.Tensor, out.bias as tf.Tensor])
    memory.dispose()
  })

  it('without mask or bias returns null for them (memory is always visible)', () => {
    const memory = new MemoryKV({ layout: LAYOUTS.mha, numMemKv: 1 })
    const k = randomTensor([1, 4, 2, 3], 1)
    const out = expectNoLeaks(() => memory.prepend({ k, v: k }), { returns: 2 })
    expect(out.keyMask).toBeNull()
    expect(out.bias).toBeNull()
    tf.dispose([k, out.k, out.v])
    memory.dispose()
  })

  it.each(
    Object.entries(LAYOUTS).flatMap(([name, layout]) => [
      [name, layout, false],
      [name, layout, true],
    ]),
  )('%s (causal %s): attention over the result equals loops attention with memory', (_, layout, causal) => {
    const b = 2
    const n = 3
    const m = 4
    const mem = 3
    const memory = new MemoryKV({ layout, numMemKv: mem, rng: 5 })
    const q = randomTensor([b, layout.heads, n, layout.dimHead], 11)
    const k = randomTensor([b, layout.kvHeads, m, layout.dimHead], 12)
    const v = randomTensor([b, layout.kvHeads, m, layout.valueDimHead], 13)
    const mask = Uint8Array.from([1, 0, 1, 0, 0, 0, 0, 0]) // batch 1 sees no real key at all
    const keyMask = tf.tensor(mask, [b, m], 'bool')
    const p = memory.prepend({ k, v }, { keyMask })
    // Accepted by core's attention contract as is: no adapter between the packages.
    const out = attendReference({ q, k: p.k, v: p.v }, { keyMask: p.keyMask, causal })
    const expected = attentionWithMemoryLoops({
      q: q.dataSync(),
      k: k.dataSync(),
      v: v.dataSync(),
      memK: memory.memK.dataSync(),
      memV: memory.memV.dataSync(),
      b,
      h: layout.heads,
      kvh: layout.kvHeads,
      n,
      m,
      mem,
      d: layout.dimHead,
      dv: layout.valueDimHead,
      causal,
      keyMask: mask,
    })
    expectClose(out, expected, { atol: ATOL, label: 'attention with memory' })
    tf.dispose([q, k, v, keyMask, p.k, p.v, p.keyMask as tf.Tensor, out])
    memory.dispose()
  })

  it('seed combination (one KV head + memory KV): forward and mem_k/mem_v gradients match finite differences', () => {
    const layout = headLayout({ heads: 4, oneKvHead: true, dimHead: 2 })
    const [b, n, m, mem] = [2, 3, 3, 2]
    const memory = new MemoryKV({ layout, numMemKv: mem, rng: 2 })
    const q = randomTensor([b, 4, n, 2], 21)
    const k = randomTensor([b, 1, m, 2], 22)
    const v = randomTensor([b, 1, m, 2], 23)
    const weights = randomTensor([b, 4, n, 2], 24)
    const keyMaskValues = Uint8Array.from([1, 1, 0, 0, 1, 1])
    const keyMask = tf.tensor(keyMaskValues, [b, m], 'bool')
    const loss = (memK: tf.Tensor, memV: tf.Tensor) => {
      const p = prependMemoryKv({ k, v }, { memK, memV }, { layout, keyMask })
      return tf.sum(
        tf.mul(attendReference({ q, k: p.k, v: p.v }, { keyMask: p.keyMask, causal: true }), weights),
      )
    }
    const [gK, gV] = expectNoLeaks(() => tf.grads(loss)([memory.memK, memory.memV]), { returns: 2 }) as [
      tf.Tensor,
      tf.Tensor,
    ]
    const w = weights.dataSync()
    const base = {
      q: q.dataSync(),
      k: k.dataSync(),
      v: v.dataSync(),
      b,
      h: 4,
      kvh: 1,
      n,
      m,
      mem,
      d: 2,
      dv: 2,
      causal: true,
      keyMask: keyMaskValues,
    }
    const lossLoops = (memK: Float64Array, memV: Float64Array) =>
      attentionWithMemoryLoops({ ...base, memK, memV }).reduce((s, o, i) => s + o * (w[i] as number), 0)
    const memK0 = Float64Array.from(memory.memK.dataSync())
    const memV0 = Float64Array.from(memory.memV.dataSync())
    // Central differences in float64: truncation error ~eps² ≈ 1e-12, far below float32 noise.
    const eps = 1e-6
    const fd = (which: 'k' | 'v') => {
      const x0 = which === 'k' ? memK0 : memV0
      return Array.from(x0, (_, i) => {
        const plus = Float64Array.from(x0)
        const minus = Float64Array.from(x0)
        plus[i] = (plus[i] as number) + eps
        minus[i] = (minus[i] as number) - eps
        const f = (x: Float64Array) => (which === 'k' ? lossLoops(x, memV0) : lossLoops(memK0, x))
        return (f(plus) - f(minus)) / (2 * eps)
      })
    }
    expect(gK.shape).toEqual([1, mem, 2])
    // Float32 gradients of O(1) values through softmax: rounding ~1e-6; 1e-4 is a wide margin.
    expectClose(gK, fd('k'), { atol: 1e-4, label: 'd loss / d mem_k' })
    expectClose(gV, fd('v'), { atol: 1e-4, label: 'd loss / d mem_v' })
    tf.dispose([q, k, v, weights, keyMask, gK, gV])
    memory.dispose()
  })

  it('memory keys at −∞ logits with zero values equal no memory KV', () => {
    const layout = LAYOUTS.gqa
    const [b, n, m, mem] = [2, 3, 4, 2]
    const rng = testRng(7)
    // Queries with a positive first feature; memory keys −1e30 along it: logits ≈ −1e30·|q0|/√d,
    // finite in float32, whose exp underflows to exactly 0 next to the real logits.
    const qValues = Float32Array.from({ length: b * 6 * n * 3 }, (_, i) =>
      i % 3 === 0 ? 0.5 + rng() : rng() * 2 - 1,
    )
    const q = tf.tensor(qValues, [b, 6, n, 3])
    const memK = tf.tensor(
      Float32Array.from({ length: 2 * mem * 3 }, (_, i) => (i % 3 === 0 ? -1e30 : 0)),
      [2, mem, 3],
    )
    const memV = tf.zeros([2, mem, 4])
    const k = randomTensor([b, 2, m, 3], 1)
    const v = randomTensor([b, 2, m, 4], 2)
    const keyMask = randomMask([b, m], 3, 0.8)
    for (const causal of [false, true]) {
      const p = prependMemoryKv({ k, v }, { memK, memV }, { layout, keyMask })
      const withMemory = attendReference({ q, k: p.k, v: p.v }, { keyMask: p.keyMask, causal })
      const without = attendReference({ q, k, v }, { keyMask, causal })
      // Exactly the same softmax weights on the real keys: only summation order may differ.
      expectClose(withMemory, without, { atol: 1e-6, label: `causal=${causal}` })
      tf.dispose([p.k, p.v, p.keyMask as tf.Tensor, withMemory, without])
    }
    tf.dispose([q, memK, memV, k, v, keyMask])
  })

  it('transformMemoryKeys applies to the memory keys only (qk-norm hook)', () => {
    const layout = LAYOUTS.mqa
    const memory = new MemoryKV({ layout, numMemKv: 2, rng: 8 })
    const k = randomTensor([2, 1, 3, 3], 1)
    const v = randomTensor([2, 1, 3, 3], 2)
    const l2 = (t: tf.Tensor) => tf.div(t, tf.norm(t, 'euclidean', -1, true))
    const out = expectNoLeaks(() => memory.prepend({ k, v }, { transformMemoryKeys: l2 }), { returns: 2 })
    const kOut = out.k.arraySync() as number[][][][]
    const memK = memory.memK.arraySync() as number[][][]
    for (let b = 0; b < 2; b++) {
      for (let j = 0; j < 2; j++) {
        const row = memK[0]?.[j] as number[]
        const norm = Math.hypot(...row)
        expectClose(
          kOut[b]?.[0]?.[j] as number[],
          row.map((x) => x / norm),
          { atol: 1e-6, label: 'normalised memory key' },
        )
      }
      expect(kOut[b]?.[0]?.slice(2)).toEqual((k.arraySync() as number[][][][])[b]?.[0])
    }
    tf.dispose([k, v, out.k, out.v])
    const k2 = tf.zeros([2, 1, 3, 3])
    expect(() => memory.prepend({ k: k2, v: k2 }, { transformMemoryKeys: (t) => tf.sum(t, -1) })).toThrow(
      "@xattn/memory-kv prependMemoryKv: transformMemoryKeys must keep the shape [1,1,2,3] ('1 kvh mem d'), got [1,1,2]",
    )
    k2.dispose()
    memory.dispose()
  })
})

describeEachBackend('prependMemoryKv contract errors', () => {
  it('seed combination: memory keys with 4 heads offered to a layout with 1 KV head', () => {
    const layout = headLayout({ heads: 4, oneKvHead: true, dimHead: 8 })
    const k = tf.zeros([2, 1, 18, 8])
    const memK = tf.zeros([4, 3, 8])
    const memV = tf.zeros([4, 3, 8])
    const before = tf.memory().numTensors
    const call = () => prependMemoryKv({ k, v: k }, { memK, memV }, { layout })
    expect(call).toThrow(ShapeContractError)
    expect(call).toThrow(
      "@xattn/memory-kv prependMemoryKv: memK has shape [4,3,8] but the contract is 'kvh mem d' with kvh=1 (from the head layout), got kvh=4 (bindings so far: kvh=1, d=8, dv=8, h=4, b=2, m=18)",
    )
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([k, memK, memV])
  })

  it('keys with query heads under a grouped layout, wrong batch of the mask, wrong bias heads', () => {
    const layout = headLayout({ heads: 4, kvHeads: 2, dimHead: 2 })
    const memory = new MemoryKV({ layout, numMemKv: 1 })
    const kBad = tf.zeros([2, 4, 3, 2])
    const k = tf.zeros([2, 2, 3, 2])
    const mask = tf.ones([3, 3], 'bool')
    const bias = tf.zeros([1, 3, 5, 3])
    expect(() => memory.prepend({ k: kBad, v: kBad })).toThrow(
      "@xattn/memory-kv prependMemoryKv: k has shape [2,4,3,2] but the contract is 'b kvh m d' with kvh=2 (from the head layout), got kvh=4 (bindings so far: kvh=2, d=2, dv=2, h=4, b=2)",
    )
    expect(() => memory.prepend({ k, v: k }, { keyMask: mask })).toThrow(
      "@xattn/memory-kv prependMemoryKv: keyMask has shape [3,3] but the contract is 'b m' with b=2 (from k), got b=3 (bindings so far: kvh=2, d=2, dv=2, h=4, b=2, m=3, mem=1)",
    )
    expect(() => memory.prepend({ k, v: k }, { bias })).toThrow(
      "@xattn/memory-kv prependMemoryKv: bias has shape [1,3,5,3] but the contract is 'b|1 h|1 n m' with h=4 or 1 (from the head layout), got h=3 (bindings so far: kvh=2, d=2, dv=2, h=4, b=2, m=3, mem=1)",
    )
    const floatMask = tf.ones([2, 3])
    expect(() => memory.prepend({ k, v: k }, { keyMask: floatMask })).toThrow(
      '@xattn/memory-kv prependMemoryKv: keyMask has dtype float32 but the contract requires bool (bindings so far: kvh=2, d=2, dv=2, h=4, b=2, m=3, mem=1)',
    )
    tf.dispose([kBad, k, mask, bias, floatMask])
    memory.dispose()
  })
}, ['cpu'])

describeEachBackend('MemoryKV lifetime', () => {
  it('frees its parameters on dispose; a rejected call allocates nothing', () => {
    const before = tf.memory().numTensors
    const memory = new MemoryKV({ layout: LAYOUTS.gqa, numMemKv: 2 })
    expect(tf.memory().numTensors - before).toBe(2)
    const k = tf.zeros([2, 6, 3, 3])
    const during = tf.memory().numTensors
    expect(() => memory.prepend({ k, v: k })).toThrow(ShapeContractError)
    expect(tf.memory().numTensors).toBe(during)
    k.dispose()
    memory.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })
}, ['cpu'])
