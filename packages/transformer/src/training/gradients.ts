import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, type Module } from '@xattn/core'

const PKG = '@xattn/transformer'

/** Gradients keyed by dotted parameter name; the caller owns the tensors. */
export type Gradients = Map<string, tf.Tensor>

/**
 * The loss and the gradient of every trainable parameter of `model` that the loss depends on
 * (parameters it does not touch get no entry). `lossFn` runs inside a tidy scope and must return
 * a scalar; only the returned gradients survive.
 *
 * @example
 * const { loss, grads } = computeGradients(model, () => wrapper.loss(tokens))
 * optimizer.step(grads)
 * disposeGradients(grads)
 */
export function computeGradients(model: Module, lossFn: () => tf.Scalar): { loss: number; grads: Gradients } {
  const named = [...model.namedParameters()].filter(([, v]) => v.trainable)
  const nameOf = new Map(named.map(([name, v]) => [v.name, name]))
  const { value, grads } = tf.variableGrads(
    lossFn,
    named.map(([, v]) => v),
  )
  const loss = value.dataSync()[0] as number
  value.dispose()
  const out: Gradients = new Map()
  for (const [variableName, grad] of Object.entries(grads)) {
    const name = nameOf.get(variableName)
    if (name === undefined) {
      grad.dispose()
      continue
    }
    out.set(name, grad)
  }
  return { loss, grads: out }
}

/** Disposes every tensor of a gradient map and clears it. */
export function disposeGradients(grads: Gradients): void {
  for (const grad of grads.values()) grad.dispose()
  grads.clear()
}

/**
 * The global L2 norm of all gradients, as `torch.nn.utils.clip_grad_norm_` computes it: the
 * square root of the sum of every element's square.
 */
export function globalNorm(grads: ReadonlyMap<string, tf.Tensor>): number {
  if (grads.size === 0) return 0
  return tf.tidy(() => {
    // Pairwise adds, not one addN: webgpu binds at most 8 storage buffers per shader.
    const total = [...grads.values()].map((g) => tf.sum(tf.square(g))).reduce((sum, s) => tf.add(sum, s))
    return tf.sqrt(total).dataSync()[0] as number
  })
}

/**
 * Clips gradients by their global norm, like `torch.nn.utils.clip_grad_norm_`: when the norm
 * exceeds `maxNorm` every gradient is scaled by `maxNorm / (norm + 1e-6)`. Returns new tensors
 * (the caller owns them; the input is not disposed) and the norm before clipping.
 *
 * @example
 * const { grads: clipped, norm } = clipByGlobalNorm(grads, 1.0)
 */
export function clipByGlobalNorm(
  grads: ReadonlyMap<string, tf.Tensor>,
  maxNorm: number,
): { grads: Gradients; norm: number } {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    throw new ConfigError(
      PKG,
      'maxNorm',
      `clipByGlobalNorm: maxNorm must be a finite number > 0, got ${maxNorm}`,
    )
  }
  const norm = globalNorm(grads)
  // The 1e-6 keeps the coefficient finite for a zero norm and matches torch's clip coefficient.
  const coefficient = Math.min(1, maxNorm / (norm + 1e-6))
  const out: Gradients = new Map()
  for (const [name, grad] of grads) {
    out.set(name, coefficient < 1 ? tf.tidy(() => tf.mul(grad, coefficient)) : tf.clone(grad))
  }
  return { grads: out, norm }
}

/**
 * Sums gradients over micro-batches so that a large batch can be processed in pieces. Each
 * `add` takes gradients with a weight (default 1); {@link take} returns the weighted mean
 * (sum / total weight) and resets. With equal weights and mean-reduced losses this equals the
 * gradient of the mean loss over the whole batch.
 *
 * @example
 * const acc = new GradientAccumulator()
 * for (const micro of microBatches) {
 *   const { grads } = computeGradients(model, () => wrapper.loss(micro))
 *   acc.add(grads)
 *   disposeGradients(grads)
 * }
 * const grads = acc.take()
 */
export class GradientAccumulator {
  private readonly sums = new Map<string, tf.Tensor>()
  private weightSum = 0
  private adds = 0

  /** Number of `add` calls since the last {@link take}. */
  get count(): number {
    return this.adds
  }

  /** Adds `weight · grads` to the running sum; the input stays owned by the caller. */
  add(grads: ReadonlyMap<string, tf.Tensor>, weight = 1): void {
    if (!(weight > 0) || !Number.isFinite(weight)) {
      throw new ConfigError(
        PKG,
        'weight',
        `GradientAccumulator.add: weight must be a finite number > 0, got ${weight}`,
      )
    }
    for (const [name, grad] of grads) {
      const previous = this.sums.get(name)
      if (previous !== undefined && !tf.util.arraysEqual(previous.shape, grad.shape)) {
        throw new ConfigError(
          PKG,
          'grads',
          `GradientAccumulator.add: gradient '${name}' has shape [${grad.shape}], earlier [${previous.shape}]`,
        )
      }
    }
    for (const [name, grad] of grads) {
      const previous = this.sums.get(name)
      const next = tf.tidy(() => {
        const scaled = weight === 1 ? tf.clone(grad) : tf.mul(grad, weight)
        return previous === undefined ? scaled : tf.add(previous, scaled)
      })
      previous?.dispose()
      this.sums.set(name, next)
    }
    this.weightSum += weight
    this.adds += 1
  }

  /** The weighted mean of everything added (caller owns it); resets the accumulator. */
  take(): Gradients {
    if (this.adds === 0) {
      throw new ConfigError(PKG, 'take', 'GradientAccumulator.take: nothing was added since the last take')
    }
    const out: Gradients = new Map()
    for (const [name, sum] of this.sums) {
      out.set(
        name,
        tf.tidy(() => tf.div(sum, this.weightSum)),
      )
      sum.dispose()
    }
    this.sums.clear()
    this.weightSum = 0
    this.adds = 0
    return out
  }

  /** Frees any partial sums. */
  dispose(): void {
    for (const sum of this.sums.values()) sum.dispose()
    this.sums.clear()
    this.weightSum = 0
    this.adds = 0
  }
}
