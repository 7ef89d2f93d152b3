import * as tf from '@tensorflow/tfjs-core'
import type { AttendOptions } from '@xattn/core'

/** One randomised attention problem for the parity matrix (test support, not shipped). */
export interface AttendCase {
  readonly label: string
  readonly b: number
  readonly h: number
  readonly kvh: number
  readonly n: number
  readonly m: number
  readonly d: number
  readonly dv: number
  readonly causal: boolean
  /** 'none', 'random' (some keys masked) or 'rows' (one batch fully masked). */
  readonly mask: 'none' | 'random' | 'rows'
  /** Bias tensor extents [b|1, h|1], or null for no bias tensor. */
  readonly bias: readonly [number, number] | null
  readonly alibi: boolean
  readonly freeKeys: number
  readonly scale: number | undefined
  readonly seed: number
}

// Sizes around the kernel's 64-wide tiles (1, tile-1, tile, tile+1) plus off-grid ones.
const EDGE_SIZES = [1, 2, 63, 64, 65, 7, 33, 100, 129]
const HEAD_DIMS = [1, 3, 4, 8, 16, 5, 12]

function pick<T>(rng: () => number, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)] as T
}

/** A deterministic list of `count` cases covering the combinations the brief asks for. */
export function attendCases(count: number, rng: () => number): AttendCase[] {
  const cases: AttendCase[] = []
  for (let i = 0; i < count; i++) {
    const kvMode = pick(rng, ['all', 'divisor', 'one'] as const)
    const kvBase = pick(rng, [1, 2, 3])
    const groups = kvMode === 'all' ? 1 : pick(rng, [2, 3])
    const kvh = kvMode === 'one' ? 1 : kvBase
    const h = kvMode === 'one' ? pick(rng, [1, 2, 4]) : kvh * groups
    const b = pick(rng, [1, 2])
    const n = pick(rng, EDGE_SIZES)
    const m = rng() < 0.3 ? n : pick(rng, EDGE_SIZES)
    const d = pick(rng, HEAD_DIMS)
    const dv = rng() < 0.4 ? d : pick(rng, HEAD_DIMS)
    const biasKind = pick(rng, ['none', 'none', 'full', 'batch', 'heads', 'shared'] as const)
    const bias: [number, number] | null =
      biasKind === 'none'
        ? null
        : biasKind === 'full'
          ? [b, h]
          : biasKind === 'batch'
            ? [b, 1]
            : biasKind === 'heads'
              ? [1, h]
              : [1, 1]
    const alibi = rng() < 0.3
    const c: AttendCase = {
      label: '',
      b,
      h,
      kvh,
      n,
      m,
      d,
      dv,
      causal: rng() < 0.5,
      mask: pick(rng, ['none', 'random', 'rows'] as const),
      bias,
      alibi,
      freeKeys: alibi && rng() < 0.5 ? Math.floor(rng() * (m + 1)) : 0,
      scale: rng() < 0.3 ? 0.05 + rng() : undefined,
      seed: Math.floor(rng() * 1e9),
    }
    const flags = [
      c.causal && 'causal',
      c.mask !== 'none' && `mask:${c.mask}`,
      bias && `bias[${bias}]`,
      alibi && `alibi/${c.freeKeys}`,
    ]
    cases.push({
      ...c,
      label: `#${i} b${b} h${h}/kv${kvh} n${n} m${m} d${d} dv${dv} ${flags.filter(Boolean).join(' ')}`,
    })
  }
  return cases
}

/** The tensors and options of a case (the caller disposes them). */
export function caseTensors(
  c: AttendCase,
  rng: () => number,
): {
  q: tf.Tensor
  k: tf.Tensor
  v: tf.Tensor
  weight: tf.Tensor
  keyMask: tf.Tensor | null
  bias: tf.Tensor | null
  options: AttendOptions
} {
  const uniform = (shape: number[], scale = 1) => {
    const size = shape.reduce((a, x) => a * x, 1)
    const values = new Float32Array(size)
    for (let i = 0; i < size; i++) values[i] = (rng() * 2 - 1) * scale
    return tf.tensor(values, shape, 'float32')
  }
  const q = uniform([c.b, c.h, c.n, c.d], 1.5)
  const k = uniform([c.b, c.kvh, c.m, c.d], 1.5)
  const v = uniform([c.b, c.kvh, c.m, c.dv])
  const weight = uniform([c.b, c.h, c.n, c.dv])
  let keyMask: tf.Tensor | null = null
  if (c.mask !== 'none') {
    const flags = new Uint8Array(c.b * c.m)
    for (let i = 0; i < flags.length; i++) flags[i] = rng() < 0.7 ? 1 : 0
    // 'rows': the last batch sees no key at all, so every one of its rows is fully masked.
    if (c.mask === 'rows') flags.fill(0, (c.b - 1) * c.m)
    keyMask = tf.tensor(flags, [c.b, c.m], 'bool')
  }
  const bias = c.bias === null ? null : uniform([c.bias[0], c.bias[1], c.n, c.m], 2)
  const slopes = c.alibi
    ? Array.from({ length: c.h }, (_, i) => 2 ** (-(i + 1) / Math.max(1, c.h / 4)))
    : null
  const options: AttendOptions = {
    causal: c.causal,
    keyMask,
    bias,
    alibiSlopes: slopes,
    alibiFreeKeys: c.freeKeys,
    ...(c.scale === undefined ? {} : { scale: c.scale }),
  }
  return { q, k, v, weight, keyMask, bias, options }
}
