import './registerGradients.js'

export type { AttendInputs, AttendOptions } from './attendContract.js'
export { ATTEND_OPTION_KEYS, ATTEND_SPEC, attendContract, checkAttendCall } from './attendContract.js'
export {
  alibiBias,
  attendReference,
  attentionMask,
  groupedScores,
  groupedWeightedSum,
  MASKED_LOGIT,
  maskedSoftmax,
} from './attendReference.js'
export type { AttentionImpl } from './attentionRegistry.js'
export { getAttention, listAttention, registerAttention } from './attentionRegistry.js'
export type { BackendInfo, BackendName, UseBackendOptions } from './backends.js'
export { useBackend } from './backends.js'
export type {
  CheckOptions,
  ContractBindings,
  ContractInputs,
  ContractOptions,
  DimConstraint,
  ShapeContract,
  TensorSpec,
} from './contract.js'
export { atMost, defineContract, divisibleBy } from './contract.js'
export { ConfigError, SafetensorsError, ShapeContractError, StateDictError, XattnError } from './errors.js'
export { assertAllFinite, assertFinite } from './finiteCheck.js'
export type { HeadLayout, HeadLayoutOptions } from './headLayout.js'
export { headLayout } from './headLayout.js'
export type { RandomSource } from './init.js'
export { initKaimingUniform, initNormal, initUniform, initXavierNormal, initXavierUniform } from './init.js'
export type { LoadStateDictOptions, LoadStateDictResult, StateDict } from './module.js'
export { Module } from './module.js'
export type { DimNamesOf, NamedTensor, RankOf } from './patternTypes.js'
export { SeededRandom } from './random.js'
export type { SafetensorsContents, SafetensorsDtype, SafetensorsEntry } from './safetensors.js'
export {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  parseSafetensors,
  readBytes,
  saveSafetensors,
} from './safetensors.js'
