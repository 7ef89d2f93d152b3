import * as tf from '@tensorflow/tfjs-core'
import { expect } from 'vitest'

/**
 * Runs `body` and asserts that `tf.memory().numTensors` is unchanged afterwards. The body's
 * result is returned so the caller can inspect it, then dispose it: pass `keep` to count
 * tensors the body deliberately returns.
 */
export function expectNoLeaks<T>(body: () => T, { returns = 0 }: { returns?: number } = {}): T {
  const before = tf.memory().numTensors
  const result = body()
  expect(tf.memory().numTensors - before, 'tensors left behind').toBe(returns)
  return result
}

/** {@link expectNoLeaks} for async bodies. */
export async function expectNoLeaksAsync<T>(
  body: () => Promise<T>,
  { returns = 0 }: { returns?: number } = {},
) {
  const before = tf.memory().numTensors
  const result = await body()
  expect(tf.memory().numTensors - before, 'tensors left behind').toBe(returns)
  return result
}
