import * as tf from '@tensorflow/tfjs-core'
import { assertFinite, ConfigError, Module, SeededRandom } from '@xattn/core'
import { Attention, type AttentionCache, type AttentionOptions } from './attention.js'
import { FnWrapper, GRUGating, LayerScale, Residual, type ResidualJoin, shiftTokens } from './blocks.js'
import { ModuleList } from './containers.js'
import { FeedForward, type FeedForwardOptions } from './feedForward.js'
import { createNorm, type Norm, type NormKind } from './norms.js'
import { ATTENTION_LAYERS_KEYS, rejectUnknownStackOptions, STACK_KEYS } from './optionKeys.js'
import { DynamicPositionBias, type PositionBias, RelativePositionBias } from './positionBias.js'
import { alibiSlopes, RotaryEmbedding } from './positions.js'
import { softclamp } from './tensorOps.js'

const PKG = '@xattn/transformer'

/** Attention options a stack passes to each of its attention layers (everything but `dim`, `heads`, `causal`). */
export type LayerAttentionOptions = Omit<AttentionOptions, 'dim' | 'heads' | 'causal' | 'rng'>
/** Feedforward options a stack passes to each of its feedforward layers. */
export type LayerFeedForwardOptions = Omit<FeedForwardOptions, 'dim' | 'rng'>

/**
 * Options of {@link AttentionLayers} / {@link Encoder} / {@link Decoder}; names mirror
 * x-transformers' `AttentionLayers` kwargs, with the `attn_`, `ff_` and `cross_attn_` prefixed
 * ones grouped as `attn`, `ff` and `crossAttn`.
 */
export interface AttentionLayersOptions {
  readonly dim: number
  /** Blocks of the default layout; not needed with `customLayers`. */
  readonly depth?: number
  /** Default 8. */
  readonly heads?: number
  readonly causal?: boolean
  /** Add a cross-attention layer ('c') after each self-attention layer. */
  readonly crossAttend?: boolean
  /** Blocks of cross-attention and feedforward only. */
  readonly onlyCross?: boolean
  readonly useScalenorm?: boolean
  readonly useRmsnorm?: boolean
  readonly useSimpleRmsnorm?: boolean
  /** Store norm gains and LayerScale as `value - 1`; default true. */
  readonly normAddUnitOffset?: boolean
  readonly alibiPosBias?: boolean
  /** Heads that get ALiBi (the rest none); default `heads`. */
  readonly alibiNumHeads?: number
  readonly relPosBias?: boolean
  readonly relPosNumBuckets?: number
  readonly relPosMaxDistance?: number
  readonly dynamicPosBias?: boolean
  readonly dynamicPosBiasLogDistance?: boolean
  readonly dynamicPosBiasMlpDepth?: number
  readonly rotaryPosEmb?: boolean
  /** Rotated features per head (even, ≤ dimHead); default `max(dimHead / 2, 32)` as x-transformers. */
  readonly rotaryEmbDim?: number
  readonly rotaryXpos?: boolean
  readonly rotaryXposScaleBase?: number
  readonly rotaryInterpolationFactor?: number
  readonly rotaryBaseRescaleFactor?: number
  /** ResFormer: add the first self-/cross-attention layer's values to every later one's. */
  readonly addValueResidual?: boolean
  /** Add each self-attention layer's pre-softmax logits to the next one's (RealFormer). */
  readonly residualAttn?: boolean
  readonly crossResidualAttn?: boolean
  /** Feedforward halves around attention: blocks `f a f`, each feedforward scaled by 0.5. */
  readonly macaron?: boolean
  /** Pre-norm (default) or post-norm. */
  readonly preNorm?: boolean
  readonly gateResidual?: boolean
  readonly scaleResidual?: boolean
  readonly scaleResidualConstant?: number
  /** Share one block's parameters across `depth` executions (x-transformers' `weight_tie_layers`). */
  readonly weightTieLayers?: boolean
  /** Run the layers in this order (indices, repeats allowed), e.g. `[0, 1, 0, 1]`. */
  readonly layersExecuteOrder?: readonly number[]
  /** Explicit layer order, e.g. `['a', 'f', 'a', 'f']` ('a' attention, 'c' cross-attention, 'f' feedforward). */
  readonly customLayers?: readonly ('a' | 'c' | 'f')[]
  /** Sandwich transformer: `sandwichCoef` attention layers first and feedforwards last. */
  readonly sandwichCoef?: number
  /** PAR transformer: attention layers only in the first two thirds, at this ratio. */
  readonly parRatio?: number
  /**
   * Stochastic depth: probability of skipping a layer in training mode (one number or one per
   * layer). Not applied when a KV cache is passed.
   */
  readonly layerDropout?: number | readonly number[]
  /** Token shift per layer: a number for every layer or one per layer. */
  readonly shiftTokens?: number | readonly number[]
  readonly sandwichNorm?: boolean
  /** ResiDual (post-norm layers plus a normalised outer residual stream added at the end). */
  readonly resiDual?: boolean
  /** Scale of the outer residual stream, in (0, 1]; default 1. */
  readonly resiDualScale?: number
  readonly useLayerscale?: boolean
  readonly layerscaleInitValue?: number
  readonly softclampOutput?: boolean
  readonly softclampOutputValue?: number
  readonly zeroInitBranchOutput?: boolean
  /** Default: true with rotary or T5 relative bias. Read by {@link TransformerWrapper}. */
  readonly disableAbsPosEmb?: boolean
  readonly attn?: LayerAttentionOptions
  readonly ff?: LayerFeedForwardOptions
  /** Overrides of `attn` for cross-attention layers (e.g. `dimContext`). */
  readonly crossAttn?: LayerAttentionOptions
  /** Seed of the initial parameters; default 0. */
  readonly seed?: number
}

