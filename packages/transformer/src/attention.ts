import * as tf from '@tensorflow/tfjs-core'
import {
  alibiBias,
  attentionMask,
  ConfigError,
  getAttention,
  groupedScores,
  groupedWeightedSum,
  type HeadLayout,
  headLayout,
  MASKED_LOGIT,
  Module,
  maskedSoftmax,
  SeededRandom,
} from '@xattn/core'
import { mergeHeads, QKVProjection, splitHeads } from '@xattn/kv-heads'
import { initMemoryKv, prependMemoryKv } from '@xattn/memory-kv'
import { ModuleList } from './containers.js'
import { Linear } from './linear.js'
import { ATTENTION_KEYS, rejectUnknownOptions } from './optionKeys.js'
import type { PositionBias } from './positionBias.js'
import { applyRotary, type RotaryFreqs } from './positions.js'
import { l2normalize, maybeDropout, mixHeads, softclamp } from './tensorOps.js'

const PKG = '@xattn/transformer'

/** Options of {@link Attention}; names mirror x-transformers' `Attention` kwargs (camelCase). */
export interface AttentionOptions {
  /** Model width (input features of queries). */
  readonly dim: number
  /** Query heads; default 8. */
  readonly heads?: number
  /** Features per query/key head; default 64. */
  readonly dimHead?: number
  /** Features of the cross-attention context; default `dim`. */
  readonly dimContext?: number
  /** Bottom-right causal masking (self-attention only). */
  readonly causal?: boolean
  /** Key/value heads (GQA); must divide `heads`. */
  readonly kvHeads?: number
  /** Multi-query attention (`kvHeads: 1`). */
  readonly oneKvHead?: boolean
  /** Features per value head; default `dimHead`. */
  readonly valueDimHead?: number
  /** Learned memory key/values `mem_k [kvHeads, numMemKv, dimHead]`, `mem_v [kvHeads, numMemKv, valueDimHead]`. */
  readonly numMemKv?: number
  /** Shorthand for `attention: 'flash'`. */
  readonly flash?: boolean
  /**
   * The attention implementation from core's registry (`'reference'`, or `'flash'` once
   * `@xattn/flash` is imported). Layers using talking heads, sparse top-k, logit soft-clamping,
   * `maxAttendPast` or residual attention, and calls that return attention maps, always run core's reference
   * building blocks (`groupedScores`, `maskedSoftmax`, …) — the flash kernel cannot express them;
   * the numbers are the same.
   */
  readonly attention?: string
  /** Dropout on the attention weights (training only). */
  readonly dropout?: number
  /** l2-normalise queries and keys; the logit scale becomes `qkNormScale`. */
  readonly qkNorm?: boolean
  readonly qkNormGroups?: number
  /** Default 10. */
  readonly qkNormScale?: number
  /** Learned per-feature scales `qk_norm_q_scale [heads,1,dimHead]`, `qk_norm_k_scale [kvHeads,1,dimHead]`. */
  readonly qkNormDimScale?: boolean
  /** Gate the merged heads with `σ(to_v_gate(x))` (AlphaFold2). */
  readonly gateValues?: boolean
  /** With `gateValues`: SiLU instead of sigmoid. */
  readonly swigluValues?: boolean
  /** Mix heads' logits before softmax (added to them): `attend.pre_softmax_talking_heads.weight`. */
  readonly preTalkingHeads?: boolean
  /** Mix heads' weights after softmax: `attend.post_softmax_talking_heads.weight`. */
  readonly postTalkingHeads?: boolean
  /** Keep only logits `>=` the k-th largest per row (ties kept); `k >= keys` keeps all. */
  readonly sparseTopk?: number
  /** `tanh(logits / v) · v` before masking. */
  readonly softclampLogits?: boolean
  /** Default 50. */
  readonly logitSoftclampValue?: number
  /** Per-head output scale `head_scale_params [1, heads, 1, 1]`. */
  readonly headScale?: boolean
  /** Per-head output gate `σ(to_v_head_gate(x))` (`to_v_head_gate [heads, dim]` + bias), "attend to nothing". */
  readonly gateValueHeads?: boolean
  /** Prepend one all-zero key/value (always visible, logit 0): attention may attend to nothing. */
  readonly addZeroKv?: boolean
  /** Local attention: a query sees keys at most this many positions back (memory KV always). */
  readonly maxAttendPast?: number
  /** Attention on attention: `to_out = GLU(Linear(…, 2·dimOut))`. */
  readonly onAttn?: boolean
  /** Output features; default `dim`. */
  readonly dimOut?: number
  readonly zeroInitOutput?: boolean
  readonly rng?: SeededRandom
}

