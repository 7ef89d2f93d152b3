import type * as tf from '@tensorflow/tfjs-core'
import type { HeadLayout } from '@xattn/core'
import { describe, expectTypeOf, it } from 'vitest'
import { type MemoryKV, memoryKvShapes, prependMemoryKv } from '../src/index.js'

declare const layout: HeadLayout
declare const memory: MemoryKV
declare const k4: tf.Tensor4D
declare const k3: tf.Tensor3D
declare const m3: tf.Tensor3D
declare const anyRank: tf.Tensor

describe('memory-kv types', () => {
  it('returns the prepended tensors with their ranks', () => {
    const out = memory.prepend({ k: k4, v: k4 })
    expectTypeOf(out.k).toEqualTypeOf<tf.Tensor4D>()
    expectTypeOf(out.keyMask).toEqualTypeOf<tf.Tensor2D | null>()
    expectTypeOf(out.bias).toEqualTypeOf<tf.Tensor4D | null>()
    expectTypeOf(memoryKvShapes(layout, 2).mem_k).toEqualTypeOf<[number, number, number]>()
    prependMemoryKv({ k: anyRank, v: anyRank }, { memK: anyRank, memV: anyRank }, { layout })
  })

  it('rejects known wrong ranks and a missing layout at compile time', () => {
    // @ts-expect-error k is 'b kvh m d' (rank 4)
    memory.prepend({ k: k3, v: k4 })
    // @ts-expect-error memK is 'kvh mem d' (rank 3)
    prependMemoryKv({ k: k4, v: k4 }, { memK: k4, memV: m3 }, { layout })
    // @ts-expect-error the head layout is required: memory shapes come only from it
    prependMemoryKv({ k: k4, v: k4 }, { memK: m3, memV: m3 }, {})
  })
})