/** Per-call inputs of {@link AttentionLayers.forward}. */
export interface AttentionLayersCall {
  /** `bool [b, n]` padding mask (with `cache`: `[b, offset + n]`, covering the cached keys). */
  readonly mask?: tf.Tensor | null
  /** `[b, mc, dimContext]` for cross-attention layers. */
  readonly context?: tf.Tensor | null
  /** `bool [b, mc]`. */
  readonly contextMask?: tf.Tensor | null
  /**
   * KV-cache hook: one {@link AttentionCache} per attention layer ('a' and 'c', in order), holding
   * the keys/values of earlier positions; `x` then holds only the new positions. Rotary and
   * position biases use positions `mPrev …`. The result's `cache` is the updated list. With
   * `shiftTokens` (causal stacks) the entries also carry each shifted layer's last `max(shift)`
   * pre-shift rows (`tokenShift`, constant size), which the new positions are shifted with.
   */
  readonly cache?: readonly AttentionCache[] | null
  /** Also return per-layer hiddens and attention maps. */
  readonly returnIntermediates?: boolean
}

/** What {@link AttentionLayers.forward} returns; the caller owns every tensor. */
export interface AttentionLayersResult {
  /** `[b, n, dim]` after the final norm. */
  readonly out: tf.Tensor3D
  /** The input of every layer, then the output of the last layer before the final norm (with `returnIntermediates`). */
  readonly hiddens: tf.Tensor3D[]
  /** Post-softmax attention maps `[b, h, n, M + m]` of every attention layer (with `returnIntermediates`). */
  readonly attention: tf.Tensor4D[]
  /** Updated KV cache, one entry per attention layer. */
  readonly cache: AttentionCache[]
}

interface LayerSlot {
  readonly type: 'a' | 'c' | 'f'
  readonly preNorm: Norm | null
  readonly postBranchNorm: Norm | null
  readonly postMainNorm: Norm | null
  readonly attention: Attention | null
  readonly feedForward: FeedForward | null
  readonly branchScale: number
  readonly shifts: readonly number[] | null
  readonly layerScale: LayerScale | null
  readonly residual: ResidualJoin
}

function oneOf(names: Record<string, boolean | undefined>): string[] {
  return Object.entries(names)
    .filter(([, on]) => on === true)
    .map(([name]) => name)
}

/**
 * x-transformers' `AttentionLayers`: a stack of attention ('a'), cross-attention ('c') and
 * feedforward ('f') layers with its norms, residuals and positions. Use {@link Encoder} or
 * {@link Decoder}. State-dict names as x-transformers (`layers.0.0.0.gamma`, `layers.0.1.to_q.weight`,
 * `final_norm.gamma`, `rotary_pos_emb.inv_freq`, `rel_pos.…`).
 *
 * Shapes: `x [b n dim]` → `[b n dim]`.
 *
 * @example
 * const stack = new AttentionLayers({ dim: 32, depth: 2, heads: 4, causal: true, attn: { dimHead: 8 } })
 * const { out, hiddens, attention } = stack.forward(x, { returnIntermediates: true })
 */
export class AttentionLayers extends Module {
  readonly dim: number
  readonly heads: number
  readonly causal: boolean
  readonly crossAttend: boolean
  readonly layerTypes: readonly ('a' | 'c' | 'f')[]
  readonly disableAbsPosEmb: boolean
  readonly residualAttn: boolean
  readonly crossResidualAttn: boolean
  readonly preNorm: boolean
  readonly finalNorm: Norm | null
  readonly rotary: RotaryEmbedding | null
  readonly positionBias: PositionBias | null
  readonly alibiSlopes: readonly number[] | null
  readonly softclampOutputValue: number | null
  private readonly slots: LayerSlot[] = []
  readonly addValueResidual: boolean
  /** ResiDual's outer-residual scale, or null without ResiDual. */
  readonly resiDualScale: number | null
  /** Indices into the layers, in execution order (x-transformers' `layers_execute_order`). */
  readonly executeOrder: readonly number[]
  /** Probability of skipping each layer in training mode (stochastic depth). */
  readonly layerDropouts: readonly number[]

