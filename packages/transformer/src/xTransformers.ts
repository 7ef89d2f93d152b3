import type * as tf from '@tensorflow/tfjs-core'
import { ConfigError, decodeSafetensors, encodeSafetensors, readBytes, StateDictError } from '@xattn/core'
import type { LayerAttentionOptions, LayerFeedForwardOptions, StackOptions } from './attentionLayers.js'
import { Decoder, Encoder } from './attentionLayers.js'
import { alibiSlopes } from './positions.js'
import { TransformerWrapper, type TransformerWrapperOptions } from './transformerWrapper.js'

const PKG = '@xattn/transformer'

/** x-transformers kwargs as JSON (Python names, snake_case). */
export type XTransformersKwargs = Readonly<Record<string, unknown>>

/** A model description as the fixtures' `case.json` `config`: the classes and their kwargs. */
export interface XTransformersConfig {
  /** `'Decoder'` or `'Encoder'`. */
  readonly layers: string
  /** The `Decoder(...)` / `Encoder(...)` kwargs. */
  readonly layers_kwargs: XTransformersKwargs
  /** The `TransformerWrapper(...)` kwargs (without `attn_layers`). */
  readonly wrapper: XTransformersKwargs
  /** Other keys (fixture metadata such as `name`, `batch`) are not read. */
  readonly [other: string]: unknown
}

type Kind = 'bool' | 'int' | 'number' | 'intOrList' | 'intList' | 'numberOrList' | 'layerList'

interface Rule {
  readonly kind: Kind
  /** camelCase option name */
  readonly to: string
}

// Kwargs that are translated one to one.
const LAYER_RULES: Readonly<Record<string, Rule>> = {
  dim: { kind: 'int', to: 'dim' },
  depth: { kind: 'int', to: 'depth' },
  heads: { kind: 'int', to: 'heads' },
  cross_attend: { kind: 'bool', to: 'crossAttend' },
  only_cross: { kind: 'bool', to: 'onlyCross' },
  use_scalenorm: { kind: 'bool', to: 'useScalenorm' },
  use_rmsnorm: { kind: 'bool', to: 'useRmsnorm' },
  use_simple_rmsnorm: { kind: 'bool', to: 'useSimpleRmsnorm' },
  norm_add_unit_offset: { kind: 'bool', to: 'normAddUnitOffset' },
  alibi_pos_bias: { kind: 'bool', to: 'alibiPosBias' },
  alibi_num_heads: { kind: 'int', to: 'alibiNumHeads' },
  rel_pos_bias: { kind: 'bool', to: 'relPosBias' },
  rel_pos_num_buckets: { kind: 'int', to: 'relPosNumBuckets' },
  rel_pos_max_distance: { kind: 'int', to: 'relPosMaxDistance' },
  dynamic_pos_bias: { kind: 'bool', to: 'dynamicPosBias' },
  dynamic_pos_bias_log_distance: { kind: 'bool', to: 'dynamicPosBiasLogDistance' },
  dynamic_pos_bias_mlp_depth: { kind: 'int', to: 'dynamicPosBiasMlpDepth' },
  rotary_pos_emb: { kind: 'bool', to: 'rotaryPosEmb' },
  rotary_emb_dim: { kind: 'int', to: 'rotaryEmbDim' },
  rotary_xpos: { kind: 'bool', to: 'rotaryXpos' },
  rotary_xpos_scale_base: { kind: 'number', to: 'rotaryXposScaleBase' },
  rotary_interpolation_factor: { kind: 'number', to: 'rotaryInterpolationFactor' },
  rotary_base_rescale_factor: { kind: 'number', to: 'rotaryBaseRescaleFactor' },
  residual_attn: { kind: 'bool', to: 'residualAttn' },
  cross_residual_attn: { kind: 'bool', to: 'crossResidualAttn' },
  macaron: { kind: 'bool', to: 'macaron' },
  pre_norm: { kind: 'bool', to: 'preNorm' },
  gate_residual: { kind: 'bool', to: 'gateResidual' },
  scale_residual: { kind: 'bool', to: 'scaleResidual' },
  scale_residual_constant: { kind: 'number', to: 'scaleResidualConstant' },
  shift_tokens: { kind: 'intOrList', to: 'shiftTokens' },
  sandwich_norm: { kind: 'bool', to: 'sandwichNorm' },
  use_layerscale: { kind: 'bool', to: 'useLayerscale' },
  layerscale_init_value: { kind: 'number', to: 'layerscaleInitValue' },
  softclamp_output: { kind: 'bool', to: 'softclampOutput' },
  softclamp_output_value: { kind: 'number', to: 'softclampOutputValue' },
  zero_init_branch_output: { kind: 'bool', to: 'zeroInitBranchOutput' },
  disable_abs_pos_emb: { kind: 'bool', to: 'disableAbsPosEmb' },
  custom_layers: { kind: 'layerList', to: 'customLayers' },
  sandwich_coef: { kind: 'int', to: 'sandwichCoef' },
  par_ratio: { kind: 'int', to: 'parRatio' },
  layer_dropout: { kind: 'numberOrList', to: 'layerDropout' },
  weight_tie_layers: { kind: 'bool', to: 'weightTieLayers' },
  resi_dual: { kind: 'bool', to: 'resiDual' },
  add_value_residual: { kind: 'bool', to: 'addValueResidual' },
  resi_dual_scale: { kind: 'number', to: 'resiDualScale' },
  layers_execute_order: { kind: 'intList', to: 'layersExecuteOrder' },
}

