import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, ShapeContractError } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, randomTensor } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import { Linear } from '../src/index.js'
import { linearLoops } from './helpers.js'

// Float32 tolerance: sums of ≤16 products of magnitude ≤1 round to ~1e-6; 1e-5 is a 10× margin,
// while a transposed or misordered weight is off by ~1e-1.
const ATOL = 1e-5

describeEachBackend('Linear', () => {
  it('computes x · weightᵀ + bias over the last axis of any rank', () => {
    const lin = new Linear({ inFeatures: 5, outFeatures: 3, bias: true, rng: 7 })
    const x = randomTensor([2, 4, 5], 1)
    const y = expectNoLeaks(() => lin.forward(x), { returns: 1 })
    expect(y.shape).toEqual([2, 4, 3])
    const expected = linearLoops(
      x.dataSync(),
      lin.weight.dataSync(),
      8,
      5,
      3,
      (lin.bias as tf.Variable).dataSync(),
    )
    expectClose(y, expected, { atol: ATOL, label: 'linear' })
    tf.dispose([x, y])
    lin.dispose()
  })

  it('has torch names and shapes, no bias by default, nn.Linear init bounds', () => {
    const lin = new Linear({ inFeatures: 16, outFeatures: 4, rng: 3 })
    expect([...lin.namedParameters()].map(([name, p]) => [name, p.shape])).toEqual([['weight', [4, 16]]])
    const w = lin.weight.dataSync()
    expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(16))
    lin.dispose()
  })

  it('rejects a wrong input width and bad options by name', () => {
    const lin = new Linear({ inFeatures: 5, outFeatures: 3 })
    const x = tf.zeros([2, 4])
    expect(() => lin.forward(x)).toThrow(
      new ShapeContractError(
        '@xattn/kv-heads Linear',
        'x',
        "x has shape [2,4] but the contract is '... in' with in=5, got in=4",
      ),
    )
    expect(() => lin.forward(x)).toThrow(
      "@xattn/kv-heads Linear: x has shape [2,4] but the contract is '... in' with in=5, got in=4",
    )
    expect(() => new Linear({ inFeatures: 0, outFeatures: 3 })).toThrow(ConfigError)
    expect(() => new Linear({ inFeatures: 2, outFeatures: 1.5 })).toThrow(
      '@xattn/kv-heads: Linear: outFeatures must be a positive integer, got 1.5',
    )
    x.dispose()
    lin.dispose()
  })
})
