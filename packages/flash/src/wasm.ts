// Side-effect entry: registers FlashAttention(Grad) for the tfjs `wasm` backend.
import { registerFlashKernels } from './registerFlashKernels.js'
import { flashWasmKernelConfigs } from './wasmKernels.js'

registerFlashKernels(flashWasmKernelConfigs)
