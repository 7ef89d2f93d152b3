export type { AttentionCache, AttentionCall, AttentionOptions, AttentionResult } from './attention.js'
export { Attention } from './attention.js'
export type {
  AttentionLayersCall,
  AttentionLayersOptions,
  AttentionLayersResult,
  LayerAttentionOptions,
  LayerFeedForwardOptions,
  StackOptions,
} from './attentionLayers.js'
export { AttentionLayers, Decoder, Encoder } from './attentionLayers.js'
export type { ResidualJoin } from './blocks.js'
export { GRUGating, LayerScale, Residual, shiftTokens } from './blocks.js'
export { Embedding } from './embedding.js'
export type { FeedForwardOptions } from './feedForward.js'
export { FeedForward } from './feedForward.js'
// training and generation
export type {
  AutoregressiveNet,
  AutoregressiveWrapperOptions,
  CacheEntry,
  GenerateOptions,
  LogitFilter,
  LossOptions,
} from './generation/index.js'
export { AutoregressiveWrapper, filterLogits, KvCache, sampleToken } from './generation/index.js'
export { Linear } from './linear.js'
export type { Norm, NormKind } from './norms.js'
export { createNorm, LayerNorm, RMSNorm, ScaleNorm, SimpleRMSNorm } from './norms.js'
export type { DynamicPositionBiasOptions, PositionBias, RelativePositionBiasOptions } from './positionBias.js'
export { DynamicPositionBias, RelativePositionBias } from './positionBias.js'
export type { RotaryEmbeddingOptions, RotaryFreqs } from './positions.js'
export {
  AbsolutePositionalEmbedding,
  alibiSlopes,
  applyRotary,
  RotaryEmbedding,
  ScaledSinusoidalEmbedding,
} from './positions.js'
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
export type { TransformerWrapperOptions, WrapperCall, WrapperResult } from './transformerWrapper.js'
export { TransformerWrapper } from './transformerWrapper.js'
export type {
  FromXTransformersInput,
  XTransformersBuildOptions,
  XTransformersConfig,
  XTransformersKwargs,
} from './xTransformers.js'
export { createFromXTransformers, fromXTransformers, toXTransformersSafetensors } from './xTransformers.js'
