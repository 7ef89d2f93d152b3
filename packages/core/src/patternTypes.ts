import type * as tf from '@tensorflow/tfjs-core'

// Type-level reading of dimension patterns such as 'b h n d', 'b n (h d)', 'b|1 h|1 n m' or
// 'b m?' (a trailing `?` marks an optional tensor). Counting axes gives the tensor rank, so a
// tensor of the wrong known rank fails to compile; names give the keys of the bound sizes.

type StripOptional<P extends string> = P extends `${infer Body}?` ? Body : P

type CountAxes<
  P extends string,
  InGroup extends boolean = false,
  AfterSpace extends boolean = true,
  Count extends 0[] = [],
> = P extends `${infer C}${infer Rest}`
  ? C extends ' '
    ? CountAxes<Rest, InGroup, true, Count>
    : InGroup extends true
      ? CountAxes<Rest, C extends ')' ? false : true, false, Count>
      : AfterSpace extends true
        ? CountAxes<Rest, C extends '(' ? true : false, false, [...Count, 0]>
        : CountAxes<Rest, C extends '(' ? true : false, false, Count>
  : Count['length']

type RankByCount = [tf.Rank.R0, tf.Rank.R1, tf.Rank.R2, tf.Rank.R3, tf.Rank.R4, tf.Rank.R5, tf.Rank.R6]

/** The tfjs rank of a dimension pattern: `RankOf<'b h n d'>` is `tf.Rank.R4`. */
export type RankOf<P extends string> =
  CountAxes<StripOptional<P>> extends infer N extends number
    ? N extends keyof RankByCount
      ? RankByCount[N]
      : tf.Rank
    : tf.Rank

/**
 * A tensor whose axes are named by a pattern. At runtime it is a plain `tf.Tensor`; the pattern
 * fixes its rank for the compiler and documents the meaning of each axis.
 *
 * @example
 * const q: NamedTensor<'b h n d'> = tf.zeros([1, 4, 16, 8])
 */
export type NamedTensor<P extends string> = tf.Tensor<RankOf<P>>

type Separators = '(' | ')' | '|' | '?'
type SpaceOut<S extends string> = S extends `${infer H}${infer T}`
  ? `${H extends Separators ? ' ' : H}${SpaceOut<T>}`
  : ''
type Words<S extends string> = S extends `${infer H} ${infer T}` ? H | Words<T> : S
type NonNumeric<W> = W extends '' ? never : W extends `${number}` ? never : W

/** The symbolic dimension names of a pattern: `DimNamesOf<'b n (h d)'>` is `'b' | 'n' | 'h' | 'd'`. */
export type DimNamesOf<P extends string> = NonNumeric<Words<SpaceOut<P>>>

/** Whether a pattern marks its tensor as optional (trailing `?`). */
export type IsOptionalPattern<P extends string> = P extends `${string}?` ? true : false
