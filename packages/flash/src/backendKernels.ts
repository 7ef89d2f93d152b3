import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core'
import { type FlashDims, type FlashParams, flashBackward, flashForward } from './flashCompute.js'
import { flashKernelFunc } from './kernelFunc.js'
import { FlashAttention, type FlashAttentionAttrs, FlashAttentionGrad } from './kernelNames.js'

/**
 * How a backend hands its tensors to the typed-array kernels. Outputs are allocated before any
 * input is viewed, because on the wasm backend allocating can grow (and detach) the heap.
 */
export interface BackendAccess<B> {
  /** A new float32 output tensor; its values need not be initialised. */
  alloc(backend: B, shape: number[]): TensorInfo
  /** The float32 values of a tensor (a view, not a copy, where the backend allows). */
  floats(backend: B, info: TensorInfo): Float32Array
  /** The values of a bool tensor (0 = masked). */
  flags(backend: B, info: TensorInfo): ArrayLike<number>
}

function dimsOf(q: TensorInfo, k: TensorInfo, v: TensorInfo): FlashDims {
  const [b = 0, h = 0, n = 0, d = 0] = q.shape
  const [, kvh = 0, m = 0] = k.shape
  const dv = v.shape[3] ?? 0
  return { b, h, kvh, n, m, d, dv }
}

function paramsOf(attrs: FlashAttentionAttrs, bias: TensorInfo | null): FlashParams {
  return {
    causal: attrs.causal,
    scale: attrs.scale,
    biasBatch: bias?.shape[0] ?? 1,
    biasHeads: bias?.shape[1] ?? 1,
    slopes: attrs.alibiSlopes.length > 0 ? attrs.alibiSlopes : null,
    freeKeys: attrs.alibiFreeKeys,
    dropout: attrs.dropout,
    seed: attrs.seed,
  }
}

// Optional inputs follow the fixed ones in a fixed order: keyMask, then bias.
function optionalInputs(rest: readonly TensorInfo[], attrs: FlashAttentionAttrs) {
  const keyMask = attrs.hasKeyMask ? (rest[0] ?? null) : null
  const bias = attrs.hasBias ? (rest[attrs.hasKeyMask ? 1 : 0] ?? null) : null
  return { keyMask, bias }
}

/** The forward and backward kernel configs of one backend. */
export function flashKernelConfigs<B>(backendName: string, access: BackendAccess<B>): KernelConfig[] {
  const forward = flashKernelFunc<B>(({ inputs, backend, attrs }) => {
    const [q, k, v, ...rest] = inputs as [TensorInfo, TensorInfo, TensorInfo, ...TensorInfo[]]
    const { keyMask, bias } = optionalInputs(rest, attrs)
    const dims = dimsOf(q, k, v)
    const out = access.alloc(backend, [dims.b, dims.h, dims.n, dims.dv])
    const lse = access.alloc(backend, [dims.b, dims.h, dims.n])
    flashForward(dims, paramsOf(attrs, bias), {
      q: access.floats(backend, q),
      k: access.floats(backend, k),
      v: access.floats(backend, v),
      keyMask: keyMask === null ? null : access.flags(backend, keyMask),
      bias: bias === null ? null : access.floats(backend, bias),
      out: access.floats(backend, out),
      lse: access.floats(backend, lse),
    })
    return [out, lse]
  })
  const backward = flashKernelFunc<B>(({ inputs, backend, attrs }) => {
    const [q, k, v, out, lse, dOut, ...rest] = inputs as [
      TensorInfo,
      TensorInfo,
      TensorInfo,
      TensorInfo,
      TensorInfo,
      TensorInfo,
      ...TensorInfo[],
    ]
    const { keyMask, bias } = optionalInputs(rest, attrs)
    const dims = dimsOf(q, k, v)
    const dq = access.alloc(backend, [...q.shape])
    const dk = access.alloc(backend, [...k.shape])
    const dv = access.alloc(backend, [...v.shape])
    const dBias = bias === null ? null : access.alloc(backend, [...bias.shape])
    const dBiasValues = dBias === null ? null : access.floats(backend, dBias).fill(0)
    flashBackward(dims, paramsOf(attrs, bias), {
      q: access.floats(backend, q),
      k: access.floats(backend, k),
      v: access.floats(backend, v),
      out: access.floats(backend, out),
      lse: access.floats(backend, lse),
      dOut: access.floats(backend, dOut),
      keyMask: keyMask === null ? null : access.flags(backend, keyMask),
      bias: bias === null ? null : access.floats(backend, bias),
      dq: access.floats(backend, dq),
      dk: access.floats(backend, dk),
      dv: access.floats(backend, dv),
      dBias: dBiasValues,
    })
    return dBias === null ? [dq, dk, dv] : [dq, dk, dv, dBias]
  })
  return [
    { kernelName: FlashAttention, backendName, kernelFunc: forward },
    { kernelName: FlashAttentionGrad, backendName, kernelFunc: backward },
  ]
}
