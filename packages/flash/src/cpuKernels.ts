import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu'
import type { KernelConfig } from '@tensorflow/tfjs-core'
import { flashKernelConfigs } from './backendKernels.js'

/** FlashAttention and FlashAttentionGrad for the `cpu` backend (tensors live in JS typed arrays). */
export const flashCpuKernelConfigs: KernelConfig[] = flashKernelConfigs<MathBackendCPU>('cpu', {
  alloc: (backend, shape) => {
    const size = shape.reduce((a, x) => a * x, 1)
    return backend.makeTensorInfo(shape, 'float32', new Float32Array(size))
  },
  floats: (backend, info) => backend.readSync(info.dataId) as Float32Array,
  flags: (backend, info) => backend.readSync(info.dataId) as Uint8Array,
})
