import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu'
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core'
import { flashKernelFunc } from './kernelFunc.js'
import { FlashAttention, FlashAttentionGrad } from './kernelNames.js'
import {
  FlashDBiasProgram,
  FlashDeltaProgram,
  FlashDkDvProgram,
  FlashDqProgram,
  FlashForwardProgram,
  forwardUniforms,
  SliceColumnsProgram,
  seedUniform,
} from './webgpuPrograms.js'
import { gpuFlashSpec, optionalGpuInputs } from './webgpuSpec.js'

const present = (x: TensorInfo | null): x is TensorInfo => x !== null

const forward = flashKernelFunc<WebGPUBackend>(({ inputs, backend, attrs }) => {
  const [q, k, v, ...rest] = inputs as [TensorInfo, TensorInfo, TensorInfo, ...TensorInfo[]]
  const { keyMask, bias } = optionalGpuInputs(rest, attrs)
  const spec = gpuFlashSpec(q, k, v, bias, attrs)
  const { b, h, n, dv } = spec
  // One pass writes `[out | lse]` per row (a WebGPU program has one output), then two copies split it.
  const packed = backend.runWebGPUProgram(
    new FlashForwardProgram(spec),
    [q, k, v, ...[keyMask, bias].filter(present)],
    'float32',
    forwardUniforms(spec),
  )
  const out = backend.runWebGPUProgram(
    new SliceColumnsProgram([b, h, n, dv], dv + 1, 0, dv),
    [packed],
    'float32',
  )
  const lse = backend.runWebGPUProgram(new SliceColumnsProgram([b, h, n], dv + 1, dv, 1), [packed], 'float32')
  backend.disposeData(packed.dataId)
  return [out, lse]
})

const backward = flashKernelFunc<WebGPUBackend>(({ inputs, backend, attrs }) => {
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
  const { b, kvh, m, d, dv } = spec
  const optional = [keyMask, bias].filter(present)
  const lseDelta = backend.runWebGPUProgram(
    new FlashDeltaProgram(spec),
    [dOut, out, lse],
    'float32',
    seedUniform(spec),
  )
  const gradInputs = [q, k, v, dOut, lseDelta, ...optional]
  const dq = backend.runWebGPUProgram(new FlashDqProgram(spec), gradInputs, 'float32', seedUniform(spec))
  const packed = backend.runWebGPUProgram(
    new FlashDkDvProgram(spec),
    gradInputs,
    'float32',
    seedUniform(spec),
  )
  const dk = backend.runWebGPUProgram(
    new SliceColumnsProgram([b, kvh, m, d], d + dv, 0, d),
    [packed],
    'float32',
  )
  const dvGrad = backend.runWebGPUProgram(
    new SliceColumnsProgram([b, kvh, m, dv], d + dv, d, dv),
    [packed],
    'float32',
  )
  const grads = [dq, dk, dvGrad]
  if (bias !== null)
    grads.push(
      backend.runWebGPUProgram(new FlashDBiasProgram(spec), gradInputs, 'float32', seedUniform(spec)),
    )
  backend.disposeData(packed.dataId)
  backend.disposeData(lseDelta.dataId)
  return grads
})

/**
 * FlashAttention and FlashAttentionGrad for the `webgpu` backend: WGSL compute shaders run
 * through tfjs-backend-webgpu's program interface, specialised (and cached) per shape and options.
 */
export const flashWebgpuKernelConfigs: KernelConfig[] = [
  { kernelName: FlashAttention, backendName: 'webgpu', kernelFunc: forward },
  { kernelName: FlashAttentionGrad, backendName: 'webgpu', kernelFunc: backward },
]
