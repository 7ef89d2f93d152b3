import * as tf from '@tensorflow/tfjs-core'
import { attendReference, ConfigError, headLayout, Module, ShapeContractError } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, randomTensor } from '@xattn/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { expandKv, Linear, QKVProjection } from '../src/index.js'
import { linearLoops, splitHeadsLoops } from './helpers.js'

// Float32 tolerance: projections are sums of ≤8 products of magnitude ≤1 (rounding ~1e-6);
// 1e-5 is a 10× margin, while a wrong head order or KV width is off by ~1e-1.
const ATOL = 1e-5

const LAYOUTS = {
  mha: headLayout({ heads: 4, dimHead: 3 }),
  gqa: headLayout({ heads: 4, kvHeads: 2, dimHead: 3, valueDimHead: 5 }),
  mqa: headLayout({ heads: 4, oneKvHead: true, dimHead: 3 }),
}

describeEachBackend('QKVProjection parameters', () => {
  it.each(Object.entries(LAYOUTS))('%s: names and shapes come from the head layout', (_, layout) => {
    const qkv = new QKVProjection({ layout, dim: 8, dimKv: 6, rng: 1 })
    expect([...qkv.namedParameters()].map(([name, p]) => [name, p.shape])).toEqual([
      ['to_q.weight', [layout.heads * layout.dimHead, 8]],
      ['to_k.weight', [layout.kvHeads * layout.dimHead, 6]],
      ['to_v.weight', [layout.kvHeads * layout.valueDimHead, 6]],
    ])
    qkv.dispose()
  })

  it('a host mounts the children at its own level (x-transformers names)', () => {
    class Host extends Module {
      readonly qkv: QKVProjection
      readonly toOut: Linear
      constructor() {
        super()
        this.qkv = new QKVProjection({ layout: LAYOUTS.mqa, dim: 8, rng: 0 })
        for (const [name, child] of this.qkv.namedChildren()) this.addModule(name, child)
        this.toOut = this.addModule('to_out', new Linear({ inFeatures: 12, outFeatures: 8 }))
      }
    }
    const host = new Host()
    expect([...host.stateDict().keys()]).toEqual([
      'to_q.weight',
      'to_k.weight',
      'to_v.weight',
      'to_out.weight',
    ])
    host.dispose()
  })

  it('the same seed gives the same weights', () => {
    const a = new QKVProjection({ layout: LAYOUTS.gqa, dim: 8, rng: 5 })
    const b = new QKVProjection({ layout: LAYOUTS.gqa, dim: 8, rng: 5 })
    expect(Array.from(a.toV.weight.dataSync())).toEqual(Array.from(b.toV.weight.dataSync()))
    a.dispose()
    b.dispose()
  })

  it('rejects bad widths by option name', () => {
    expect(() => new QKVProjection({ layout: LAYOUTS.mha, dim: 0 })).toThrow(ConfigError)
    expect(() => new QKVProjection({ layout: LAYOUTS.mha, dim: 8, dimKv: -1 })).toThrow(
      '@xattn/kv-heads: QKVProjection: dimKv must be a positive integer, got -1',
    )
  })
}, ['cpu'])