const ATTN_RULES: Readonly<Record<string, Rule>> = {
  dim_head: { kind: 'int', to: 'dimHead' },
  kv_heads: { kind: 'int', to: 'kvHeads' },
  one_kv_head: { kind: 'bool', to: 'oneKvHead' },
  value_dim_head: { kind: 'int', to: 'valueDimHead' },
  num_mem_kv: { kind: 'int', to: 'numMemKv' },
  flash: { kind: 'bool', to: 'flash' },
  dropout: { kind: 'number', to: 'dropout' },
  qk_norm: { kind: 'bool', to: 'qkNorm' },
  qk_norm_groups: { kind: 'int', to: 'qkNormGroups' },
  qk_norm_scale: { kind: 'number', to: 'qkNormScale' },
  qk_norm_dim_scale: { kind: 'bool', to: 'qkNormDimScale' },
  gate_values: { kind: 'bool', to: 'gateValues' },
  swiglu_values: { kind: 'bool', to: 'swigluValues' },
  pre_talking_heads: { kind: 'bool', to: 'preTalkingHeads' },
  post_talking_heads: { kind: 'bool', to: 'postTalkingHeads' },
  sparse_topk: { kind: 'int', to: 'sparseTopk' },
  softclamp_logits: { kind: 'bool', to: 'softclampLogits' },
  logit_softclamp_value: { kind: 'number', to: 'logitSoftclampValue' },
  head_scale: { kind: 'bool', to: 'headScale' },
  on_attn: { kind: 'bool', to: 'onAttn' },
  zero_init_output: { kind: 'bool', to: 'zeroInitOutput' },
  gate_value_heads: { kind: 'bool', to: 'gateValueHeads' },
  add_zero_kv: { kind: 'bool', to: 'addZeroKv' },
  max_attend_past: { kind: 'int', to: 'maxAttendPast' },
}

const CROSS_ATTN_RULES: Readonly<Record<string, Rule>> = {
  ...ATTN_RULES,
  dim_context: { kind: 'int', to: 'dimContext' },
}

const FF_RULES: Readonly<Record<string, Rule>> = {
  mult: { kind: 'number', to: 'mult' },
  glu: { kind: 'bool', to: 'glu' },
  glu_mult_bias: { kind: 'bool', to: 'gluMultBias' },
  swish: { kind: 'bool', to: 'swish' },
  relu_squared: { kind: 'bool', to: 'reluSquared' },
  post_act_ln: { kind: 'bool', to: 'postActLn' },
  dropout: { kind: 'number', to: 'dropout' },
  no_bias: { kind: 'bool', to: 'noBias' },
  zero_init_output: { kind: 'bool', to: 'zeroInitOutput' },
}

