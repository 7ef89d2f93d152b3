import type * as tf from '@tensorflow/tfjs-core'

/**
 * `unknown` when `T` may have rank `R` (its rank is `R` or statically unknown), else `tf.Tensor<R>`:
 * intersected with a parameter's type, a tensor of a known wrong rank fails to compile while
 * plain `tf.Tensor` values still pass (their shapes are checked at runtime).
 */
export type RankCheck<T, R extends tf.Rank> =
  T extends tf.Tensor<infer TR>
    ? [tf.Rank] extends [TR]
      ? unknown
      : [TR] extends [R]
        ? unknown
        : tf.Tensor<R>
    : unknown
