export type {
  AutoregressiveNet,
  AutoregressiveWrapperOptions,
  GenerateOptions,
  LossOptions,
} from './autoregressiveWrapper.js'
export { AutoregressiveWrapper } from './autoregressiveWrapper.js'
export type { CacheEntry } from './kvCache.js'
export { KvCache } from './kvCache.js'
export type { LogitFilter } from './sampling.js'
export { filterLogits, sampleToken } from './sampling.js'
