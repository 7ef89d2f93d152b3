import * as tf from '@tensorflow/tfjs-core'
import { Module, type SeededRandom } from '@xattn/core'
import { ModuleList } from './containers.js'
import { Embedding } from './embedding.js'
import { Linear } from './linear.js'
import { silu } from './tensorOps.js'

/**
 * A learned additive attention bias that depends only on relative positions. `bias(i, j)` gives
 * `[h, i, j]` for the last `i` of `j` positions (queries `j - i … j - 1` against keys `0 … j - 1`),
 * so a cached decoding step asks for `bias(1, j)`. Memory KV slots are not included.
 */
export interface PositionBias extends Module {
  bias(i: number, j: number): tf.Tensor3D
}

/** Options of {@link RelativePositionBias}. */
export interface RelativePositionBiasOptions {
  readonly heads: number
  readonly causal: boolean
  /** Multiplies the looked-up bias (x-transformers passes `dimHead ** 0.5`). */
  readonly scale: number
  readonly numBuckets?: number
  readonly maxDistance?: number
  readonly rng: SeededRandom
}

/**
 * T5 relative position bias: log-spaced distance buckets (`num_buckets`, `max_distance`), one
 * learned value per bucket and head (`relative_attention_bias.weight [numBuckets, heads]`).
 *
 * @example
 * const rel = new RelativePositionBias({ heads: 4, causal: true, scale: 8 ** 0.5, rng: new SeededRandom(0) })
 * rel.bias(16, 16) // [4, 16, 16]
 */
export class RelativePositionBias extends Module implements PositionBias {
  readonly table: Embedding
  readonly heads: number
  readonly causal: boolean
  readonly scale: number
  readonly numBuckets: number
  readonly maxDistance: number

  constructor(options: RelativePositionBiasOptions) {
    super()
    this.heads = options.heads
    this.causal = options.causal
    this.scale = options.scale
    this.numBuckets = options.numBuckets ?? 32
    this.maxDistance = options.maxDistance ?? 128
    this.table = this.addModule(
      'relative_attention_bias',
      new Embedding(this.numBuckets, this.heads, { rng: options.rng }),
    )
  }

  /** The bucket of each relative position `key - query` (computed on the host, as integers). */
  buckets(i: number, j: number): Int32Array {
    const out = new Int32Array(i * j)
    let numBuckets = this.numBuckets
    if (!this.causal) numBuckets = Math.floor(numBuckets / 2)
    const maxExact = Math.floor(numBuckets / 2)
    const logRange = Math.fround(Math.log(this.maxDistance / maxExact))
    for (let qi = 0; qi < i; qi++) {
      const qPos = j - i + qi
      for (let kj = 0; kj < j; kj++) {
        let n = -(kj - qPos)
        let ret = 0
        if (!this.causal) {
          if (n < 0) ret += numBuckets
          n = Math.abs(n)
        } else {
          n = Math.max(n, 0)
        }
        if (n < maxExact) {
          ret += n
        } else {
          // float32 arithmetic, as torch computes it, then truncation (.long()).
          const ratio = Math.fround(Math.fround(n) / maxExact)
          const scaled = Math.fround(
            Math.fround(Math.fround(Math.log(ratio)) / logRange) * (numBuckets - maxExact),
          )
          ret += Math.min(maxExact + Math.trunc(scaled), numBuckets - 1)
        }
        out[qi * j + kj] = ret
      }
    }
    return out
  }

  bias(i: number, j: number): tf.Tensor3D {
    return tf.tidy(() => {
      const idx = tf.tensor2d(this.buckets(i, j), [i, j], 'int32')
      const values = this.table.apply(idx) // [i, j, h]
      return tf.mul(tf.transpose(values, [2, 0, 1]), tf.scalar(this.scale)) as tf.Tensor3D
    })
  }
}

/** Options of {@link DynamicPositionBias}. */
export interface DynamicPositionBiasOptions {
  /** Hidden width of the MLP (x-transformers uses `dim / 4`). */
  readonly dim: number
  readonly heads: number
  /** Number of hidden layers (x-transformers' `dynamic_pos_bias_mlp_depth`, default 2). */
  readonly depth?: number
  /** Feed `sign(d)·log(|d| + 1)` instead of the raw distance. */
  readonly logDistance?: boolean
  readonly rng: SeededRandom
}

