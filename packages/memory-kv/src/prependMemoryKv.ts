import * as tf from '@tensorflow/tfjs-core'
import { defineContract, type HeadLayout, type NamedTensor, ShapeContractError } from '@xattn/core'
import type { RankCheck } from './rankCheck.js'

const CONTRACT = '@xattn/memory-kv prependMemoryKv'

/**
 * The shapes of a memory prepend. `mem` is the number of memory slots; `kvh`, `d`, `dv` and `h`
 * are given by the head layout, so memory shaped with the query head count cannot slip through
 * under grouped or single KV heads.
 */
const PrependInputs = defineContract(CONTRACT, {
  k: { pattern: 'b kvh m d', dtype: 'float32' },
  v: { pattern: 'b kvh m dv', dtype: 'float32' },
  memK: { pattern: 'kvh mem d', dtype: 'float32' },
  memV: { pattern: 'kvh mem dv', dtype: 'float32' },
  keyMask: { pattern: 'b m?', dtype: 'bool' },
  bias: { pattern: 'b|1 h|1 n m?', dtype: 'float32' },
})

/** Keys and values of one attention call, split into heads. */
export interface KeysValues<K extends tf.Tensor = tf.Tensor, V extends tf.Tensor = tf.Tensor> {
  /** `[b, kvHeads, m, dimHead]` */
  readonly k: K & RankCheck<K, tf.Rank.R4>
  /** `[b, kvHeads, m, valueDimHead]` */
  readonly v: V & RankCheck<V, tf.Rank.R4>
}

/** The memory parameters: `memK [kvHeads, numMemKv, dimHead]`, `memV [kvHeads, numMemKv, valueDimHead]`. */
export interface MemoryTensors<K extends tf.Tensor = tf.Tensor, V extends tf.Tensor = tf.Tensor> {
  readonly memK: K & RankCheck<K, tf.Rank.R3>
  readonly memV: V & RankCheck<V, tf.Rank.R3>
}

/** Options of {@link prependMemoryKv}. */
export interface PrependOptions {
  /** The head layout the keys, values and memory must follow. */
  readonly layout: HeadLayout
  /** Key-padding mask `bool [b, m]` (`true` = may attend); padded with `true` for the memory slots. */
  readonly keyMask?: tf.Tensor | null
  /** Additive logits bias `[b|1, h|1, n, m]`; padded with 0 for the memory slots. */
  readonly bias?: tf.Tensor | null
  /**
   * Applied to the memory keys `[1, kvHeads, numMemKv, dimHead]` before they are repeated over the
   * batch; must keep the shape. Under qk-norm pass the same normalisation (and key scale) that was
   * applied to the real keys, so memory keys are l2-normalised too (x-transformers does this after
   * the qk-norm of the real keys; memory keys are never rotated).
   */
  readonly transformMemoryKeys?: ((memK: tf.Tensor4D) => tf.Tensor) | null
}

/** Keys, values, mask and bias with the memory slots first. */
export interface PrependedKeysValues {
  /** `[b, kvHeads, numMemKv + m, dimHead]` */
  readonly k: NamedTensor<'b kvh m d'>
  /** `[b, kvHeads, numMemKv + m, valueDimHead]` */
  readonly v: NamedTensor<'b kvh m dv'>
  /** `bool [b, numMemKv + m]`, or null when no mask was given (memory slots are always visible). */
  readonly keyMask: NamedTensor<'b m'> | null
  /** `[b|1, h|1, n, numMemKv + m]`, or null when no bias was given. */
  readonly bias: NamedTensor<'b h n m'> | null
  /** The number of memory slots prepended: pass it as `alibiFreeKeys` to the attention call. */
  readonly numMemKv: number
}

