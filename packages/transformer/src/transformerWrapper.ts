import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, Module, SeededRandom } from '@xattn/core'
import { linearApply } from '@xattn/kv-heads'
import type { AttentionCache } from './attention.js'
import type { AttentionLayers } from './attentionLayers.js'
import { Embedding } from './embedding.js'
import { Linear } from './linear.js'
import { LayerNorm } from './norms.js'
import { rejectUnknownOptions, TRANSFORMER_WRAPPER_KEYS } from './optionKeys.js'
import { AbsolutePositionalEmbedding, ScaledSinusoidalEmbedding } from './positions.js'
import { l2normalize, maybeDropout } from './tensorOps.js'
import { checkTokenIds } from './tokenIds.js'

const PKG = '@xattn/transformer'

/** Options of {@link TransformerWrapper}; names mirror x-transformers' `TransformerWrapper` kwargs. */
export interface TransformerWrapperOptions {
  readonly numTokens: number
  readonly maxSeqLen: number
  readonly attnLayers: AttentionLayers
  /** Embedding width; projected to the stack's `dim` by `project_emb` when different. */
  readonly embDim?: number
  readonly embDropout?: number
  /** A (no-offset) LayerNorm on the summed embeddings. */
  readonly postEmbNorm?: boolean
  /** Learned memory tokens `memory_tokens [num, dim]` prepended to every sequence. */
  readonly numMemoryTokens?: number
  /** Logits from the token embedding matrix (no `to_logits`). */
  readonly tieEmbedding?: boolean
  /** Default true (unless the stack disables absolute positions: rotary, T5 bias). */
  readonly useAbsPosEmb?: boolean
  readonly scaledSinuPosEmb?: boolean
  readonly l2normEmbed?: boolean
  /** Output width; default `numTokens`. */
  readonly logitsDim?: number
  /** No output head: `forward` returns embeddings. */
  readonly returnOnlyEmbed?: boolean
  /**
   * Fraction of the gradient that reaches the embeddings (CogView / GLM-130B): the forward value
   * is `x·f + x·(1 − f)` (as x-transformers computes it), the gradient `f·dy`. Default 1.
   */
  readonly embFracGradient?: number
  /** Sigsoftmax: the logits become `logits + log σ(logits)`. */
  readonly sigsoftmaxLogits?: boolean
  /** Seed of the initial parameters; default 0. */
  readonly seed?: number
}

/** Per-call inputs of {@link TransformerWrapper.forward}. */
export interface WrapperCall {
  /** `bool [b, n]` padding mask, true = keep; with `cache`: `[b, offset + n]` (all keys so far). */
  readonly mask?: tf.Tensor | null
  /** Cross-attention context `[b, mc, dimContext]`. */
  readonly context?: tf.Tensor | null
  /** `bool [b, mc]`. */
  readonly contextMask?: tf.Tensor | null
  /**
   * KV-cache hook (see {@link AttentionLayersCall.cache}): `tokens` are then only the new
   * positions, which start at the cached length for absolute positions and rotary.
   */
  readonly cache?: readonly AttentionCache[] | null
}

/** What {@link TransformerWrapper.forwardWithIntermediates} returns; the caller owns every tensor. */
export interface WrapperResult {
  /** `[b, n, logitsDim]`, or null with `returnOnlyEmbed`. */
  readonly logits: tf.Tensor3D | null
  /** `[b, n, dim]`: the stack output after the final norm, memory tokens removed. */
  readonly embeddings: tf.Tensor3D
  /** Per-layer inputs (and the last output before the final norm), memory tokens included. */
  readonly hiddens: tf.Tensor3D[]
  /** Post-softmax attention maps of every attention layer (reference building blocks). */
  readonly attention: tf.Tensor4D[]
  /** Updated KV cache. */
  readonly cache: AttentionCache[]
}

/**
 * x-transformers' `TransformerWrapper`: token (+ position) embeddings, optional memory tokens,
 * an {@link Encoder}/{@link Decoder} and the output head.
 *
 * Shapes: `tokens int32 [b n]` → logits `[b n numTokens]`.
 *
 * @example
 * const model = new TransformerWrapper({
 *   numTokens: 64, maxSeqLen: 16,
 *   attnLayers: new Decoder({ dim: 32, depth: 2, heads: 4, attn: { dimHead: 8 } }),
 * })
 * const logits = model.forward(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32')) // [1, 3, 64]
 */
