export const PACKAGE_NAME = '@xattn/transformer'

export type {
  AutoregressiveNet,
  AutoregressiveNetCall,
  AutoregressiveWrapperOptions,
  GenerateOptions,
  LogitFilter,
  LossOptions,
} from './generation/index.js'
export { AutoregressiveWrapper, filterLogits, KvCache, sampleToken } from './generation/index.js'
// training and generation
export type {
  AdamWOptions,
  AdamWStepOptions,
  Gradients,
  LrSchedule,
  SaveCheckpointOptions,
  TrainOptions,
  TrainResult,
  TrainStepInfo,
  WarmupCosineOptions,
} from './training/index.js'
export {
  AdamW,
  CHECKPOINT_FILES,
  clipByGlobalNorm,
  computeGradients,
  decodeModelInto,
  decodeOptimizerInto,
  disposeGradients,
  encodeModel,
  encodeOptimizer,
  GradientAccumulator,
  globalNorm,
  loadCheckpoint,
  readCheckpointConfig,
  saveCheckpoint,
  train,
  warmupCosineSchedule,
} from './training/index.js'