/**
 * A per-layer KV cache entry: keys/values in the KV-head layout, without memory KV. Keys are stored
 * as attended: after qk-norm (and its learned scale) and, in self-attention, after rotary/xpos at
 * their absolute positions, so a cached step transforms only its new keys.
 */
export interface AttentionCache {
  /** `[b, kvHeads, m, dimHead]`. */
  readonly k: tf.Tensor4D
  /** `[b, kvHeads, m, valueDimHead]`. */
  readonly v: tf.Tensor4D
  /**
   * Token shift state (set by `AttentionLayers`, never read by {@link Attention}): for each
   * token-shifted layer this entry carries, `[b, maxShift, dim]` — the last `maxShift` rows of that
   * layer's pre-shift input (zeros before position 0). An entry carries the rows of its own layer
   * (when shifted) and of the feedforward layers executed after it up to the next attention layer;
   * entry 0 also carries those of feedforward layers executed before any attention layer. Constant
   * size: it does not grow with the cached length.
   */
  readonly tokenShift?: readonly tf.Tensor3D[]
}

/** Per-call inputs of {@link Attention.forward}. */
export interface AttentionCall {
  /**
   * `bool [b, n]`: padding mask of the queries (and, in self-attention, of the keys); padded query
   * rows output 0. With a self-attention `cache`: `[b, mPrev + n]`.
   */
  readonly mask?: tf.Tensor | null
  /** Cross-attention input `[b, mc, dimContext]`. */
  readonly context?: tf.Tensor | null
  /** `bool [b, mc]` for `context`. */
  readonly contextMask?: tf.Tensor | null
  /**
   * Rotary frequencies whose last `n` rows are the positions of this call's queries and new keys
   * (cached keys were rotated when they were stored). Self-attention only. With xpos and a cache,
   * the xpos exponent must use a fixed origin across calls ({@link RotaryEmbedding.applyRange}).
   */
  readonly rotary?: RotaryFreqs | null
  /** Relative position bias source (T5 / dynamic); memory KV slots get 0. */
  readonly positionBias?: PositionBias | null
  /** ALiBi slopes, one per query head (0 = no ALiBi for that head); memory KV slots get no bias. */
  readonly alibiSlopes?: readonly number[] | null
  /** Residual attention: the previous layer's pre-softmax logits `[b, h, n, M + m]`, added after scaling. */
  readonly prevAttn?: tf.Tensor | null
  /**
   * KV cache hook: keys/values of earlier positions (`[b, kvHeads, mPrev, d]`, keys after qk-norm
   * and rotary as this layer returned them, without memory KV). Self-attention appends the new
   * keys, transformed alone (O(n) rotary work per call, not O(mPrev + n)); cross-attention (still called with `context`) uses
   * the cache as the context's keys/values instead of projecting `context` again. With a cache,
   * `mask` covers all keys so far, `[b, mPrev + n]` (queries use its last `n` columns).
   */
  readonly cache?: AttentionCache | null
  /** Return the pre- and post-softmax attention maps (always via the reference building blocks). */
  readonly returnAttention?: boolean
  /**
   * Value residual (ResFormer): values `[b, kvHeads, M + m, dv]` of the first attention layer of
   * the same kind (memory slots included), added to this layer's values before attending.
   */
  readonly valueResidual?: tf.Tensor | null
  /** Return this call's values (after memory KV and any value residual) for later layers. */
  readonly returnValues?: boolean
}