  constructor(options: AttentionLayersOptions) {
    super()
    rejectUnknownStackOptions('AttentionLayers', options, ATTENTION_LAYERS_KEYS)
    try {
      const rng = new SeededRandom(options.seed ?? 0)
      const dim = options.dim
      if (!(Number.isInteger(dim) && dim > 0))
        throw new ConfigError(PKG, 'dim', `AttentionLayers: dim must be a positive integer, got ${dim}`)
      if (
        options.customLayers === undefined &&
        !(Number.isInteger(options.depth) && (options.depth ?? 0) > 0)
      ) {
        throw new ConfigError(
          PKG,
          'depth',
          `AttentionLayers: depth must be a positive integer, got ${options.depth}`,
        )
      }
      this.dim = dim
      this.heads = options.heads ?? 8
      this.causal = options.causal ?? false
      this.crossAttend = options.crossAttend ?? false
      const attnOptions = options.attn ?? {}
      const dimHead = attnOptions.dimHead ?? 64
      const rotaryOn = (options.rotaryPosEmb ?? false) || (options.rotaryXpos ?? false)
      this.disableAbsPosEmb = options.disableAbsPosEmb ?? ((options.relPosBias ?? false) || rotaryOn)

      const norms = oneOf({
        useScalenorm: options.useScalenorm,
        useRmsnorm: options.useRmsnorm,
        useSimpleRmsnorm: options.useSimpleRmsnorm,
      })
      if (norms.length > 1)
        throw new ConfigError(
          PKG,
          norms[1] ?? 'norm',
          `AttentionLayers: choose at most one of ${norms.join(', ')}`,
        )
      const normKind: NormKind = options.useScalenorm
        ? 'scalenorm'
        : options.useRmsnorm
          ? 'rmsnorm'
          : options.useSimpleRmsnorm
            ? 'simplermsnorm'
            : 'layernorm'
      const unitOffset = options.normAddUnitOffset ?? true
      const makeNorm = () => createNorm(normKind, dim, unitOffset)

      const biases = oneOf({
        relPosBias: options.relPosBias,
        dynamicPosBias: options.dynamicPosBias,
        alibiPosBias: options.alibiPosBias,
      })
      if (biases.length > 1)
        throw new ConfigError(
          PKG,
          biases[1] ?? 'relPosBias',
          `AttentionLayers: choose at most one of ${biases.join(', ')}`,
        )
      if (options.rotaryXpos === true && !this.causal) {
        throw new ConfigError(
          PKG,
          'rotaryXpos',
          'AttentionLayers: rotaryXpos needs causal attention (a Decoder)',
        )
      }
      const sandwich = options.sandwichNorm ?? false
      const resiDual = options.resiDual ?? false
      if (resiDual && sandwich) {
        throw new ConfigError(
          PKG,
          'resiDual',
          'AttentionLayers: choose either sandwichNorm or resiDual, not both',
        )
      }
      // ResiDual is post-norm plus a pre-norm-style outer residual stream.
      this.preNorm = resiDual ? false : (options.preNorm ?? true)
      if (sandwich && !this.preNorm)
        throw new ConfigError(PKG, 'sandwichNorm', 'AttentionLayers: sandwichNorm needs preNorm')
      const resiDualScale = options.resiDualScale ?? 1
      if (!(resiDualScale > 0 && resiDualScale <= 1)) {
        throw new ConfigError(
          PKG,
          'resiDualScale',
          `AttentionLayers: resiDualScale must be in (0, 1], got ${resiDualScale}`,
        )
      }
      this.resiDualScale = resiDual ? resiDualScale : null
      this.addValueResidual = options.addValueResidual ?? false
      this.residualAttn = options.residualAttn ?? false
      this.crossResidualAttn = options.crossResidualAttn ?? false
      this.softclampOutputValue =
        options.softclampOutput === true ? (options.softclampOutputValue ?? 30) : null

      if (rotaryOn) {
        // x-transformers' default: max(dimHead / 2, 32). An explicit rotaryEmbDim is taken as is
        // (fromXTransformers applies x-transformers' floor of 32 to the Python kwarg itself).
        const rotDim = options.rotaryEmbDim ?? Math.max(Math.floor(dimHead / 2), 32)
        if (!(Number.isInteger(rotDim) && rotDim > 0) || rotDim > dimHead || rotDim % 2 !== 0) {
          throw new ConfigError(
            PKG,
            'rotaryEmbDim',
            `AttentionLayers: the rotary dimension must be even and at most dimHead=${dimHead}, got ${rotDim}` +
              (options.rotaryEmbDim === undefined
                ? ' (the default max(dimHead / 2, 32)); pass rotaryEmbDim'
                : ''),
          )
        }
        this.rotary = this.addModule(
          'rotary_pos_emb',
          new RotaryEmbedding({
            dim: rotDim,
            useXpos: options.rotaryXpos ?? false,
            scaleBase: options.rotaryXposScaleBase ?? 512,
            interpolationFactor: options.rotaryInterpolationFactor ?? 1,
            baseRescaleFactor: options.rotaryBaseRescaleFactor ?? 1,
          }),
        )
      } else {
        this.rotary = null
      }
      this.alibiSlopes = null
      this.positionBias = null
      if (options.relPosBias === true) {
        const numBuckets = options.relPosNumBuckets ?? 32
        const maxDistance = options.relPosMaxDistance ?? 128
        if (numBuckets > maxDistance)
          throw new ConfigError(
            PKG,
            'relPosNumBuckets',
            'AttentionLayers: relPosNumBuckets must be at most relPosMaxDistance',
          )
        this.positionBias = this.addModule(
          'rel_pos',
          new RelativePositionBias({
            heads: this.heads,
            causal: this.causal,
            scale: dimHead ** 0.5,
            numBuckets,
            maxDistance,
            rng,
          }),
        )
      } else if (options.dynamicPosBias === true) {
        this.positionBias = this.addModule(
          'rel_pos',
          new DynamicPositionBias({
            dim: Math.floor(dim / 4),
            heads: this.heads,
            depth: options.dynamicPosBiasMlpDepth ?? 2,
            logDistance: options.dynamicPosBiasLogDistance ?? false,
            rng,
          }),
        )
      } else if (options.alibiPosBias === true) {
        const alibiHeads = options.alibiNumHeads ?? this.heads
        if (!(Number.isInteger(alibiHeads) && alibiHeads > 0 && alibiHeads <= this.heads)) {
          throw new ConfigError(
            PKG,
            'alibiNumHeads',
            `AttentionLayers: alibiNumHeads must be in [1, heads=${this.heads}], got ${alibiHeads}`,
          )
        }
        const slopes = alibiSlopes(alibiHeads)
        this.alibiSlopes = [...slopes, ...new Array<number>(this.heads - alibiHeads).fill(0)]
      }

      const onlyCross = options.onlyCross ?? false
      let block: ('a' | 'c' | 'f')[] = this.crossAttend
        ? onlyCross
          ? ['c', 'f']
          : ['a', 'c', 'f']
        : ['a', 'f']
      const macaron = options.macaron ?? false
      if (macaron) block = ['f', ...block]
      let executeOrder: number[] | null =
        options.layersExecuteOrder === undefined ? null : [...options.layersExecuteOrder]
      let typeOptions = options
      if (options.weightTieLayers === true) {
        // x-transformers: one block of parameters, executed `depth` times.
        if (
          executeOrder !== null ||
          options.customLayers !== undefined ||
          options.parRatio !== undefined ||
          options.sandwichCoef !== undefined
        ) {
          throw new ConfigError(
            PKG,
            'weightTieLayers',
            'AttentionLayers: weightTieLayers excludes layersExecuteOrder, customLayers, parRatio and sandwichCoef',
          )
        }
        executeOrder = []
        for (let d = 0; d < (options.depth ?? 0); d++) executeOrder.push(...block.map((_, i) => i))
        typeOptions = { ...options, depth: 1 }
      }
      const types = layerTypesOf(typeOptions, block)
      this.layerTypes = types
      const order = executeOrder ?? types.map((_, i) => i)
      if (order.length === 0 || order.some((i) => !(Number.isInteger(i) && i >= 0 && i < types.length))) {
        throw new ConfigError(
          PKG,
          'layersExecuteOrder',
          `AttentionLayers: layersExecuteOrder must index the ${types.length} layers, got ${JSON.stringify(order)}`,
        )
      }
      this.executeOrder = order
      const dropOption = options.layerDropout ?? 0
      const drops = typeof dropOption === 'number' ? types.map(() => dropOption) : [...dropOption]
      if (drops.length !== types.length || drops.some((p) => !(p >= 0 && p < 1))) {
        throw new ConfigError(
          PKG,
          'layerDropout',
          `AttentionLayers: layerDropout must be in [0, 1), one number or one per layer (${types.length}), got ${JSON.stringify(dropOption)}`,
        )
      }
      this.layerDropouts = drops

      const shiftOption = options.shiftTokens ?? 0
      const shiftsPerLayer = typeof shiftOption === 'number' ? types.map(() => shiftOption) : [...shiftOption]
      if (shiftsPerLayer.length !== types.length) {
        throw new ConfigError(
          PKG,
          'shiftTokens',
          `AttentionLayers: shiftTokens needs one entry per layer (${types.length}), got ${shiftsPerLayer.length}`,
        )
      }
      const useLayerscale = options.useLayerscale ?? false
      const zeroInit = options.zeroInitBranchOutput ?? false
      const layers = this.addModule('layers', new ModuleList())
      types.forEach((type, index) => {
        const layer = layers.add(index, new ModuleList())
        const normList = layer.add(0, new ModuleList())
        const preNormModule = this.preNorm ? normList.add(0, makeNorm()) : null
        const postBranchNorm = sandwich ? normList.add(1, makeNorm()) : null
        const postMainNorm = this.preNorm ? null : normList.add(2, makeNorm())
        let core: Module
        let attention: Attention | null = null
        let feedForward: FeedForward | null = null
        if (type === 'f') {
          feedForward = new FeedForward({
            dim,
            ...(options.ff ?? {}),
            ...(zeroInit ? { zeroInitOutput: true } : {}),
            rng,
          })
          core = feedForward
        } else {
          const merged = type === 'c' ? { ...attnOptions, ...(options.crossAttn ?? {}) } : attnOptions
          attention = new Attention({
            dim,
            heads: this.heads,
            causal: type === 'a' ? this.causal : false,
            ...merged,
            ...(zeroInit ? { zeroInitOutput: true } : {}),
            rng,
          })
          core = attention
        }
        const branchScale = macaron && type === 'f' ? 0.5 : 1
        let top: Module = core
        if (branchScale !== 1) top = new FnWrapper(top)
        const layerShift = shiftsPerLayer[index] ?? 0
        let shifts: number[] | null = null
        if (layerShift > 0) {
          const lower = this.causal ? 0 : -layerShift
          shifts = []
          for (let s = lower; s <= layerShift; s++) shifts.push(s)
          top = new FnWrapper(top)
        }
        let layerScale: LayerScale | null = null
        if (useLayerscale) {
          layerScale = new LayerScale(top, dim, options.layerscaleInitValue ?? 0, unitOffset)
          top = layerScale
        }
        layer.add(1, top)
        const residual: ResidualJoin =
          options.gateResidual === true
            ? new GRUGating(dim, options.scaleResidual ?? false, rng)
            : new Residual(dim, options.scaleResidual ?? false, options.scaleResidualConstant ?? 1)
        layer.add(2, residual)
        this.slots.push({
          type,
          preNorm: preNormModule,
          postBranchNorm,
          postMainNorm,
          attention,
          feedForward,
          branchScale,
          shifts,
          layerScale,
          residual,
        })
      })
      this.finalNorm = this.preNorm || resiDual ? this.addModule('final_norm', makeNorm()) : null
    } catch (error) {
      // An option rejected part-way (e.g. by an attention layer's head layout) must not leave the
      // norms, positions and layers built so far behind.
      this.dispose()
      throw error
    }
  }

