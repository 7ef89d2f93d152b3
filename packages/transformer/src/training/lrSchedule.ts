import { ConfigError } from '@xattn/core'

const PKG = '@xattn/transformer'

/** Maps a 0-based optimiser step to a learning rate. */
export type LrSchedule = (step: number) => number

export interface WarmupCosineOptions {
  /** The learning rate reached at the end of warmup. */
  readonly peakLr: number
  /** Steps of linear warmup from `peakLr / warmupSteps` to `peakLr` (default 0). */
  readonly warmupSteps?: number
  /** Total steps; the cosine decay ends here and stays at `minLr` afterwards. */
  readonly totalSteps: number
  /** Learning rate at the end of the decay (default 0). */
  readonly minLr?: number
}

/**
 * Linear warmup then cosine decay: step `s < warmup` gets `peak·(s+1)/warmup`; afterwards the rate
 * follows half a cosine from `peak` (at `s = warmup`) to `minLr` (at `s = totalSteps`).
 *
 * @example
 * const schedule = warmupCosineSchedule({ peakLr: 3e-3, warmupSteps: 50, totalSteps: 1000 })
 * schedule(0) // 6e-5
 * schedule(1000) // 0
 */
export function warmupCosineSchedule(options: WarmupCosineOptions): LrSchedule {
  const { peakLr, warmupSteps = 0, totalSteps, minLr = 0 } = options
  if (!(peakLr > 0) || !Number.isFinite(peakLr)) {
    throw new ConfigError(
      PKG,
      'peakLr',
      `warmupCosineSchedule: peakLr must be a finite number > 0, got ${peakLr}`,
    )
  }
  if (!(minLr >= 0 && minLr <= peakLr)) {
    throw new ConfigError(
      PKG,
      'minLr',
      `warmupCosineSchedule: minLr must be in [0, peakLr=${peakLr}], got ${minLr}`,
    )
  }
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    throw new ConfigError(
      PKG,
      'warmupSteps',
      `warmupCosineSchedule: warmupSteps must be an integer ≥ 0, got ${warmupSteps}`,
    )
  }
  if (!Number.isInteger(totalSteps) || totalSteps < warmupSteps || totalSteps < 1) {
    throw new ConfigError(
      PKG,
      'totalSteps',
      `warmupCosineSchedule: totalSteps must be an integer ≥ max(1, warmupSteps=${warmupSteps}), got ${totalSteps}`,
    )
  }
  const decaySteps = totalSteps - warmupSteps
  return (step: number) => {
    if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps
    if (decaySteps === 0) return minLr
    const progress = Math.min(1, (step - warmupSteps) / decaySteps)
    return minLr + 0.5 * (peakLr - minLr) * (1 + Math.cos(Math.PI * progress))
  }
}