/**
 * Dynamic position bias: an MLP (`mlp.0.0`, `mlp.1.0`, …, `mlp.<depth>`) maps each relative
 * distance `query - key` to one bias per head.
 *
 * @example
 * const dyn = new DynamicPositionBias({ dim: 8, heads: 4, rng: new SeededRandom(0) })
 * dyn.bias(16, 16) // [4, 16, 16]
 */
export class DynamicPositionBias extends Module implements PositionBias {
  private readonly hidden: Linear[] = []
  private readonly out: Linear
  readonly logDistance: boolean

  constructor(options: DynamicPositionBiasOptions) {
    super()
    const depth = options.depth ?? 2
    this.logDistance = options.logDistance ?? false
    const mlp = this.addModule('mlp', new ModuleList())
    for (let layer = 0; layer < depth; layer++) {
      const seq = mlp.add(layer, new ModuleList())
      this.hidden.push(
        seq.add(0, new Linear(layer === 0 ? 1 : options.dim, options.dim, { bias: true, rng: options.rng })),
      )
    }
    this.out = mlp.add(depth, new Linear(options.dim, options.heads, { bias: true, rng: options.rng }))
  }

  bias(i: number, j: number): tf.Tensor3D {
    return tf.tidy(() => {
      // The last i queries (positions j-i … j-1) see distances query - key in -(i-1) … (j-1): only
      // those go through the MLP (i + j - 1 rows, so a cached step with i = 1 costs O(j), not O(j²)).
      // Row r of the MLP output is distance r - (i-1).
      let pos: tf.Tensor = tf.reshape(tf.range(-i + 1, j, 1, 'float32'), [i + j - 1, 1])
      if (this.logDistance) pos = tf.mul(tf.sign(pos), tf.log(tf.add(tf.abs(pos), tf.scalar(1))))
      for (const layer of this.hidden) pos = silu(layer.apply(pos))
      const table = this.out.apply(pos) // [i+j-1, h]: row r is distance r - (i-1)
      return toeplitz(tf.transpose(table, [1, 0]), i, j)
    })
  }
}

/**
 * `table [h, i+j-1]` (entry r = distance r - (i-1)) → `[h, i, j]` with
 * `out[:, q, k] = table[:, qPos - k + i - 1]` for the last `i` query positions `qPos = j - i + q`,
 * without a gather: the reversed table, padded by one column to width `W = i + j`, is tiled over
 * the `i` rows and re-read with a row stride one shorter (`W - 1`), which shifts each row by one
 * (the "skew" trick). Memory and gradient are O(h·i·(i+j)): O(h·j²) for a full pass, O(h·j) for a
 * cached step (a one-hot gather gradient is O(i·j²)).
 *
 * Why the pad: a row of the re-read must hold the `j` keys, and its length is the stride. Without
 * the pad the stride is `i + j - 2`, which is shorter than `j` when i = 1 (one query: a 1-token
 * input or a cached decoding step), and the slices went out of bounds.
 */
function toeplitz(table: tf.Tensor, i: number, j: number): tf.Tensor3D {
  const h = table.shape[0] as number
  const width = i + j // the padded table width W
  // padded[c] = table[i+j-2-c] for c < i+j-1 (the pad, c = i+j-1, is never read): out[q, k] =
  // padded[(i-1) - q + k], and (i-1) - q + k ∈ [0, i+j-2].
  const padded = tf.pad(tf.reverse(table, 1), [
    [0, 0],
    [0, 1],
  ])
  const tiled = tf.reshape(tf.tile(padded, [1, i]), [h, i * width])
  // Row q of the re-read starts at flat offset (i-1) + q·(W-1) = q·W + (i-1-q); the i rows of
  // W-1 ≥ j entries end at i·W - 1.
  const skewed = tf.reshape(tf.slice(tiled, [0, i - 1], [h, i * (width - 1)]), [h, i, width - 1])
  return tf.slice(skewed, [0, 0, 0], [h, i, j]) as tf.Tensor3D
}