  /** The attention layers ('a' and 'c'), in order: the KV cache has one entry per layer here. */
  get attentionLayers(): Attention[] {
    return this.executedSlots.flatMap((slot) => (slot.attention === null ? [] : [slot.attention]))
  }

  /** Positions already in `cache` (the length of the first self-attention entry); 0 without one. */
  cacheOffset(cache: readonly AttentionCache[] | null): number {
    if (cache === null) return 0
    const attnTypes = this.executedSlots.filter((slot) => slot.attention !== null).map((slot) => slot.type)
    const firstSelf = attnTypes.indexOf('a')
    return firstSelf < 0 ? 0 : (cache[firstSelf]?.k.shape[2] ?? 0)
  }

  /** The layers in execution order (a tied layer appears once per execution). */
  private get executedSlots(): LayerSlot[] {
    return this.executeOrder.map((i) => this.slots[i] as LayerSlot)
  }

  /**
   * Where the token shift state lives in the cache: per executed shifted layer (in execution
   * order) the cache entry that carries its rows and its row count `max(shift)`. Null when the
   * shift cannot be cached (not causal, or no self-attention layer) or nothing shifts.
   */
  private shiftPlan(): { readonly owner: number; readonly rows: number }[] | null {
    const executed = this.executedSlots
    if (!this.causal || !executed.some((slot) => slot.type === 'a')) return null
    const plan: { owner: number; rows: number }[] = []
    let attnIndex = 0
    for (const slot of executed) {
      if (slot.shifts !== null) {
        // An attention layer owns its rows; a feedforward layer's go to the last attention entry.
        const owner = slot.attention !== null ? attnIndex : Math.max(attnIndex - 1, 0)
        plan.push({ owner, rows: Math.max(...slot.shifts.map(Math.abs)) })
      }
      if (slot.attention !== null) attnIndex++
    }
    return plan.length === 0 ? null : plan
  }

