import * as tf from '@tensorflow/tfjs-core'
import { describeEachBackend, randomTensor } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import { flashAttention } from './index.js'

const SHAPE = { b: 1, h: 2, kvh: 1, n: 5, m: 7, d: 4, dv: 3 }

function inputs() {
  const { b, h, kvh, n, m, d, dv } = SHAPE
  return {
    q: randomTensor([b, h, n, d], 1),
    k: randomTensor([b, kvh, m, d], 2),
    v: randomTensor([b, kvh, m, dv], 3),
    w: randomTensor([b, h, n, dv], 4),
  }
}

describeEachBackend('flashAttention dropout', () => {
  it('gives the same output for the same seed and a different one for another seed', () => {
    const { q, k, v, w } = inputs()
    const run = (seed: number) =>
      tf.tidy(() =>
        flashAttention({ q, k, v }, { dropout: 0.4, training: true, seed, causal: true }).dataSync().slice(),
      )
    const a = run(7)
    const b = run(7)
    const c = run(8)
    expect(Array.from(a)).toEqual(Array.from(b))
    expect(Array.from(a)).not.toEqual(Array.from(c))
    // Without training, dropout is off whatever the rate.
    const plain = tf.tidy(() => flashAttention({ q, k, v }, { causal: true }).dataSync().slice())
    const eval_ = tf.tidy(() =>
      flashAttention({ q, k, v }, { causal: true, dropout: 0.4, seed: 7 }).dataSync().slice(),
    )
    expect(Array.from(eval_)).toEqual(Array.from(plain))
    tf.dispose([q, k, v, w])
  })

  it('has gradients (q, k, v, bias) that match central finite differences with dropout on', () => {
    const { q, k, v, w } = inputs()
    const bias = randomTensor([1, 1, SHAPE.n, SHAPE.m], 5)
    const options = { dropout: 0.3, training: true, seed: 1234, alibiSlopes: [0.5, 0.25], causal: true }
    const loss = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor, bb: tf.Tensor) =>
      tf.tidy(
        () =>
          tf.sum(tf.mul(flashAttention({ q: qq, k: kk, v: vv }, { ...options, bias: bb }), w)) as tf.Scalar,
      )
    const xs = [q, k, v, bias]
    const analytic = tf.tidy(() =>
      tf
        .grads(loss)(xs)
        .map((g) => g.dataSync().slice()),
    )
    // float32 central differences: eps 1e-2 balances truncation (~eps²) against rounding (~u/eps).
    const eps = 1e-2
    for (let which = 0; which < xs.length; which++) {
      const values = (xs[which] as tf.Tensor).dataSync().slice()
      const shape = (xs[which] as tf.Tensor).shape
      for (let e = 0; e < values.length; e++) {
        const at = (delta: number) =>
          tf.tidy(() => {
            const bumped = values.slice()
            bumped[e] = (bumped[e] as number) + delta
            const args = xs.map((t, i) => (i === which ? tf.tensor(bumped, shape) : t)) as [
              tf.Tensor,
              tf.Tensor,
              tf.Tensor,
              tf.Tensor,
            ]
            return loss(...args).dataSync()[0] as number
          })
        const numeric = (at(eps) - at(-eps)) / (2 * eps)
        const exact = (analytic[which] as Float32Array)[e] as number
        expect(Math.abs(numeric - exact), `input ${which} element ${e}: ${numeric} vs ${exact}`).toBeLessThan(
          3e-3,
        )
      }
    }
    tf.dispose([q, k, v, w, bias])
  })
})