const WRAPPER_RULES: Readonly<Record<string, Rule>> = {
  num_tokens: { kind: 'int', to: 'numTokens' },
  max_seq_len: { kind: 'int', to: 'maxSeqLen' },
  emb_dim: { kind: 'int', to: 'embDim' },
  emb_dropout: { kind: 'number', to: 'embDropout' },
  post_emb_norm: { kind: 'bool', to: 'postEmbNorm' },
  num_memory_tokens: { kind: 'int', to: 'numMemoryTokens' },
  tie_embedding: { kind: 'bool', to: 'tieEmbedding' },
  use_abs_pos_emb: { kind: 'bool', to: 'useAbsPosEmb' },
  scaled_sinu_pos_emb: { kind: 'bool', to: 'scaledSinuPosEmb' },
  l2norm_embed: { kind: 'bool', to: 'l2normEmbed' },
  logits_dim: { kind: 'int', to: 'logitsDim' },
  return_only_embed: { kind: 'bool', to: 'returnOnlyEmbed' },
  emb_frac_gradient: { kind: 'number', to: 'embFracGradient' },
  sigsoftmax_logits: { kind: 'bool', to: 'sigsoftmaxLogits' },
}

// Kwargs accepted only at their x-transformers default (they change nothing then); any other value
// is unsupported. `null` stands for Python's None.
const LAYER_DEFAULTS: Readonly<Record<string, unknown>> = {
  cross_attn_tokens_dropout: 0,
  pre_norm_has_final_norm: true,
  dynamic_pos_bias_norm: false,
  use_adaptive_layernorm: false,
  use_adaptive_rmsnorm: false,
  use_adaptive_layerscale: false,
  adaptive_condition_mlp: false,
  adaptive_condition_mlp_expansion: 4,
  dim_condition: null,
  unet_skips: false,
  reinject_input: false,
}

const ATTN_DEFAULTS: Readonly<Record<string, unknown>> = {
  pre_scale_post_talking_heads: false,
  sparse_topk_straight_through: false,
  hard: false,
  l2_distance: false,
  sigmoid: false,
  selective: false,
  custom_attn_fn: null,
  shared_kv: false,
  tensor_product: false,
  rotary_embed_values: false,
  use_cope: false,
  cope_max_pos: 16,
  cope_soft_onehot_pos: false,
  cope_talking_heads: false,
  neutreno_alpha: 0.4,
  neutreno_value_residual: false,
  onnxable: false,
  dim_out: null,
}

const FF_DEFAULTS: Readonly<Record<string, unknown>> = { dim_out: null }

const WRAPPER_DEFAULTS: Readonly<Record<string, unknown>> = {
  max_mem_len: 0,
  shift_mem_down: 0,
  memory_tokens_interspersed_every: null,
  num_output_heads: 1,
  recycling: false,
  average_pool_embed: false,
  use_cls_token: false,
  num_cls_tokens: 1,
  squeeze_out_last_dim: false,
  token_emb: null,
  mixture_of_softmax: false,
}

function kindMatches(kind: Kind, value: unknown): boolean {
  switch (kind) {
    case 'bool':
      return typeof value === 'boolean'
    case 'int':
      return typeof value === 'number' && Number.isInteger(value)
    case 'number':
      return typeof value === 'number' && Number.isFinite(value)
    case 'intOrList':
      return (
        (typeof value === 'number' && Number.isInteger(value)) ||
        (Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isInteger(v)))
      )
    case 'intList':
      return Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isInteger(v))
    case 'numberOrList':
      return (
        (typeof value === 'number' && Number.isFinite(value)) ||
        (Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v)))
      )
    case 'layerList':
      return Array.isArray(value) && value.every((v) => v === 'a' || v === 'c' || v === 'f')
  }
}

function sameDefault(value: unknown, fallback: unknown): boolean {
  if (fallback === null) return value === null || value === undefined
  if (Array.isArray(value) || Array.isArray(fallback))
    return JSON.stringify(value) === JSON.stringify(fallback)
  return value === fallback
}

function show(value: unknown): string {
  if (value === true) return 'True'
  if (value === false) return 'False'
  if (value === null) return 'None'
  return JSON.stringify(value)
}

