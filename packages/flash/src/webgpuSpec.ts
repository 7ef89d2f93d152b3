import type { TensorInfo } from '@tensorflow/tfjs-core'
import type { FlashAttentionAttrs } from './kernelNames.js'

/**
 * Everything a GPU flash shader is specialised on (shared by the webgpu and webgl kernels): the
 * sizes, the options, and the dropout constants. Shaders bake these in, so the program cache key
 * is {@link gpuSpecKey}.
 */
export interface GpuFlashSpec {
  readonly b: number
  readonly h: number
  readonly kvh: number
  readonly n: number
  readonly m: number
  readonly d: number
  readonly dv: number
  /** Query heads per KV head. */
  readonly groups: number
  readonly causal: boolean
  readonly scale: number
  readonly hasMask: boolean
  readonly hasBias: boolean
  /** The bias's batch extent (1 when it broadcasts). */
  readonly biasB: number
  /** The bias's head extent (1 when it broadcasts). */
  readonly biasH: number
  readonly slopes: readonly number[] | null
  readonly freeKeys: number
  readonly dropping: boolean
  /** A weight is kept iff its 24 random bits are >= this (rate · 2^24, as the wasm kernel). */
  readonly keepThreshold: number
  readonly dropScale: number
  readonly seed: number
}

/** Optional inputs follow q, k, v (forward) or q, k, v, out, lse, dOut (backward): keyMask, then bias. */
export function optionalGpuInputs(rest: readonly TensorInfo[], attrs: FlashAttentionAttrs) {
  const keyMask = attrs.hasKeyMask ? (rest[0] ?? null) : null
  const bias = attrs.hasBias ? (rest[attrs.hasKeyMask ? 1 : 0] ?? null) : null
  return { keyMask, bias }
}

export function gpuFlashSpec(
  q: TensorInfo,
  k: TensorInfo,
  v: TensorInfo,
  bias: TensorInfo | null,
  attrs: FlashAttentionAttrs,
): GpuFlashSpec {
  const [b = 0, h = 0, n = 0, d = 0] = q.shape
  const [, kvh = 1, m = 0] = k.shape
  const dv = v.shape[3] ?? 0
  const dropping = attrs.dropout > 0
  return {
    b,
    h,
    kvh,
    n,
    m,
    d,
    dv,
    groups: h / kvh,
    causal: attrs.causal,
    scale: attrs.scale,
    hasMask: attrs.hasKeyMask,
    hasBias: bias !== null,
    biasB: bias?.shape[0] ?? 1,
    biasH: bias?.shape[1] ?? 1,
    slopes: attrs.alibiSlopes.length > 0 ? attrs.alibiSlopes : null,
    freeKeys: attrs.alibiFreeKeys,
    dropping,
    keepThreshold: dropping ? Math.round(attrs.dropout * 2 ** 24) : 0,
    dropScale: dropping ? 1 / (1 - attrs.dropout) : 1,
    seed: attrs.seed >>> 0,
  }
}

const MAX_FLOAT32 = 3.4028234663852886e38

/** A float32 constant as shader source: 9 significant digits round-trip any float32 exactly. */
export function f32Literal(x: number): string {
  const f = Math.fround(x)
  // ±maxFloat32 printed to 9 digits rounds above the float32 range, which shader compilers reject.
  if (Math.abs(f) === MAX_FLOAT32) return f < 0 ? '-3.40282346e38' : '3.40282346e38'
  const text = f.toPrecision(9)
  return text.includes('.') || text.includes('e') ? text : `${text}.0`
}

/**
 * The shader cache key of a spec: every field but the dropout seed, which reaches the shaders as
 * a uniform (training draws a new seed every step; baking it in would compile new shaders each time).
 */
export function gpuSpecKey(spec: GpuFlashSpec): string {
  return JSON.stringify({ ...spec, seed: 0 })
}
