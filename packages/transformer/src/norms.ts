import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, Module } from '@xattn/core'
import { l2normalize } from './tensorOps.js'

/** The norm families of x-transformers' attention layers. */
export type NormKind = 'layernorm' | 'rmsnorm' | 'scalenorm' | 'simplermsnorm'

/** A norm over the last axis: `x [... dim]` → `[... dim]`. */
export interface Norm extends Module {
  apply(x: tf.Tensor): tf.Tensor
}

/**
 * Bias-free LayerNorm (eps 1e-5) with a learned gain stored as `gamma`. With `unitOffset` the
 * stored value is `gain - 1` (x-transformers' `norm_add_unit_offset`), so a zero-initialised
 * parameter is the identity gain and weight decay pulls towards it.
 *
 * @example
 * const norm = new LayerNorm(32, { unitOffset: true })
 * norm.apply(x) // [b, n, 32]
 */
export class LayerNorm extends Module implements Norm {
  readonly gamma: tf.Variable
  readonly unitOffset: boolean

  constructor(
    readonly dim: number,
    { unitOffset = false }: { unitOffset?: boolean } = {},
  ) {
    super()
    this.unitOffset = unitOffset
    this.gamma = this.addParameter('gamma', unitOffset ? tf.zeros([dim]) : tf.ones([dim]))
  }

  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const mean = tf.mean(x, -1, true)
      const centred = tf.sub(x, mean)
      // Biased variance, as torch's layer_norm.
      const variance = tf.mean(tf.square(centred), -1, true)
      const normed = tf.mul(centred, tf.rsqrt(tf.add(variance, tf.scalar(1e-5))))
      const gain = this.unitOffset ? tf.add(this.gamma, tf.scalar(1)) : this.gamma
      return tf.mul(normed, gain)
    })
  }
}

/**
 * RMSNorm as x-transformers writes it: `l2normalize(x) · √dim · g` with `g` stored as `g - 1`
 * under `unitOffset`. Parameter `g [dim]`.
 */
export class RMSNorm extends Module implements Norm {
  readonly g: tf.Variable
  readonly unitOffset: boolean

  constructor(
    readonly dim: number,
    { unitOffset = false }: { unitOffset?: boolean } = {},
  ) {
    super()
    this.unitOffset = unitOffset
    this.g = this.addParameter('g', unitOffset ? tf.zeros([dim]) : tf.ones([dim]))
  }

  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const gain = this.unitOffset ? tf.add(this.g, tf.scalar(1)) : this.g
      return tf.mul(tf.mul(l2normalize(x), tf.scalar(Math.sqrt(this.dim))), gain)
    })
  }
}

/** ScaleNorm: RMSNorm with one scalar gain `g [1]` (unit-offset storage as RMSNorm). */
export class ScaleNorm extends Module implements Norm {
  readonly g: tf.Variable
  readonly unitOffset: boolean

  constructor(
    readonly dim: number,
    { unitOffset = false }: { unitOffset?: boolean } = {},
  ) {
    super()
    this.unitOffset = unitOffset
    this.g = this.addParameter('g', unitOffset ? tf.zeros([1]) : tf.ones([1]))
  }

  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const gain = this.unitOffset ? tf.add(this.g, tf.scalar(1)) : this.g
      return tf.mul(tf.mul(l2normalize(x), tf.scalar(Math.sqrt(this.dim))), gain)
    })
  }
}

/** `l2normalize(x) · √dim`, no parameters. */
export class SimpleRMSNorm extends Module implements Norm {
  constructor(readonly dim: number) {
    super()
  }

  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.mul(l2normalize(x), tf.scalar(Math.sqrt(this.dim))))
  }
}

/** Builds the norm of `kind` for `dim` features. *
 * @example
 * createNorm('rmsnorm', 32, true).apply(x) // [b, n, 32]
 */
export function createNorm(kind: NormKind, dim: number, unitOffset: boolean): Norm {
  switch (kind) {
    case 'layernorm':
      return new LayerNorm(dim, { unitOffset })
    case 'rmsnorm':
      return new RMSNorm(dim, { unitOffset })
    case 'scalenorm':
      return new ScaleNorm(dim, { unitOffset })
    case 'simplermsnorm':
      return new SimpleRMSNorm(dim)
    default:
      throw new ConfigError('@xattn/transformer', 'norm', `unknown norm kind '${String(kind)}'`)
  }
}