class KwargsReader {
  readonly problems: string[] = []
  readonly problemKwargs: string[] = []

  reject(name: string, why: string): void {
    this.problemKwargs.push(name)
    this.problems.push(`${name} (${why})`)
  }

  translate(
    kwargs: Readonly<Record<string, unknown>>,
    prefix: string,
    rules: Readonly<Record<string, Rule>>,
    defaults: Readonly<Record<string, unknown>>,
  ): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(kwargs)) {
      const name = `${prefix}${key}`
      const rule = rules[key]
      if (rule !== undefined) {
        // Python's None: the kwarg's default (required ones are checked afterwards).
        if (value === null) continue
        if (!kindMatches(rule.kind, value)) this.reject(name, `expected ${rule.kind}, got ${show(value)}`)
        else out[rule.to] = Array.isArray(value) ? [...value] : value
        continue
      }
      if (key in defaults) {
        if (!sameDefault(value, defaults[key]))
          this.reject(name, `only the default ${show(defaults[key])} is supported, got ${show(value)}`)
        continue
      }
      this.reject(name, `not supported by @xattn/transformer, got ${show(value)}`)
    }
    return out
  }
}

/** Options of {@link createFromXTransformers} / {@link fromXTransformers}. */
export interface XTransformersBuildOptions {
  /**
   * Attention implementation for every attention layer ('reference', 'flash', …); default
   * 'flash' when the kwargs say `attn_flash=True`, else 'reference'.
   */
  readonly attention?: string
}

function splitPrefixed(kwargs: XTransformersKwargs): {
  attn: Record<string, unknown>
  crossAttn: Record<string, unknown>
  ff: Record<string, unknown>
  rest: Record<string, unknown>
} {
  const attn: Record<string, unknown> = {}
  const crossAttn: Record<string, unknown> = {}
  const ff: Record<string, unknown> = {}
  const rest: Record<string, unknown> = {}
  // Same grouping order as x-transformers: ff_ first, then attn_, then cross_attn_.
  for (const [key, value] of Object.entries(kwargs)) {
    // Named parameters of AttentionLayers (cross_attn_tokens_dropout) are not prefix-grouped.
    if (key in LAYER_RULES || key in LAYER_DEFAULTS) rest[key] = value
    else if (key.startsWith('ff_')) ff[key.slice(3)] = value
    else if (key.startsWith('attn_')) attn[key.slice(5)] = value
    else if (key.startsWith('cross_attn_')) crossAttn[key.slice(11)] = value
    else rest[key] = value
  }
  return { attn, crossAttn, ff, rest }
}

/**
 * Builds (randomly initialised) the model an x-transformers config describes, or throws one
 * {@link ConfigError} that lists every unsupported kwarg by name.
 *
 * @example
 * const model = createFromXTransformers({
 *   layers: 'Decoder', layers_kwargs: { dim: 32, depth: 2, heads: 4, attn_dim_head: 8 },
 *   wrapper: { num_tokens: 64, max_seq_len: 16 },
 * })
 */
