import type * as tf from '@tensorflow/tfjs-core'
import type { SeededRandom } from '@xattn/core'
import { Linear as ProjectionLinear } from '@xattn/kv-heads'

/**
 * `nn.Linear` with the transformer's module conventions (`apply`, positional sizes): kv-heads'
 * {@link ProjectionLinear} — `weight [out, in]`, optional `bias [out]`, PyTorch's initialisation —
 * so there is one linear layer in the project. `x [... in]` → `[... out]`.
 *
 * @example
 * const proj = new Linear(8, 16, { bias: true, rng: new SeededRandom(0) })
 * const y = proj.apply(tf.ones([2, 5, 8])) // [2, 5, 16]
 */
export class Linear extends ProjectionLinear {
  constructor(
    inFeatures: number,
    outFeatures: number,
    { bias = false, rng }: { bias?: boolean; rng: SeededRandom },
  ) {
    super({ inFeatures, outFeatures, bias, rng })
  }

  /** `x [... in]` → `[... out]`. */
  apply(x: tf.Tensor): tf.Tensor {
    return this.forward(x)
  }
}
