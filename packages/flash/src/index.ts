import { registerAttention } from '@xattn/core'
import { flashAttention } from './flashAttention.js'
// Both registrations only touch tfjs-core's kernel registry (the backend packages are type-only
// imports), so importing the package makes flash work on whichever of cpu/wasm is active.
import './cpu.js'
import './wasm.js'

export { flashCpuKernelConfigs } from './cpuKernels.js'
export { flashAttention } from './flashAttention.js'
export { flashAttentionGradConfig } from './flashGrad.js'
export { flashHeapBytes } from './flashModule.js'
export type { FlashAttentionAttrs } from './kernelNames.js'
export { FlashAttention, FlashAttentionGrad } from './kernelNames.js'
export { flashWasmKernelConfigs } from './wasmKernels.js'

registerAttention('flash', flashAttention)
