import type * as tf from '@tensorflow/tfjs-core'
import type { AttentionImpl } from '@xattn/core'
import { expectTypeOf, test } from 'vitest'
import { type FlashAttention, type FlashAttentionGrad, flashAttention } from './index.js'

declare const q: tf.Tensor4D
declare const k: tf.Tensor4D
declare const v: tf.Tensor4D

test('flashAttention has the AttentionImpl signature and returns a rank-4 tensor', () => {
  expectTypeOf(flashAttention).toExtend<AttentionImpl>()
  expectTypeOf(flashAttention({ q, k, v }, { causal: true })).toEqualTypeOf<tf.Tensor4D>()
  expectTypeOf<typeof FlashAttention>().toEqualTypeOf<'FlashAttention'>()
  expectTypeOf<typeof FlashAttentionGrad>().toEqualTypeOf<'FlashAttentionGrad'>()
  // @ts-expect-error v is required
  flashAttention({ q, k })
  // @ts-expect-error causal is a boolean
  flashAttention({ q, k, v }, { causal: 'yes' })
})
