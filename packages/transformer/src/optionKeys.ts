import { ConfigError } from '@xattn/core'
import type { AttentionOptions } from './attention.js'
import type {
  AttentionLayersOptions,
  LayerAttentionOptions,
  LayerFeedForwardOptions,
  StackOptions,
} from './attentionLayers.js'
import type { FeedForwardOptions } from './feedForward.js'
import type { TransformerWrapperOptions } from './transformerWrapper.js'

const PKG = '@xattn/transformer'

/**
 * Every key of an options interface, as an object so that the compiler checks the list is
 * complete (a key added to the interface but not here fails to compile).
 */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: true }

/** Edit distance (insertions, deletions, substitutions) between two short option names. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution))
    }
    previous = current
  }
  return previous[b.length] as number
}

/** The known name closest to `key` (case-insensitive, at most 2 edits or a third of its length), if any. */
function closest(key: string, known: readonly string[]): string | null {
  let best: string | null = null
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1
  for (const name of known) {
    const distance = editDistance(key.toLowerCase(), name.toLowerCase())
    if (distance < bestDistance) {
      best = name
      bestDistance = distance
    }
  }
  return best
}

/**
 * Throws a ConfigError naming every key of `options` that is not in `known` (a typo would
 * otherwise be ignored silently), with the closest known name where one is near. `prefix` names
 * a nested options object, e.g. `'attn.'`; `outerKeys` are keys that belong to the enclosing
 * stack instead (the message says so). Runs before any tensor is created.
 *
 * @example
 * rejectUnknownOptions('Decoder', { dim: 16, rotaryPosEmbb: true }, STACK_KEYS)
 * // ConfigError: @xattn/transformer: Decoder: unknown option 'rotaryPosEmbb' (did you mean 'rotaryPosEmb'?)
 */
export function rejectUnknownOptions(
  who: string,
  options: object,
  known: OptionKeys<object> | Readonly<Record<string, true>>,
  prefix = '',
  outerKeys: readonly string[] = [],
): void {
  const knownNames = Object.keys(known)
  const unknown = Object.keys(options).filter((key) => !Object.hasOwn(known, key))
  if (unknown.length === 0) return
  const described = unknown.map((key) => {
    if (outerKeys.includes(key)) return `'${prefix}${key}' (set ${key} on the stack itself)`
    const suggestion = closest(key, knownNames)
    return `'${prefix}${key}'${suggestion === null ? '' : ` (did you mean '${prefix}${suggestion}'?)`}`
  })
  throw new ConfigError(
    PKG,
    `${prefix}${unknown[0] as string}`,
    `${who}: unknown option${unknown.length > 1 ? 's' : ''} ${described.join(', ')}`,
  )
}

export const ATTENTION_KEYS: OptionKeys<AttentionOptions> = {
  dim: true,
  heads: true,
  dimHead: true,
  dimContext: true,
  causal: true,
  kvHeads: true,
  oneKvHead: true,
  valueDimHead: true,
  numMemKv: true,
  flash: true,
  attention: true,
  dropout: true,
  qkNorm: true,
  qkNormGroups: true,
  qkNormScale: true,
  qkNormDimScale: true,
  gateValues: true,
  swigluValues: true,
  preTalkingHeads: true,
  postTalkingHeads: true,
  sparseTopk: true,
  softclampLogits: true,
  logitSoftclampValue: true,
  headScale: true,
  gateValueHeads: true,
  addZeroKv: true,
  maxAttendPast: true,
  onAttn: true,
  dimOut: true,
  zeroInitOutput: true,
  rng: true,
}

export const FEED_FORWARD_KEYS: OptionKeys<FeedForwardOptions> = {
  dim: true,
  dimOut: true,
  mult: true,
  glu: true,
  gluMultBias: true,
  swish: true,
  reluSquared: true,
  postActLn: true,
  dropout: true,
  noBias: true,
  zeroInitOutput: true,
  rng: true,
}

