import { registerAttention } from '@xattn/core'
import { flashCpuKernelConfigs } from './cpuKernels.js'
import { flashAttention } from './flashAttention.js'
import { registerFlashKernels } from './registerFlashKernels.js'
import { flashWasmKernelConfigs } from './wasmKernels.js'

export { flashCpuKernelConfigs } from './cpuKernels.js'
export { flashAttention } from './flashAttention.js'
export { flashAttentionGradConfig } from './flashGrad.js'
export { flashHeapBytes } from './flashModule.js'
export type { FlashAttentionAttrs } from './kernelNames.js'
export { FlashAttention, FlashAttentionGrad } from './kernelNames.js'
export { flashWasmKernelConfigs } from './wasmKernels.js'

// The package's side effects, kept in this entry file (not in a shared module that the bundler
// would move into an unlisted chunk): kernels for both Node backends — registration only touches
// tfjs-core's registry, the backend packages are type-only imports — and the 'flash' attention.
registerFlashKernels(flashCpuKernelConfigs)
registerFlashKernels(flashWasmKernelConfigs)
registerAttention('flash', flashAttention)
