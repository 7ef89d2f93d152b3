import * as tf from '@tensorflow/tfjs-core'
import { initNormal, Module, SeededRandom } from '@xattn/core'
import type { AutoregressiveNet } from '../src/generation/autoregressiveWrapper.js'
import type { CacheEntry } from '../src/generation/kvCache.js'

/**
 * A tiny causal network for testing generation mechanics without the attention stack: token +
 * absolute position embeddings, a causal running mean over positions (its "keys/values", one
 * cache entry), and an output projection. Its logits depend on every earlier token and on
 * absolute positions, so cache and window mistakes change them.
 */
export class ToyNet extends Module implements AutoregressiveNet {
  readonly tokenEmb: tf.Variable
  readonly posEmb: tf.Variable
  readonly toLogits: tf.Variable
  /** Sequence length of every forward pass, in order. */
  readonly calls: number[] = []

  constructor(
    readonly numTokens: number,
    readonly maxSeqLen: number,
    readonly dim = 8,
    seed = 1,
    private readonly unsupported: string | null = null,
  ) {
    super()
    const rng = new SeededRandom(seed)
    this.tokenEmb = this.addParameter('token_emb', initNormal([numTokens, dim], rng, { std: 1 }))
    this.posEmb = this.addParameter('pos_emb', initNormal([maxSeqLen, dim], rng, { std: 1 }))
    this.toLogits = this.addParameter('to_logits', initNormal([dim, numTokens], rng, { std: 1 }))
  }

  cacheUnsupportedReason(): string | null {
    return this.unsupported
  }

  forward(tokens: tf.Tensor): tf.Tensor3D {
    const { logits, cache } = this.forwardWithCache(tokens, {})
    for (const { k, v } of cache) {
      k.dispose()
      v.dispose()
    }
    return logits
  }

  forwardWithCache(
    tokens: tf.Tensor,
    { cache }: { cache?: readonly CacheEntry[] | null },
  ): { logits: tf.Tensor3D; cache: CacheEntry[] } {
    const [b, n] = tokens.shape as [number, number]
    this.calls.push(n)
    const previous = cache?.[0] ?? null
    const offset = previous?.k.shape[2] ?? 0
    if (offset + n > this.maxSeqLen) throw new Error(`ToyNet: ${offset + n} positions > ${this.maxSeqLen}`)
    const [logits, all] = tf.tidy(() => {
      const emb = tf.reshape(tf.gather(this.tokenEmb, tf.reshape(tokens, [-1])), [b, 1, n, this.dim])
      const pos = tf.reshape(tf.slice(this.posEmb, [offset, 0], [n, this.dim]), [1, 1, n, this.dim])
      const kv = tf.add(emb, pos) as tf.Tensor4D
      const all = previous === null ? kv : (tf.concat([previous.k, kv], 2) as tf.Tensor4D)
      const m = all.shape[2]
      const sums = tf.slice(tf.cumsum(all, 2), [0, 0, m - n, 0], [b, 1, n, this.dim])
      const counts = tf.reshape(tf.range(m - n + 1, m + 1, 1, 'float32'), [1, 1, n, 1])
      const h = tf.reshape(tf.tanh(tf.div(sums, counts)), [b * n, this.dim])
      return [tf.reshape(tf.matMul(h, this.toLogits), [b, n, this.numTokens]) as tf.Tensor3D, all]
    })
    return { logits, cache: [{ k: all, v: tf.clone(all) }] }
  }
}
