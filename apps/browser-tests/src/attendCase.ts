import * as tf from '@tensorflow/tfjs-core'
import type { AttendInputs, AttendOptions } from '@xattn/core'

/** One attention call as plain JSON, so that Node and the page run exactly the same numbers. */
export interface AttendCase {
  readonly name: string
  /** `[b, h, kvh, n, m, d, dv]`. */
  readonly dims: readonly [number, number, number, number, number, number, number]
  readonly q: readonly number[]
  readonly k: readonly number[]
  readonly v: readonly number[]
  /** Upstream gradient `[b h n dv]`; gradients are computed when present. */
  readonly dOut?: readonly number[]
  /** `[b, m]` flattened, 1 = may attend. */
  readonly keyMask?: readonly number[]
  readonly bias?: { readonly shape: readonly number[]; readonly values: readonly number[] }
  readonly causal?: boolean
  readonly alibiSlopes?: readonly number[]
  readonly alibiFreeKeys?: number
  readonly scale?: number
  /** Attention dropout in training mode, with this seed. */
  readonly dropout?: { readonly rate: number; readonly seed: number }
}

/** Output (and gradients) of a case, as plain arrays. */
export interface AttendResult {
  readonly out: number[]
  readonly dq?: number[]
  readonly dk?: number[]
  readonly dv?: number[]
  readonly dBias?: number[]
  /** tf.memory().numTensors after minus before: 0 when nothing leaked. */
  readonly leaked: number
  /**
   * The backend's live data buffers after minus before: also counts a kernel's intermediate
   * buffers (which are not tensors), so it catches a GPU kernel that forgets to free scratch.
   */
  readonly leakedData: number
}

export type AttendFn = (inputs: AttendInputs, options: AttendOptions) => tf.Tensor

/** Runs a case with an attention implementation on the active backend. */
export async function runAttendCase(attend: AttendFn, spec: AttendCase): Promise<AttendResult> {
  const before = tf.memory().numTensors
  const dataBefore = tf.engine().backend.numDataIds()
  const [b, h, kvh, n, m, d, dv] = spec.dims
  const q = tf.tensor4d(spec.q as number[], [b, h, n, d])
  const k = tf.tensor4d(spec.k as number[], [b, kvh, m, d])
  const v = tf.tensor4d(spec.v as number[], [b, kvh, m, dv])
  const keyMask = spec.keyMask === undefined ? null : tf.tensor2d(spec.keyMask as number[], [b, m], 'bool')
  const bias =
    spec.bias === undefined
      ? null
      : tf.tensor(spec.bias.values as number[], spec.bias.shape as number[], 'float32')
  const options = (biasTensor: tf.Tensor | null): AttendOptions => ({
    causal: spec.causal ?? false,
    keyMask,
    bias: biasTensor,
    alibiSlopes: spec.alibiSlopes ?? null,
    alibiFreeKeys: spec.alibiFreeKeys ?? 0,
    ...(spec.scale === undefined ? {} : { scale: spec.scale }),
    ...(spec.dropout === undefined
      ? {}
      : { dropout: spec.dropout.rate, seed: spec.dropout.seed, training: true }),
  })
  const owned = [q, k, v, keyMask, bias].filter((t): t is tf.Tensor => t !== null)
  try {
    const outTensor = attend({ q, k, v }, options(bias))
    const out = Array.from(await outTensor.data())
    outTensor.dispose()
    if (spec.dOut === undefined) {
      return {
        out,
        leaked: tf.memory().numTensors - owned.length - before,
        leakedData: tf.engine().backend.numDataIds() - owned.length - dataBefore,
      }
    }
    const dOut = tf.tensor4d(spec.dOut as number[], [b, h, n, dv])
    owned.push(dOut)
    const xs = bias === null ? [q, k, v] : [q, k, v, bias]
    const grads = tf.grads((...args: tf.Tensor[]) => {
      const [gq, gk, gv, gBias] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined]
      return tf.sum(tf.mul(attend({ q: gq, k: gk, v: gv }, options(gBias ?? null)), dOut))
    })(xs)
    const values = await Promise.all(grads.map(async (g) => Array.from(await g.data())))
    tf.dispose(grads)
    const leaked = tf.memory().numTensors - owned.length - before
    const leakedData = tf.engine().backend.numDataIds() - owned.length - dataBefore
    const [dq, dk, dvGrad, dBias] = values as [number[], number[], number[], number[] | undefined]
    return { out, dq, dk, dv: dvGrad, ...(dBias === undefined ? {} : { dBias }), leaked, leakedData }
  } finally {
    tf.dispose(owned)
  }
}