/** A stack's `attn` / `crossAttn`: the attention options but `dim`, `heads`, `causal`, `rng`. */
const {
  dim: _attnDim,
  heads: _heads,
  causal: _attnCausal,
  rng: _attnRng,
  ...layerAttentionKeys
} = ATTENTION_KEYS
export const LAYER_ATTENTION_KEYS: OptionKeys<LayerAttentionOptions> = layerAttentionKeys

/** A stack's `ff`: the feedforward options but `dim`, `rng`. */
const { dim: _ffDim, rng: _ffRng, ...layerFeedForwardKeys } = FEED_FORWARD_KEYS
export const LAYER_FEED_FORWARD_KEYS: OptionKeys<LayerFeedForwardOptions> = layerFeedForwardKeys

export const ATTENTION_LAYERS_KEYS: OptionKeys<AttentionLayersOptions> = {
  dim: true,
  depth: true,
  heads: true,
  causal: true,
  crossAttend: true,
  onlyCross: true,
  useScalenorm: true,
  useRmsnorm: true,
  useSimpleRmsnorm: true,
  normAddUnitOffset: true,
  alibiPosBias: true,
  alibiNumHeads: true,
  relPosBias: true,
  relPosNumBuckets: true,
  relPosMaxDistance: true,
  dynamicPosBias: true,
  dynamicPosBiasLogDistance: true,
  dynamicPosBiasMlpDepth: true,
  rotaryPosEmb: true,
  rotaryEmbDim: true,
  rotaryXpos: true,
  rotaryXposScaleBase: true,
  rotaryInterpolationFactor: true,
  rotaryBaseRescaleFactor: true,
  addValueResidual: true,
  residualAttn: true,
  crossResidualAttn: true,
  macaron: true,
  preNorm: true,
  gateResidual: true,
  scaleResidual: true,
  scaleResidualConstant: true,
  weightTieLayers: true,
  layersExecuteOrder: true,
  customLayers: true,
  sandwichCoef: true,
  parRatio: true,
  layerDropout: true,
  shiftTokens: true,
  sandwichNorm: true,
  resiDual: true,
  resiDualScale: true,
  useLayerscale: true,
  layerscaleInitValue: true,
  softclampOutput: true,
  softclampOutputValue: true,
  zeroInitBranchOutput: true,
  disableAbsPosEmb: true,
  attn: true,
  ff: true,
  crossAttn: true,
  seed: true,
}

/** Encoder / Decoder: the stack options without `causal` (rejected by name before this check). */
const { causal: _causal, ...stackKeys } = ATTENTION_LAYERS_KEYS
export const STACK_KEYS: OptionKeys<StackOptions> = stackKeys

export const TRANSFORMER_WRAPPER_KEYS: OptionKeys<TransformerWrapperOptions> = {
  numTokens: true,
  maxSeqLen: true,
  attnLayers: true,
  embDim: true,
  embDropout: true,
  postEmbNorm: true,
  numMemoryTokens: true,
  tieEmbedding: true,
  useAbsPosEmb: true,
  scaledSinuPosEmb: true,
  l2normEmbed: true,
  logitsDim: true,
  returnOnlyEmbed: true,
  embFracGradient: true,
  sigsoftmaxLogits: true,
  seed: true,
}

/**
 * Rejects unknown keys of a stack's options and of its nested `attn`, `ff` and `crossAttn`
 * objects, before any layer (and so any tensor) is built.
 */
export function rejectUnknownStackOptions(
  who: string,
  options: object,
  known: OptionKeys<object> | Readonly<Record<string, true>>,
): void {
  rejectUnknownOptions(who, options, known)
  const nested = options as { attn?: object; ff?: object; crossAttn?: object }
  // dim, heads, causal and the rng are the stack's own: a layer-level value would be ignored.
  const outer = ['dim', 'heads', 'causal', 'rng']
  if (nested.attn != null) rejectUnknownOptions(who, nested.attn, LAYER_ATTENTION_KEYS, 'attn.', outer)
  if (nested.crossAttn != null)
    rejectUnknownOptions(who, nested.crossAttn, LAYER_ATTENTION_KEYS, 'crossAttn.', outer)
  if (nested.ff != null) rejectUnknownOptions(who, nested.ff, LAYER_FEED_FORWARD_KEYS, 'ff.', outer)
}
