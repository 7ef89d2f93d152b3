import type { Axes, Tuple } from '../coveringArray.js'

/**
 * The feature axes of the combination matrix. Every pair of values is covered (see
 * coveringArray.ts). Values whose feature has not landed in a package yet are left out, with the
 * reason, and added when they land; the covering array grows with them.
 *
 * Not yet in the matrix (they need `@xattn/transformer`'s Attention/TransformerWrapper, which has
 * not landed): positions absolute, rotary, xpos, T5 relative bias, dynamic position bias; qk-norm
 * (on, dim-scale); memory tokens.
 */
export const AXES = {
  /** MHA: kvHeads = heads = 4; GQA: kvHeads 2; MQA: one KV head. */
  heads: ['MHA', 'GQA', 'MQA'],
  /** Learned memory key/values (@xattn/memory-kv). */
  numMemKv: ['0', '2'],
  /** The attention implementation from the core registry; 'flash' is registered by @xattn/flash. */
  attention: ['reference', 'flash'],
  backend: ['cpu', 'wasm'],
  /** Bottom-right causal masking. */
  causal: ['off', 'on'],
  /** Key-padding mask: none, trailing keys padded, leading keys padded, or a row with every key padded. */
  keyMask: ['none', 'padded', 'leftPadded', 'fullyPadded'],
  /** Keys/values from a context of another length and width. */
  crossAttention: ['off', 'on'],
  /** Position scheme; only ALiBi (slopes handled by the attention implementations) so far. */
  positions: ['none', 'alibi'],
  /** valueDimHead 12 vs dimHead 8. */
  valueDim: ['same', 'different'],
  /** Decoding one position at a time with a key/value cache. */
  kvCache: ['off', 'on'],
  /** Attention dropout in train mode. */
  dropout: ['off', 'on'],
} as const satisfies Axes

export type AxisName = keyof typeof AXES
export type Combination = { readonly [A in AxisName]: (typeof AXES)[A][number] }

/** Triples known to have broken in x-transformers; each must appear in some row. */
export const NAMED_TRIPLES: readonly Tuple[] = [
  { heads: 'MQA', numMemKv: '2', attention: 'flash' },
  { heads: 'GQA', numMemKv: '2', kvCache: 'on' },
  { attention: 'flash', kvCache: 'on', positions: 'alibi' },
  { kvCache: 'on', keyMask: 'leftPadded', causal: 'on' },
]

/** The seed of the covering array; changing it reshuffles the rows (and docs/compatibility.md). */
export const MATRIX_SEED = 20261128
