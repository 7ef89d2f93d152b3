import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, defineContract, type HeadLayout } from '@xattn/core'

import type { RankCheck } from './rankCheck.js'

const PKG = '@xattn/kv-heads'

/**
 * Which KV head a query head reads:
 * - `'x-transformers'`: query head `i` ↔ KV head `i % kvHeads` (this library, x-transformers);
 * - `'llama'`: query head `i` ↔ KV head `floor(i / groups)` (llama-style checkpoints, `repeat_kv`).
 */
export type KvHeadMapping = 'x-transformers' | 'llama'

const MAPPINGS: readonly KvHeadMapping[] = ['x-transformers', 'llama']

const RegroupWeights = defineContract('@xattn/kv-heads regroupKvWeights', {
  toQ: { pattern: '(h d) dim', dtype: 'float32' },
  toOut: { pattern: 'dimOut (h dv)?', dtype: 'float32' },
})

function checkMapping(option: 'from' | 'to', value: unknown): KvHeadMapping {
  if (!MAPPINGS.includes(value as KvHeadMapping)) {
    throw new ConfigError(
      PKG,
      option,
      `regroupKvWeights: ${option} must be one of ${MAPPINGS.map((m) => `'${m}'`).join(', ')}, got ${String(value)}`,
    )
  }
  return value as KvHeadMapping
}

/** The KV head that query head `queryHead` reads under a mapping. */
export function kvHeadOf(
  queryHead: number,
  layout: HeadLayout,
  mapping: KvHeadMapping = 'x-transformers',
): number {
  return mapping === 'x-transformers' ? queryHead % layout.kvHeads : Math.floor(queryHead / layout.groups)
}

/**
 * The query-head order that turns a model in the `from` mapping into the same model in the `to`
 * mapping: new query head `p` is old query head `perm[p]`. Apply it to anything indexed by query
 * head (to_q rows, to_out columns, per-head scales, ALiBi slopes). KV heads never move.
 *
 * @example
 * const layout = headLayout({ heads: 4, kvHeads: 2, dimHead: 8 })
 * queryHeadPermutation(layout, 'llama', 'x-transformers') // [0, 2, 1, 3]
 */
export function queryHeadPermutation(layout: HeadLayout, from: KvHeadMapping, to: KvHeadMapping): number[] {
  checkMapping('from', from)
  checkMapping('to', to)
  const { heads, kvHeads, groups } = layout
  const perm: number[] = []
  for (let p = 0; p < heads; p++) {
    // The new head p reads KV head kv and is the g-th query head of that KV head's group; find the
    // old head with the same (kv, g).
    const kv = kvHeadOf(p, layout, to)
    const g = to === 'x-transformers' ? Math.floor(p / kvHeads) : p % groups
    perm.push(from === 'x-transformers' ? g * kvHeads + kv : kv * groups + g)
  }
  return perm
}

/** Weights to convert between KV head mappings (torch layout `[out, in]`). */
export interface RegroupKvWeightsInput<Q extends tf.Tensor = tf.Tensor, O extends tf.Tensor = tf.Tensor> {
  /** `to_q.weight [(heads dimHead), dim]`: rows are grouped by query head. */
  readonly toQ: Q & RankCheck<Q, tf.Rank.R2>
  /** `to_out.weight [dimOut, (heads valueDimHead)]`: columns are grouped by query head. */
  readonly toOut?: (O & RankCheck<O, tf.Rank.R2>) | null
}

/** Converted weights; new tensors owned by the caller. */
export interface RegroupKvWeightsOutput {
  readonly toQ: tf.Tensor2D
  readonly toOut: tf.Tensor2D | null
}

/**
 * Converts attention weights between KV head mappings so that checkpoints of either convention
 * load and give identical outputs.
 *
 * With `kvHeads < heads`, `to_k`/`to_v` hold one block per KV head, and the two conventions differ
 * only in which query heads read which KV head. So the K/V weights stay as they are, and the query
 * heads are reordered: the rows of `to_q` and, to keep the merged output in the same feature
 * order, the matching columns of `to_out` (see {@link queryHeadPermutation}). With `kvHeads` equal
 * to `heads` or 1 the permutation is the identity. Rotary conventions (interleaved vs half-split
 * pairs) are a separate matter and not handled here.
 *
 * Shapes: `toQ [(h d) dim]`, `toOut [dimOut (h dv)]` with h, d, dv from the layout.
 *
 * @example
 * const { toQ, toOut } = regroupKvWeights({ toQ: wq, toOut: wo }, layout, { from: 'llama', to: 'x-transformers' })
 */
export function regroupKvWeights<Q extends tf.Tensor, O extends tf.Tensor>(
  weights: RegroupKvWeightsInput<Q, O>,
  layout: HeadLayout,
  { from, to }: { from: KvHeadMapping; to: KvHeadMapping },
): RegroupKvWeightsOutput {
  const { dim, dimOut } = RegroupWeights.check(
    { toQ: weights.toQ, toOut: weights.toOut ?? undefined },
    { given: { h: layout.heads, d: layout.dimHead, dv: layout.valueDimHead }, givenBy: 'the head layout' },
  )
  const perm = queryHeadPermutation(layout, from, to)
  const { heads, dimHead, valueDimHead } = layout
  const index = tf.tensor1d(perm, 'int32')
  try {
    const toQ = tf.tidy(
      () =>
        tf.reshape(tf.gather(tf.reshape(weights.toQ, [heads, dimHead, dim]), index, 0), [
          heads * dimHead,
          dim,
        ]) as tf.Tensor2D,
    )
    const wOut = weights.toOut
    const toOut =
      wOut == null || dimOut === undefined
        ? null
        : tf.tidy(
            () =>
              tf.reshape(tf.gather(tf.reshape(wOut, [dimOut, heads, valueDimHead]), index, 1), [
                dimOut,
                heads * valueDimHead,
              ]) as tf.Tensor2D,
          )
    return { toQ, toOut }
  } finally {
    index.dispose()
  }
}
