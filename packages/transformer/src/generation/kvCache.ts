import * as tf from '@tensorflow/tfjs-core'
import { ConfigError } from '@xattn/core'

const PKG = '@xattn/transformer'

interface Pair {
  k: tf.Tensor4D
  v: tf.Tensor4D
}

/**
 * Incremental-decoding state of a decoder: per self-attention layer the keys and values seen so
 * far (`[b, kvHeads, t, dimHead]`, after rotary/qk-norm and before memory KV, which is never
 * cached), per cross-attention layer the context keys/values (computed once), and per token-shift
 * layer the inputs the shift still needs. The cache owns its tensors; `dispose()` frees them.
 *
 * Growth: each generated token adds `2 · selfLayers · kvHeads · dimHead` floats (with
 * `valueDimHead = dimHead`), independent of `heads` under GQA/MQA.
 *
 * @example
 * const cache = new KvCache()
 * const logits = net.forward(prompt, { cache }); cache.advance(prompt.shape[1])
 * // next step feeds only the new token
 * const next = net.forward(token, { cache }); cache.advance(1)
 * cache.dispose()
 */
export class KvCache {
  private readonly self = new Map<number, Pair>()
  private readonly cross = new Map<number, Pair>()
  private readonly shift = new Map<number, tf.Tensor>()
  private length = 0
  private pending = new Set<number>()

  /** Positions already cached: the position offset of the next forward pass. */
  get offset(): number {
    return this.length
  }

  /**
   * Appends the new keys/values of self-attention layer `layer` along the sequence axis and
   * returns everything cached for it (owned by the cache: do not dispose; survives tidy scopes).
   */
  appendSelf(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): Pair {
    if (this.pending.has(layer)) {
      throw new ConfigError(
        PKG,
        'cache',
        `KvCache.appendSelf: layer ${layer} appended twice in one step (call advance(n) after each forward pass)`,
      )
    }
    const previous = this.self.get(layer)
    if (previous !== undefined) {
      const [b, h, t, d] = previous.k.shape
      const [bn, hn, , dn] = k.shape
      if (b !== bn || h !== hn || d !== dn || t !== this.length) {
        throw new ConfigError(
          PKG,
          'cache',
          `KvCache.appendSelf: layer ${layer} holds keys [${previous.k.shape}] (offset ${this.length}), new keys are [${k.shape}]`,
        )
      }
    } else if (this.length !== 0) {
      throw new ConfigError(
        PKG,
        'cache',
        `KvCache.appendSelf: layer ${layer} first seen at offset ${this.length}`,
      )
    }
    const next: Pair =
      previous === undefined
        ? { k: tf.keep(tf.clone(k)), v: tf.keep(tf.clone(v)) }
        : { k: tf.keep(tf.concat([previous.k, k], 2)), v: tf.keep(tf.concat([previous.v, v], 2)) }
    if (previous !== undefined) {
      previous.k.dispose()
      previous.v.dispose()
    }
    this.self.set(layer, next)
    this.pending.add(layer)
    return next
  }

  /** The cached context keys/values of cross-attention layer `layer`, or null before the first step. */
  crossKv(layer: number): Pair | null {
    return this.cross.get(layer) ?? null
  }

  /** Stores context keys/values of cross-attention layer `layer` (the cache keeps a copy). */
  setCrossKv(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): void {
    const previous = this.cross.get(layer)
    this.cross.set(layer, { k: tf.keep(tf.clone(k)), v: tf.keep(tf.clone(v)) })
    previous?.k.dispose()
    previous?.v.dispose()
  }

  /** What token-shift layer `layer` kept of earlier inputs, or null on the first step. */
  shiftState(layer: number): tf.Tensor | null {
    return this.shift.get(layer) ?? null
  }

  /** Stores the tail of token-shift layer `layer`'s input (the cache keeps a copy). */
  setShiftState(layer: number, x: tf.Tensor): void {
    const previous = this.shift.get(layer)
    this.shift.set(layer, tf.keep(tf.clone(x)))
    previous?.dispose()
  }

  /** Marks `n` new positions as cached; call once after each forward pass. */
  advance(n: number): void {
    for (const [layer, pair] of this.self) {
      if (pair.k.shape[2] !== this.length + n) {
        throw new ConfigError(
          PKG,
          'cache',
          `KvCache.advance: layer ${layer} holds ${pair.k.shape[2]} positions, expected ${this.length} + ${n}`,
        )
      }
    }
    this.length += n
    this.pending = new Set()
  }

  /** Number of self-attention layers cached. */
  get layers(): number {
    return this.self.size
  }

  /** Floats held for self-attention keys and values (what grows per token). */
  selfFloats(): number {
    let total = 0
    for (const pair of this.self.values()) total += pair.k.size + pair.v.size
    return total
  }

  /** Frees every cached tensor; the cache is empty (offset 0) afterwards. */
  dispose(): void {
    for (const pair of [...this.self.values(), ...this.cross.values()]) {
      pair.k.dispose()
      pair.v.dispose()
    }
    for (const t of this.shift.values()) t.dispose()
    this.self.clear()
    this.cross.clear()
    this.shift.clear()
    this.length = 0
    this.pending = new Set()
  }
}