  /** Why this stack cannot decode with a KV cache (the x-transformers option name), or null. */
  cacheUnsupportedReason(): string | null {
    // Token shift is cached as the last max(shift) pre-shift rows of each shifted layer (see
    // AttentionCache.tokenShift). Not without causal masking: its negative shifts read later tokens,
    // so rows computed before those tokens arrived go stale. Nor without a self-attention layer,
    // whose cached keys give the offset and hold the rows.
    if (this.executedSlots.some((slot) => slot.shifts !== null) && this.shiftPlan() === null)
      return 'shift_tokens'
    // Without causal masking, a position's hidden state after the first self-attention layer
    // depends on later tokens, so keys cached from it by later layers go stale as tokens arrive:
    // a second self-attention layer cannot be cached (one layer's keys come from the embeddings).
    if (!this.causal && this.executedSlots.filter((slot) => slot.type === 'a').length > 1) return 'causal'
    return null
  }

  /** The cache's token shift rows must be the ones this stack returned: count, then shapes. */
  private checkShiftCache(
    cache: readonly AttentionCache[],
    plan: readonly { readonly owner: number; readonly rows: number }[],
    b: number,
  ): void {
    cache.forEach((entry, i) => {
      const want = plan.filter((p) => p.owner === i)
      const got = entry.tokenShift ?? []
      if (got.length !== want.length) {
        throw new ConfigError(
          PKG,
          'cache',
          `AttentionLayers: cache entry ${i} must carry ${want.length} token shift row tensor(s) (shift_tokens), got ${got.length}; pass the cache this stack returned`,
        )
      }
      got.forEach((rows, j) => {
        const shape = [b, want[j]?.rows ?? 0, this.dim]
        if (rows.shape.length !== 3 || rows.shape.some((d, k) => d !== shape[k])) {
          throw new ConfigError(
            PKG,
            'cache',
            `AttentionLayers: cache entry ${i} token shift rows ${j} must be [${shape.join(',')}], got [${rows.shape.join(',')}]`,
          )
        }
      })
    })
  }