describeEachBackend('QKVProjection.forward', () => {
  it.each(Object.entries(LAYOUTS))('%s: equals x · Wᵀ split into heads (self and cross)', (_, layout) => {
    const b = 2
    const n = 3
    const m = 5
    for (const cross of [false, true]) {
      const dimKv = cross ? 6 : 8
      const qkv = new QKVProjection({ layout, dim: 8, dimKv, rng: 11 })
      const x = randomTensor([b, n, 8], 1)
      const context = cross ? randomTensor([b, m, dimKv], 2) : null
      const out = expectNoLeaks(() => qkv.forward(x, context), { returns: 3 })
      const src = context ?? x
      const srcLen = cross ? m : n
      const { heads, kvHeads, dimHead: d, valueDimHead: dv } = layout
      const q = splitHeadsLoops(
        linearLoops(x.dataSync(), qkv.toQ.weight.dataSync(), b * n, 8, heads * d),
        b,
        n,
        heads,
        d,
      )
      const k = splitHeadsLoops(
        linearLoops(src.dataSync(), qkv.toK.weight.dataSync(), b * srcLen, dimKv, kvHeads * d),
        b,
        srcLen,
        kvHeads,
        d,
      )
      const v = splitHeadsLoops(
        linearLoops(src.dataSync(), qkv.toV.weight.dataSync(), b * srcLen, dimKv, kvHeads * dv),
        b,
        srcLen,
        kvHeads,
        dv,
      )
      expect(out.q.shape).toEqual([b, heads, n, d])
      expect(out.k.shape).toEqual([b, kvHeads, srcLen, d])
      expect(out.v.shape).toEqual([b, kvHeads, srcLen, dv])
      expectClose(out.q, q, { atol: ATOL, label: 'q' })
      expectClose(out.k, k, { atol: ATOL, label: 'k' })
      expectClose(out.v, v, { atol: ATOL, label: 'v' })
      tf.dispose([x, context, out.q, out.k, out.v].filter((t): t is tf.Tensor => t !== null))
      qkv.dispose()
    }
  })

  it('seed combination (one KV head): outputs feed attention, and expanding the KV head changes nothing', () => {
    const layout = LAYOUTS.mqa
    const qkv = new QKVProjection({ layout, dim: 8, rng: 3 })
    const x = randomTensor([2, 4, 8], 4)
    const { q, k, v } = qkv.forward(x)
    expect(k.shape).toEqual([2, 1, 4, 3])
    const grouped = attendReference({ q, k, v }, { causal: true })
    const kFull = expandKv(k, layout)
    const vFull = expandKv(v, layout)
    expect(kFull.shape).toEqual([2, 4, 4, 3])
    const full = attendReference({ q, k: kFull, v: vFull }, { causal: true })
    // Same arithmetic on the same numbers, only the head bookkeeping differs.
    expectClose(grouped, full, { atol: 1e-6, label: 'grouped vs expanded' })
    tf.dispose([x, q, k, v, grouped, kFull, vFull, full])
    qkv.dispose()
  })

  it('gradients reach every projection weight', () => {
    const qkv = new QKVProjection({ layout: LAYOUTS.gqa, dim: 8, rng: 3 })
    const x = randomTensor([1, 3, 8], 4)
    const { grads, value } = tf.variableGrads(() => {
      const { q, k, v } = qkv.forward(x)
      return tf.sum(attendReference({ q, k, v: tf.slice(v, [0, 0, 0, 0], [-1, -1, -1, 3]) })) as tf.Scalar
    }, qkv.parameters())
    expect(Object.keys(grads).length).toBe(3)
    for (const g of Object.values(grads)) expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0)
    tf.dispose([x, value, ...Object.values(grads)])
    qkv.dispose()
  })
})

describeEachBackend('QKVProjection contract errors', () => {
  let qkv: QKVProjection
  beforeAll(() => {
    qkv = new QKVProjection({ layout: LAYOUTS.gqa, dim: 8, dimKv: 6 })
  })
  afterAll(() => qkv.dispose())

  it('names the tensor, pattern, bindings and the projection as the source of dims', () => {
    const x = tf.zeros([2, 3, 7])
    expect(() => qkv.forward(x, tf.zeros([2, 5, 6]))).toThrow(
      new ShapeContractError(
        '@xattn/kv-heads QKVProjection',
        'x',
        "x has shape [2,3,7] but the contract is 'b n dim' with dim=8 (from the projection), got dim=7 (bindings so far: dim=8, dimKv=6, b=2, n=3)",
      ),
    )
    x.dispose()
  })

  it('rejects a context with another batch size or width', () => {
    const x = tf.zeros([2, 3, 8])
    const ctxBatch = tf.zeros([3, 5, 6])
    const ctxWidth = tf.zeros([2, 5, 8])
    expect(() => qkv.forward(x, ctxBatch)).toThrow(
      "@xattn/kv-heads QKVProjection: context has shape [3,5,6] but the contract is 'b m dimKv' with b=2 (from x), got b=3 (bindings so far: dim=8, dimKv=6, b=2, n=3)",
    )
    expect(() => qkv.forward(x, ctxWidth)).toThrow(
      "@xattn/kv-heads QKVProjection: context has shape [2,5,8] but the contract is 'b m dimKv' with dimKv=6 (from the projection), got dimKv=8 (bindings so far: dim=8, dimKv=6, b=2, n=3, m=5)",
    )
    expect(() => qkv.forward(x)).toThrow(
      '@xattn/kv-heads QKVProjection: context is required: keys and values project from dimKv=6, which differs from dim=8',
    )
    tf.dispose([x, ctxBatch, ctxWidth])
  })
}, ['cpu'])
