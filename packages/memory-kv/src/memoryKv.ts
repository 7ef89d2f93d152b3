import type * as tf from '@tensorflow/tfjs-core'
import {
  ConfigError,
  type HeadLayout,
  initNormal,
  Module,
  type RandomSource,
  SeededRandom,
} from '@xattn/core'
import {
  type KeysValues,
  type PrependedKeysValues,
  type PrependOptions,
  prependMemoryKv,
} from './prependMemoryKv.js'

const PKG = '@xattn/memory-kv'

/** Options of {@link MemoryKV} and {@link initMemoryKv}. */
export interface MemoryKVOptions {
  /** The head layout: the only source of the memory shapes. */
  readonly layout: HeadLayout
  /** Number of memory slots (x-transformers `num_mem_kv`), a positive integer. */
  readonly numMemKv: number
  /** Seed or generator; `mem_k` is drawn before `mem_v`. Default seed 0. */
  readonly rng?: RandomSource
}

/** The parameter shapes under x-transformers' names. */
export interface MemoryKvShapes {
  /** `[kvHeads, numMemKv, dimHead]` */
  readonly mem_k: [number, number, number]
  /** `[kvHeads, numMemKv, valueDimHead]` */
  readonly mem_v: [number, number, number]
}

function checkNumMemKv(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(
      PKG,
      'numMemKv',
      `numMemKv must be a positive integer (leave memory KV out for 0), got ${String(value)}`,
    )
  }
  return value
}

/**
 * The memory parameter shapes, from the head layout only: `mem_k [kvHeads, numMemKv, dimHead]`,
 * `mem_v [kvHeads, numMemKv, valueDimHead]`. With one KV head they have one head, whatever the
 * query head count.
 *
 * @example
 * memoryKvShapes(headLayout({ heads: 8, oneKvHead: true, dimHead: 16 }), 4)
 * // { mem_k: [1, 4, 16], mem_v: [1, 4, 16] }
 */
export function memoryKvShapes(layout: HeadLayout, numMemKv: number): MemoryKvShapes {
  const slots = checkNumMemKv(numMemKv)
  return {
    mem_k: [layout.kvHeads, slots, layout.dimHead],
    mem_v: [layout.kvHeads, slots, layout.valueDimHead],
  }
}

/**
 * Fresh initial memory tensors under x-transformers' names, standard normal like
 * `torch.randn`, for a host module that owns the parameters itself:
 *
 * @example
 * // inside an Attention module (a Module subclass):
 * const init = initMemoryKv({ layout, numMemKv: 4, rng })
 * this.memK = this.addParameter('mem_k', init.mem_k)
 * this.memV = this.addParameter('mem_v', init.mem_v)
 * // per call:
 * prependMemoryKv({ k, v }, { memK: this.memK, memV: this.memV }, { layout, keyMask })
 */
export function initMemoryKv(options: MemoryKVOptions): { mem_k: tf.Tensor3D; mem_v: tf.Tensor3D } {
  const shapes = memoryKvShapes(options.layout, options.numMemKv)
  const rng =
    options.rng === undefined
      ? new SeededRandom(0)
      : typeof options.rng === 'number'
        ? new SeededRandom(options.rng)
        : options.rng
  return {
    mem_k: initNormal(shapes.mem_k, rng) as tf.Tensor3D,
    mem_v: initNormal(shapes.mem_v, rng) as tf.Tensor3D,
  }
}

/**
 * Learned memory key/values (x-transformers `num_mem_kv`) as a module with parameters
 * `mem_k [kvHeads, numMemKv, dimHead]` and `mem_v [kvHeads, numMemKv, valueDimHead]`, shaped only
 * from the head layout and initialised standard normal.
 *
 * Mounted as a child named `memory`, its parameters are `memory.mem_k`/`memory.mem_v`. A layer
 * that must match x-transformers' state dict (where the Attention holds `mem_k`/`mem_v` itself)
 * owns them instead with {@link initMemoryKv} and calls {@link prependMemoryKv}.
 *
 * @example
 * const layout = headLayout({ heads: 8, oneKvHead: true, dimHead: 16 })
 * const memory = new MemoryKV({ layout, numMemKv: 4, rng: 0 })
 * const { k: kAll, v: vAll, keyMask: maskAll } = memory.prepend({ k, v }, { keyMask })
 * const out = attendReference({ q, k: kAll, v: vAll }, { keyMask: maskAll, causal: true })
 */
export class MemoryKV extends Module {
  readonly layout: HeadLayout
  readonly numMemKv: number
  /** `[kvHeads, numMemKv, dimHead]` */
  readonly memK: tf.Variable
  /** `[kvHeads, numMemKv, valueDimHead]` */
  readonly memV: tf.Variable

  constructor(options: MemoryKVOptions) {
    super()
    const init = initMemoryKv(options)
    this.layout = options.layout
    this.numMemKv = options.numMemKv
    this.memK = this.addParameter('mem_k', init.mem_k)
    this.memV = this.addParameter('mem_v', init.mem_v)
  }

  /**
   * {@link prependMemoryKv} with this module's memory and layout:
   * `k [b kvh m d]`, `v [b kvh m dv]` → `k [b kvh (M+m) d]`, `v [b kvh (M+m) dv]`, with the key
   * mask and bias padded for the memory slots.
   */
  prepend<K extends tf.Tensor, V extends tf.Tensor>(
    kv: KeysValues<K, V>,
    options: Omit<PrependOptions, 'layout'> = {},
  ): PrependedKeysValues {
    return prependMemoryKv<K, V, tf.Tensor, tf.Tensor>(
      kv,
      { memK: this.memK, memV: this.memV },
      { ...options, layout: this.layout },
    )
  }
}