export function createFromXTransformers(
  config: XTransformersConfig,
  options: XTransformersBuildOptions = {},
): TransformerWrapper {
  if (config === null || typeof config !== 'object') {
    throw new ConfigError(
      PKG,
      'config',
      'fromXTransformers: config must be an object with layers, layers_kwargs and wrapper',
    )
  }
  const reader = new KwargsReader()
  const layersName = config.layers
  if (layersName !== 'Decoder' && layersName !== 'Encoder') {
    reader.reject('layers', `only Decoder and Encoder are supported, got ${show(layersName)}`)
  }
  const layerKwargs = (config.layers_kwargs ?? {}) as XTransformersKwargs
  const wrapperKwargs = (config.wrapper ?? {}) as XTransformersKwargs
  const { attn, crossAttn, ff, rest } = splitPrefixed(layerKwargs)
  if ('causal' in rest) {
    reader.reject('causal', 'causality is set by the Decoder/Encoder class')
    delete rest.causal
  }
  const stack = reader.translate(rest, '', LAYER_RULES, LAYER_DEFAULTS)
  const attnOptions = reader.translate(attn, 'attn_', ATTN_RULES, ATTN_DEFAULTS)
  const crossOptions = reader.translate(crossAttn, 'cross_attn_', CROSS_ATTN_RULES, ATTN_DEFAULTS)
  const ffOptions = reader.translate(ff, 'ff_', FF_RULES, FF_DEFAULTS)
  const { attn_layers: _ignored, ...wrapperRest } = wrapperKwargs as Record<string, unknown>
  if ('attn_layers' in wrapperKwargs)
    reader.reject('attn_layers', 'give the layers as `layers` and `layers_kwargs`')
  const wrapper = reader.translate(wrapperRest, '', WRAPPER_RULES, {
    ...WRAPPER_DEFAULTS,
    // Only read by return_attn_z_loss / recycling, which are not supported on the call side.
    attn_z_loss_weight: wrapperRest.attn_z_loss_weight ?? null,
    train_max_recycle_steps: wrapperRest.train_max_recycle_steps ?? null,
    mixture_of_softmax_k: wrapperRest.mixture_of_softmax_k ?? null,
    embed_num_tokens: Array.isArray(wrapperRest.embed_num_tokens)
      ? []
      : (wrapperRest.embed_num_tokens ?? null),
  })
  if (wrapperRest.embed_num_tokens !== undefined && JSON.stringify(wrapperRest.embed_num_tokens) !== '{}') {
    reader.reject('embed_num_tokens', `only {} is supported, got ${show(wrapperRest.embed_num_tokens)}`)
  }
  for (const required of 'customLayers' in stack ? (['dim'] as const) : (['dim', 'depth'] as const)) {
    if (!(required in stack) && !reader.problemKwargs.includes(required)) reader.reject(required, 'required')
  }
  for (const required of ['numTokens', 'maxSeqLen'] as const) {
    const py = required === 'numTokens' ? 'num_tokens' : 'max_seq_len'
    if (!(required in wrapper) && !reader.problemKwargs.includes(py)) reader.reject(py, 'required')
  }
  if (reader.problems.length > 0) {
    throw new ConfigError(
      PKG,
      reader.problemKwargs[0] ?? 'config',
      `fromXTransformers: unsupported x-transformers kwargs: ${reader.problems.join('; ')}`,
    )
  }
  if (options.attention !== undefined) {
    delete attnOptions.flash
    delete crossOptions.flash
    attnOptions.attention = options.attention
  }
  if (stack.rotaryPosEmb === true || stack.rotaryXpos === true) {
    // x-transformers: rotary_emb_dim = max(default(rotary_emb_dim, dim_head // 2), 32).
    const dimHead = (attnOptions.dimHead as number | undefined) ?? 64
    stack.rotaryEmbDim = Math.max((stack.rotaryEmbDim as number | undefined) ?? Math.floor(dimHead / 2), 32)
  }
  const stackOptions = {
    ...stack,
    attn: attnOptions as LayerAttentionOptions,
    ff: ffOptions as LayerFeedForwardOptions,
    crossAttn: crossOptions as LayerAttentionOptions,
  } as unknown as StackOptions
  const attnLayers = layersName === 'Decoder' ? new Decoder(stackOptions) : new Encoder(stackOptions)
  try {
    return new TransformerWrapper({
      ...(wrapper as unknown as Omit<TransformerWrapperOptions, 'attnLayers'>),
      attnLayers,
    })
  } catch (error) {
    attnLayers.dispose()
    throw error
  }
}

/** Inputs of {@link fromXTransformers}. */
export interface FromXTransformersInput extends XTransformersBuildOptions {
  /** The kwargs as JSON (`{ layers, layers_kwargs, wrapper }`). */
  readonly config: XTransformersConfig
  /** The state dict as a safetensors file: bytes, or a path (Node). */
  readonly weights: string | Uint8Array | ArrayBuffer
  /**
   * Optional non-persistent buffers (x-transformers' `buffers.safetensors`: ALiBi slopes,
   * sinusoidal `inv_freq`). They are recomputed here; given ones are checked against them.
   */
  readonly buffers?: string | Uint8Array | ArrayBuffer
  /**
   * A prefix every state-dict key carries and that is removed before loading, e.g. `'net.'` for
   * the state dict of an `AutoregressiveWrapper`. Keys without it are reported as unexpected.
   */
  readonly prefix?: string
}

