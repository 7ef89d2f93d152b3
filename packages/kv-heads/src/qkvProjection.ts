import * as tf from '@tensorflow/tfjs-core'
import {
  ConfigError,
  defineContract,
  type HeadLayout,
  Module,
  type NamedTensor,
  type RandomSource,
  SeededRandom,
  ShapeContractError,
} from '@xattn/core'
import { splitHeads } from './heads.js'
import { Linear } from './linear.js'
import type { RankCheck } from './rankCheck.js'

const PKG = '@xattn/kv-heads'
const CONTRACT = '@xattn/kv-heads QKVProjection'

const ProjectInputs = defineContract(CONTRACT, {
  x: { pattern: 'b n dim', dtype: 'float32' },
  context: { pattern: 'b m dimKv?', dtype: 'float32' },
})

/** Options of {@link QKVProjection}. */
export interface QKVProjectionOptions {
  /** The head arrangement: the only source of the projection widths. */
  readonly layout: HeadLayout
  /** Model width: the input of `to_q`. */
  readonly dim: number
  /** Width of the key/value source (cross-attention context). Default `dim`. */
  readonly dimKv?: number
  /** Seed or generator of the initial weights (`to_q`, `to_k`, `to_v` drawn in that order). Default seed 0. */
  readonly rng?: RandomSource
}

/** Split-head projections of one attention call. */
export interface QKV {
  /** `[b, heads, n, dimHead]` */
  readonly q: NamedTensor<'b h n d'>
  /** `[b, kvHeads, m, dimHead]` */
  readonly k: NamedTensor<'b kvh m d'>
  /** `[b, kvHeads, m, valueDimHead]` */
  readonly v: NamedTensor<'b kvh m dv'>
}

function positiveInteger(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(
      PKG,
      option,
      `QKVProjection: ${option} must be a positive integer, got ${String(value)}`,
    )
  }
  return value
}

/**
 * The query, key and value projections of one attention layer, shaped by a {@link HeadLayout}:
 * `to_q: dim → heads·dimHead`, `to_k: dimKv → kvHeads·dimHead`, `to_v: dimKv → kvHeads·valueDimHead`,
 * no bias, torch layout `[out, in]`. MHA, GQA and MQA are the same code: the layout decides.
 *
 * Parameters: `to_q.weight`, `to_k.weight`, `to_v.weight` (x-transformers' names). An Attention
 * module that must expose these names at its own level mounts the three children itself instead
 * of this module: `for (const [name, child] of qkv.namedChildren()) this.addModule(name, child)`
 * and keeps `qkv` as a plain field for {@link QKVProjection.forward}.
 *
 * Shapes: `x [b n dim]`, `context [b m dimKv]` (optional; keys and values come from `x` without
 * it) → `q [b h n d]`, `k [b kvh m d]`, `v [b kvh m dv]`.
 *
 * @example
 * const layout = headLayout({ heads: 8, kvHeads: 2, dimHead: 16 })
 * const qkv = new QKVProjection({ layout, dim: 64, rng: 0 })
 * const { q, k, v } = qkv.forward(x) // [b 8 n 16], [b 2 n 16], [b 2 n 16]
 */
export class QKVProjection extends Module {
  readonly layout: HeadLayout
  readonly dim: number
  readonly dimKv: number
  readonly toQ: Linear
  readonly toK: Linear
  readonly toV: Linear

  constructor(options: QKVProjectionOptions) {
    super()
    this.layout = options.layout
    this.dim = positiveInteger('dim', options.dim)
    this.dimKv = positiveInteger('dimKv', options.dimKv ?? options.dim)
    const rng =
      options.rng === undefined
        ? new SeededRandom(0)
        : typeof options.rng === 'number'
          ? new SeededRandom(options.rng)
          : options.rng
    const { dimInner, dimKvInner, dimValueInner } = this.layout
    this.toQ = this.addModule('to_q', new Linear({ inFeatures: this.dim, outFeatures: dimInner, rng }))
    this.toK = this.addModule('to_k', new Linear({ inFeatures: this.dimKv, outFeatures: dimKvInner, rng }))
    this.toV = this.addModule('to_v', new Linear({ inFeatures: this.dimKv, outFeatures: dimValueInner, rng }))
  }

  /** The children under x-transformers' names, for hosts that mount them at their own level. */
  namedChildren(): [name: 'to_q' | 'to_k' | 'to_v', child: Linear][] {
    return [
      ['to_q', this.toQ],
      ['to_k', this.toK],
      ['to_v', this.toV],
    ]
  }

  /** `x [b n dim]`, `context? [b m dimKv]` → `{ q [b h n d], k [b kvh m d], v [b kvh m dv] }`. */
  forward<X extends tf.Tensor, C extends tf.Tensor>(
    x: X & RankCheck<X, tf.Rank.R3>,
    context?: (C & RankCheck<C, tf.Rank.R3>) | null,
  ): QKV {
    ProjectInputs.check(
      { x, context: context ?? undefined },
      { given: { dim: this.dim, dimKv: this.dimKv }, givenBy: 'the projection' },
    )
    if (context == null && this.dimKv !== this.dim) {
      throw new ShapeContractError(
        CONTRACT,
        'context',
        `context is required: keys and values project from dimKv=${this.dimKv}, which differs from dim=${this.dim}`,
      )
    }
    const source = context ?? x
    return tf.tidy(() => ({
      q: splitHeads(this.toQ.forward(x), this.layout.heads),
      k: splitHeads(this.toK.forward(source), this.layout.kvHeads),
      v: splitHeads(this.toV.forward(source), this.layout.kvHeads),
    })) as QKV
  }
}
