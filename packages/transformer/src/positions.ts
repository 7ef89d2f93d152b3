import * as tf from '@tensorflow/tfjs-core'
import { Module, type SeededRandom } from '@xattn/core'
import { Embedding } from './embedding.js'
import { l2normalize } from './tensorOps.js'

/**
 * Learned absolute positions (`emb.weight [maxSeqLen, dim]`), scaled by `dim^-0.5` (or
 * l2-normalised instead, with `l2normEmbed`).
 *
 * @example
 * const pos = new AbsolutePositionalEmbedding(32, 16, { rng })
 * pos.apply(10) // [10, 32] for positions 0…9
 */
export class AbsolutePositionalEmbedding extends Module {
  readonly emb: Embedding
  readonly scale: number
  readonly l2normEmbed: boolean

  constructor(
    readonly dim: number,
    readonly maxSeqLen: number,
    { l2normEmbed = false, rng }: { l2normEmbed?: boolean; rng: SeededRandom },
  ) {
    super()
    this.l2normEmbed = l2normEmbed
    this.scale = l2normEmbed ? 1 : dim ** -0.5
    this.emb = this.addModule('emb', new Embedding(maxSeqLen, dim, { rng, std: l2normEmbed ? 1e-5 : 1 }))
  }

  /** Embeddings `[n, dim]` of positions `offset … offset + n - 1`. */
  apply(n: number, offset = 0): tf.Tensor2D {
    return tf.tidy(() => {
      const pos = tf.range(offset, offset + n, 1, 'int32')
      const emb = tf.mul(this.emb.apply(pos), tf.scalar(this.scale))
      return (this.l2normEmbed ? l2normalize(emb) : emb) as tf.Tensor2D
    })
  }
}

/**
 * Scaled sinusoidal positions: `[sin(p·f), cos(p·f)] · scale`, with a learned scalar `scale [1]`
 * (initial `dim^-0.5`) and `inv_freq = theta^-(i / (dim/2))` (a non-persistent buffer).
 *
 * @example
 * const pos = new ScaledSinusoidalEmbedding(32)
 * pos.apply(10) // [10, 32]
 */
export class ScaledSinusoidalEmbedding extends Module {
  readonly scale: tf.Variable

  constructor(
    readonly dim: number,
    readonly theta = 10000,
  ) {
    super()
    this.scale = this.addParameter('scale', tf.fill([1], dim ** -0.5))
    const half = dim / 2
    this.addBuffer(
      'inv_freq',
      tf.tidy(() =>
        tf.pow(tf.scalar(theta), tf.neg(tf.div(tf.range(0, half, 1, 'float32'), tf.scalar(half)))),
      ),
      { persistent: false },
    )
  }

  /** The non-persistent `inv_freq [dim/2]` buffer. */
  get invFreq(): tf.Tensor {
    return this.buffer('inv_freq')
  }

  /** Embeddings `[n, dim]` of positions `offset … offset + n - 1`. */
  apply(n: number, offset = 0): tf.Tensor2D {
    return tf.tidy(() => {
      const pos = tf.range(offset, offset + n, 1, 'float32')
      const emb = tf.mul(tf.reshape(pos, [n, 1]), tf.reshape(this.buffer('inv_freq'), [1, -1]))
      return tf.mul(tf.concat([tf.sin(emb), tf.cos(emb)], -1), this.scale) as tf.Tensor2D
    })
  }
}

/** Rotary frequencies for a run of positions, with the xpos scale when enabled. */
export interface RotaryFreqs {
  /** `[m, rotDim]`, each frequency repeated for its interleaved pair. */
  readonly freqs: tf.Tensor2D
  /** xpos scale `[m, rotDim]` (queries use it, keys its inverse), or null. */
  readonly scale: tf.Tensor2D | null
}

/** Options of {@link RotaryEmbedding}. */
export interface RotaryEmbeddingOptions {
  /** Rotated features per head (even). */
  readonly dim: number
  readonly useXpos?: boolean
  readonly scaleBase?: number
  readonly interpolationFactor?: number
  readonly base?: number
  readonly baseRescaleFactor?: number
}

/**
 * Rotary position embedding (GPT-J interleaved pairs). Persistent buffers `inv_freq [dim/2]` and,
 * with xpos, `scale [dim/2]`, as in x-transformers' state dict.
 *
 * @example
 * const rotary = new RotaryEmbedding({ dim: 32 })
 * const freqs = rotary.apply(16) // { freqs [16, 32], scale: null }
 * const qRot = applyRotary(q, freqs, false) // q [b, h, n, d≥32]
 */
export class RotaryEmbedding extends Module {
  readonly dim: number
  readonly interpolationFactor: number
  readonly scaleBase: number
  readonly useXpos: boolean

  constructor(options: RotaryEmbeddingOptions) {
    super()
    const { dim, useXpos = false, scaleBase = 512, interpolationFactor = 1, baseRescaleFactor = 1 } = options
    this.dim = dim
    this.useXpos = useXpos
    this.scaleBase = scaleBase
    this.interpolationFactor = interpolationFactor
    const base = (options.base ?? 10000) * baseRescaleFactor ** (dim / (dim - 2))
    this.addBuffer(
      'inv_freq',
      tf.tidy(() =>
        tf.div(tf.scalar(1), tf.pow(tf.scalar(base), tf.div(tf.range(0, dim, 2, 'float32'), tf.scalar(dim)))),
      ),
    )
    if (useXpos) {
      this.addBuffer(
        'scale',
        tf.tidy(() =>
          tf.div(tf.add(tf.range(0, dim, 2, 'float32'), tf.scalar(0.4 * dim)), tf.scalar(1.4 * dim)),
        ),
      )
    }
  }

