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
 * `weight [num, dim]` rows at `indices int32 [k]` → `[k, dim]`. The gradient is
 * `oneHot(indices)ᵀ · dy` (a plain 2-D matMul) instead of tfjs's gather gradient, whose
 * UnsortedSegmentSum kernel the wasm backend lacks.
 */
export function embeddingLookup(weight: tf.Tensor, indices: tf.Tensor): tf.Tensor {
  const num = weight.shape[0] as number
  // tfjs types the custom-gradient inputs as a rest list of tensors and the save function together.
  const lookup = tf.customGrad(((w: tf.Tensor, save: tf.GradSaveFunc) => {
    save([indices])
    return {
      value: tf.gather(w, indices),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const idx = saved[0] as tf.Tensor
        return [tf.matMul(tf.transpose(tf.oneHot(idx, num)), dy as tf.Tensor)]
      },
    }
  }) as unknown as Parameters<typeof tf.customGrad>[0])
  return lookup(weight)
}
