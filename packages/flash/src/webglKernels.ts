import type { MathBackendWebGL } from '@tensorflow/tfjs-backend-webgl'
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core'
import { flashKernelFunc } from './kernelFunc.js'
import { FlashAttention, FlashAttentionGrad } from './kernelNames.js'
import {
  flashAccProgram,
  flashDBiasProgram,
  flashDeltaProgram,
  flashDkvProgram,
  flashDqProgram,
  flashDsProgram,
  flashLseProgram,
  flashNormalizeProgram,
  flashScoresProgram,
  flashStatsProgram,
  WEBGL_KEY_BLOCK,
} from './webglPrograms.js'
import { gpuFlashSpec, optionalGpuInputs } from './webgpuSpec.js'

const present = (x: TensorInfo | null): x is TensorInfo => x !== null

/** The key blocks `[j0, cols]` of a call. */
function keyBlocks(m: number): Array<[number, number]> {
  const blocks: Array<[number, number]> = []
  for (let j0 = 0; j0 < m; j0 += WEBGL_KEY_BLOCK) blocks.push([j0, Math.min(WEBGL_KEY_BLOCK, m - j0)])
  return blocks
}

const forward = flashKernelFunc<MathBackendWebGL>(({ inputs, backend, attrs }) => {
  const [q, k, v, ...rest] = inputs as [TensorInfo, TensorInfo, TensorInfo, ...TensorInfo[]]
  const { keyMask, bias } = optionalGpuInputs(rest, attrs)
  const spec = gpuFlashSpec(q, k, v, bias, attrs)
  const optional = [keyMask, bias].filter(present)
  const run = (
    program: Parameters<MathBackendWebGL['runWebGLProgram']>[0],
    xs: TensorInfo[],
    uniforms?: number[][],
  ) => backend.runWebGLProgram(program, xs, 'float32', uniforms)
  const free = (x: TensorInfo | null) => {
    if (x !== null) backend.disposeIntermediateTensorInfo(x)
  }
  let stats: TensorInfo | null = null
  let acc: TensorInfo | null = null
  // Online softmax over key blocks: each block's logits are written once and folded into the
  // running (max, sum) and the unnormalised output.
  for (const [j0, cols] of keyBlocks(spec.m)) {
    const uniforms = [[j0], [cols], [spec.seed | 0]]
    const scores = run(flashScoresProgram(spec, cols), [q, k, ...optional], uniforms)
    const first = stats === null || acc === null
    const nextStats = run(
      flashStatsProgram(spec, first),
      first ? [scores] : [scores, stats as TensorInfo],
      uniforms,
    )
    const nextAcc = run(
      flashAccProgram(spec, first),
      first ? [scores, v, nextStats] : [scores, v, nextStats, stats as TensorInfo, acc as TensorInfo],
      uniforms,
    )
    free(scores)
    free(stats)
    free(acc)
    stats = nextStats
    acc = nextAcc
  }
  if (stats === null || acc === null) {
    // m = 0: no keys at all, so every row is fully masked (out 0, lse +Infinity).
    const none = backend.makeTensorInfo(
      [spec.b, spec.h, spec.n, 2],
      'float32',
      new Float32Array(spec.b * spec.h * spec.n * 2),
    )
    const zeros = backend.makeTensorInfo(
      [spec.b, spec.h, spec.n, spec.dv],
      'float32',
      new Float32Array(spec.b * spec.h * spec.n * spec.dv),
    )
    stats = none
    acc = zeros
  }
  const out = run(flashNormalizeProgram(spec), [acc, stats])
  const lse = run(flashLseProgram(spec), [stats])
  free(stats)
  free(acc)
  return [out, lse]
})

const backward = flashKernelFunc<MathBackendWebGL>(({ inputs, backend, attrs }) => {
  const [q, k, v, out, lse, dOut, ...rest] = inputs as [
    TensorInfo,
    TensorInfo,
    TensorInfo,
    TensorInfo,
    TensorInfo,
    TensorInfo,
    ...TensorInfo[],
  ]
  const { keyMask, bias } = optionalGpuInputs(rest, attrs)
  const spec = gpuFlashSpec(q, k, v, bias, attrs)
  const optional = [keyMask, bias].filter(present)
  const run = (
    program: Parameters<MathBackendWebGL['runWebGLProgram']>[0],
    xs: TensorInfo[],
    uniforms?: number[][],
  ) => backend.runWebGLProgram(program, xs, 'float32', uniforms)
  const free = (x: TensorInfo | null) => {
    if (x !== null) backend.disposeIntermediateTensorInfo(x)
  }
  const delta = run(flashDeltaProgram(spec), [dOut, out])
  let dq: TensorInfo | null = null
  let dk: TensorInfo | null = null
  let dv: TensorInfo | null = null
  let dBias: TensorInfo | null = null
  // Per key block: dS and z·P for the block, then dq accumulates and the block's rows of dk, dv
  // (and columns of dBias) are written, the rest carried over.
  for (const [j0, cols] of keyBlocks(spec.m)) {
    const uniforms = [[j0], [cols], [spec.seed | 0]]
    const ds = run(flashDsProgram(spec, cols), [q, k, v, dOut, lse, delta, ...optional], uniforms)
    const nextDq = run(flashDqProgram(spec, dq === null), dq === null ? [ds, k] : [ds, k, dq], uniforms)
    const nextDk = run(
      flashDkvProgram(spec, 'dk', dk === null),
      dk === null ? [ds, q] : [ds, q, dk],
      uniforms,
    )
    const nextDv = run(
      flashDkvProgram(spec, 'dv', dv === null),
      dv === null ? [ds, dOut] : [ds, dOut, dv],
      uniforms,
    )
    const nextDBias: TensorInfo | null =
      bias === null
        ? null
        : run(flashDBiasProgram(spec, dBias === null), dBias === null ? [ds] : [ds, dBias], uniforms)
    for (const old of [ds, dq, dk, dv, dBias]) free(old)
    dq = nextDq
    dk = nextDk
    dv = nextDv
    dBias = nextDBias
  }
  free(delta)
  const zeros = (shape: number[]) =>
    backend.makeTensorInfo(shape, 'float32', new Float32Array(shape.reduce((a, x) => a * x, 1)))
  const grads = [dq ?? zeros([...q.shape]), dk ?? zeros([...k.shape]), dv ?? zeros([...v.shape])]
  if (bias !== null) grads.push(dBias ?? zeros([...bias.shape]))
  return grads
})

/**
 * FlashAttention and FlashAttentionGrad for the `webgl` backend: GLSL programs run through
 * tfjs-backend-webgl's GPGPU interface, tiled over key blocks on the host (see
 * {@link WEBGL_KEY_BLOCK}), specialised (and cached) per shape and options.
 */
export const flashWebglKernelConfigs: KernelConfig[] = [
  { kernelName: FlashAttention, backendName: 'webgl', kernelFunc: forward },
  { kernelName: FlashAttentionGrad, backendName: 'webgl', kernelFunc: backward },
]
