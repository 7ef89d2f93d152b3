import * as tf from '@tensorflow/tfjs-core'

/** Swaps the last two axes (a materialised transpose; cheap next to a matmul). */
function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i)
  const r = perm.length
  perm[r - 2] = r - 1
  perm[r - 1] = r - 2
  return tf.transpose(x, perm)
}

const plain = (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b, false, false)

/**
 * The gradient of `BatchMatMul` with every product in plain (untransposed) form, transposing
 * operands explicitly instead. Same values as tfjs-core's own gradient, but the wasm backend runs
 * only plain matmuls on its fast path: its transposed forms, which tfjs's gradient uses for both
 * inputs, run 10–40× slower, and dominated training steps.
 */
export const plainMatMulGradConfig: tf.GradConfig = {
  kernelName: tf.BatchMatMul,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved, attrs) => {
    const [a, b] = saved as [tf.Tensor, tf.Tensor]
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean }
    const g = dy as tf.Tensor
    if (!transposeA && !transposeB) {
      // c = a·b: da = dy·bᵀ, db = aᵀ·dy
      return { a: () => plain(g, swapLast(b)), b: () => plain(swapLast(a), g) }
    }
    if (!transposeA && transposeB) {
      // c = a·bᵀ: da = dy·b, db = dyᵀ·a
      return { a: () => plain(g, b), b: () => plain(swapLast(g), a) }
    }
    if (transposeA && !transposeB) {
      // c = aᵀ·b: da = b·dyᵀ, db = a·dy
      return { a: () => plain(b, swapLast(g)), b: () => plain(a, g) }
    }
    // c = aᵀ·bᵀ: da = bᵀ·dyᵀ, db = dyᵀ·aᵀ
    return { a: () => plain(swapLast(b), swapLast(g)), b: () => plain(swapLast(g), swapLast(a)) }
  },
}

tf.registerGradient(plainMatMulGradConfig)
