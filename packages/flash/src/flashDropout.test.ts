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

  it('has gradients that match central finite differences with dropout on', () => {
    const { q, k, v, w } = inputs()
    const options = { dropout: 0.3, training: true, seed: 1234, alibiSlopes: [0.5, 0.25] }
    const loss = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
      tf.tidy(() => tf.sum(tf.mul(flashAttention({ q: qq, k: kk, v: vv }, options), w)) as tf.Scalar)
    const analytic = tf.tidy(() =>
      tf
        .grads(loss)([q, k, v])
        .map((g) => g.dataSync().slice()),
    )
    // float32 central differences: eps 1e-2 balances truncation (~eps²) against rounding (~u/eps).
    const eps = 1e-2
    const base = [q, k, v].map((t) => t.dataSync().slice())
    for (let which = 0; which < 3; which++) {
      const values = base[which] as Float32Array
      const shape = [q, k, v][which]?.shape as number[]
      for (let e = 0; e < values.length; e++) {
        const at = (delta: number) =>
          tf.tidy(() => {
            const bumped = values.slice()
            bumped[e] = (bumped[e] as number) + delta
            const args = [q, k, v].map((t, i) => (i === which ? tf.tensor(bumped, shape) : t)) as [
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
    tf.dispose([q, k, v, w])
  })
})
