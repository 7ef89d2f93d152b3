export type { AdamWOptions, AdamWStepOptions } from './adamw.js'
export { AdamW } from './adamw.js'
export type { SaveCheckpointOptions } from './checkpoint.js'
export {
  CHECKPOINT_FILES,
  decodeModelInto,
  decodeOptimizerInto,
  encodeModel,
  encodeOptimizer,
  loadCheckpoint,
  readCheckpointConfig,
  saveCheckpoint,
} from './checkpoint.js'
export type { Gradients } from './gradients.js'
export {
  clipByGlobalNorm,
  computeGradients,
  disposeGradients,
  GradientAccumulator,
  globalNorm,
} from './gradients.js'
export type { LrSchedule, WarmupCosineOptions } from './lrSchedule.js'
export { warmupCosineSchedule } from './lrSchedule.js'
export type { TrainOptions, TrainResult, TrainStepInfo } from './train.js'
export { train } from './train.js'
