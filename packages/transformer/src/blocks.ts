import * as tf from '@tensorflow/tfjs-core'
import { initUniform, Module, type SeededRandom } from '@xattn/core'
import { linearApply } from '@xattn/kv-heads'

/**
 * A parameter-free wrapper level (`fn.…` in state-dict names): x-transformers' `Scale` (macaron
 * half-step feedforward) and `ShiftTokens`.
 */
export class FnWrapper extends Module {
  constructor(readonly fn: Module) {
    super()
    this.addModule('fn', fn)
  }
}

/** LayerScale: `out · gamma` with `gamma [dim]` stored as `gamma - 1` under unit offset. *
 * @example
 * const ls = new LayerScale(ff, 32, 0.1, true) // gamma stored as 0.1 - 1
 * ls.scale(ff.apply(x)) // [b, n, 32]
 */
export class LayerScale extends Module {
  readonly gamma: tf.Variable

  constructor(
    readonly fn: Module,
    dim: number,
    readonly initValue: number,
    readonly unitOffset: boolean,
  ) {
    super()
    this.addModule('fn', fn)
    this.gamma = this.addParameter('gamma', tf.fill([dim], initValue - (unitOffset ? 1 : 0)))
  }

  scale(out: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.mul(out, this.unitOffset ? tf.add(this.gamma, tf.scalar(1)) : this.gamma))
  }
}

/** How a branch output joins the residual stream. */
export interface ResidualJoin extends Module {
  /** `branch [b n d]`, `residual [b n d]` → `[b n d]`. */
  join(branch: tf.Tensor, residual: tf.Tensor): tf.Tensor
}

/** `branch + residual · residual_scale · constant` (`residual_scale [dim]` with `scaleResidual`). *
 * @example
 * new Residual(32, true).join(branchOut, x) // [b, n, 32]
 */
export class Residual extends Module implements ResidualJoin {
  readonly residualScale: tf.Variable | null

  constructor(
    dim: number,
    scaleResidual: boolean,
    readonly scaleResidualConstant = 1,
  ) {
    super()
    this.residualScale = scaleResidual ? this.addParameter('residual_scale', tf.ones([dim])) : null
  }

  join(branch: tf.Tensor, residual: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let r = residual
      if (this.residualScale !== null) r = tf.mul(r, this.residualScale)
      if (this.scaleResidualConstant !== 1) r = tf.mul(r, tf.scalar(this.scaleResidualConstant))
      return tf.add(branch, r)
    })
  }
}

class GRUCell extends Module {
  readonly weightIh: tf.Variable
  readonly weightHh: tf.Variable
  readonly biasIh: tf.Variable
  readonly biasHh: tf.Variable

  constructor(
    readonly dim: number,
    rng: SeededRandom,
  ) {
    super()
    const bound = 1 / Math.sqrt(dim)
    this.weightIh = this.addParameter('weight_ih', initUniform([3 * dim, dim], rng, -bound, bound))
    this.weightHh = this.addParameter('weight_hh', initUniform([3 * dim, dim], rng, -bound, bound))
    this.biasIh = this.addParameter('bias_ih', initUniform([3 * dim], rng, -bound, bound))
    this.biasHh = this.addParameter('bias_hh', initUniform([3 * dim], rng, -bound, bound))
  }

  /** torch.nn.GRUCell: gates in the order reset, update, new. */
  step(input: tf.Tensor, hidden: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const gi = linearApply(input, this.weightIh, this.biasIh)
      const gh = linearApply(hidden, this.weightHh, this.biasHh)
      const [iR, iZ, iN] = tf.split(gi, 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor]
      const [hR, hZ, hN] = tf.split(gh, 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor]
      const r = tf.sigmoid(tf.add(iR, hR))
      const z = tf.sigmoid(tf.add(iZ, hZ))
      const nGate = tf.tanh(tf.add(iN, tf.mul(r, hN)))
      return tf.add(tf.mul(tf.sub(tf.scalar(1), z), nGate), tf.mul(z, hidden))
    })
  }
}

/** GRU-gated residual: `GRUCell(input = branch, hidden = residual)` (`gru.weight_ih`, …). *
 * @example
 * new GRUGating(32, false, new SeededRandom(0)).join(branchOut, x) // [b, n, 32]
 */
export class GRUGating extends Module implements ResidualJoin {
  readonly gru: GRUCell
  readonly residualScale: tf.Variable | null

  constructor(dim: number, scaleResidual: boolean, rng: SeededRandom) {
    super()
    this.gru = this.addModule('gru', new GRUCell(dim, rng))
    this.residualScale = scaleResidual ? this.addParameter('residual_scale', tf.ones([dim])) : null
  }

  join(branch: tf.Tensor, residual: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const r = this.residualScale === null ? residual : tf.mul(residual, this.residualScale)
      return this.gru.step(branch, r)
    })
  }
}

/**
 * Token shift: the feature axis is cut into `shifts.length` chunks of `⌊dim / shifts.length⌋`
 * features; chunk s moves `shifts[s]` positions along the sequence (positive = later), zeros fill
 * in; features past the chunks are kept. With a mask, padded positions are zeroed first.
 *
 * @example
 * shiftTokens(x, [0, 1], mask) // x [b, n, d]: the second half of the features moves one step later
 */
export function shiftTokens(x: tf.Tensor, shifts: readonly number[], mask: tf.Tensor | null): tf.Tensor {
  return tf.tidy(() => {
    const [b, n, d] = x.shape as [number, number, number]
    const per = Math.floor(d / shifts.length)
    const parts: tf.Tensor[] = []
    shifts.forEach((amountRaw, s) => {
      let t = tf.slice(x, [0, 0, s * per], [b, n, per])
      if (amountRaw === 0) {
        parts.push(t)
        return
      }
      const amount = Math.min(amountRaw, n)
      if (mask !== null) t = tf.mul(t, tf.expandDims(tf.cast(mask, 'float32'), -1))
      if (amount > 0) {
        const kept = tf.slice(t, [0, 0, 0], [b, n - amount, per])
        parts.push(tf.concat([tf.zeros([b, amount, per]), kept], 1))
      } else {
        const a = Math.min(-amount, n)
        const kept = tf.slice(t, [0, a, 0], [b, n - a, per])
        parts.push(tf.concat([kept, tf.zeros([b, a, per])], 1))
      }
    })
    const used = per * shifts.length
    if (used < d) parts.push(tf.slice(x, [0, 0, used], [b, n, d - used]))
    return tf.concat(parts, -1)
  })
}
