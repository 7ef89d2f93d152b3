// Side-effect entry: registers FlashAttention(Grad) for the tfjs `webgpu` backend. The backend
// package itself is an optional peer, imported by the application (this file only touches
// tfjs-core's kernel registry).
import { registerFlashKernels } from './registerFlashKernels.js'
import { flashWebgpuKernelConfigs } from './webgpuKernels.js'

registerFlashKernels(flashWebgpuKernelConfigs)

export { flashWebgpuKernelConfigs }
