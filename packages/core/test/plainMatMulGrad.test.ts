import * as tf from '@tensorflow/tfjs-core'
import { describeEachBackend, expectClose } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import '../src/index.js'
import { plainMatMulGradConfig } from '../src/plainMatMulGrad.js'

/** Independent reference: gradients of sum(c ⊙ w) are da = w·bᵀ-style products computed in JS. */
function matmulJs(a: number[][], b: number[][]): number[][] {
  return a.map((row) =>
    (b[0] ?? []).map((_, j) => row.reduce((s, x, k) => s + x * ((b[k] as number[])[j] as number), 0)),
  )
}
const transpose = (m: number[][]) => (m[0] ?? []).map((_, j) => m.map((row) => row[j] as number))

describeEachBackend('BatchMatMul gradient (plain products)', () => {
  it('is the registered gradient', () => {
    expect(tf.getGradient(tf.BatchMatMul)).toBe(plainMatMulGradConfig)
  })

  for (const [ta, tb] of [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ] as const) {
    it(`matches hand-derived gradients with transposeA=${ta}, transposeB=${tb}`, () => {
      // c = op(a)·op(b) with op(a) [3,4], op(b) [4,2]; loss = sum(c ⊙ w).
      const A = [
        [0.1, -0.2, 0.3, 0.5],
        [0.7, 0.2, -0.4, 0.1],
        [-0.3, 0.6, 0.2, -0.5],
      ]
      const B = [
        [0.2, -0.1],
        [0.4, 0.3],
        [-0.6, 0.5],
        [0.1, 0.7],
      ]
      const W = [
        [1, -2],
        [0.5, 3],
        [-1, 0.25],
      ]
      const a = tf.tensor2d(ta ? transpose(A) : A)
      const b = tf.tensor2d(tb ? transpose(B) : B)
      const w = tf.tensor2d(W)
      const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, ta, tb), w)))([
        a,
        b,
      ])
      // d op(a) = W·Bᵀ, d op(b) = Aᵀ·W; transposed inputs get the transposed gradient.
      const dOpA = matmulJs(W, transpose(B))
      const dOpB = matmulJs(transpose(A), W)
      // float32 sums of 2–3 products of O(1) values: 1e-6.
      expectClose(da as tf.Tensor, (ta ? transpose(dOpA) : dOpA).flat(), { atol: 1e-6, label: 'da' })
      expectClose(db as tf.Tensor, (tb ? transpose(dOpB) : dOpB).flat(), { atol: 1e-6, label: 'db' })
      // Batched (rank 3) operands take the same path per batch entry.
      const a3 = tf.stack([a, tf.mul(a, 2)])
      const b3 = tf.stack([b, b])
      const w3 = tf.stack([w, w])
      const [da3] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, ta, tb), w3)))([
        a3,
        b3,
      ])
      expectClose(
        da3 as tf.Tensor,
        [...(ta ? transpose(dOpA) : dOpA).flat(), ...(ta ? transpose(dOpA) : dOpA).flat()],
        {
          atol: 1e-6,
          label: 'da (batched)',
        },
      )
      tf.dispose([a, b, w, da, db, a3, b3, w3, da3] as tf.Tensor[])
    })
  }
})
