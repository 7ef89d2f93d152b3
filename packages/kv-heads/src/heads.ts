import * as tf from '@tensorflow/tfjs-core'
import { defineContract, type HeadLayout, type NamedTensor } from '@xattn/core'
import type { RankCheck } from './rankCheck.js'

const SplitHeads = defineContract('@xattn/kv-heads splitHeads', {
  x: { pattern: 'b n (h d)', dtype: 'float32' },
})

const MergeHeads = defineContract('@xattn/kv-heads mergeHeads', {
  x: { pattern: 'b h n d', dtype: 'float32' },
})

const ExpandKv = defineContract('@xattn/kv-heads expandKv', {
  kv: { pattern: 'b kvh m d', dtype: 'float32' },
})

/**
 * `x [b n (h d)]` → `[b h n d]`: a reshape and a transpose, no copy of meaning. `heads` says how
 * the last axis splits; it must divide it.
 *
 * @example
 * const q = splitHeads(tf.zeros([2, 5, 32]), 4) // [2, 4, 5, 8]
 */
export function splitHeads<T extends tf.Tensor>(
  x: T & RankCheck<T, tf.Rank.R3>,
  heads: number,
): NamedTensor<'b h n d'> {
  const { b, n, d } = SplitHeads.check({ x }, { given: { h: heads }, givenBy: 'the heads argument' })
  return tf.tidy(() => tf.transpose(tf.reshape(x, [b, n, heads, d]), [0, 2, 1, 3])) as tf.Tensor4D
}

/**
 * `x [b h n d]` → `[b n (h d)]`, the inverse of {@link splitHeads}.
 *
 * @example
 * const merged = mergeHeads(tf.zeros([2, 4, 5, 8])) // [2, 5, 32]
 */
export function mergeHeads<T extends tf.Tensor>(x: T & RankCheck<T, tf.Rank.R4>): NamedTensor<'b n hd'> {
  const { b, h, n, d } = MergeHeads.check({ x })
  return tf.tidy(() => tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, n, h * d])) as tf.Tensor3D
}

/**
 * Repeats key or value heads to the full query head count: `kv [b kvh m d]` → `[b h m d]`, where
 * query head `i` gets KV head `i % kvh` (x-transformers' `repeat('b kvh n d -> b (r kvh) n d')`).
 * Only for paths that need one KV head per query head; the attention implementations of
 * `@xattn/core` and `@xattn/flash` take grouped KV directly. Checks `kvh` against the layout.
 *
 * @example
 * const layout = headLayout({ heads: 8, kvHeads: 2, dimHead: 16 })
 * const kFull = expandKv(k, layout) // [b, 2, m, 16] → [b, 8, m, 16]
 */
export function expandKv<T extends tf.Tensor>(
  kv: T & RankCheck<T, tf.Rank.R4>,
  layout: HeadLayout,
): NamedTensor<'b h m d'> {
  ExpandKv.check({ kv }, { given: { kvh: layout.kvHeads }, givenBy: 'the head layout' })
  // Tiling the head axis repeats the whole block [kv0 … kv(kvh-1)] `groups` times, so position i
  // holds KV head i % kvh.
  return tf.tidy(() =>
    layout.groups === 1 ? tf.clone(kv) : tf.tile(kv, [1, layout.groups, 1, 1]),
  ) as tf.Tensor4D
}
