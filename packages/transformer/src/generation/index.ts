export type {
  AutoregressiveNet,
  AutoregressiveNetCall,
  AutoregressiveWrapperOptions,
  GenerateOptions,
  LossOptions,
} from './autoregressiveWrapper.js'
export { AutoregressiveWrapper } from './autoregressiveWrapper.js'
export { KvCache } from './kvCache.js'
export type { LogitFilter } from './sampling.js'
export { filterLogits, sampleToken } from './sampling.js'
