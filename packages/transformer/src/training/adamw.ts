import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, type Module } from '@xattn/core'

const PKG = '@xattn/transformer'

export interface AdamWOptions {
  /** Learning rate (default 1e-3); a schedule may override it per step. */
  readonly lr?: number
  /** Exponential decay rates of the first and second moments (default [0.9, 0.999]). */
  readonly betas?: readonly [number, number]
  /** Added to the denominator for numerical stability (default 1e-8). */
  readonly eps?: number
  /** Decoupled weight decay (default 0.01, as torch.optim.AdamW). */
  readonly weightDecay?: number
  /**
   * Which parameters are decayed. Default: those of rank ≥ 2 (weight matrices and embeddings),
   * the usual choice that leaves norms' gains and biases alone. Pass `() => true` for torch's
   * behaviour of decaying everything.
   */
  readonly decay?: (name: string, parameter: tf.Variable) => boolean
}

export interface AdamWStepOptions {
  /** Learning rate for this step (overrides `options.lr`). */
  readonly lr?: number
}

interface Slot {
  readonly parameter: tf.Variable
  readonly decayed: boolean
  readonly expAvg: tf.Variable
  readonly expAvgSq: tf.Variable
}

/** A non-trainable zero variable shaped like `like` (the initial tensor is freed). */
function zerosVariable(like: tf.Tensor): tf.Variable {
  const zeros = tf.zerosLike(like)
  const variable = tf.variable(zeros, false)
  zeros.dispose()
  return variable
}

function checkPositive(option: string, value: number, allowZero = false): void {
  const ok = Number.isFinite(value) && (allowZero ? value >= 0 : value > 0)
  if (!ok) {
    throw new ConfigError(
      PKG,
      option,
      `AdamW: ${option} must be a finite number ${allowZero ? '≥ 0' : '> 0'}, got ${value}`,
    )
  }
}

/**
 * AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, with the same update as
 * `torch.optim.AdamW` (decay `p ← p·(1 − lr·wd)` first, then the bias-corrected Adam step).
 * Parameters are addressed by their dotted state-dict names, so the optimiser state can be saved
 * next to the model and restored into a freshly built one.
 *
 * Shapes: every moment has its parameter's shape.
 *
 * @example
 * const opt = new AdamW(model, { lr: 3e-4, weightDecay: 0.1 })
 * const { grads } = computeGradients(model, () => wrapper.loss(tokens))
 * opt.step(grads, { lr: schedule(opt.stepCount) })
 * disposeGradients(grads)
 */
export class AdamW {
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number
  private readonly slots = new Map<string, Slot>()
  private steps = 0

  constructor(params: Module | Iterable<readonly [string, tf.Variable]>, options: AdamWOptions = {}) {
    const { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01 } = options
    checkPositive('lr', lr)
    checkPositive('eps', eps)
    checkPositive('weightDecay', weightDecay, true)
    for (const [i, beta] of betas.entries()) {
      if (!(beta >= 0 && beta < 1)) {
        throw new ConfigError(PKG, 'betas', `AdamW: betas[${i}] must be in [0, 1), got ${beta}`)
      }
    }
    this.lr = lr
    this.beta1 = betas[0]
    this.beta2 = betas[1]
    this.eps = eps
    this.weightDecay = weightDecay
    const decay = options.decay ?? ((_: string, p: tf.Variable) => p.rank >= 2)
    const named = 'namedParameters' in params ? params.namedParameters() : params
    for (const [name, parameter] of named) {
      if (!parameter.trainable) continue
      this.slots.set(name, {
        parameter,
        decayed: decay(name, parameter),
        expAvg: zerosVariable(parameter),
        expAvgSq: zerosVariable(parameter),
      })
    }
  }

  /** Number of steps taken (restored by {@link loadStateDict}). */
  get stepCount(): number {
    return this.steps
  }

  /** The names of the parameters this optimiser updates. */
  parameterNames(): string[] {
    return [...this.slots.keys()]
  }