export class TransformerWrapper extends Module {
  readonly numTokens: number
  readonly maxSeqLen: number
  readonly dim: number
  readonly embDim: number
  readonly numMemoryTokens: number
  readonly embDropout: number
  readonly l2normEmbed: boolean
  readonly attnLayers: AttentionLayers
  readonly tokenEmb: Embedding
  private readonly absPosEmb: AbsolutePositionalEmbedding | null
  private readonly sinuPosEmb: ScaledSinusoidalEmbedding | null
  private readonly postEmbNorm: LayerNorm | null
  private readonly projectEmb: Linear | null
  private readonly toLogits: Linear | null
  private readonly tieEmbedding: boolean
  private readonly memoryTokens: tf.Variable | null

  constructor(options: TransformerWrapperOptions) {
    super()
    rejectUnknownOptions('TransformerWrapper', options, TRANSFORMER_WRAPPER_KEYS)
    const rng = new SeededRandom(options.seed ?? 0)
    const layers = options.attnLayers
    this.dim = layers.dim
    this.numTokens = options.numTokens
    this.maxSeqLen = options.maxSeqLen
    if (!(Number.isInteger(this.numTokens) && this.numTokens > 0)) {
      throw new ConfigError(
        PKG,
        'numTokens',
        `TransformerWrapper: numTokens must be a positive integer, got ${this.numTokens}`,
      )
    }
    if (!(Number.isInteger(this.maxSeqLen) && this.maxSeqLen >= 0)) {
      throw new ConfigError(
        PKG,
        'maxSeqLen',
        `TransformerWrapper: maxSeqLen must be a non-negative integer, got ${this.maxSeqLen}`,
      )
    }
    this.embDim = options.embDim ?? this.dim
    this.l2normEmbed = options.l2normEmbed ?? false
    this.embDropout = options.embDropout ?? 0
    this.numMemoryTokens = options.numMemoryTokens ?? 0
    this.tieEmbedding = options.tieEmbedding ?? false
    if (this.tieEmbedding && this.embDim !== this.dim) {
      throw new ConfigError(
        PKG,
        'tieEmbedding',
        `TransformerWrapper: tieEmbedding needs embDim (${this.embDim}) = dim (${this.dim})`,
      )
    }
    // Every option is checked before the first tensor is created, so a rejected wrapper leaks nothing.
    if (options.returnOnlyEmbed === true && this.tieEmbedding) {
      throw new ConfigError(
        PKG,
        'tieEmbedding',
        'TransformerWrapper: tieEmbedding and returnOnlyEmbed exclude each other',
      )
    }
    if (options.sigsoftmaxLogits === true && options.returnOnlyEmbed === true) {
      throw new ConfigError(
        PKG,
        'sigsoftmaxLogits',
        'TransformerWrapper: sigsoftmaxLogits needs logits (not returnOnlyEmbed)',
      )
    }
    const embFracGradient = options.embFracGradient ?? 1
    if (!(embFracGradient > 0 && embFracGradient <= 1)) {
      throw new ConfigError(
        PKG,
        'embFracGradient',
        `TransformerWrapper: embFracGradient must be in (0, 1], got ${embFracGradient}`,
      )
    }
    const tokenStd = this.l2normEmbed ? 1e-5 : Math.sqrt(2 / this.embDim)
    const tokenEmbHolder = this.addModule(
      'token_emb',
      new TokenEmbeddingHolder(this.numTokens, this.embDim, rng, tokenStd),
    )
    this.tokenEmb = tokenEmbHolder.emb
    const noAbs = this.maxSeqLen === 0 || !((options.useAbsPosEmb ?? true) && !layers.disableAbsPosEmb)
    this.absPosEmb = null
    this.sinuPosEmb = null
    if (!noAbs) {
      if (options.scaledSinuPosEmb === true) {
        this.sinuPosEmb = this.addModule('pos_emb', new ScaledSinusoidalEmbedding(this.embDim))
      } else {
        this.absPosEmb = this.addModule(
          'pos_emb',
          new AbsolutePositionalEmbedding(this.embDim, this.maxSeqLen, {
            l2normEmbed: this.l2normEmbed,
            rng,
          }),
        )
      }
    }
    this.postEmbNorm =
      options.postEmbNorm === true ? this.addModule('post_emb_norm', new LayerNorm(this.embDim)) : null
    this.projectEmb =
      this.embDim !== this.dim
        ? this.addModule('project_emb', new Linear(this.embDim, this.dim, { bias: true, rng }))
        : null
    this.attnLayers = this.addModule('attn_layers', layers)
    const logitsDim = options.logitsDim ?? this.numTokens
    this.toLogits =
      options.returnOnlyEmbed === true || this.tieEmbedding
        ? null
        : this.addModule('to_logits', new Linear(this.dim, logitsDim, { rng }))
    this.returnOnlyEmbed = options.returnOnlyEmbed ?? false
    this.sigsoftmaxLogits = options.sigsoftmaxLogits ?? false
    this.embFracGradient = embFracGradient
    this.memoryTokens =
      this.numMemoryTokens > 0
        ? this.addParameter(
            'memory_tokens',
            tf.tidy(() => tf.randomNormal([this.numMemoryTokens, this.dim], 0, 1, 'float32', 0)),
          )
        : null
  }

