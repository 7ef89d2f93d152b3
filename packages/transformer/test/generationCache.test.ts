import * as tf from '@tensorflow/tfjs-core'
import { describeEachBackend } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import { KvCache } from '../src/generation/kvCache.js'
import { createFromXTransformers } from '../src/xTransformers.js'

describeEachBackend('KvCache with TransformerWrapper', () => {
  it('grows by 2·layers·kvHeads·dimHead floats per token per sequence: GQA heads, no memory KV', () => {
    // heads 4, kvHeads 2, 2 memory KV, depth 3: memory slots and query heads must not be cached.
    const [depth, kvHeads, dimHead, b] = [3, 2, 8, 2]
    const model = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: {
        dim: 32,
        depth,
        heads: 4,
        attn_dim_head: dimHead,
        attn_kv_heads: kvHeads,
        attn_num_mem_kv: 2,
      },
      wrapper: { num_tokens: 16, max_seq_len: 32 },
    })
    model.eval()
    const cache = new KvCache()
    const before = tf.memory().numTensors
    const step = (n: number) => {
      const x = tf.ones([b, n], 'int32')
      const { logits, cache: entries, embeddings } = model.forwardWithCache(x, { cache: cache.entries })
      cache.update(entries, n)
      for (const t of [x, logits, embeddings]) t?.dispose()
    }
    step(5)
    expect(cache.floats()).toBe(5 * b * 2 * depth * kvHeads * dimHead)
    for (let i = 0; i < 3; i++) {
      const floats = cache.floats()
      step(1)
      expect(cache.floats() - floats).toBe(b * 2 * depth * kvHeads * dimHead)
    }
    expect(cache.offset).toBe(8)
    expect(tf.memory().numTensors - before).toBe(2 * depth)
    cache.dispose()
    expect(tf.memory().numTensors).toBe(before)
    model.dispose()
  })
})
