import * as tf from '@tensorflow/tfjs-core'
import { ShapeContractError } from './errors.js'

/**
 * Backends where a synchronous read of one boolean is cheap (the data already lives in, or is
 * one copy away from, host memory). On GPU backends (`webgl`, `webgpu`) a synchronous read stalls
 * the command queue on every call, so the check is skipped there (documented on
 * {@link assertAllFinite}).
 */
const HOST_BACKENDS: ReadonlySet<string> = new Set(['cpu', 'wasm', 'tensorflow'])

/**
 * Throws a `ShapeContractError` naming the contract (and so the package) and the first tensor that
 * holds a NaN or ±Infinity. `tensors` maps names to tensors; `null`/`undefined` entries and
 * non-float tensors are skipped.
 *
 * Cost: one `isFinite` + `all` reduction per tensor, O(size), and a single synchronous read of
 * the combined result — small next to the O(n·m·d) of attention it guards. It runs on the host
 * backends (`cpu`, `wasm`, `tensorflow`); on `webgl`/`webgpu` it is skipped, because a synchronous
 * GPU→CPU read per call would stall the pipeline. Leaves no tensor behind, and is not recorded
 * for gradients (the reduction is not on any path to an output).
 *
 * @example
 * assertAllFinite('@xattn/flash flashAttention', { q, k, v, bias })
 * // ShapeContractError: @xattn/flash flashAttention: q holds NaN or Infinity values (shape [2,4,3,8]); …
 */
export function assertAllFinite(
  contractName: string,
  tensors: Readonly<Record<string, tf.Tensor | null | undefined>>,
): void {
  if (!HOST_BACKENDS.has(tf.getBackend())) return
  const checked = Object.entries(tensors).filter(
    (entry): entry is [string, tf.Tensor] =>
      entry[1] != null && entry[1].dtype === 'float32' && entry[1].size > 0,
  )
  if (checked.length === 0) return
  // One reduction per tensor, stacked so that a single read answers for all of them.
  const flags = tf.tidy(() => tf.stack(checked.map(([, t]) => tf.all(tf.isFinite(t)))))
  let values: ArrayLike<number | boolean>
  try {
    values = flags.dataSync()
  } finally {
    flags.dispose()
  }
  checked.forEach(([name, t], i) => {
    if (!values[i]) {
      throw new ShapeContractError(
        contractName,
        name,
        `${name} holds NaN or Infinity values (shape [${t.shape.join(',')}]); every element must be finite`,
      )
    }
  })
}

/**
 * Throws a `ShapeContractError` naming the contract and `tensorName` if `tensor` holds a NaN or
 * ±Infinity; see {@link assertAllFinite} for the cost and the backends it runs on.
 *
 * @example
 * assertFinite('@xattn/transformer TransformerWrapper.forward', 'context', context)
 */
export function assertFinite(
  contractName: string,
  tensorName: string,
  tensor: tf.Tensor | null | undefined,
): void {
  assertAllFinite(contractName, { [tensorName]: tensor })
}