  readonly returnOnlyEmbed: boolean
  readonly embFracGradient: number
  readonly sigsoftmaxLogits: boolean

  private checkCall(tokens: tf.Tensor, call: WrapperCall): void {
    if (tokens.shape.length !== 2 || tokens.dtype !== 'int32') {
      throw new ConfigError(
        PKG,
        'tokens',
        `TransformerWrapper: tokens must be int32 [b, n], got ${tokens.dtype} [${tokens.shape.join(',')}]`,
      )
    }
    const [b, n] = tokens.shape as [number, number]
    if (b === 0 || n === 0) {
      throw new ConfigError(
        PKG,
        'tokens',
        `TransformerWrapper: tokens must hold at least one row and one position, got [${tokens.shape.join(',')}]`,
      )
    }
    const offset = this.attnLayers.cacheOffset(call.cache ?? null)
    if (this.absPosEmb !== null && offset + n > this.maxSeqLen) {
      throw new ConfigError(
        PKG,
        'tokens',
        `TransformerWrapper: ${offset + n} positions exceed maxSeqLen=${this.maxSeqLen} (absolute position embedding)`,
      )
    }
    if (
      call.mask != null &&
      (call.mask.dtype !== 'bool' ||
        call.mask.shape.length !== 2 ||
        call.mask.shape[0] !== b ||
        call.mask.shape[1] !== offset + n)
    ) {
      throw new ConfigError(
        PKG,
        'mask',
        `TransformerWrapper: mask must be bool [${b}, ${offset + n}], got ${call.mask.dtype} [${call.mask.shape.join(',')}]`,
      )
    }
    if (call.contextMask != null && call.contextMask.dtype !== 'bool') {
      throw new ConfigError(
        PKG,
        'contextMask',
        `TransformerWrapper: contextMask must be bool, got ${call.contextMask.dtype}`,
      )
    }
    const reason = call.cache == null ? null : this.cacheUnsupportedReason()
    if (reason !== null) {
      throw new ConfigError(
        PKG,
        reason,
        `TransformerWrapper: this model cannot decode with a KV cache because of '${reason}' (see cacheUnsupportedReason)`,
      )
    }
    // Last, as it reads the ids back (b·n integers): an id outside [0, numTokens) would gather silently.
    checkTokenIds('TransformerWrapper', 'tokens', tokens, this.numTokens)
  }

  /** `tokens int32 [b n]` → logits `[b n logitsDim]` (or embeddings `[b n dim]` with `returnOnlyEmbed`). */
  forward(tokens: tf.Tensor, call: WrapperCall = {}): tf.Tensor3D {
    const result = this.run(tokens, call, false)
    for (const { k, v, tokenShift } of result.cache) tf.dispose([k, v, ...(tokenShift ?? [])])
    if (result.logits === null) return result.embeddings
    result.embeddings.dispose()
    return result.logits
  }

  /**
   * One incremental-decoding step: logits for `tokens` (the new positions) and the updated KV cache.
   * The caller owns the returned tensors (including the cache entries; entries passed in are not
   * disposed here).
   */
  forwardWithCache(
    tokens: tf.Tensor,
    call: WrapperCall = {},
  ): {
    readonly logits: tf.Tensor3D | null
    readonly embeddings: tf.Tensor3D
    readonly cache: AttentionCache[]
  } {
    const result = this.run(tokens, call, false)
    return { logits: result.logits, embeddings: result.embeddings, cache: result.cache }
  }

  /** Why this model cannot decode with a KV cache (the x-transformers option name), or null. */
  cacheUnsupportedReason(): string | null {
    if (this.numMemoryTokens > 0) return 'num_memory_tokens'
    return this.attnLayers.cacheUnsupportedReason()
  }