/** What {@link Attention.forward} returns; the caller owns every tensor. */
export interface AttentionResult {
  /** `[b, n, dimOut]`. */
  readonly out: tf.Tensor3D
  /** The updated cache entry (all keys/values seen so far, without memory KV). */
  readonly cache: AttentionCache
  /** Masked pre-softmax logits `[b, h, n, M + m]` (masked entries `-maxFloat32`), when requested. */
  readonly preSoftmax: tf.Tensor4D | null
  /** Softmax weights `[b, h, n, M + m]`, when requested. */
  readonly postSoftmax: tf.Tensor4D | null
  /** With `returnValues`: the values attended over, `[b, kvHeads, M + m, dv]` (no zero KV). */
  readonly values: tf.Tensor4D | null
}

class WeightOnly extends Module {
  readonly weight: tf.Variable
  constructor(initial: tf.Tensor) {
    super()
    this.weight = this.addParameter('weight', initial)
  }
}

function positiveInt(option: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new ConfigError(PKG, option, `Attention: ${option} must be a positive integer, got ${value}`)
  }
  return value
}

/**
 * x-transformers' multi-head attention with its options: GQA/MQA (`kvHeads`, `oneKvHead`), memory
 * KV, qk-norm, value gating, talking heads, sparse top-k, logit soft-clamping, head scale,
 * attention-on-attention, cross-attention (`dimContext`) and residual attention. State-dict names as
 * x-transformers (`to_q.weight`, `mem_k`, `attend.pre_softmax_talking_heads.weight`, …).
 *
 * Shapes: `x [b n dim]` (+ `context [b mc dimContext]`) → `out [b n dimOut]`.
 *
 * @example
 * const attn = new Attention({ dim: 32, heads: 4, dimHead: 8, causal: true, kvHeads: 2 })
 * const { out, cache } = attn.forward(x) // out [b, n, 32]; cache.k [b, 2, n, 8]
 */
export class Attention extends Module {
  readonly layout: HeadLayout
  readonly causal: boolean
  readonly attentionName: string
  readonly numMemKv: number
  readonly scale: number
  readonly dropout: number
  readonly qkNorm: boolean
  readonly qkNormGroups: number
  readonly sparseTopk: number | null
  readonly softclampValue: number | null
  readonly dim: number
  readonly dimContext: number
  private readonly qkv: QKVProjection
  private readonly toOut: Linear
  private readonly onAttn: boolean
  private readonly toVGate: Linear | null
  private readonly swigluValues: boolean
  private readonly memK: tf.Variable | null
  private readonly memV: tf.Variable | null
  private readonly qScale: tf.Variable | null
  private readonly kScale: tf.Variable | null
  private readonly preTalking: WeightOnly | null
  private readonly postTalking: WeightOnly | null
  private readonly headScaleParams: tf.Variable | null
  private readonly toVHeadGate: Linear | null
  readonly addZeroKv: boolean
  readonly maxAttendPast: number | null

