import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import type { KernelConfig } from '@tensorflow/tfjs-core'
import { flashKernelConfigs } from './backendKernels.js'

/**
 * FlashAttention and FlashAttentionGrad for the `wasm` backend. Tensors live in tfjs-wasm's heap
 * and are viewed in place; the kernel itself runs in our own SIMD module (tfjs-wasm exposes no
 * way to add compiled kernels), so each call copies one (batch, KV head) group at a time across.
 */
export const flashWasmKernelConfigs: KernelConfig[] = flashKernelConfigs<BackendWasm>('wasm', {
  alloc: (backend, shape) => backend.makeOutput(shape, 'float32'),
  floats: (backend, info) => backend.typedArrayFromHeap(info) as Float32Array,
  flags: (backend, info) => backend.typedArrayFromHeap(info) as Uint8Array,
})
