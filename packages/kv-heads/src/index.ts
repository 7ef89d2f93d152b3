export { expandKv, mergeHeads, splitHeads } from './heads.js'
export type { LinearOptions } from './linear.js'
export { Linear, linearApply } from './linear.js'
export type { QKV, QKVProjectionOptions } from './qkvProjection.js'
export { QKVProjection } from './qkvProjection.js'
export type { KvHeadMapping, RegroupKvWeightsInput, RegroupKvWeightsOutput } from './regroup.js'
export { kvHeadOf, queryHeadPermutation, regroupKvWeights } from './regroup.js'

/** This package's name, as it appears in error messages. */
export const PACKAGE_NAME = '@xattn/kv-heads'