  /**
   * Frequencies for positions `0 … m - 1` (the queries of a cached step use the last rows), with
   * x-transformers' xpos centre `floor(m / 2)`.
   */
  apply(m: number): RotaryFreqs {
    return this.positions(0, m, Math.floor(m / 2))
  }

  /**
   * Frequencies for the `n` positions `offset … offset + n - 1` only, as a KV-cached step needs
   * (O(n), not O(offset + n)). The xpos exponent is measured from position 0 rather than from a
   * centre that moves with the length: q·k only sees the difference of the query's and the key's
   * exponents, so any fixed origin gives the same logits, and a fixed one keeps keys scaled at
   * insert time valid at every later step. (Cost: the scales span `scale^(±m / scaleBase)` instead
   * of half that, still far inside float32 for any practical `m`.)
   */
  applyRange(n: number, offset = 0): RotaryFreqs {
    return this.positions(offset, n, 0)
  }

  private positions(offset: number, n: number, xposCentre: number): RotaryFreqs {
    // Interleave the [dim/2] frequency vector, not the [n, dim/2] table: tf.tile over n rows is the
    // slowest kernel of a cached step on wasm; the per-element products are the same.
    const freqs = tf.tidy(() => {
      const t = tf.reshape(tf.range(offset, offset + n, 1, 'float32'), [n, 1])
      const f = tf.mul(t, interleave(tf.reshape(this.buffer('inv_freq'), [1, -1])))
      return (
        this.interpolationFactor !== 1 ? tf.div(f, tf.scalar(this.interpolationFactor)) : f
      ) as tf.Tensor2D
    })
    if (!this.useXpos) return { freqs, scale: null }
    const scale = tf.tidy(() => {
      const t = tf.range(offset, offset + n, 1, 'float32')
      const power = tf.div(tf.sub(t, tf.scalar(xposCentre)), tf.scalar(this.scaleBase))
      return tf.pow(
        interleave(tf.reshape(this.buffer('scale'), [1, -1])),
        tf.reshape(power, [n, 1]),
      ) as tf.Tensor2D
    })
    return { freqs, scale }
  }
}

/** `[m, k]` → `[m, 2k]` with each column repeated twice in place (`(d r)` with r = 2). */
function interleave(x: tf.Tensor): tf.Tensor2D {
  const [m, k] = x.shape as [number, number]
  return tf.reshape(tf.tile(tf.reshape(x, [m, k, 1]), [1, 1, 2]), [m, 2 * k]) as tf.Tensor2D
}

/** `R [d, d]` with `(x · R)[2i] = -x[2i+1]`, `(x · R)[2i+1] = x[2i]`. */
function rotateHalfMatrix(d: number): tf.Tensor2D {
  const values = new Float32Array(d * d)
  for (let i = 0; i < d; i += 2) {
    values[(i + 1) * d + i] = -1
    values[i * d + i + 1] = 1
  }
  return tf.tensor2d(values, [d, d])
}

/**
 * Applies rotary embedding to the first `rotDim` features of `t [b h n d]`, using the last `n` rows
 * of `freqs` (and of the xpos `scale`, or its inverse for keys).
 */
export function applyRotary(t: tf.Tensor4D, rotary: RotaryFreqs, inverseScale: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, n, d] = t.shape
    const [m, rotDim] = rotary.freqs.shape
    const freqs = tf.slice(rotary.freqs, [m - n, 0], [n, rotDim])
    let cos = tf.cos(freqs)
    let sin = tf.sin(freqs)
    if (rotary.scale !== null) {
      let scale = tf.slice(rotary.scale, [m - n, 0], [n, rotDim])
      if (inverseScale) scale = tf.div(tf.scalar(1), scale)
      cos = tf.mul(cos, scale)
      sin = tf.mul(sin, scale)
    }
    const rot = rotDim === d ? t : tf.slice(t, [0, 0, 0, 0], [b, h, n, rotDim])
    // rotate_half on interleaved pairs, (x1, x2) → (-x2, x1), as one plain 2-D matMul with a signed
    // permutation: tf.unstack/stack over the last axis are ~100× slower on the wasm backend.
    const rotated = tf.reshape(tf.matMul(tf.reshape(rot, [b * h * n, rotDim]), rotateHalfMatrix(rotDim)), [
      b,
      h,
      n,
      rotDim,
    ])
    const out = tf.add(tf.mul(rot, cos), tf.mul(rotated, sin))
    if (rotDim === d) return out as tf.Tensor4D
    return tf.concat([out, tf.slice(t, [0, 0, 0, rotDim], [b, h, n, d - rotDim])], -1) as tf.Tensor4D
  })
}

/** ALiBi slopes for `heads` heads (geometric, with the interleaved extension for non powers of 2). */
export function alibiSlopes(heads: number): number[] {
  const powerOf2 = (n: number) => {
    const start = 2 ** -(2 ** -(Math.log2(n) - 3))
    return Array.from({ length: n }, (_, i) => start * start ** i)
  }
  if (Number.isInteger(Math.log2(heads))) return powerOf2(heads)
  const closest = 2 ** Math.floor(Math.log2(heads))
  return [
    ...powerOf2(closest),
    ...powerOf2(2 * closest)
      .filter((_, i) => i % 2 === 0)
      .slice(0, heads - closest),
  ]
}
