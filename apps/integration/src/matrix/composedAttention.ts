import * as tf from '@tensorflow/tfjs-core'
import {
  type AttentionImpl,
  getAttention,
  type HeadLayout,
  headLayout,
  Module,
  SeededRandom,
} from '@xattn/core'
import { Linear, mergeHeads, QKVProjection } from '@xattn/kv-heads'
import { MemoryKV, memoryKvShapes } from '@xattn/memory-kv'

/** Options of {@link ComposedAttention}: the features the satellite packages provide. */
export interface ComposedAttentionOptions {
  readonly dim: number
  readonly heads: number
  readonly kvHeads: number
  readonly dimHead: number
  readonly valueDimHead: number
  /** Width of the cross-attention context; keys/values project from `x` when absent. */
  readonly dimContext?: number
  readonly numMemKv: number
  /** A registered attention implementation ('reference', 'flash'). */
  readonly attention: string
  readonly seed: number
}

/** Per-call options. */
export interface ComposedCall {
  readonly context?: tf.Tensor | null
  /** `bool [b, m]` over the real keys (memory slots are added by the memory module). */
  readonly keyMask?: tf.Tensor | null
  readonly causal?: boolean
  readonly alibiSlopes?: readonly number[] | null
  readonly dropout?: number
  readonly seed?: number
}

/**
 * One attention layer composed from the published packages the way a user of kv-heads, memory-kv
 * and flash would: `QKVProjection` (kv-heads) → memory KV prepend (memory-kv) → a registered
 * attention implementation (core registry: reference or flash) → merge heads → output projection.
 * Parameters: `to_q/to_k/to_v.weight`, `memory.mem_k/mem_v`, `to_out.weight`.
 *
 * `x [b n dim]` → `[b n dim]`.
 */
export class ComposedAttention extends Module {
  readonly layout: HeadLayout
  readonly qkv: QKVProjection
  readonly memory: MemoryKV | null
  readonly toOut: Linear
  readonly attend: AttentionImpl

  constructor(readonly options: ComposedAttentionOptions) {
    super()
    // Resolved first: an unregistered implementation is a ConfigError before any parameter exists.
    this.attend = getAttention(options.attention)
    this.layout = headLayout({
      heads: options.heads,
      kvHeads: options.kvHeads,
      dimHead: options.dimHead,
      valueDimHead: options.valueDimHead,
    })
    // Every option is validated before the first parameter is made (memoryKvShapes checks numMemKv).
    if (options.numMemKv !== 0) memoryKvShapes(this.layout, options.numMemKv)
    const rng = new SeededRandom(options.seed)
    this.qkv = new QKVProjection({
      layout: this.layout,
      dim: options.dim,
      dimKv: options.dimContext ?? options.dim,
      rng,
    })
    for (const [name, child] of this.qkv.namedChildren()) this.addModule(name, child)
    this.memory =
      options.numMemKv > 0
        ? this.addModule('memory', new MemoryKV({ layout: this.layout, numMemKv: options.numMemKv, rng }))
        : null
    this.toOut = this.addModule(
      'to_out',
      new Linear({ inFeatures: this.layout.dimOutInner, outFeatures: options.dim, rng }),
    )
  }

  /** Attention of queries `q` over given keys/values (memory prepended here), merged and projected. */
  attendOver(
    q: tf.Tensor4D,
    k: tf.Tensor4D,
    v: tf.Tensor4D,
    call: ComposedCall,
    training: boolean,
  ): tf.Tensor {
    return tf.tidy(() => {
      let keys = k
      let values = v
      let keyMask = call.keyMask ?? null
      if (this.memory !== null) {
        const prepended = this.memory.prepend({ k, v }, { keyMask })
        keys = prepended.k as tf.Tensor4D
        values = prepended.v as tf.Tensor4D
        keyMask = prepended.keyMask
      }
      const out = this.attend(
        { q, k: keys, v: values },
        {
          causal: call.causal ?? false,
          keyMask,
          alibiSlopes: call.alibiSlopes ?? null,
          alibiFreeKeys: this.options.numMemKv,
          dropout: call.dropout ?? 0,
          training,
          ...(call.seed === undefined ? {} : { seed: call.seed }),
        },
      )
      return this.toOut.forward(mergeHeads(out))
    })
  }

  /** The full forward pass: `x [b n dim]` → `[b n dim]`. */
  forward(x: tf.Tensor, call: ComposedCall = {}): tf.Tensor {
    return tf.tidy(() => {
      const context = call.context ?? null
      const { q, k, v } = this.qkv.forward(x, context)
      return this.attendOver(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, call, this.training)
    })
  }

  /**
   * Cached decoding, one query position at a time: self-attention appends each step's keys and
   * values to a cache (and takes the key mask's prefix), cross-attention projects the context
   * once. Step t's output must equal the last position of `forward` on `x[:, :t+1]`.
   * Returns the steps' outputs concatenated: `[b n dim]`.
   */
  decode(x: tf.Tensor, call: ComposedCall = {}): tf.Tensor {
    return tf.tidy(() => {
      const [b, n, dim] = x.shape as [number, number, number]
      const context = call.context ?? null
      // Cross-attention keys/values depend on the context only: project them once (the cache).
      const fixed = context === null ? null : this.qkv.forward(tf.slice(x, [0, 0, 0], [b, 1, dim]), context)
      let cacheK: tf.Tensor4D | null = null
      let cacheV: tf.Tensor4D | null = null
      const steps: tf.Tensor[] = []
      for (let t = 0; t < n; t++) {
        const xt = tf.slice(x, [0, t, 0], [b, 1, dim])
        const { q, k, v } = this.qkv.forward(xt, context)
        let keys: tf.Tensor4D
        let values: tf.Tensor4D
        let keyMask = call.keyMask ?? null
        if (fixed !== null) {
          keys = fixed.k as tf.Tensor4D
          values = fixed.v as tf.Tensor4D
        } else {
          keys = cacheK === null ? (k as tf.Tensor4D) : (tf.concat([cacheK, k], 2) as tf.Tensor4D)
          values = cacheV === null ? (v as tf.Tensor4D) : (tf.concat([cacheV, v], 2) as tf.Tensor4D)
          cacheK = keys
          cacheV = values
          if (keyMask !== null) keyMask = tf.slice(keyMask, [0, 0], [b, t + 1])
        }
        steps.push(this.attendOver(q as tf.Tensor4D, keys, values, { ...call, keyMask }, this.training))
      }
      return tf.concat(steps, 1)
    })
  }
}
