import type * as tf from '@tensorflow/tfjs-core'
import type { HeadLayout } from '@xattn/core'
import { describe, expectTypeOf, it } from 'vitest'
import {
  expandKv,
  type KvHeadMapping,
  mergeHeads,
  type QKV,
  type QKVProjection,
  regroupKvWeights,
  splitHeads,
} from '../src/index.js'

declare const layout: HeadLayout
declare const qkv: QKVProjection
declare const x3: tf.Tensor3D
declare const x4: tf.Tensor4D
declare const x2: tf.Tensor2D
declare const anyRank: tf.Tensor

describe('kv-heads types', () => {
  it('returns tensors whose rank follows the pattern', () => {
    expectTypeOf(splitHeads(x3, 4)).toEqualTypeOf<tf.Tensor4D>()
    expectTypeOf(mergeHeads(x4)).toEqualTypeOf<tf.Tensor3D>()
    expectTypeOf(expandKv(x4, layout)).toEqualTypeOf<tf.Tensor4D>()
    expectTypeOf(qkv.forward(x3)).toEqualTypeOf<QKV>()
    expectTypeOf(qkv.forward(x3).k).toEqualTypeOf<tf.Tensor4D>()
    expectTypeOf(
      regroupKvWeights({ toQ: x2 }, layout, { from: 'llama', to: 'x-transformers' }).toQ,
    ).toEqualTypeOf<tf.Tensor2D>()
  })

  it('accepts tensors of unknown rank (checked at runtime)', () => {
    splitHeads(anyRank, 4)
    mergeHeads(anyRank)
    expandKv(anyRank, layout)
    qkv.forward(anyRank, anyRank)
    regroupKvWeights({ toQ: anyRank, toOut: anyRank }, layout, { from: 'llama', to: 'x-transformers' })
  })

  it('rejects a known wrong rank at compile time', () => {
    // @ts-expect-error splitHeads takes 'b n (h d)' (rank 3)
    splitHeads(x4, 4)
    // @ts-expect-error mergeHeads takes 'b h n d' (rank 4)
    mergeHeads(x3)
    // @ts-expect-error expandKv takes 'b kvh m d' (rank 4)
    expandKv(x3, layout)
    // @ts-expect-error x is 'b n dim' (rank 3)
    qkv.forward(x4)
    // @ts-expect-error context is 'b m dimKv' (rank 3)
    qkv.forward(x3, x2)
    // @ts-expect-error to_q weights are [out, in] (rank 2)
    regroupKvWeights({ toQ: x3 }, layout, { from: 'llama', to: 'x-transformers' })
  })

  it('names the KV head mappings', () => {
    expectTypeOf<KvHeadMapping>().toEqualTypeOf<'x-transformers' | 'llama'>()
    // @ts-expect-error unknown convention
    regroupKvWeights({ toQ: x2 }, layout, { from: 'torch', to: 'llama' })
  })
})
