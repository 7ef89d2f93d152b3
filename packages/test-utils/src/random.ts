import * as tf from '@tensorflow/tfjs-core'

/** A tiny seeded generator for test data (mulberry32), independent of the code under test. */
export function testRng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A float32 tensor with values uniform in [-scale, scale), from a seed. */
export function randomTensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  const rng = testRng(seed)
  const size = shape.reduce((a, b) => a * b, 1)
  const values = new Float32Array(size)
  for (let i = 0; i < size; i++) values[i] = (rng() * 2 - 1) * scale
  return tf.tensor(values, shape, 'float32')
}

/** A bool tensor where each element is true with probability `pTrue`, from a seed. */
export function randomMask(shape: number[], seed: number, pTrue = 0.7): tf.Tensor {
  const rng = testRng(seed)
  const size = shape.reduce((a, b) => a * b, 1)
  const values = new Uint8Array(size)
  for (let i = 0; i < size; i++) values[i] = rng() < pTrue ? 1 : 0
  return tf.tensor(values, shape, 'bool')
}
