import type * as tf from '@tensorflow/tfjs-core'
import { ConfigError } from '@xattn/core'

const PKG = '@xattn/transformer'

/**
 * One attention layer's cached keys and values: `k [b, kvHeads, m, dimHead]`,
 * `v [b, kvHeads, m, valueDimHead]` (the network's `AttentionCache`). Memory KV is never in it.
 */
export interface CacheEntry {
  readonly k: tf.Tensor4D
  readonly v: tf.Tensor4D
}

/**
 * Incremental-decoding state between forward passes: the network's per-attention-layer cache
 * entries and the number of positions they cover. The cache owns its tensors; `dispose()` frees
 * them.
 *
 * Growth: each generated token adds `2 · selfLayers · kvHeads · dimHead` floats (with
 * `valueDimHead = dimHead`), independent of `heads` under GQA/MQA.
 *
 * @example
 * const cache = new KvCache()
 * const { logits, cache: entries } = net.forwardWithCache(prompt, { cache: cache.entries })
 * cache.update(entries, prompt.shape[1])
 * cache.dispose()
 */
export class KvCache {
  private current: CacheEntry[] | null = null
  private length = 0

  /** The entries to pass to the network's next forward pass (null before the first). */
  get entries(): readonly CacheEntry[] | null {
    return this.current
  }

  /** Positions already cached: the position offset of the next forward pass. */
  get offset(): number {
    return this.length
  }

  /**
   * Takes ownership of the entries a forward pass returned for `n` new positions, and frees the
   * previous ones (those the network did not hand back unchanged).
   */
  update(entries: CacheEntry[], n: number): void {
    if (this.current !== null && entries.length !== this.current.length) {
      throw new ConfigError(
        PKG,
        'cache',
        `KvCache.update: the network returned ${entries.length} cache entries, previously ${this.current.length}`,
      )
    }
    const kept = new Set(entries.flatMap(({ k, v }) => [k.id, v.id]))
    for (const { k, v } of this.current ?? []) {
      if (!kept.has(k.id)) k.dispose()
      if (!kept.has(v.id)) v.dispose()
    }
    this.current = entries
    this.length += n
  }

  /** Floats held for keys and values (what grows per token). */
  floats(): number {
    let total = 0
    for (const { k, v } of this.current ?? []) total += k.size + v.size
    return total
  }

  /** Frees every cached tensor; the cache is empty (offset 0) afterwards. */
  dispose(): void {
    for (const { k, v } of this.current ?? []) {
      k.dispose()
      v.dispose()
    }
    this.current = null
    this.length = 0
  }
}