  constructor(options: AttentionOptions) {
    super()
    rejectUnknownOptions('Attention', options, ATTENTION_KEYS)
    const rng = options.rng ?? new SeededRandom(0)
    this.dim = positiveInt('dim', options.dim)
    this.dimContext = positiveInt('dimContext', options.dimContext ?? options.dim)
    const layoutOptions = {
      heads: options.heads ?? 8,
      dimHead: options.dimHead ?? 64,
      ...(options.kvHeads === undefined ? {} : { kvHeads: options.kvHeads }),
      ...(options.oneKvHead === undefined ? {} : { oneKvHead: options.oneKvHead }),
      ...(options.valueDimHead === undefined ? {} : { valueDimHead: options.valueDimHead }),
    }
    const layout = headLayout(layoutOptions)
    this.layout = layout
    this.causal = options.causal ?? false
    if (options.flash === true && options.attention !== undefined && options.attention !== 'flash') {
      throw new ConfigError(
        PKG,
        'flash',
        `Attention: flash: true contradicts attention: '${options.attention}'`,
      )
    }
    this.attentionName = options.attention ?? (options.flash === true ? 'flash' : 'reference')
    getAttention(this.attentionName) // a clear ConfigError now, not at the first call
    this.numMemKv = options.numMemKv ?? 0
    if (!(Number.isInteger(this.numMemKv) && this.numMemKv >= 0)) {
      throw new ConfigError(
        PKG,
        'numMemKv',
        `Attention: numMemKv must be a non-negative integer, got ${this.numMemKv}`,
      )
    }
    this.dropout = options.dropout ?? 0
    if (!(this.dropout >= 0 && this.dropout < 1)) {
      throw new ConfigError(PKG, 'dropout', `Attention: dropout must be in [0, 1), got ${this.dropout}`)
    }
    this.qkNorm = options.qkNorm ?? false
    this.qkNormGroups = options.qkNormGroups ?? 1
    if (this.qkNorm) {
      if (
        !(
          Number.isInteger(this.qkNormGroups) &&
          this.qkNormGroups > 0 &&
          layout.dimHead % this.qkNormGroups === 0
        )
      ) {
        throw new ConfigError(
          PKG,
          'qkNormGroups',
          `Attention: qkNormGroups must divide dimHead=${layout.dimHead}, got ${this.qkNormGroups}`,
        )
      }
      if (this.qkNormGroups > 1 && this.numMemKv > 0) {
        // x-transformers normalises memory keys without groups while real keys use groups.
        throw new ConfigError(
          PKG,
          'qkNormGroups',
          'Attention: qkNormGroups > 1 together with numMemKv is not supported',
        )
      }
    }
    this.scale = this.qkNorm ? (options.qkNormScale ?? 10) : layout.dimHead ** -0.5
    this.sparseTopk = options.sparseTopk ?? null
    if (this.sparseTopk !== null && !(Number.isInteger(this.sparseTopk) && this.sparseTopk > 0)) {
      throw new ConfigError(
        PKG,
        'sparseTopk',
        `Attention: sparseTopk must be a positive integer, got ${this.sparseTopk}`,
      )
    }
    this.softclampValue = options.softclampLogits === true ? (options.logitSoftclampValue ?? 50) : null
    if (this.softclampValue !== null && !(this.softclampValue > 0)) {
      throw new ConfigError(
        PKG,
        'logitSoftclampValue',
        `Attention: logitSoftclampValue must be positive, got ${this.softclampValue}`,
      )
    }

    // Every option is checked before the first tensor is created, so a rejected layer leaks nothing.
    const maxAttendPast = options.maxAttendPast ?? null
    if (maxAttendPast !== null && !(Number.isInteger(maxAttendPast) && maxAttendPast >= 0)) {
      throw new ConfigError(
        PKG,
        'maxAttendPast',
        `Attention: maxAttendPast must be a non-negative integer, got ${maxAttendPast}`,
      )
    }
    if (options.dimOut !== undefined) positiveInt('dimOut', options.dimOut)

    // Projections and head split from @xattn/kv-heads, mounted at this level so the names are
    // x-transformers' (`to_q.weight`, …).
    this.qkv = new QKVProjection({ layout, dim: this.dim, dimKv: this.dimContext, rng })
    for (const [name, child] of this.qkv.namedChildren()) this.addModule(name, child)
    this.swigluValues = options.swigluValues ?? false
    if (options.gateValues === true) {
      this.toVGate = this.addModule(
        'to_v_gate',
        new Linear(this.dim, layout.dimOutInner, { bias: true, rng }),
      )
      const gate = this.toVGate
      tf.tidy(() => {
        gate.weight.assign(tf.zerosLike(gate.weight))
        if (gate.bias !== null) gate.bias.assign(tf.fill(gate.bias.shape, 10))
      })
    } else {
      this.toVGate = null
    }
    if (this.qkNorm && options.qkNormDimScale === true) {
      this.qScale = this.addParameter('qk_norm_q_scale', tf.ones([layout.heads, 1, layout.dimHead]))
      this.kScale = this.addParameter('qk_norm_k_scale', tf.ones([layout.kvHeads, 1, layout.dimHead]))
    } else {
      this.qScale = null
      this.kScale = null
    }
    const eye = () => tf.tidy(() => tf.reshape(tf.eye(layout.heads), [layout.heads, layout.heads, 1, 1]))
    if (options.preTalkingHeads === true || options.postTalkingHeads === true) {
      const attend = this.addModule('attend', new ModuleList())
      this.preTalking =
        options.preTalkingHeads === true
          ? attend.add('pre_softmax_talking_heads', new WeightOnly(eye()))
          : null
      this.postTalking =
        options.postTalkingHeads === true
          ? attend.add('post_softmax_talking_heads', new WeightOnly(eye()))
          : null
    } else {
      this.preTalking = null
      this.postTalking = null
    }
    this.addZeroKv = options.addZeroKv ?? false
    this.maxAttendPast = maxAttendPast
    if (options.gateValueHeads === true) {
      const headGate = this.addModule(
        'to_v_head_gate',
        new Linear(this.dim, layout.heads, { bias: true, rng }),
      )
      tf.tidy(() => {
        headGate.weight.assign(tf.zerosLike(headGate.weight))
        if (headGate.bias !== null) headGate.bias.assign(tf.fill(headGate.bias.shape, 10))
      })
      this.toVHeadGate = headGate
    } else {
      this.toVHeadGate = null
    }
    this.headScaleParams =
      options.headScale === true
        ? this.addParameter('head_scale_params', tf.ones([1, layout.heads, 1, 1]))
        : null
    if (this.numMemKv > 0) {
      // Shapes from the head layout only (@xattn/memory-kv): [kvHeads, numMemKv, dimHead | valueDimHead].
      const init = initMemoryKv({ layout, numMemKv: this.numMemKv, rng })
      this.memK = this.addParameter('mem_k', init.mem_k)
      this.memV = this.addParameter('mem_v', init.mem_v)
    } else {
      this.memK = null
      this.memV = null
    }
    const dimOut = options.dimOut ?? this.dim
    this.onAttn = options.onAttn ?? false
    if (this.onAttn) {
      const seq = this.addModule('to_out', new ModuleList())
      this.toOut = seq.add(0, new Linear(layout.dimOutInner, dimOut * 2, { rng }))
    } else {
      this.toOut = this.addModule('to_out', new Linear(layout.dimOutInner, dimOut, { rng }))
    }
    if (options.zeroInitOutput === true) {
      const w = this.toOut.weight
      tf.tidy(() => {
        w.assign(tf.zerosLike(w))
      })
    }
  }