  /** Like {@link forward}, also returning embeddings, per-layer hiddens, attention maps and the KV cache. */
  forwardWithIntermediates(tokens: tf.Tensor, call: WrapperCall = {}): WrapperResult {
    return this.run(tokens, call, true)
  }

  /** The offset of the tokens' first position (the cached length). */
  private run(tokens: tf.Tensor, call: WrapperCall, intermediates: boolean): WrapperResult {
    this.checkCall(tokens, call)
    const out = tf.tidy(() => {
      const [b, n] = tokens.shape as [number, number]
      const offset = this.attnLayers.cacheOffset(call.cache ?? null)
      let x = this.tokenEmb.apply(tokens)
      if (this.l2normEmbed) x = l2normalize(x)
      if (this.absPosEmb !== null) x = tf.add(x, this.absPosEmb.apply(n, offset))
      if (this.sinuPosEmb !== null) x = tf.add(x, this.sinuPosEmb.apply(n, offset))
      if (this.postEmbNorm !== null) x = this.postEmbNorm.apply(x)
      if (this.embFracGradient < 1) x = fractionalGradient(x, this.embFracGradient)
      x = maybeDropout(x, this.embDropout, this.training)
      if (this.projectEmb !== null) x = this.projectEmb.apply(x)
      let mask = call.mask ?? null
      const mems = this.numMemoryTokens
      if (this.memoryTokens !== null) {
        x = tf.concat([tf.tile(tf.expandDims(this.memoryTokens, 0), [b, 1, 1]), x], 1)
        if (mask !== null) mask = tf.concat([tf.ones([b, mems], 'bool'), mask], 1)
      }
      const stack = this.attnLayers.forward(x, {
        mask,
        context: call.context ?? null,
        contextMask: call.contextMask ?? null,
        cache: call.cache ?? null,
        returnIntermediates: intermediates,
      })
      let emb: tf.Tensor = stack.out
      if (mems > 0) emb = tf.slice(emb, [0, mems, 0], [b, n, this.dim])
      let logits: tf.Tensor | null = null
      if (this.toLogits !== null) logits = this.toLogits.apply(emb)
      else if (this.tieEmbedding) logits = linearApply(emb, this.tokenEmb.weight)
      if (logits !== null && this.sigsoftmaxLogits) logits = tf.add(logits, tf.logSigmoid(logits))
      return {
        embeddings: emb,
        ...(logits === null ? {} : { logits }),
        hiddens: stack.hiddens,
        attention: stack.attention,
        cache: stack.cache.flatMap((c) => [c.k, c.v]),
        cacheShift: stack.cache.map((c) => [...(c.tokenShift ?? [])]),
      } as unknown as Record<string, tf.Tensor | tf.Tensor[]>
    })
    const flatCache = out.cache as tf.Tensor[]
    const shiftRows = out.cacheShift as unknown as tf.Tensor3D[][]
    const cache: AttentionCache[] = []
    for (let i = 0; i < flatCache.length; i += 2) {
      const tokenShift = shiftRows[i / 2] ?? []
      cache.push({
        k: flatCache[i] as tf.Tensor4D,
        v: flatCache[i + 1] as tf.Tensor4D,
        ...(tokenShift.length > 0 ? { tokenShift } : {}),
      })
    }
    return {
      logits: (out.logits as tf.Tensor3D | undefined) ?? null,
      embeddings: out.embeddings as tf.Tensor3D,
      hiddens: out.hiddens as tf.Tensor3D[],
      attention: out.attention as tf.Tensor4D[],
      cache,
    }
  }
}

/** `token_emb.emb.weight`: x-transformers' TokenEmbedding holds its `nn.Embedding` as `emb`. */
class TokenEmbeddingHolder extends Module {
  readonly emb: Embedding
  constructor(num: number, dim: number, rng: SeededRandom, std: number) {
    super()
    this.emb = this.addModule('emb', new Embedding(num, dim, { rng, std }))
  }
}

/** `x·f + x·(1 − f)` forward (x-transformers' arithmetic, so the values match), `f·dy` backward. */
function fractionalGradient(x: tf.Tensor, f: number): tf.Tensor {
  const op = tf.customGrad(((input: tf.Tensor) => ({
    value: tf.add(tf.mul(input, tf.scalar(f)), tf.mul(input, tf.scalar(1 - f))),
    gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [tf.mul(dy as tf.Tensor, tf.scalar(f))],
  })) as unknown as Parameters<typeof tf.customGrad>[0])
  return op(x)
}
