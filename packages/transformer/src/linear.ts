import type * as tf from '@tensorflow/tfjs-core'
import { initKaimingUniform, initUniform, Module, type SeededRandom } from '@xattn/core'
import { linearApply } from './tensorOps.js'

/**
 * `nn.Linear`: `weight [out, in]`, optional `bias [out]`; `x [... in]` → `[... out]`.
 *
 * @example
 * const proj = new Linear(8, 16, { bias: true, rng: new SeededRandom(0) })
 * const y = proj.apply(tf.ones([2, 5, 8])) // [2, 5, 16]
 */
export class Linear extends Module {
  readonly weight: tf.Variable
  readonly bias: tf.Variable | null

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    { bias = false, rng }: { bias?: boolean; rng: SeededRandom },
  ) {
    super()
    this.weight = this.addParameter('weight', initKaimingUniform([outFeatures, inFeatures], rng))
    const bound = 1 / Math.sqrt(inFeatures)
    this.bias = bias ? this.addParameter('bias', initUniform([outFeatures], rng, -bound, bound)) : null
  }

  /** `x [... in]` → `[... out]`. */
  apply(x: tf.Tensor): tf.Tensor {
    return linearApply(x, this.weight, this.bias)
  }
}
