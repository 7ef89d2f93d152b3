// Side-effect entry: registers FlashAttention(Grad) for the tfjs `webgl` backend. The backend
// package itself is an optional peer, imported by the application (this file only touches
// tfjs-core's kernel registry).
import { registerFlashKernels } from './registerFlashKernels.js'
import { flashWebglKernelConfigs } from './webglKernels.js'

registerFlashKernels(flashWebglKernelConfigs)

export { flashWebglKernelConfigs }