  /** `x [b n dim]` → `{ out [b n dim], hiddens, attention, cache }`. */
  forward(x: tf.Tensor, call: AttentionLayersCall = {}): AttentionLayersResult {
    if (x.shape.length !== 3 || x.shape[2] !== this.dim) {
      throw new ConfigError(
        PKG,
        'x',
        `AttentionLayers: x must be [b, n, ${this.dim}], got [${x.shape.join(',')}]`,
      )
    }
    const context = call.context ?? null
    if (this.crossAttend !== (context !== null)) {
      throw new ConfigError(
        PKG,
        'context',
        this.crossAttend
          ? 'AttentionLayers: crossAttend layers need a context'
          : 'AttentionLayers: context given but crossAttend is off',
      )
    }
    const numAttention = this.executedSlots.filter((s) => s.attention !== null).length
    if (call.cache != null && call.cache.length !== numAttention) {
      throw new ConfigError(
        PKG,
        'cache',
        `AttentionLayers: cache needs one entry per attention layer (${numAttention}), got ${call.cache.length}`,
      )
    }
    const plan = this.shiftPlan()
    if (call.cache != null && plan !== null) this.checkShiftCache(call.cache, plan, x.shape[0] as number)
    // One O(size) reduction and one read (cpu/wasm): NaN in the context would spread silently.
    assertFinite('@xattn/transformer AttentionLayers.forward', 'context', context)
    const wantIntermediates = call.returnIntermediates === true
    const result = tf.tidy(() => {
      const n = x.shape[1] as number
      const offset = this.cacheOffset(call.cache ?? null)
      const rotary = this.rotary === null ? null : this.rotary.applyRange(n, offset)
      const hiddens: tf.Tensor[] = []
      const maps: tf.Tensor[] = []
      const caches: tf.Tensor[] = []
      let h: tf.Tensor = x
      const resiScale = this.resiDualScale
      let outer: tf.Tensor | null = resiScale === null ? null : tf.mul(x, tf.scalar(resiScale))
      let prevAttn: tf.Tensor | null = null
      let prevCrossAttn: tf.Tensor | null = null
      let firstSelfValues: tf.Tensor | null = null
      let firstCrossValues: tf.Tensor | null = null
      let attnIndex = 0
      const priorShift = plan === null ? [] : (call.cache ?? []).flatMap((entry) => entry.tokenShift ?? [])
      const shiftRows: tf.Tensor[] = []
      for (const index of this.executeOrder) {
        const slot = this.slots[index] as LayerSlot
        // Stochastic depth (training only, as x-transformers: the layer is skipped entirely).
        const drop = this.layerDropouts[index] ?? 0
        if (this.training && drop > 0 && call.cache == null && Math.random() < drop) {
          // A skipped layer saw no input: zero rows keep the token shift state aligned with the plan.
          const skipped = slot.shifts === null ? undefined : plan?.[shiftRows.length]
          if (skipped !== undefined) shiftRows.push(tf.zeros([x.shape[0] as number, skipped.rows, this.dim]))
          continue
        }
        const residual = h
        // The caller's own x is handed back as a clone, so disposing the results never frees it.
        if (wantIntermediates) hiddens.push(h === x ? tf.clone(h) : h)
        let branchInput = slot.preNorm === null ? h : slot.preNorm.apply(h)
        let out: tf.Tensor
        if (slot.shifts !== null) {
          const shiftMask = slot.type === 'f' ? null : (call.mask ?? null)
          const step = plan?.[shiftRows.length]
          if (step === undefined) {
            branchInput = shiftTokens(branchInput, slot.shifts, shiftMask)
          } else {
            const cached = shiftedWithHistory(
              branchInput,
              slot.shifts,
              shiftMask,
              priorShift[shiftRows.length] ?? null,
              step.rows,
              offset,
            )
            branchInput = cached.out
            shiftRows.push(cached.rows)
          }
        }
        if (slot.attention !== null) {
          const isSelf = slot.type === 'a'
          const needPre = isSelf ? this.residualAttn : this.crossResidualAttn
          const res = slot.attention.forward(branchInput, {
            mask: call.mask ?? null,
            context: isSelf ? null : context,
            contextMask: isSelf ? null : (call.contextMask ?? null),
            rotary: isSelf ? rotary : null,
            positionBias: isSelf ? this.positionBias : null,
            alibiSlopes: isSelf ? this.alibiSlopes : null,
            prevAttn: isSelf ? prevAttn : prevCrossAttn,
            cache: call.cache?.[attnIndex] ?? null,
            returnAttention: wantIntermediates || needPre,
            valueResidual: this.addValueResidual ? (isSelf ? firstSelfValues : firstCrossValues) : null,
            returnValues:
              this.addValueResidual && (isSelf ? firstSelfValues === null : firstCrossValues === null),
          })
          if (res.values !== null) {
            if (isSelf) firstSelfValues = res.values
            else firstCrossValues = res.values
          }
          attnIndex++
          out = res.out
          caches.push(res.cache.k, res.cache.v)
          if (wantIntermediates && res.postSoftmax !== null) maps.push(res.postSoftmax)
          if (isSelf && this.residualAttn) prevAttn = res.preSoftmax
          if (!isSelf && this.crossResidualAttn) prevCrossAttn = res.preSoftmax
        } else {
          out = (slot.feedForward as FeedForward).apply(branchInput)
        }
        if (slot.branchScale !== 1) out = tf.mul(out, tf.scalar(slot.branchScale))
        if (slot.layerScale !== null) out = slot.layerScale.scale(out)
        if (outer !== null) outer = tf.add(outer, tf.mul(out, tf.scalar(resiScale as number)))
        if (slot.postBranchNorm !== null) out = slot.postBranchNorm.apply(out)
        h = slot.residual.join(out, residual)
        if (slot.postMainNorm !== null) h = slot.postMainNorm.apply(h)
      }
      if (wantIntermediates) hiddens.push(h === x ? tf.clone(h) : h)
      if (this.softclampOutputValue !== null) h = softclamp(h, this.softclampOutputValue)
      // Post-norm stacks have no final norm: the output must still be a tensor distinct from the hiddens.
      const final =
        outer !== null && this.finalNorm !== null
          ? tf.add(h, this.finalNorm.apply(outer))
          : this.finalNorm !== null
            ? this.finalNorm.apply(h)
            : wantIntermediates
              ? tf.clone(h)
              : h
      return { out: final, hiddens, maps, caches, shiftRows }
    })
    const cache: AttentionCache[] = []
    for (let i = 0; i < result.caches.length; i += 2) {
      const entry = i / 2
      const rows = plan === null ? [] : result.shiftRows.filter((_, j) => plan[j]?.owner === entry)
      cache.push({
        k: result.caches[i] as tf.Tensor4D,
        v: result.caches[i + 1] as tf.Tensor4D,
        ...(rows.length > 0 ? { tokenShift: rows as tf.Tensor3D[] } : {}),
      })
    }
    // Rows of an entry that is missing (an attention layer skipped by layer dropout) go nowhere.
    const placed = new Set(cache.flatMap((e) => e.tokenShift ?? []))
    for (const rows of result.shiftRows) if (!placed.has(rows as tf.Tensor3D)) rows.dispose()
    return {
      out: result.out as tf.Tensor3D,
      hiddens: result.hiddens as tf.Tensor3D[],
      attention: result.maps as tf.Tensor4D[],
      cache,
    }
  }
}

