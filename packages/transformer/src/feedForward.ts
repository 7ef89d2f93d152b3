import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, Module, SeededRandom } from '@xattn/core'
import { ModuleList } from './containers.js'
import { Linear } from './linear.js'
import { LayerNorm } from './norms.js'
import { FEED_FORWARD_KEYS, rejectUnknownOptions } from './optionKeys.js'
import { gelu, maybeDropout, silu } from './tensorOps.js'

const PKG = '@xattn/transformer'

/** Options of {@link FeedForward}; names mirror x-transformers' `ff_*` kwargs. */
export interface FeedForwardOptions {
  readonly dim: number
  /** Output features; default `dim`. */
  readonly dimOut?: number
  /** Hidden width multiplier; default 4. */
  readonly mult?: number
  /** Gated linear unit: `proj(x) = [a, g]`, out `a · act(g)`. */
  readonly glu?: boolean
  /** A learned `mult_bias [inner]` on the GLU output. */
  readonly gluMultBias?: boolean
  /** SiLU activation (with `glu`: SwiGLU). */
  readonly swish?: boolean
  /** `relu(x)²` activation. */
  readonly reluSquared?: boolean
  /** A (no-offset) LayerNorm after the activation. */
  readonly postActLn?: boolean
  readonly dropout?: number
  /** No biases on the two linear layers (the GLU projection keeps its bias, as x-transformers). */
  readonly noBias?: boolean
  /** Zero-initialise the output projection. */
  readonly zeroInitOutput?: boolean
  readonly rng?: SeededRandom
}

type Activation = (x: tf.Tensor) => tf.Tensor

class GLU extends Module {
  readonly proj: Linear
  readonly multBias: tf.Variable | null

  constructor(
    dimIn: number,
    dimOut: number,
    readonly activation: Activation,
    multBias: boolean,
    rng: SeededRandom,
  ) {
    super()
    this.proj = this.addModule('proj', new Linear(dimIn, dimOut * 2, { bias: true, rng }))
    this.multBias = multBias ? this.addParameter('mult_bias', tf.ones([dimOut])) : null
  }

  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const projected = this.proj.apply(x)
      const [a, gate] = tf.split(projected, 2, -1) as [tf.Tensor, tf.Tensor]
      const out = tf.mul(a, this.activation(gate))
      return this.multBias === null ? out : tf.mul(out, this.multBias)
    })
  }
}

/**
 * x-transformers' FeedForward: `Linear(dim, mult·dim) → act → [LayerNorm] → dropout → Linear(…, dimOut)`;
 * GELU by default, SiLU with `swish`, `relu²` with `reluSquared`, gated with `glu`.
 * State-dict names as x-transformers (`ff.0.0.weight`, `ff.0.proj.weight`, `ff.1.gamma`, `ff.2.weight`, …).
 *
 * Shapes: `x [b n dim]` → `[b n dimOut]`.
 *
 * @example
 * const ff = new FeedForward({ dim: 32, glu: true, swish: true })
 * ff.apply(x) // [b, n, 32]
 */
export class FeedForward extends Module {
  private readonly projectIn: { apply(x: tf.Tensor): tf.Tensor }
  private readonly postActLn: LayerNorm | null
  private readonly projectOut: Linear
  readonly dropout: number

  constructor(options: FeedForwardOptions) {
    super()
    rejectUnknownOptions('FeedForward', options, FEED_FORWARD_KEYS)
    const { dim, mult = 4, glu = false, swish = false, reluSquared = false, noBias = false } = options
    if (!(Number.isInteger(dim) && dim > 0))
      throw new ConfigError(PKG, 'dim', `FeedForward: dim must be a positive integer, got ${dim}`)
    if (!(mult > 0)) throw new ConfigError(PKG, 'mult', `FeedForward: mult must be positive, got ${mult}`)
    this.dropout = options.dropout ?? 0
    if (!(this.dropout >= 0 && this.dropout < 1)) {
      throw new ConfigError(PKG, 'dropout', `FeedForward: dropout must be in [0, 1), got ${this.dropout}`)
    }
    const rng = options.rng ?? new SeededRandom(0)
    const inner = Math.trunc(dim * mult)
    const dimOut = options.dimOut ?? dim
    const activation: Activation = reluSquared ? (x) => tf.square(tf.relu(x)) : swish ? silu : gelu
    const ff = this.addModule('ff', new ModuleList())
    if (glu) {
      this.projectIn = ff.add(0, new GLU(dim, inner, activation, options.gluMultBias ?? false, rng))
    } else {
      const seq = ff.add(0, new ModuleList())
      const linear = seq.add(0, new Linear(dim, inner, { bias: !noBias, rng }))
      this.projectIn = { apply: (x) => tf.tidy(() => activation(linear.apply(x))) }
    }
    let index = 1
    this.postActLn = options.postActLn === true ? ff.add(index++, new LayerNorm(inner)) : null
    index++ // nn.Dropout occupies an index without parameters
    this.projectOut = ff.add(index, new Linear(inner, dimOut, { bias: !noBias, rng }))
    if (options.zeroInitOutput === true) {
      const { weight, bias } = this.projectOut
      tf.tidy(() => {
        weight.assign(tf.zerosLike(weight))
        if (bias !== null) bias.assign(tf.zerosLike(bias))
      })
    }
  }

  /** `x [b n dim]` → `[b n dimOut]`. */
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = this.projectIn.apply(x)
      if (this.postActLn !== null) h = this.postActLn.apply(h)
      h = maybeDropout(h, this.dropout, this.training)
      return this.projectOut.apply(h)
    })
  }
}
