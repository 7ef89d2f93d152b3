import type * as tf from '@tensorflow/tfjs-core'
import { expectTypeOf, test } from 'vitest'
import type {
  AutoregressiveNet,
  AutoregressiveWrapper,
  GenerateOptions,
  LogitFilter,
  TransformerWrapper,
} from '../src/index.js'

test('TransformerWrapper is an AutoregressiveNet (cached decoding included)', () => {
  expectTypeOf<TransformerWrapper>().toExtend<AutoregressiveNet>()
  expectTypeOf<TransformerWrapper['forwardWithCache']>().not.toBeUndefined()
})

test('generate and loss signatures', () => {
  expectTypeOf<AutoregressiveWrapper['generate']>().returns.toEqualTypeOf<Promise<tf.Tensor2D>>()
  expectTypeOf<AutoregressiveWrapper['loss']>().returns.toEqualTypeOf<tf.Scalar>()
  const ok: GenerateOptions = { seqLen: 4, temperature: 0.7, filter: { topP: 0.9 }, eos: 2, cache: true }
  expectTypeOf(ok).toExtend<GenerateOptions>()
  // @ts-expect-error seqLen is required
  const missing: GenerateOptions = { temperature: 1 }
  // @ts-expect-error a filter is one of topK / topP / minP
  const badFilter: LogitFilter = { topQ: 3 }
  void missing
  void badFilter
})
