// Side-effect entry: registers FlashAttention(Grad) for the tfjs `cpu` backend.
import { flashCpuKernelConfigs } from './cpuKernels.js'
import { registerFlashKernels } from './registerFlashKernels.js'

registerFlashKernels(flashCpuKernelConfigs)