  /** Whether this layer needs core's reference building blocks rather than a registered kernel. */
  get needsBuildingBlocks(): boolean {
    return (
      this.preTalking !== null ||
      this.postTalking !== null ||
      this.sparseTopk !== null ||
      this.softclampValue !== null ||
      this.maxAttendPast !== null
    )
  }

  /**
   * `x [b n dim]` → `{ out [b n dimOut], cache, preSoftmax, postSoftmax }`. See {@link AttentionCall}
   * for masks, positions, residual attention and the KV-cache hook.
   */
  forward(x: tf.Tensor, call: AttentionCall = {}): AttentionResult {
    const { heads } = this.layout
    const context = call.context ?? null
    const isCross = context !== null
    if (x.shape.length !== 3 || x.shape[2] !== this.dim) {
      throw new ConfigError(PKG, 'x', `Attention: x must be [b, n, ${this.dim}], got [${x.shape.join(',')}]`)
    }
    if (
      context !== null &&
      (context.shape.length !== 3 || context.shape[2] !== this.dimContext || context.shape[0] !== x.shape[0])
    ) {
      throw new ConfigError(
        PKG,
        'context',
        `Attention: context must be [${x.shape[0]}, mc, ${this.dimContext}], got [${context.shape.join(',')}]`,
      )
    }
    const n = x.shape[1] as number
    const selfKeys = (isCross ? 0 : (call.cache?.k.shape[2] ?? 0)) + n
    if (call.mask != null) {
      const width = call.mask.shape[1]
      // With a cache the mask covers every key so far ([b, mPrev + n]); queries use its last n columns.
      const allowed = isCross ? width !== undefined && width >= n : width === selfKeys
      if (call.mask.dtype !== 'bool' || call.mask.shape.length !== 2 || !allowed) {
        throw new ConfigError(
          PKG,
          'mask',
          `Attention: mask must be bool [b, ${isCross ? 'n' : selfKeys}], got ${call.mask.dtype} [${call.mask.shape.join(',')}]`,
        )
      }
    }
    const contextMask = call.contextMask ?? null
    if (contextMask !== null) {
      const ok =
        context !== null &&
        contextMask.dtype === 'bool' &&
        contextMask.shape.length === 2 &&
        contextMask.shape[0] === x.shape[0] &&
        contextMask.shape[1] === (call.cache != null ? call.cache.k.shape[2] : context.shape[1])
      if (!ok) {
        throw new ConfigError(
          PKG,
          'contextMask',
          `Attention: contextMask must be bool [b, mc] matching context${context === null ? ' (no context given)' : ` [${context.shape.join(',')}]`}, got ${contextMask.dtype} [${contextMask.shape.join(',')}]`,
        )
      }
    }
    if (call.rotary != null && !isCross) {
      const [rows, rotDim] = call.rotary.freqs.shape
      if (rows < n || rotDim > this.layout.dimHead || rotDim % 2 !== 0) {
        throw new ConfigError(
          PKG,
          'rotary',
          `Attention: rotary frequencies must cover the ${n} key positions of this call with an even width ≤ dimHead=${this.layout.dimHead}, got [${rows},${rotDim}]`,
        )
      }
    }
    if (call.valueResidual != null) {
      const keys = (isCross ? (call.cache?.k.shape[2] ?? context?.shape[1] ?? 0) : selfKeys) + this.numMemKv
      const want = [x.shape[0], this.layout.kvHeads, keys, this.layout.valueDimHead]
      if (call.valueResidual.shape.join(',') !== want.join(',')) {
        throw new ConfigError(
          PKG,
          'valueResidual',
          `Attention: valueResidual must be [${want.join(',')}] (b, kvHeads, memory + keys, valueDimHead), got [${call.valueResidual.shape.join(',')}]`,
        )
      }
    }
    const needMaps = call.returnAttention === true || call.prevAttn != null
    const useBlocks = this.needsBuildingBlocks || needMaps
    const impl = useBlocks ? null : getAttention(this.attentionName)
    const result = tf.tidy(() => {
      const b = x.shape[0] as number
      let q: tf.Tensor4D
      let k: tf.Tensor4D
      let v: tf.Tensor4D
      // Only this call's keys are projected, normalised and rotated; cached keys were stored that
      // way, so a cached step does O(n) key work and one append (the concat below).
      const cachedCross = isCross && call.cache != null
      if (cachedCross) {
        q = splitHeads(this.qkv.toQ.forward(x) as tf.Tensor3D, heads) as tf.Tensor4D
        k = tf.clone((call.cache as AttentionCache).k)
        v = tf.clone((call.cache as AttentionCache).v)
      } else {
        const projected = this.qkv.forward(x as tf.Tensor3D, context as tf.Tensor3D | null)
        q = projected.q as tf.Tensor4D
        k = projected.k as tf.Tensor4D
        v = projected.v as tf.Tensor4D
      }
      if (this.qkNorm) {
        q = l2normalize(q, this.qkNormGroups) as tf.Tensor4D
        if (this.qScale !== null) q = tf.mul(q, this.qScale) as tf.Tensor4D
        if (!cachedCross) {
          k = l2normalize(k, this.qkNormGroups) as tf.Tensor4D
          if (this.kScale !== null) k = tf.mul(k, this.kScale) as tf.Tensor4D
        }
      }
      if (call.rotary != null && !isCross) {
        q = applyRotary(q, call.rotary, false)
        k = applyRotary(k, call.rotary, true)
      }
      if (!isCross && call.cache != null) {
        k = tf.concat([call.cache.k, k], 2) as tf.Tensor4D
        v = tf.concat([call.cache.v, v], 2) as tf.Tensor4D
      }
      const cacheK = k
      const cacheV = v
      const mask = call.mask ?? null
      const queryMask =
        mask === null || mask.shape[1] === n
          ? mask
          : tf.slice(mask, [0, (mask.shape[1] as number) - n], [b, n])
      let keyMask: tf.Tensor | null = isCross ? (call.contextMask ?? null) : mask
      if (keyMask !== null) keyMask = tf.cast(keyMask, 'bool')
      const i = n
      const j = k.shape[2]
      const memLen = this.numMemKv
      let bias: tf.Tensor | null = null
      if (call.positionBias != null && !isCross) bias = tf.expandDims(call.positionBias.bias(i, j), 0)
      if (this.memK !== null && this.memV !== null) {
        // Memory slots: prepended after rotary (never rotated), mask padded with true, bias with 0.
        const kScale = this.kScale
        const prepended = prependMemoryKv(
          { k, v },
          { memK: this.memK, memV: this.memV },
          {
            layout: this.layout,
            keyMask,
            bias,
            transformMemoryKeys: this.qkNorm
              ? (memK) => {
                  const normed = l2normalize(memK)
                  return kScale === null ? normed : tf.mul(normed, kScale)
                }
              : null,
          },
        )
        k = prepended.k as tf.Tensor4D
        v = prepended.v as tf.Tensor4D
        keyMask = prepended.keyMask
        bias = prepended.bias
      }
      if (call.valueResidual != null) v = tf.add(v, call.valueResidual) as tf.Tensor4D
      const values = v
      // Keys before the real ones that ALiBi leaves unbiased: memory slots and the zero key.
      let freeKeys = memLen
      if (this.addZeroKv) {
        // x-transformers pads the zero key/value in front of everything (memory included).
        k = tf.concat([tf.zeros([b, k.shape[1], 1, k.shape[3]]), k], 2) as tf.Tensor4D
        v = tf.concat([tf.zeros([b, v.shape[1], 1, v.shape[3]]), v], 2) as tf.Tensor4D
        if (keyMask !== null) keyMask = tf.concat([tf.ones([b, 1], 'bool'), keyMask], 1)
        if (bias !== null)
          bias = tf.pad(bias, [
            [0, 0],
            [0, 0],
            [0, 0],
            [1, 0],
          ])
        freeKeys += 1
      }
      const slopes = !isCross && call.alibiSlopes != null ? call.alibiSlopes : null
      const causal = this.causal && !isCross
      let out: tf.Tensor4D
      let preSoftmax: tf.Tensor4D | null = null
      let postSoftmax: tf.Tensor4D | null = null
      if (impl !== null) {
        out = impl(
          { q, k, v },
          {
            causal,
            keyMask,
            bias,
            alibiSlopes: slopes,
            alibiFreeKeys: slopes === null ? 0 : freeKeys,
            scale: this.scale,
            dropout: this.dropout,
            training: this.training,
          },
        )
      } else {
        const m = k.shape[2]
        let sim = tf.mul(groupedScores(q, k), tf.scalar(this.scale)) as tf.Tensor4D
        if (call.prevAttn != null) sim = tf.add(sim, call.prevAttn) as tf.Tensor4D
        if (this.preTalking !== null) sim = tf.add(sim, mixHeads(sim, this.preTalking.weight)) as tf.Tensor4D
        if (bias !== null) sim = tf.add(sim, bias) as tf.Tensor4D
        if (slopes !== null) sim = tf.add(sim, alibiBias(slopes, i, m, freeKeys)) as tf.Tensor4D
        if (this.softclampValue !== null) sim = softclamp(sim, this.softclampValue) as tf.Tensor4D
        let mask = attentionMask(i, m, { causal, keyMask })
        if (this.maxAttendPast !== null) {
          // Local attention: query (position j - i + q among the real keys) sees real keys at most
          // maxAttendPast positions back; memory and zero keys stay visible.
          const local = localWindowMask(i, j, freeKeys, this.maxAttendPast)
          mask = (mask === null ? local : tf.logicalAnd(mask, local)) as tf.Tensor4D
        }
        let filled =
          mask === null ? sim : (tf.where(mask, sim, tf.fill(sim.shape, MASKED_LOGIT)) as tf.Tensor4D)
        preSoftmax = filled
        if (this.sparseTopk !== null && this.sparseTopk < m) filled = keepTopk(filled, this.sparseTopk)
        let attn = maskedSoftmax(filled, mask)
        postSoftmax = attn
        attn = maybeDropout(attn, this.dropout, this.training) as tf.Tensor4D
        if (this.postTalking !== null) attn = mixHeads(attn, this.postTalking.weight)
        out = groupedWeightedSum(attn, v)
      }
      if (this.headScaleParams !== null) out = tf.mul(out, this.headScaleParams) as tf.Tensor4D
      if (this.toVHeadGate !== null) {
        // [b, n, h] → [b, h, n, 1]
        const gate = tf.sigmoid(tf.transpose(this.toVHeadGate.apply(x), [0, 2, 1]))
        out = tf.mul(out, tf.expandDims(gate, -1)) as tf.Tensor4D
      }
      let merged: tf.Tensor = mergeHeads(out as tf.Tensor4D)
      if (this.toVGate !== null) {
        const gates = this.toVGate.apply(x)
        merged = tf.mul(merged, this.swigluValues ? tf.mul(gates, tf.sigmoid(gates)) : tf.sigmoid(gates))
      }
      let projected = this.toOut.apply(merged)
      if (this.onAttn) {
        const [a, g] = tf.split(projected, 2, -1) as [tf.Tensor, tf.Tensor]
        projected = tf.mul(a, tf.sigmoid(g))
      }
      if (queryMask !== null) projected = tf.mul(projected, tf.expandDims(tf.cast(queryMask, 'float32'), -1))
      return {
        out: projected,
        k: cacheK,
        v: cacheV,
        ...(needMaps && preSoftmax !== null ? { pre: preSoftmax } : {}),
        ...(needMaps && postSoftmax !== null ? { post: postSoftmax } : {}),
        ...(call.returnValues === true ? { values: values === cacheV ? tf.clone(values) : values } : {}),
      } as Record<string, tf.Tensor>
    })
    return {
      out: result.out as tf.Tensor3D,
      cache: { k: result.k as tf.Tensor4D, v: result.v as tf.Tensor4D },
      preSoftmax: (result.pre as tf.Tensor4D | undefined) ?? null,
      postSoftmax: (result.post as tf.Tensor4D | undefined) ?? null,
      values: (result.values as tf.Tensor4D | undefined) ?? null,
    }
  }
}