/**
 * Loads an x-transformers checkpoint: builds the model from its kwargs (every kwarg supported or
 * rejected by name in one {@link ConfigError}) and loads the state dict (every key and shape
 * checked; one {@link StateDictError} lists all problems).
 *
 * @example
 * const model = await fromXTransformers({ config: JSON.parse(kwargsJson), weights: 'model.safetensors' })
 * const logits = model.forward(tokens) // [b, n, num_tokens]
 */
export async function fromXTransformers(input: FromXTransformersInput): Promise<TransformerWrapper> {
  const model = createFromXTransformers(
    input.config,
    input.attention === undefined ? {} : { attention: input.attention },
  )
  try {
    const bytes = await readBytes(input.weights)
    const weights = decodeSafetensors(bytes)
    try {
      const prefix = input.prefix ?? ''
      const renamed = new Map<string, tf.Tensor>()
      for (const [key, t] of weights) renamed.set(key.startsWith(prefix) ? key.slice(prefix.length) : key, t)
      try {
        model.loadStateDict(renamed)
      } catch (error) {
        const hint =
          prefix === '' && [...weights.keys()].every((k) => k.startsWith('net.'))
            ? " (every key starts with 'net.': an AutoregressiveWrapper state dict; pass prefix: 'net.')"
            : ''
        if (error instanceof StateDictError && hint !== '') {
          throw new StateDictError(PKG, `${error.message}${hint}`, {
            missing: [...error.missing],
            unexpected: [...error.unexpected],
            misShaped: [...error.misShaped],
          })
        }
        throw error
      }
    } finally {
      for (const t of weights.values()) t.dispose()
    }
    if (input.buffers !== undefined) checkBuffers(model, await readBytes(input.buffers))
    model.eval()
    return model
  } catch (error) {
    model.dispose()
    throw error
  }
}

function checkBuffers(model: TransformerWrapper, bytes: Uint8Array): void {
  const given = decodeSafetensors(bytes)
  const problems: string[] = []
  try {
    const expected = new Map<string, Float32Array>()
    const slopes = model.attnLayers.alibiSlopes
    if (slopes !== null) {
      const heads = slopes.filter((s) => s !== 0).length
      expected.set('attn_layers.rel_pos.slopes', Float32Array.from(alibiSlopes(heads)))
    }
    for (const [name, tensor, persistent] of model.namedBuffers()) {
      if (!persistent) expected.set(name, tensor.dataSync() as Float32Array)
    }
    for (const [name, tensor] of given) {
      const want = expected.get(name)
      if (want === undefined) {
        problems.push(`unexpected buffer ${name}`)
        continue
      }
      const got = tensor.dataSync()
      if (got.length !== want.length) {
        problems.push(`${name}: expected ${want.length} values, got ${got.length}`)
        continue
      }
      for (let i = 0; i < got.length; i++) {
        const w = want[i] as number
        if (Math.abs((got[i] as number) - w) > 1e-6 * Math.max(1, Math.abs(w))) {
          problems.push(`${name}[${i}]: computed ${w}, file has ${got[i]}`)
          break
        }
      }
    }
  } finally {
    for (const t of given.values()) t.dispose()
  }
  if (problems.length > 0) {
    throw new StateDictError(PKG, `fromXTransformers: buffers do not match: ${problems.join('; ')}`, {
      missing: [],
      unexpected: [],
      misShaped: problems,
    })
  }
}

/**
 * The model's state dict under x-transformers' names, encoded as safetensors (what
 * `safetensors.torch.load_file` + `model.load_state_dict` read in Python).
 *
 * @example
 * writeFileSync('model.safetensors', toXTransformersSafetensors(model))
 */
export function toXTransformersSafetensors(model: TransformerWrapper): Uint8Array {
  return encodeSafetensors(model.stateDict() as Map<string, tf.Tensor>)
}