/**
 * Token shift of this call's rows `x [b n d]` continuing the rows before them: `prior [b s d]` holds
 * the `s = max(shift)` pre-shift rows of positions `offset - s … offset - 1` (zeros before 0; null
 * without a cache, i.e. all zeros). `mask` (`bool [b, offset + n]` or null) zeroes masked rows of
 * both, as the full forward does. Returns the shifted rows `[b n d]` and the last `s` pre-shift
 * rows `[b s d]` for the next call.
 */
function shiftedWithHistory(
  x: tf.Tensor,
  shifts: readonly number[],
  mask: tf.Tensor | null,
  prior: tf.Tensor | null,
  s: number,
  offset: number,
): { out: tf.Tensor; rows: tf.Tensor } {
  const [b, n, d] = x.shape as [number, number, number]
  // Zero rows before position 0 are exactly the zero fill of the full forward's shift.
  const history = prior ?? tf.zeros([b, s, d])
  const window = tf.concat([history, x], 1)
  let windowMask: tf.Tensor | null = null
  if (mask !== null) {
    // Mask columns offset - s … offset + n - 1; those before position 0 pad rows that are zero anyway.
    const known = Math.min(offset, s)
    const cols = tf.slice(mask, [0, offset - known], [b, known + n])
    windowMask = known < s ? tf.concat([tf.zeros([b, s - known], 'bool'), cols], 1) : cols
  }
  const shifted = shiftTokens(window, shifts, windowMask)
  return {
    out: tf.slice(shifted, [0, s, 0], [b, n, d]),
    rows: tf.slice(window, [0, n, 0], [b, s, d]),
  }
}

