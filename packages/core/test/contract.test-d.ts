import type * as tf from '@tensorflow/tfjs-core'
import { describe, expectTypeOf, it } from 'vitest'
import { defineContract, type NamedTensor, type RankOf } from '../src/index.js'

const Attend = defineContract('@xattn/test attend', { q: 'b h n d', k: 'b kvh m d', keyMask: 'b m?' })

declare const q4: tf.Tensor4D
declare const k4: tf.Tensor4D
declare const k3: tf.Tensor3D
declare const unknownRank: tf.Tensor
declare const mask2: tf.Tensor2D

describe('shape contract types', () => {
  it('derives ranks from patterns', () => {
    expectTypeOf<RankOf<'b h n d'>>().toEqualTypeOf<tf.Rank.R4>()
    expectTypeOf<RankOf<'b n (h d)'>>().toEqualTypeOf<tf.Rank.R3>()
    expectTypeOf<RankOf<'b m?'>>().toEqualTypeOf<tf.Rank.R2>()
    expectTypeOf<NamedTensor<'b h n d'>>().toEqualTypeOf<tf.Tensor4D>()
  })

  it('accepts tensors of the right or unknown rank and returns typed sizes', () => {
    const sizes = Attend.check({ q: q4, k: k4, keyMask: mask2 })
    expectTypeOf(sizes.b).toEqualTypeOf<number>()
    expectTypeOf(sizes.kvh).toEqualTypeOf<number>()
    Attend.check({ q: unknownRank, k: unknownRank })
  })

  it('rejects a known wrong rank at compile time', () => {
    // @ts-expect-error k is rank 3 but the pattern 'b kvh m d' has 4 axes
    Attend.check({ q: q4, k: k3 })
    // @ts-expect-error keyMask 'b m?' is rank 2
    Attend.check({ q: q4, k: k4, keyMask: q4 })
    // @ts-expect-error q is required
    Attend.check({ k: k4 })
  })
})
