import * as tf from '@tensorflow/tfjs-core'

/**
 * `x / max(‖x‖₂, 1e-12)` over the last axis, in `groups` equal chunks (torch's `F.normalize`).
 * Computed as `x · rsqrt(max(Σx², 1e-24))` so that an all-zero row has a zero (not NaN) gradient.
 */
export function l2normalize(x: tf.Tensor, groups = 1): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.shape.length - 1] as number
    const lead = x.shape.slice(0, -1)
    const grouped = groups === 1 ? x : tf.reshape(x, [...lead, groups, d / groups])
    const sumSq = tf.sum(tf.square(grouped), -1, true)
    const normed = tf.mul(grouped, tf.rsqrt(tf.maximum(sumSq, tf.scalar(1e-24))))
    return groups === 1 ? normed : tf.reshape(normed, x.shape)
  })
}

/** Exact (erf) GELU, torch's `nn.GELU()` default. */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(tf.mul(x, tf.scalar(0.5)), tf.add(tf.scalar(1), tf.erf(tf.mul(x, tf.scalar(Math.SQRT1_2))))),
  )
}

/** SiLU / swish: `x · σ(x)`. */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)))
}

/** `tanh(x / value) · value`. */
export function softclamp(x: tf.Tensor, value: number): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.tanh(tf.div(x, tf.scalar(value))), tf.scalar(value)))
}

/**
 * Mixes the head axis of `x [b h n m]` with `weight [h, h, 1, 1]` (a 1×1 Conv2d over heads:
 * `out[:, o] = Σ_c W[o, c] · x[:, c]`) as one 2-D matMul, which has exact gradients.
 */
export function mixHeads(x: tf.Tensor, weight: tf.Tensor): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, n, m] = x.shape as [number, number, number, number]
    const flat = tf.reshape(tf.transpose(tf.reshape(x, [b, h, n * m]), [1, 0, 2]), [h, b * n * m])
    const mixed = tf.matMul(tf.reshape(weight, [h, h]), flat)
    return tf.reshape(tf.transpose(tf.reshape(mixed, [h, b, n * m]), [1, 0, 2]), [b, h, n, m]) as tf.Tensor4D
  })
}

/** Inverted dropout when `training` and `rate > 0`; identity otherwise. */
export function maybeDropout(x: tf.Tensor, rate: number, training: boolean): tf.Tensor {
  if (!training || rate <= 0) return x
  return tf.dropout(x, rate)
}
