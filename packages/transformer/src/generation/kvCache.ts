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
  /** Token shift rows `[b, maxShift, dim]` of the shifted layers this entry carries (constant size). */
  readonly tokenShift?: readonly tf.Tensor3D[]
}

/**
 * Incremental-decoding state between forward passes: the network's per-attention-layer cache
 * entries and the number of positions they cover. The cache owns its tensors; `dispose()` frees
 * them.
 *
 * Growth: each generated token adds `2 · selfLayers · kvHeads · dimHead` floats (with
 * `valueDimHead = dimHead`), independent of `heads` under GQA/MQA. Token shift (`shift_tokens`)
 * adds a constant `maxShift · dim` floats per shifted layer and sequence (the last pre-shift
 * rows), held from the first step and not growing with the length.
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
    const kept = new Set(entries.flatMap(tensorsOf).map((t) => t.id))
    for (const t of (this.current ?? []).flatMap(tensorsOf)) if (!kept.has(t.id)) t.dispose()
    this.current = entries
    this.length += n
  }

  /** Floats held: keys and values (what grows per token) plus any constant token shift rows. */
  floats(): number {
    let total = 0
    for (const t of (this.current ?? []).flatMap(tensorsOf)) total += t.size
    return total
  }

  /** Frees every cached tensor; the cache is empty (offset 0) afterwards. */
  dispose(): void {
    for (const t of (this.current ?? []).flatMap(tensorsOf)) t.dispose()
    this.current = null
    this.length = 0
  }
}

function tensorsOf(entry: CacheEntry): tf.Tensor[] {
  return [entry.k, entry.v, ...(entry.tokenShift ?? [])]
}
