import type * as tf from '@tensorflow/tfjs-core'
import { expect } from 'vitest'

type Numeric = tf.Tensor | ArrayLike<number> | number

function valuesOf(x: Numeric): { values: ArrayLike<number>; shape: readonly number[] | null } {
  if (typeof x === 'number') return { values: [x], shape: null }
  if ('dataSync' in x && typeof x.dataSync === 'function') {
    return { values: x.dataSync() as ArrayLike<number>, shape: x.shape }
  }
  return { values: x as ArrayLike<number>, shape: null }
}

/** Largest |a - b| over all elements (NaN if either side has a NaN where the other does not). */
export function maxAbsDiff(actual: Numeric, expected: Numeric): number {
  const a = valuesOf(actual).values
  const b = valuesOf(expected).values
  let worst = 0
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs((a[i] as number) - (b[i] as number))
    if (Number.isNaN(diff)) return Number.NaN
    if (diff > worst) worst = diff
  }
  return worst
}

/**
 * Asserts elementwise `|actual - expected| <= atol + rtol·|expected|` and equal shapes, and
 * reports the worst element when it fails.
 */
export function expectClose(
  actual: Numeric,
  expected: Numeric,
  { atol = 1e-5, rtol = 0, label = 'value' }: { atol?: number; rtol?: number; label?: string } = {},
): void {
  const a = valuesOf(actual)
  const b = valuesOf(expected)
  if (a.shape !== null && b.shape !== null) expect(a.shape, `${label} shape`).toEqual(b.shape)
  expect(a.values.length, `${label} length`).toBe(b.values.length)
  let worstIndex = -1
  let worstExcess = 0
  for (let i = 0; i < a.values.length; i++) {
    const x = a.values[i] as number
    const y = b.values[i] as number
    const excess = Math.abs(x - y) - (atol + rtol * Math.abs(y))
    if (Number.isNaN(x) || Number.isNaN(y) || excess > worstExcess) {
      worstIndex = i
      worstExcess = Number.isNaN(excess) ? Number.POSITIVE_INFINITY : excess
      if (!Number.isFinite(worstExcess)) break
    }
  }
  if (worstIndex >= 0) {
    const x = a.values[worstIndex]
    const y = b.values[worstIndex]
    expect.fail(
      `${label}: element ${worstIndex} is ${x}, expected ${y} (|diff| = ${Math.abs((x as number) - (y as number))}, atol ${atol}, rtol ${rtol})`,
    )
  }
}
