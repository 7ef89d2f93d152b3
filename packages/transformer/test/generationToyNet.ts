import * as tf from '@tensorflow/tfjs-core'
import { initNormal, Module, SeededRandom } from '@xattn/core'
import type { AutoregressiveNet, AutoregressiveNetCall } from '../src/generation/autoregressiveWrapper.js'

/**
 * A tiny causal network for testing generation mechanics without the attention stack: token +
 * absolute position embeddings, a causal running mean over positions (kept in the KvCache as one
 * "layer" of keys/values), and an output projection. Its logits depend on every earlier token
 * and on absolute positions, so cache and window mistakes change them.
 */
export class ToyNet extends Module implements AutoregressiveNet {
  readonly tokenEmb: tf.Variable
  readonly posEmb: tf.Variable
  readonly toLogits: tf.Variable
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

  forward(tokens: tf.Tensor2D, { cache }: AutoregressiveNetCall = {}): tf.Tensor3D {
    const [b, n] = tokens.shape
    this.calls.push(n)
    const offset = cache?.offset ?? 0
    if (offset + n > this.maxSeqLen) throw new Error(`ToyNet: ${offset + n} positions > ${this.maxSeqLen}`)
    return tf.tidy(() => {
      const emb = tf.reshape(tf.gather(this.tokenEmb, tf.reshape(tokens, [-1])), [b, 1, n, this.dim])
      const pos = tf.reshape(tf.slice(this.posEmb, [offset, 0], [n, this.dim]), [1, 1, n, this.dim])
      const kv = tf.add(emb, pos) as tf.Tensor4D
      const all = cache === undefined ? kv : cache.appendSelf(0, kv, kv).k
      const m = all.shape[2]
      const sums = tf.slice(tf.cumsum(all, 2), [0, 0, m - n, 0], [b, 1, n, this.dim])
      const counts = tf.reshape(tf.range(m - n + 1, m + 1, 1, 'float32'), [1, 1, n, 1])
      const h = tf.reshape(tf.tanh(tf.div(sums, counts)), [b * n, this.dim])
      return tf.reshape(tf.matMul(h, this.toLogits), [b, n, this.numTokens]) as tf.Tensor3D
    })
  }
}