/** Options of {@link Encoder} and {@link Decoder}: {@link AttentionLayersOptions} without `causal`. */
export type StackOptions = Omit<AttentionLayersOptions, 'causal'>

/**
 * Bidirectional stack (x-transformers' `Encoder`).
 *
 * @example
 * const encoder = new Encoder({ dim: 32, depth: 2, heads: 4, attn: { dimHead: 8 } })
 * encoder.forward(x, { mask }).out // [b, n, 32]
 */
export class Encoder extends AttentionLayers {
  constructor(options: StackOptions) {
    if ('causal' in options)
      throw new ConfigError(PKG, 'causal', 'Encoder: causality cannot be set on an Encoder')
    rejectUnknownStackOptions('Encoder', options, STACK_KEYS)
    super({ ...options, causal: false })
  }
}

/**
 * Causal stack (x-transformers' `Decoder`).
 *
 * @example
 * const decoder = new Decoder({ dim: 32, depth: 2, heads: 4, attn: { dimHead: 8 }, rotaryPosEmb: true })
 * decoder.forward(x).out // [b, n, 32]
 */
export class Decoder extends AttentionLayers {
  constructor(options: StackOptions) {
    if ('causal' in options)
      throw new ConfigError(PKG, 'causal', 'Decoder: causality cannot be set on a Decoder')
    rejectUnknownStackOptions('Decoder', options, STACK_KEYS)
    super({ ...options, causal: true })
  }
}

/** x-transformers' layer order: custom layers, PAR, sandwich, or the default block repeated. */
function layerTypesOf(
  options: AttentionLayersOptions,
  defaultBlock: ('a' | 'c' | 'f')[],
): ('a' | 'c' | 'f')[] {
  const given = oneOf({
    customLayers: options.customLayers !== undefined,
    parRatio: options.parRatio !== undefined,
    sandwichCoef: options.sandwichCoef !== undefined,
  })
  if (given.length > 1) {
    throw new ConfigError(
      PKG,
      given[1] ?? 'customLayers',
      `AttentionLayers: choose at most one of ${given.join(', ')}`,
    )
  }
  if (options.customLayers !== undefined) {
    const custom = [...options.customLayers]
    if (custom.length === 0 || custom.some((t) => t !== 'a' && t !== 'c' && t !== 'f')) {
      throw new ConfigError(
        PKG,
        'customLayers',
        `AttentionLayers: customLayers must be a non-empty list of 'a', 'c', 'f', got ${JSON.stringify(custom)}`,
      )
    }
    return custom
  }
  const depth = options.depth as number
  if (options.parRatio !== undefined) {
    const parDepth = depth * defaultBlock.length
    const ratio = options.parRatio
    if (!(Number.isInteger(ratio) && ratio > 1 && ratio <= parDepth)) {
      throw new ConfigError(
        PKG,
        'parRatio',
        `AttentionLayers: parRatio must be an integer in (1, ${parDepth}], got ${ratio}`,
      )
    }
    const block = defaultBlock.filter((t) => t !== 'f')
    const parAttn = Math.floor(parDepth / ratio)
    const depthCut = Math.floor((parDepth * 2) / 3)
    const parWidth = Math.floor((depthCut + Math.floor(depthCut / parAttn)) / parAttn)
    if (block.length > parWidth)
      throw new ConfigError(PKG, 'parRatio', 'AttentionLayers: the default block is too large for parRatio')
    const parBlock = [...block, ...new Array<'f'>(parWidth - block.length).fill('f')]
    const head: ('a' | 'c' | 'f')[] = []
    for (let r = 0; r < parAttn; r++) head.push(...parBlock)
    return [...head, ...new Array<'f'>(parDepth - head.length).fill('f')]
  }
  const types: ('a' | 'c' | 'f')[] = []
  if (options.sandwichCoef !== undefined) {
    const coef = options.sandwichCoef
    if (!(Number.isInteger(coef) && coef > 0 && coef <= depth)) {
      throw new ConfigError(
        PKG,
        'sandwichCoef',
        `AttentionLayers: sandwichCoef must be an integer in [1, depth=${depth}], got ${coef}`,
      )
    }
    for (let r = 0; r < coef; r++) types.push('a')
    for (let d = 0; d < depth - coef; d++) types.push(...defaultBlock)
    for (let r = 0; r < coef; r++) types.push('f')
    return types
  }
  for (let d = 0; d < depth; d++) types.push(...defaultBlock)
  return types
}
