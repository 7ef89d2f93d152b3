import type * as tf from '@tensorflow/tfjs-core'
import { expectTypeOf, test } from 'vitest'
import {
  type AttentionCache,
  Decoder,
  Encoder,
  fromXTransformers,
  type StackOptions,
  type TransformerWrapper,
  type WrapperResult,
} from '../src/index.js'

test('stacks take x-transformers options in camelCase, grouped by prefix', () => {
  expectTypeOf<StackOptions>().toHaveProperty('rotaryPosEmb')
  expectTypeOf<NonNullable<StackOptions['attn']>>().toHaveProperty('kvHeads')
  expectTypeOf<NonNullable<StackOptions['ff']>>().toHaveProperty('glu')
  // @ts-expect-error causality is fixed by the class
  new Decoder({ dim: 8, depth: 1, causal: false })
  // @ts-expect-error attention options live under `attn`
  new Encoder({ dim: 8, depth: 1, dimHead: 4 })
  // @ts-expect-error heads is a number
  new Encoder({ dim: 8, depth: 1, heads: '4' })
})

test('fromXTransformers resolves to a TransformerWrapper; intermediates are typed', () => {
  expectTypeOf(fromXTransformers).returns.resolves.toEqualTypeOf<TransformerWrapper>()
  expectTypeOf<WrapperResult['cache']>().toEqualTypeOf<AttentionCache[]>()
  expectTypeOf<AttentionCache['k']>().toEqualTypeOf<tf.Tensor4D>()
})
