import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, type Module } from '@xattn/core'
import type { AdamW } from './adamw.js'
import {
  clipByGlobalNorm,
  computeGradients,
  disposeGradients,
  GradientAccumulator,
  globalNorm,
} from './gradients.js'
import type { LrSchedule } from './lrSchedule.js'

const PKG = '@xattn/transformer'

/** What {@link train} reports after every optimiser step. */
export interface TrainStepInfo {
  /** 0-based index of the step just taken (the optimiser's step count minus one). */
  readonly step: number
  /** The step count `train` runs to. */
  readonly totalSteps: number
  /** Mean loss over the step's micro-batches. */
  readonly loss: number
  /** Learning rate used for the step. */
  readonly lr: number
  /** Global gradient norm before clipping. */
  readonly gradNorm: number
  /** Tokens processed in this step (from `tokensIn`, 0 without it). */
  readonly tokens: number
  /** Milliseconds the step took. */
  readonly stepMs: number
  /** Milliseconds since `train` started. */
  readonly elapsedMs: number
}

export interface TrainOptions<B> {
  readonly model: Module
  readonly optimizer: AdamW
  /**
   * The optimiser step count to train up to. Training starts at `optimizer.stepCount`, so a
   * resumed optimiser continues where it stopped.
   */
  readonly steps: number
  /**
   * The batch for an optimiser step and micro-batch index. Tensors in the returned value (the
   * value itself, or the elements/properties one level down) are disposed after use.
   */
  readonly batch: (step: number, micro: number) => B
  /** The scalar loss of a batch; runs inside a tidy scope under `tf.variableGrads`. */
  readonly loss: (batch: B) => tf.Scalar
  /** Tokens in a batch, for throughput reporting. */
  readonly tokensIn?: (batch: B) => number
  /** Learning rate per 0-based step (default: the optimiser's `lr`). */
  readonly schedule?: LrSchedule
  /** Clip the global gradient norm to this value (default: no clipping). */
  readonly clipNorm?: number
  /** Micro-batches whose gradients are averaged per optimiser step (default 1). */
  readonly accumulate?: number
  /**
   * Called after each step. Return `false` (or a promise of it) to stop early, e.g. once a
   * target is reached.
   */
  readonly onStep?: (info: TrainStepInfo) => boolean | undefined | Promise<boolean | undefined>
}

export interface TrainResult {
  /** The optimiser step count at the end. */
  readonly steps: number
  /** Loss of every step taken in this call. */
  readonly losses: readonly number[]
  /** Whether `onStep` stopped training before `steps`. */
  readonly stoppedEarly: boolean
}

function disposeBatch(batch: unknown): void {
  if (batch instanceof tf.Tensor) {
    batch.dispose()
    return
  }
  if (batch === null || typeof batch !== 'object') return
  const values = Array.isArray(batch) ? batch : Object.values(batch)
  for (const value of values) if (value instanceof tf.Tensor) value.dispose()
}

/**
 * A training loop: for each optimiser step, gradients of `loss` over `accumulate` micro-batches
 * are averaged, optionally clipped by global norm, and applied with the scheduled learning rate.
 * Leaves no tensors behind besides the model's and optimiser's.
 *
 * @example
 * const optimizer = new AdamW(model, { lr: 3e-3, weightDecay: 0.01 })
 * await train({
 *   model, optimizer, steps: 500,
 *   batch: () => makeBatch(),
 *   loss: (tokens) => wrapper.loss(tokens),
 *   schedule: warmupCosineSchedule({ peakLr: 3e-3, warmupSteps: 50, totalSteps: 500 }),
 *   clipNorm: 1,
 *   onStep: ({ step, loss }) => { if (step % 50 === 0) console.log(step, loss) },
 * })
 */
export async function train<B>(options: TrainOptions<B>): Promise<TrainResult> {
  const { model, optimizer, steps, accumulate = 1 } = options
  if (!Number.isInteger(steps) || steps < 0) {
    throw new ConfigError(PKG, 'steps', `train: steps must be an integer ≥ 0, got ${steps}`)
  }
  if (!Number.isInteger(accumulate) || accumulate < 1) {
    throw new ConfigError(PKG, 'accumulate', `train: accumulate must be an integer ≥ 1, got ${accumulate}`)
  }
  if (options.clipNorm !== undefined && !(options.clipNorm > 0)) {
    throw new ConfigError(PKG, 'clipNorm', `train: clipNorm must be > 0, got ${options.clipNorm}`)
  }
  const wasTraining = model.training
  model.train()
  const started = performance.now()
  const losses: number[] = []
  let stoppedEarly = false
  try {
    while (optimizer.stepCount < steps) {
      const step = optimizer.stepCount
      const stepStarted = performance.now()
      const accumulator = new GradientAccumulator()
      let lossSum = 0
      let tokens = 0
      try {
        for (let micro = 0; micro < accumulate; micro++) {
          const batch = options.batch(step, micro)
          try {
            const { loss, grads } = computeGradients(model, () => options.loss(batch))
            lossSum += loss
            tokens += options.tokensIn?.(batch) ?? 0
            accumulator.add(grads)
            disposeGradients(grads)
          } finally {
            disposeBatch(batch)
          }
        }
        let grads = accumulator.take()
        let gradNorm: number
        if (options.clipNorm !== undefined) {
          const clipped = clipByGlobalNorm(grads, options.clipNorm)
          disposeGradients(grads)
          grads = clipped.grads
          gradNorm = clipped.norm
        } else {
          gradNorm = globalNorm(grads)
        }
        const lr = options.schedule?.(step) ?? optimizer.lr
        optimizer.step(grads, { lr })
        disposeGradients(grads)
        const loss = lossSum / accumulate
        losses.push(loss)
        const now = performance.now()
        const verdict = await options.onStep?.({
          step,
          totalSteps: steps,
          loss,
          lr,
          gradNorm,
          tokens,
          stepMs: now - stepStarted,
          elapsedMs: now - started,
        })
        if (verdict === false) {
          stoppedEarly = optimizer.stepCount < steps
          break
        }
      } finally {
        accumulator.dispose()
      }
    }
  } finally {
    model.train(wasTraining)
  }
  return { steps: optimizer.stepCount, losses, stoppedEarly }
}
