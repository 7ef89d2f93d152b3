import * as tf from '@tensorflow/tfjs-core'
import { type AttendInputs, type AttendOptions, ConfigError, checkAttendCall } from '@xattn/core'
import { runFlashKernel } from './flashGrad.js'
import { FlashAttention, type FlashAttentionAttrs } from './kernelNames.js'

const OP_NAME = '@xattn/flash flashAttention'

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32) >>> 0
}

/**
 * Flash attention: the contract and numbers of `@xattn/core`'s `attendReference`, computed by a
 * tiled FlashAttention-2 kernel that never materialises the `n × m` score matrix.
 *
 * `q [b h n d]`, `k [b kvh m d]`, `v [b kvh m dv]` (float32) → `[b h n dv]`.
 * Query head `i` reads KV head `i % kvh` (GQA/MQA without repeating K/V); `causal` is
 * bottom-right aligned; `keyMask` is `bool [b m]` (true = may attend); `bias` is additive
 * `[b|1 h|1 n m]`; `alibiSlopes` adds `-slope·|j - i - (m - n)|` inside the kernel; fully masked
 * rows give 0; `dropout` applies when `training` with a counter-based mask fixed by `seed`.
 * Differentiable (`tf.grad`, `tf.variableGrads`) with respect to q, k, v and bias.
 *
 * `import '@xattn/flash'` registers the `cpu` and `wasm` kernels (`@xattn/flash/cpu` and
 * `@xattn/flash/wasm` register one alone); `@xattn/flash/webgl` and `@xattn/flash/webgpu` register
 * the browser ones. A backend without a registered kernel gets a ConfigError saying what to import.
 *
 * @throws ShapeContractError for bad shapes or dtypes, ConfigError for bad options, before any kernel runs.
 * @example
 * import { flashAttention } from '@xattn/flash'
 * const out = flashAttention({ q, k, v }, { causal: true, keyMask }) // [b, h, n, dv]
 */
export function flashAttention(inputs: AttendInputs, options: AttendOptions = {}): tf.Tensor4D {
  const { d } = checkAttendCall(OP_NAME, inputs, options)
  const backendName = tf.getBackend()
  if (tf.getKernel(FlashAttention, backendName) === undefined) {
    throw new ConfigError(
      '@xattn/flash',
      'backend',
      `${OP_NAME}: no flash kernel is registered for the '${backendName}' backend; ` +
        "'cpu' and 'wasm' kernels come with import '@xattn/flash', 'webgl' and 'webgpu' ones with " +
        "import '@xattn/flash/webgl' / '@xattn/flash/webgpu'; use getAttention('reference') elsewhere",
    )
  }
  const rate = options.training === true ? (options.dropout ?? 0) : 0
  const attrs: FlashAttentionAttrs = {
    causal: options.causal ?? false,
    scale: options.scale ?? d ** -0.5,
    alibiSlopes: options.alibiSlopes == null ? [] : Array.from(options.alibiSlopes),
    alibiFreeKeys: options.alibiFreeKeys ?? 0,
    dropout: rate,
    seed: rate > 0 ? (options.seed ?? randomSeed()) >>> 0 : 0,
    hasKeyMask: options.keyMask != null,
    hasBias: options.bias != null,
  }
  const kernelInputs: tf.Tensor[] = [inputs.q, inputs.k, inputs.v]
  if (options.keyMask != null) kernelInputs.push(options.keyMask)
  if (options.bias != null) kernelInputs.push(options.bias)
  // The row log-sum-exp output only feeds the gradient (tfjs saves its own copy): drop it here.
  return tf.tidy(() => runFlashKernel(FlashAttention, kernelInputs, attrs)[0] as tf.Tensor4D)
}
