import * as tf from '@tensorflow/tfjs-core'
import { initNormal, Module, type SeededRandom } from '@xattn/core'

/** `nn.Embedding`: `weight [num, dim]`; `indices int32 [...]` → `[..., dim]`. */
export class Embedding extends Module {
  readonly weight: tf.Variable

  constructor(
    readonly num: number,
    readonly dim: number,
    { rng, std = 1 }: { rng: SeededRandom; std?: number },
  ) {
    super()
    this.weight = this.addParameter('weight', initNormal([num, dim], rng, { std }))
  }

  /** Rows of `weight` for `indices` (int32, any shape). */
  apply(indices: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const flat = tf.reshape(indices, [-1])
      return tf.reshape(embeddingLookup(this.weight, flat), [...indices.shape, this.dim])
    })
  }
}

/**
 * `weight [num, dim]` rows at `indices int32 [k]` → `[k, dim]`. Backends with tfjs's
 * UnsortedSegmentSum kernel (cpu, webgl, webgpu) use `tf.gather` and its own gradient; the wasm
 * backend lacks that kernel, so there the gradient rows are accumulated on the host, which costs
 * O(k·dim + num·dim) (a one-hot matMul would cost O(k·num) memory: gigabytes for a large vocabulary).
 */
export function embeddingLookup(weight: tf.Tensor, indices: tf.Tensor): tf.Tensor {
  if (tf.getKernel('UnsortedSegmentSum', tf.getBackend()) !== undefined) return tf.gather(weight, indices)
  const [num, dim] = weight.shape as [number, number]
  // tfjs types the custom-gradient inputs as a rest list of tensors and the save function together.
  const lookup = tf.customGrad(((w: tf.Tensor, save: tf.GradSaveFunc) => {
    save([indices])
    return {
      value: tf.gather(w, indices),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const idx = (saved[0] as tf.Tensor).dataSync()
        const rows = (dy as tf.Tensor).dataSync()
        const grad = new Float32Array(num * dim)
        for (let r = 0; r < idx.length; r++) {
          const target = (idx[r] as number) * dim
          const source = r * dim
          for (let c = 0; c < dim; c++)
            grad[target + c] = (grad[target + c] as number) + (rows[source + c] as number)
        }
        return [tf.tensor2d(grad, [num, dim])]
      },
    }
  }) as unknown as Parameters<typeof tf.customGrad>[0])
  return lookup(weight)
}
