import * as tf from '@tensorflow/tfjs-core'
import { SeededRandom } from './random.js'

/** Where an initialiser draws its numbers from: a generator or a seed. */
export type RandomSource = SeededRandom | number

function generator(source: RandomSource): SeededRandom {
  return typeof source === 'number' ? new SeededRandom(source) : source
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

function fill(shape: readonly number[], draw: () => number): tf.Tensor {
  const values = new Float32Array(sizeOf(shape))
  for (let i = 0; i < values.length; i++) values[i] = draw()
  return tf.tensor(values, [...shape], 'float32')
}

/** Normal(mean, std²) values; x-transformers' memory KV and embeddings use the standard normal. */
export function initNormal(
  shape: readonly number[],
  source: RandomSource,
  { mean = 0, std = 1 }: { mean?: number; std?: number } = {},
): tf.Tensor {
  const rng = generator(source)
  return fill(shape, () => mean + std * rng.normal())
}

/** Uniform values in [low, high). */
export function initUniform(
  shape: readonly number[],
  source: RandomSource,
  low: number,
  high: number,
): tf.Tensor {
  const rng = generator(source)
  return fill(shape, () => low + (high - low) * rng.uniform())
}

/**
 * PyTorch's default `nn.Linear` weight init (kaiming-uniform with a = √5), which reduces to
 * U(−1/√fanIn, 1/√fanIn). Weights are `[out, in]`, so fanIn is the last axis.
 */
export function initKaimingUniform(shape: readonly number[], source: RandomSource): tf.Tensor {
  const fanIn = shape[shape.length - 1] ?? 1
  const bound = 1 / Math.sqrt(fanIn)
  return initUniform(shape, source, -bound, bound)
}

/** Xavier/Glorot uniform for a `[out, in]` weight: U(±gain·√(6/(fanIn+fanOut))). */
export function initXavierUniform(shape: readonly number[], source: RandomSource, gain = 1): tf.Tensor {
  const fanIn = shape[shape.length - 1] ?? 1
  const fanOut = shape[0] ?? 1
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut))
  return initUniform(shape, source, -bound, bound)
}

/** Xavier/Glorot normal for a `[out, in]` weight: N(0, gain²·2/(fanIn+fanOut)). */
export function initXavierNormal(shape: readonly number[], source: RandomSource, gain = 1): tf.Tensor {
  const fanIn = shape[shape.length - 1] ?? 1
  const fanOut = shape[0] ?? 1
  return initNormal(shape, source, { std: gain * Math.sqrt(2 / (fanIn + fanOut)) })
}