/**
 * Sparse top-k: logits below the k-th largest of their row (ties kept) become `-maxFloat32`, as do
 * already-masked ones. The keep mask is computed inside a custom gradient (gradient `dy · keep`) so
 * that tfjs does not try to differentiate through topk and the boolean ops.
 */
function keepTopk(logits: tf.Tensor4D, k: number): tf.Tensor4D {
  const op = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const top = tf.topk(x, k).values
    const kth = tf.slice(top, [0, 0, 0, k - 1], [-1, -1, -1, 1])
    const keep = tf.logicalAnd(tf.greaterEqual(x, kth), tf.greater(x, tf.scalar(MASKED_LOGIT)))
    save([tf.cast(keep, 'float32')])
    return {
      value: tf.where(keep, x, tf.fill(x.shape, MASKED_LOGIT)),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [
        tf.mul(dy as tf.Tensor, saved[0] as tf.Tensor),
      ],
    }
  }) as unknown as Parameters<typeof tf.customGrad>[0])
  return op(logits) as tf.Tensor4D
}

/** `[1, 1, i, free + j]`: true where key k is free (memory/zero) or `qPos - (k - free) <= maxPast`. */
function localWindowMask(i: number, j: number, free: number, maxPast: number): tf.Tensor4D {
  return tf.tidy(() => {
    const qPos = tf.reshape(tf.range(j - i, j, 1, 'int32'), [i, 1])
    const kPos = tf.reshape(tf.range(-free, j, 1, 'int32'), [1, free + j])
    const near = tf.lessEqual(tf.sub(qPos, kPos), tf.scalar(maxPast, 'int32'))
    const isFree = tf.less(kPos, tf.scalar(0, 'int32'))
    return tf.reshape(tf.logicalOr(near, isFree), [1, 1, i, free + j]) as tf.Tensor4D
  })
}