  /**
   * One update from gradients keyed by parameter name. Parameters without a gradient are left
   * unchanged (as torch does for `grad is None`). The gradients stay owned by the caller.
   */
  step(grads: ReadonlyMap<string, tf.Tensor>, { lr = this.lr }: AdamWStepOptions = {}): void {
    checkPositive('lr', lr, true)
    for (const [name, grad] of grads) {
      const slot = this.slots.get(name)
      if (slot === undefined) {
        throw new ConfigError(PKG, 'grads', `AdamW.step: no parameter named '${name}' in this optimiser`)
      }
      if (!tf.util.arraysEqual(grad.shape, slot.parameter.shape)) {
        throw new ConfigError(
          PKG,
          'grads',
          `AdamW.step: gradient '${name}' has shape [${grad.shape}] but the parameter has [${slot.parameter.shape}]`,
        )
      }
    }
    this.steps += 1
    const t = this.steps
    const biasCorrection1 = 1 - this.beta1 ** t
    const sqrtBiasCorrection2 = Math.sqrt(1 - this.beta2 ** t)
    const stepSize = lr / biasCorrection1
    tf.tidy(() => {
      for (const [name, grad] of grads) {
        const slot = this.slots.get(name) as Slot
        const m = tf.add(tf.mul(slot.expAvg, this.beta1), tf.mul(grad, 1 - this.beta1))
        const v = tf.add(tf.mul(slot.expAvgSq, this.beta2), tf.mul(tf.square(grad), 1 - this.beta2))
        slot.expAvg.assign(m)
        slot.expAvgSq.assign(v)
        const decayed =
          slot.decayed && this.weightDecay > 0
            ? tf.mul(slot.parameter, 1 - lr * this.weightDecay)
            : slot.parameter
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBiasCorrection2), this.eps)
        slot.parameter.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)))
      }
    })
  }

  /**
   * The optimiser state as named tensors, `exp_avg.<param>` and `exp_avg_sq.<param>` (torch's
   * names), plus the step count and hyperparameters as string metadata. The tensors are the
   * optimiser's own: read them, do not dispose them.
   */
  stateDict(): { tensors: Map<string, tf.Tensor>; metadata: Record<string, string> } {
    const tensors = new Map<string, tf.Tensor>()
    for (const [name, slot] of this.slots) {
      tensors.set(`exp_avg.${name}`, slot.expAvg)
      tensors.set(`exp_avg_sq.${name}`, slot.expAvgSq)
    }
    const metadata = {
      optimizer: 'AdamW',
      step: String(this.steps),
      hyperparameters: JSON.stringify({
        lr: this.lr,
        betas: [this.beta1, this.beta2],
        eps: this.eps,
        weightDecay: this.weightDecay,
      }),
    }
    return { tensors, metadata }
  }

  /**
   * Restores a state saved by {@link stateDict}. Every moment must be present with its
   * parameter's shape; nothing changes if any is missing, unexpected or mis-shaped.
   */
  loadStateDict(tensors: ReadonlyMap<string, tf.Tensor>, metadata: Readonly<Record<string, string>>): void {
    const step = Number(metadata.step)
    if (!Number.isInteger(step) || step < 0) {
      throw new ConfigError(
        PKG,
        'step',
        `AdamW.loadStateDict: metadata.step must be an integer ≥ 0, got '${metadata.step}'`,
      )
    }
    const problems: string[] = []
    const expected = new Set<string>()
    for (const [name, slot] of this.slots) {
      for (const key of [`exp_avg.${name}`, `exp_avg_sq.${name}`]) {
        expected.add(key)
        const tensor = tensors.get(key)
        if (tensor === undefined) problems.push(`missing ${key}`)
        else if (!tf.util.arraysEqual(tensor.shape, slot.parameter.shape)) {
          problems.push(`${key}: expected [${slot.parameter.shape}], got [${tensor.shape}]`)
        }
      }
    }
    for (const key of tensors.keys()) if (!expected.has(key)) problems.push(`unexpected ${key}`)
    if (problems.length > 0) {
      throw new ConfigError(
        PKG,
        'state',
        `AdamW.loadStateDict: the optimiser state does not fit: ${problems.join('; ')}`,
      )
    }
    for (const [name, slot] of this.slots) {
      slot.expAvg.assign(tensors.get(`exp_avg.${name}`) as tf.Tensor)
      slot.expAvgSq.assign(tensors.get(`exp_avg_sq.${name}`) as tf.Tensor)
    }
    this.steps = step
  }

  /** Frees the moment tensors (not the parameters). */
  dispose(): void {
    for (const slot of this.slots.values()) {
      slot.expAvg.dispose()
      slot.expAvgSq.dispose()
    }
    this.slots.clear()
  }
}
