import {
  getGradient,
  getKernel,
  type KernelConfig,
  registerGradient,
  registerKernel,
} from '@tensorflow/tfjs-core'
import { flashAttentionGradConfig } from './flashGrad.js'
import { FlashAttention } from './kernelNames.js'

/** Registers a backend's flash kernels and the shared gradient, once (importing twice is harmless). */
export function registerFlashKernels(configs: readonly KernelConfig[]): void {
  for (const config of configs) {
    if (getKernel(config.kernelName, config.backendName) === undefined) registerKernel(config)
  }
  if (getGradient(FlashAttention) === undefined) registerGradient(flashAttentionGradConfig)
}
