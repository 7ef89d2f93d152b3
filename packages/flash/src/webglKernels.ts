import type { MathBackendWebGL } from '@tensorflow/tfjs-backend-webgl'
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core'
import { flashKernelFunc } from './kernelFunc.js'
import { FlashAttention, FlashAttentionGrad } from './kernelNames.js'
import {
  flashDBiasProgram,
  flashDeltaProgram,
  flashDkProgram,
  flashDqProgram,
  flashDvProgram,
  flashLseProgram,
  flashOutProgram,
} from './webglPrograms.js'
import { gpuFlashSpec, optionalGpuInputs } from './webgpuSpec.js'

const present = (x: TensorInfo | null): x is TensorInfo => x !== null

const forward = flashKernelFunc<MathBackendWebGL>(({ inputs, backend, attrs }) => {
  const [q, k, v, ...rest] = inputs as [TensorInfo, TensorInfo, TensorInfo, ...TensorInfo[]]
  const { keyMask, bias } = optionalGpuInputs(rest, attrs)
  const spec = gpuFlashSpec(q, k, v, bias, attrs)
  const optional = [keyMask, bias].filter(present)
  const lse = backend.runWebGLProgram(flashLseProgram(spec), [q, k, ...optional], 'float32')
  const out = backend.runWebGLProgram(flashOutProgram(spec), [q, k, v, lse, ...optional], 'float32')
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
  const delta = backend.runWebGLProgram(flashDeltaProgram(spec), [dOut, out], 'float32')
  const gradInputs = [q, k, v, dOut, lse, delta, ...[keyMask, bias].filter(present)]
  const grads = [
    backend.runWebGLProgram(flashDqProgram(spec), gradInputs, 'float32'),
    backend.runWebGLProgram(flashDkProgram(spec), gradInputs, 'float32'),
    backend.runWebGLProgram(flashDvProgram(spec), gradInputs, 'float32'),
  ]
  if (bias !== null) grads.push(backend.runWebGLProgram(flashDBiasProgram(spec), gradInputs, 'float32'))
  backend.disposeIntermediateTensorInfo(delta)
  return grads
})

/**
 * FlashAttention and FlashAttentionGrad for the `webgl` backend: GLSL fragment programs run
 * through tfjs-backend-webgl's GPGPU interface, specialised (and cached) per shape and options.
 */
export const flashWebglKernelConfigs: KernelConfig[] = [
  { kernelName: FlashAttention, backendName: 'webgl', kernelFunc: forward },
  { kernelName: FlashAttentionGrad, backendName: 'webgl', kernelFunc: backward },
]
