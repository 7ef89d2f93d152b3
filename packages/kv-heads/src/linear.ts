import * as tf from '@tensorflow/tfjs-core'
import {
  ConfigError,
  initKaimingUniform,
  initUniform,
  Module,
  type RandomSource,
  SeededRandom,
  ShapeContractError,
} from '@xattn/core'

const PKG = '@xattn/kv-heads'

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Input features (the last axis of `x`). */
  readonly inFeatures: number
  /** Output features. */
  readonly outFeatures: number
  /** Whether to learn an additive bias `[out]`. Default false (x-transformers' q/k/v/out have none). */
  readonly bias?: boolean
  /** Seed or generator of the initial weights. Default seed 0. */
  readonly rng?: RandomSource
}

function positiveInteger(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(PKG, option, `Linear: ${option} must be a positive integer, got ${String(value)}`)
  }
  return value
}

/**
 * A fully connected layer with PyTorch's layout and initialisation: `weight [out, in]`, optional
 * `bias [out]`, `y = x · weightᵀ + bias` over the last axis of any-rank `x`.
 *
 * Shapes: `x [... in]` → `[... out]`. Parameters: `weight`, and `bias` when enabled.
 *
 * @example
 * const proj = new Linear({ inFeatures: 8, outFeatures: 16, rng: 1 })
 * const y = proj.forward(tf.ones([2, 5, 8])) // [2, 5, 16]
 */
export class Linear extends Module {
  readonly inFeatures: number
  readonly outFeatures: number
  /** `[out, in]`, kaiming-uniform like `nn.Linear`. */
  readonly weight: tf.Variable
  /** `[out]` or null. */
  readonly bias: tf.Variable | null

  constructor(options: LinearOptions) {
    super()
    this.inFeatures = positiveInteger('inFeatures', options.inFeatures)
    this.outFeatures = positiveInteger('outFeatures', options.outFeatures)
    const rng =
      options.rng === undefined
        ? new SeededRandom(0)
        : typeof options.rng === 'number'
          ? new SeededRandom(options.rng)
          : options.rng
    this.weight = this.addParameter('weight', initKaimingUniform([this.outFeatures, this.inFeatures], rng))
    // nn.Linear draws its bias from U(±1/√in), the same bound as the weight.
    const bound = 1 / Math.sqrt(this.inFeatures)
    this.bias =
      options.bias === true
        ? this.addParameter('bias', initUniform([this.outFeatures], rng, -bound, bound))
        : null
  }

  /** `x [... in]` → `[... out]`. */
  forward(x: tf.Tensor): tf.Tensor {
    checkLastAxis('@xattn/kv-heads Linear', 'x', x, this.inFeatures, 'in')
    return tf.tidy(() => linearApply(x, this.weight, this.bias))
  }
}

/**
 * `x [... in]` · `weight [out, in]`ᵀ (+ `bias [out]`) → `[... out]`, with no shape checks (callers
 * check). Flattened to one 2-D matMul against the explicitly transposed weight: tfjs-wasm's fast
 * path covers only plain untransposed 2-D operands, and a 2-D matMul has exact gradients.
 */
export function linearApply(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | null = null): tf.Tensor {
  return tf.tidy(() => {
    const inFeatures = weight.shape[1] as number
    const outFeatures = weight.shape[0] as number
    const lead = x.shape.slice(0, -1)
    const rows = lead.reduce((a, b) => a * b, 1)
    let y = tf.matMul(tf.reshape(x, [rows, inFeatures]), tf.transpose(weight))
    if (bias !== null) y = tf.add(y, bias)
    return tf.reshape(y, [...lead, outFeatures])
  })
}

/** Throws a ShapeContractError unless `x` is a float32 tensor whose last axis is `size`. */
export function checkLastAxis(contract: string, tensor: string, x: unknown, size: number, dim: string): void {
  const t = x as tf.Tensor | null | undefined
  if (t === null || t === undefined || !Array.isArray(t.shape)) {
    throw new ShapeContractError(contract, tensor, `${tensor} must be a tf.Tensor matching '... ${dim}'`)
  }
  if (t.isDisposed) throw new ShapeContractError(contract, tensor, `${tensor} has been disposed`)
  if (t.dtype !== 'float32') {
    throw new ShapeContractError(
      contract,
      tensor,
      `${tensor} has dtype ${t.dtype} but the contract requires float32`,
    )
  }
  const last = t.shape[t.shape.length - 1]
  if (t.shape.length === 0 || last !== size) {
    throw new ShapeContractError(
      contract,
      tensor,
      `${tensor} has shape [${t.shape.join(',')}] but the contract is '... ${dim}' with ${dim}=${size}, got ${dim}=${last ?? 'none (scalar)'}`,
    )
  }
}