/**
 * Prepends learned memory key/values (x-transformers `num_mem_kv`) to the keys and values of one
 * attention call: `k [b kvh m d]`, `v [b kvh m dv]`, `memK [kvh M d]`, `memV [kvh M dv]` →
 * `k [b kvh (M+m) d]`, `v [b kvh (M+m) dv]`. The memory is repeated over the batch by tiling (not
 * by a broadcasting matMul, whose tfjs gradient is wrong). The key mask gets `true` and the bias
 * gets 0 on the left; queries keep their length, so bottom-right causal alignment lets every query
 * see every memory slot. The result is accepted as is by `attendReference` and `@xattn/flash`
 * (pass `alibiFreeKeys: M` there so ALiBi leaves the memory slots unbiased).
 *
 * With a KV cache, prepend to the cached-plus-new keys on every call and keep the memory out of
 * the cache (x-transformers never caches memory slots).
 *
 * All tensors are checked against the layout first: `kvh`, `d`, `dv` and `h` are given by it.
 * The returned tensors are new and owned by the caller.
 *
 * @example
 * const out = prependMemoryKv({ k, v }, { memK, memV }, { layout, keyMask })
 * attendReference({ q, k: out.k, v: out.v }, { keyMask: out.keyMask, causal: true })
 */
export function prependMemoryKv<
  K extends tf.Tensor,
  V extends tf.Tensor,
  MK extends tf.Tensor,
  MV extends tf.Tensor,
>(kv: KeysValues<K, V>, memory: MemoryTensors<MK, MV>, options: PrependOptions): PrependedKeysValues {
  const { layout } = options
  const { b, mem } = PrependInputs.check(
    {
      k: kv.k,
      v: kv.v,
      memK: memory.memK,
      memV: memory.memV,
      keyMask: options.keyMask ?? undefined,
      bias: options.bias ?? undefined,
    },
    {
      given: { kvh: layout.kvHeads, d: layout.dimHead, dv: layout.valueDimHead, h: layout.heads },
      givenBy: 'the head layout',
    },
  )
  const { kvHeads, dimHead, valueDimHead } = layout
  const transform = options.transformMemoryKeys ?? null
  const keyMask = options.keyMask ?? null
  const bias = options.bias ?? null

  const k = tf.tidy(() => {
    let memK: tf.Tensor = tf.reshape(memory.memK, [1, kvHeads, mem, dimHead])
    if (transform !== null) {
      memK = transform(memK as tf.Tensor4D)
      const shape = memK?.shape
      if (
        !Array.isArray(shape) ||
        shape.length !== 4 ||
        shape[0] !== 1 ||
        shape[1] !== kvHeads ||
        shape[2] !== mem ||
        shape[3] !== dimHead
      ) {
        throw new ShapeContractError(
          CONTRACT,
          'transformMemoryKeys',
          `transformMemoryKeys must keep the shape [1,${kvHeads},${mem},${dimHead}] ('1 kvh mem d'), got ${Array.isArray(shape) ? `[${shape.join(',')}]` : String(memK)}`,
        )
      }
    }
    return tf.concat([b === 1 ? memK : tf.tile(memK, [b, 1, 1, 1]), kv.k], 2)
  }) as tf.Tensor4D
  const v = tf.tidy(() => {
    const memV = tf.reshape(memory.memV, [1, kvHeads, mem, valueDimHead])
    return tf.concat([b === 1 ? memV : tf.tile(memV, [b, 1, 1, 1]), kv.v], 2)
  }) as tf.Tensor4D
  const paddedMask =
    keyMask === null
      ? null
      : (tf.tidy(() => tf.concat([tf.ones([b, mem], 'bool'), keyMask], 1)) as tf.Tensor2D)
  const paddedBias =
    bias === null
      ? null
      : (tf.tidy(() =>
          tf.pad(bias, [
            [0, 0],
            [0, 0],
            [0, 0],
            [mem, 0],
          ]),
        ) as tf.Tensor4D)
  return { k, v, keyMask: paddedMask, bias: paddedBias, numMemKv: mem }
}
