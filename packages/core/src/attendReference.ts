import * as tf from '@tensorflow/tfjs-core'
import { type AttendInputs, type AttendOptions, checkAttendCall } from './attendContract.js'

/** The finite fill for masked logits (x-transformers uses `-torch.finfo(float32).max`). */
export const MASKED_LOGIT = -3.4028234663852886e38

/**
 * `q [b h n d]` · `k [b kvh m d]`ᵀ → `[b h n m]`, where query head i meets KV head `i % kvh`.
 * Heads are regrouped so one batched matMul with equal batch dims does the work (tfjs 4.22's
 * matMul gradient is wrong when batch dims broadcast, and einsum has no gradient).
 */
export function groupedScores(q: tf.Tensor4D, k: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, n, d] = q.shape
    const [, kvh, m] = k.shape
    const groups = h / kvh
    // Head i = g·kvh + j (x-transformers repeats 'b kvh … -> b (r kvh) …'), so splitting the
    // head axis as [groups, kvh] puts the KV head j second.
    const qGrouped = tf.reshape(tf.transpose(tf.reshape(q, [b, groups, kvh, n, d]), [0, 2, 1, 3, 4]), [
      b * kvh,
      groups * n,
      d,
    ])
    const scores = tf.matMul(qGrouped, tf.reshape(k, [b * kvh, m, d]), false, true)
    return tf.reshape(tf.transpose(tf.reshape(scores, [b, kvh, groups, n, m]), [0, 2, 1, 3, 4]), [b, h, n, m])
  })
}

/** `attn [b h n m]` · `v [b kvh m dv]` → `[b h n dv]`, with the same head grouping. */
export function groupedWeightedSum(attn: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, n, m] = attn.shape
    const [, kvh, , dv] = v.shape
    const groups = h / kvh
    const attnGrouped = tf.reshape(tf.transpose(tf.reshape(attn, [b, groups, kvh, n, m]), [0, 2, 1, 3, 4]), [
      b * kvh,
      groups * n,
      m,
    ])
    const out = tf.matMul(attnGrouped, tf.reshape(v, [b * kvh, m, dv]))
    return tf.reshape(tf.transpose(tf.reshape(out, [b, kvh, groups, n, dv]), [0, 2, 1, 3, 4]), [b, h, n, dv])
  })
}

/**
 * The boolean "may attend" mask `[b|1, 1, n, m]` from a key-padding mask and bottom-right causal
 * alignment, or null when nothing is masked.
 */
export function attentionMask(
  n: number,
  m: number,
  { causal = false, keyMask = null }: { causal?: boolean; keyMask?: tf.Tensor | null },
): tf.Tensor4D | null {
  if (!causal && keyMask == null) return null
  return tf.tidy(() => {
    let mask: tf.Tensor | null = null
    if (causal) {
      // Query i may see key j iff j <= i + (m - n): the diagonal sits at the bottom right, so
      // queries that follow a cache or memory slots see all of them.
      const rows = tf.add(tf.reshape(tf.range(0, n, 1, 'int32'), [n, 1]), tf.scalar(m - n, 'int32'))
      const cols = tf.reshape(tf.range(0, m, 1, 'int32'), [1, m])
      mask = tf.reshape(tf.lessEqual(cols, rows), [1, 1, n, m])
    }
    if (keyMask != null) {
      const [b] = keyMask.shape as [number, number]
      const keys = tf.reshape(keyMask, [b, 1, 1, m])
      mask = mask === null ? keys : tf.logicalAnd(mask, keys)
    }
    return mask as tf.Tensor4D
  })
}

/** ALiBi bias `[1, h, n, m]`: `-slope · |j - i - (m - n)|`, zero on the first `freeKeys` keys. */
export function alibiBias(slopes: ArrayLike<number>, n: number, m: number, freeKeys = 0): tf.Tensor4D {
  return tf.tidy(() => {
    const h = slopes.length
    const rows = tf.add(tf.reshape(tf.range(0, n, 1, 'float32'), [n, 1]), tf.scalar(m - n))
    const cols = tf.reshape(tf.range(0, m, 1, 'float32'), [1, m])
    const distance = tf.abs(tf.sub(cols, rows))
    const keep = tf.cast(tf.greaterEqual(cols, tf.scalar(freeKeys)), 'float32')
    const perHead = tf.neg(tf.reshape(tf.tensor1d(Array.from(slopes), 'float32'), [h, 1, 1]))
    return tf.reshape(tf.mul(perHead, tf.reshape(tf.mul(distance, keep), [1, n, m])), [1, h, n, m])
  })
}

/**
 * Softmax over keys with masked logits filled by a finite minimum; rows with no visible key
 * give all-zero weights rather than NaN or a uniform average.
 */
export function maskedSoftmax(logits: tf.Tensor4D, mask: tf.Tensor4D | null): tf.Tensor4D {
  return tf.tidy(() => {
    if (mask === null) return tf.softmax(logits) as tf.Tensor4D
    const rowVisible = tf.any(mask, -1, true)
    // A row with no visible key takes the softmax of its real (finite) logits and is then
    // zeroed: on webgpu the softmax of an all -maxFloat32 row is NaN, and NaN·0 stays NaN in
    // both the output and the gradient.
    const keep = tf.logicalOr(mask, tf.logicalNot(rowVisible))
    const filled = tf.where(keep, logits, tf.fill(logits.shape, MASKED_LOGIT))
    return tf.mul(tf.softmax(filled), tf.cast(rowVisible, 'float32'))
  })
}

/**
 * Reference attention, the oracle every faster path is tested against.
 *
 * `q [b h n d]`, `k [b kvh m d]`, `v [b kvh m dv]` → `[b h n dv]`. Follows the x-transformers
 * conventions: GQA query head `i` uses KV head `i % kvh`; bottom-right causal alignment when
 * m > n; `keyMask` true = may attend; masked logits filled with `-maxFloat32`; fully masked
 * rows give 0. Differentiable with `tf.grad`.
 *
 * @example
 * const out = attendReference({ q, k, v }, { causal: true, keyMask })
 */
export function attendReference(inputs: AttendInputs, options: AttendOptions = {}): tf.Tensor4D {
  const { n, m, d } = checkAttendCall('@xattn/core attendReference', inputs, options)
  return tf.tidy(() => {
    const q = inputs.q as tf.Tensor4D
    const scale = options.scale ?? d ** -0.5
    let logits = tf.mul(groupedScores(q, inputs.k as tf.Tensor4D), tf.scalar(scale)) as tf.Tensor4D
    if (options.bias != null) logits = tf.add(logits, options.bias) as tf.Tensor4D
    if (options.alibiSlopes != null) {
      logits = tf.add(logits, alibiBias(options.alibiSlopes, n, m, options.alibiFreeKeys ?? 0)) as tf.Tensor4D
    }
    const mask = attentionMask(n, m, { causal: options.causal ?? false, keyMask: options.keyMask ?? null })
    let attn = maskedSoftmax(logits, mask)
    const rate = options.dropout ?? 0
    if (options.training === true && rate > 0)
      attn = tf.dropout(attn, rate, undefined, options.seed) as tf.Tensor4D
    return groupedWeightedSum(attn, inputs.v as tf.Tensor4D)
  })
}
