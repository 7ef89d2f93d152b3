import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, type Module, SeededRandom } from '@xattn/core'
import { checkTokenIds, checkTokenIdValues } from '../tokenIds.js'
import { type CacheEntry, KvCache } from './kvCache.js'
import { checkFilter, type LogitFilter, sampleToken } from './sampling.js'

const PKG = '@xattn/transformer'

/**
 * What {@link AutoregressiveWrapper} needs of a network: a module mapping tokens `int32 [b, n]` to
 * logits `[b, n, numTokens]`, and for cached decoding a forward pass that takes and returns the
 * per-layer KV cache. `TransformerWrapper` fits.
 */
export interface AutoregressiveNet extends Module {
  readonly maxSeqLen: number
  readonly numTokens: number
  /** Learned memory tokens prevent caching (x-transformers' `can_cache_kv`). */
  readonly numMemoryTokens?: number
  forward(tokens: tf.Tensor, call?: { readonly mask?: tf.Tensor | null }): tf.Tensor3D
  /** Logits and the updated cache; `tokens` are only the positions after the cached ones. */
  forwardWithCache?(
    tokens: tf.Tensor,
    call: { readonly cache?: readonly CacheEntry[] | null },
  ): { readonly logits: tf.Tensor3D | null; readonly cache: CacheEntry[]; readonly embeddings?: tf.Tensor }
  /** Used for caching when `forwardWithCache` is absent; its extra outputs are disposed. */
  forwardWithIntermediates?(
    tokens: tf.Tensor,
    call: { readonly cache?: readonly CacheEntry[] | null },
  ): {
    readonly logits: tf.Tensor3D | null
    readonly cache: CacheEntry[]
    readonly embeddings?: tf.Tensor
    readonly hiddens?: readonly tf.Tensor[]
    readonly attention?: readonly tf.Tensor[]
  }
  /** Why this network cannot decode with a KV cache (the option's name), or null when it can. */
  cacheUnsupportedReason?(): string | null
}

export interface AutoregressiveWrapperOptions {
  /** Target value excluded from the loss (default −100, as x-transformers / PyTorch). */
  readonly ignoreIndex?: number
  /** Token fed in place of `ignoreIndex` in the inputs, and written after `eos` (default 0). */
  readonly padValue?: number
}

export interface LossOptions {
  /**
   * bool `[b, n]` (the tokens' mask; the wrapper uses `mask[:, :-1]` for the inputs) or `[b, n-1]`.
   * As in x-transformers, padded target positions still count in the loss; mark targets to skip
   * with `ignoreIndex` instead.
   */
  readonly mask?: tf.Tensor2D
  /**
   * bool `[b, n]`, true where the token counts as a target (an xattn addition: e.g. only the
   * answer part of a prompt/answer sequence). Targets are `tokens[:, 1:]`, so column 0 is unused.
   */
  readonly lossMask?: tf.Tensor2D
}

export interface GenerateOptions {
  /** Tokens to generate. */
  readonly seqLen: number
  /** 0 (default) = greedy argmax; > 0 samples from softmax(filter(logits) / temperature). */
  readonly temperature?: number
  /** Logit filter applied before sampling. */
  readonly filter?: LogitFilter
  /** Stop once every sequence has produced this token; tokens after it become `padValue`. */
  readonly eos?: number
  /**
   * Decode with a KV cache. Default: when the network supports it (otherwise a one-time warning
   * names the option that prevents it). `true` on a network that cannot is a ConfigError.
   */
  readonly cache?: boolean
  /** Seed of the sampler (default 0). */
  readonly seed?: number
  /**
   * Prompt lengths for a batch of variable-length prompts, as x-transformers' `prompt_lens`: row i's
   * prompt is its first `promptLens[i]` tokens (the rest is padding). x-transformers left-pads them
   * and offsets the positions; here rows of equal length decode together, which gives each row
   * exactly its unpadded prompt's result under every position scheme (absolute, rotary, ALiBi, …).
   */
  readonly promptLens?: readonly number[]
}

/**
 * Next-token training and sampling around a decoder, as x-transformers' `AutoregressiveWrapper`.
 *
 * @example
 * const ar = new AutoregressiveWrapper(net)
 * const loss = ar.loss(tokens)                   // scalar; differentiable
 * const out = await ar.generate(prompt, { seqLen: 12 }) // int32 [b, 12], greedy, cached
 */
export class AutoregressiveWrapper {
  readonly ignoreIndex: number
  readonly padValue: number
  private warnedNoCache = false

  constructor(
    readonly net: AutoregressiveNet,
    options: AutoregressiveWrapperOptions = {},
  ) {
    this.ignoreIndex = options.ignoreIndex ?? -100
    this.padValue = options.padValue ?? 0
  }

  /**
   * Mean next-token cross-entropy: inputs `tokens[:, :-1]` (with `ignoreIndex` replaced by
   * `padValue`), targets `tokens[:, 1:]`, averaged over targets that are not `ignoreIndex`.
   *
   * Shapes: tokens int32 `[b, n]`, mask bool `[b, n]` or `[b, n-1]` → scalar.
   */
  loss(tokens: tf.Tensor2D, { mask, lossMask }: LossOptions = {}): tf.Scalar {
    if (tokens.rank !== 2 || tokens.dtype !== 'int32') {
      throw new ConfigError(
        PKG,
        'tokens',
        `AutoregressiveWrapper.loss: tokens must be int32 [b, n], got ${tokens.dtype} [${tokens.shape}]`,
      )
    }
    const [b, n] = tokens.shape
    if (n < 2) {
      throw new ConfigError(
        PKG,
        'tokens',
        `AutoregressiveWrapper.loss: need at least 2 tokens per row, got n=${n}`,
      )
    }
    if (n - 1 > this.net.maxSeqLen) {
      throw new ConfigError(
        PKG,
        'tokens',
        `AutoregressiveWrapper.loss: ${n - 1} input tokens exceed the network's maxSeqLen ${this.net.maxSeqLen}`,
      )
    }
    if (mask !== undefined) {
      const ok = mask.rank === 2 && mask.shape[0] === b && (mask.shape[1] === n || mask.shape[1] === n - 1)
      if (!ok || mask.dtype !== 'bool') {
        throw new ConfigError(
          PKG,
          'mask',
          `AutoregressiveWrapper.loss: mask must be bool [${b}, ${n}] or [${b}, ${n - 1}], got ${mask.dtype} [${mask.shape}]`,
        )
      }
    }
    if (
      lossMask !== undefined &&
      (!tf.util.arraysEqual(lossMask.shape, [b, n]) || lossMask.dtype !== 'bool')
    ) {
      throw new ConfigError(
        PKG,
        'lossMask',
        `AutoregressiveWrapper.loss: lossMask must be bool [${b}, ${n}], got ${lossMask.dtype} [${lossMask.shape}]`,
      )
    }
    // Inputs and targets alike (a target id ≥ numTokens would be one-hot to nothing and still count).
    checkTokenIds('AutoregressiveWrapper.loss', 'tokens', tokens, this.net.numTokens, this.ignoreIndex)
    return tf.tidy(() => {
      const rawInputs = tf.slice(tokens, [0, 0], [b, n - 1])
      const inputs = tf.where(
        tf.equal(rawInputs, this.ignoreIndex),
        tf.fill([b, n - 1], this.padValue, 'int32'),
        rawInputs,
      ) as tf.Tensor2D
      const targets = tf.slice(tokens, [0, 1], [b, n - 1])
      const inputMask =
        mask === undefined
          ? undefined
          : mask.shape[1] === n
            ? (tf.slice(mask, [0, 0], [b, n - 1]) as tf.Tensor2D)
            : mask
      const logits = this.net.forward(inputs, inputMask === undefined ? {} : { mask: inputMask })
      const numTokens = logits.shape[2]
      const notIgnored = tf.notEqual(targets, this.ignoreIndex)
      const valid =
        lossMask === undefined
          ? notIgnored
          : tf.logicalAnd(notIgnored, tf.slice(lossMask, [0, 1], [b, n - 1]))
      const safeTargets = tf.where(valid, targets, tf.zerosLike(targets))
      const logProbs = tf.logSoftmax(logits, -1)
      const picked = tf.sum(tf.mul(logProbs, tf.oneHot(safeTargets, numTokens)), -1)
      const weights = tf.cast(valid, 'float32')
      // PyTorch's mean over non-ignored targets; all targets ignored gives NaN there, 0 here.
      const count = tf.maximum(tf.sum(weights), 1)
      return tf.div(tf.neg(tf.sum(tf.mul(picked, weights))), count) as tf.Scalar
    })
  }

  /** Why cached decoding is unavailable for this network, or null. */
  cacheUnsupportedReason(): string | null {
    const own = this.net.cacheUnsupportedReason?.()
    if (own !== undefined) return own
    if ((this.net.numMemoryTokens ?? 0) > 0) return 'numMemoryTokens'
    if (this.net.forwardWithCache === undefined && this.net.forwardWithIntermediates === undefined) {
      return 'no forwardWithCache on the network'
    }
    return null
  }

  /** One cached forward pass: logits of the new positions; the cache takes the new entries. */
  private cachedForward(x: tf.Tensor2D, cache: KvCache): tf.Tensor3D {
    const call = { cache: cache.entries }
    let logits: tf.Tensor3D | null
    let entries: CacheEntry[]
    if (this.net.forwardWithCache !== undefined) {
      const result = this.net.forwardWithCache(x, call)
      logits = result.logits
      entries = result.cache
      result.embeddings?.dispose()
    } else {
      const result = (
        this.net.forwardWithIntermediates as NonNullable<AutoregressiveNet['forwardWithIntermediates']>
      )(x, call)
      logits = result.logits
      entries = result.cache
      result.embeddings?.dispose()
      for (const t of [...(result.hiddens ?? []), ...(result.attention ?? [])]) t.dispose()
    }
    cache.update(entries, x.shape[1])
    if (logits === null) throw new ConfigError(PKG, 'net', 'generate: the network returned no logits')
    return logits
  }

  /**
   * Generates `seqLen` tokens after `prompt` (int32 `[b, t]`), returning int32 `[b, seqLen]` (fewer
   * columns when every row reached `eos`). Greedy at temperature 0; seeded sampling otherwise.
   * Beyond `maxSeqLen` the network sees the last `maxSeqLen` tokens (a sliding window, as
   * x-transformers; with the cache the window is re-read, so results equal the uncached path).
   */
  async generate(prompt: tf.Tensor2D, options: GenerateOptions): Promise<tf.Tensor2D> {
    const { seqLen, temperature = 0, filter, eos, seed = 0, promptLens } = options
    if (prompt.rank !== 2 || prompt.dtype !== 'int32' || prompt.shape[1] < 1) {
      throw new ConfigError(
        PKG,
        'prompt',
        `generate: prompt must be int32 [b, t] with t ≥ 1, got ${prompt.dtype} [${prompt.shape}]`,
      )
    }
    if (!Number.isInteger(seqLen) || seqLen < 1) {
      throw new ConfigError(PKG, 'seqLen', `generate: seqLen must be an integer ≥ 1, got ${seqLen}`)
    }
    if (!(temperature >= 0) || !Number.isFinite(temperature)) {
      throw new ConfigError(
        PKG,
        'temperature',
        `generate: temperature must be a finite number ≥ 0, got ${temperature}`,
      )
    }
    checkFilter(filter, this.net.numTokens)
    const reason = this.cacheUnsupportedReason()
    if (options.cache === true && reason !== null) {
      throw new ConfigError(
        PKG,
        'cache',
        `generate: cannot decode with a KV cache because of '${reason}'; pass cache: false`,
      )
    }
    const useCache = (options.cache ?? true) && reason === null
    if (options.cache === undefined && reason !== null && !this.warnedNoCache) {
      // Not silent: say once why decoding re-reads the whole sequence every step.
      this.warnedNoCache = true
      console.warn(
        `${PKG}: generate: KV cache disabled because of '${reason}' (each step re-reads the sequence); pass cache: false to silence this`,
      )
    }
    const [b, t] = prompt.shape
    const rows = (await prompt.array()) as number[][]
    let prompts: number[][]
    if (promptLens !== undefined) {
      if (promptLens.length !== b || promptLens.some((len) => !Number.isInteger(len) || len < 1 || len > t)) {
        throw new ConfigError(
          PKG,
          'promptLens',
          `generate: promptLens must hold ${b} integers in [1, ${t}], got [${promptLens.join(', ')}]`,
        )
      }
      prompts = rows.map((row, i) => row.slice(0, promptLens[i] as number))
    } else {
      prompts = rows
    }
    // The prompt read above is the only tensor work so far; padding beyond promptLens is not fed.
    prompts.forEach((row, i) => {
      checkTokenIdValues('generate', 'prompt', row, row.length, this.net.numTokens, { firstRow: i })
    })
    const rng = new SeededRandom(seed)
    const sample = { temperature, filter, rng }
    // Rows of equal prompt length decode together; each group is exact for every position scheme.
    const groups = new Map<number, number[]>()
    for (const [i, p] of prompts.entries()) groups.set(p.length, [...(groups.get(p.length) ?? []), i])
    const generated: number[][] = prompts.map(() => [])
    for (const indices of groups.values()) {
      const out = await this.decode(
        indices.map((i) => prompts[i] as number[]),
        seqLen,
        useCache,
        sample,
        eos,
      )
      indices.forEach((row, j) => {
        generated[row] = out[j] as number[]
      })
    }
    let width = Math.max(...generated.map((g) => g.length))
    if (eos !== undefined) {
      // Stop at the step where the last row produced eos (x-transformers' batch-level stop),
      // then pad every row after its first eos.
      const firstEos = generated.map((g) => g.indexOf(eos))
      if (firstEos.every((e) => e >= 0)) width = Math.max(...firstEos) + 1
      for (const [i, g] of generated.entries()) {
        const at = firstEos[i] as number
        generated[i] = g.slice(0, width).map((token, j) => (at >= 0 && j > at ? this.padValue : token))
      }
    }
    return tf.tensor2d(
      generated.map((g) => g.slice(0, width)),
      [b, width],
      'int32',
    )
  }

  /** Decodes one group of equal-length prompts; returns the new tokens per row. */
  private async decode(
    prompts: number[][],
    seqLen: number,
    useCache: boolean,
    sample: { temperature: number; filter: LogitFilter | undefined; rng: SeededRandom },
    eos: number | undefined,
  ): Promise<number[][]> {
    const maxSeqLen = this.net.maxSeqLen
    const out = prompts.map((p) => [...p])
    const done = prompts.map(() => false)
    let cache = useCache ? new KvCache() : null
    const wasTraining = this.net.training
    this.net.eval()
    try {
      for (let step = 0; step < seqLen; step++) {
        const length = (out[0] as number[]).length
        const windowStart = Math.max(0, length - maxSeqLen)
        if (cache !== null && windowStart > 0) {
          // Past maxSeqLen the window slides: re-read it so positions restart at 0.
          cache.dispose()
          cache = new KvCache()
        }
        const feedFrom = cache === null ? windowStart : windowStart + cache.offset
        const feed = out.map((row) => row.slice(feedFrom))
        const x = tf.tensor2d(feed, [feed.length, length - feedFrom], 'int32')
        const logits = cache === null ? this.net.forward(x) : this.cachedForward(x, cache)
        x.dispose()
        const rows = tf.tidy(() => {
          const [bb, n, v] = logits.shape
          return tf.reshape(tf.slice(logits, [0, n - 1, 0], [bb, 1, v]), [bb, v])
        })
        logits.dispose()
        // An async read: a synchronous one stalls (and under SwiftShader loses) the webgpu device.
        const values = (await rows.array()) as number[][]
        rows.dispose()
        for (const [i, row] of values.entries()) {
          const token = sampleToken(row, sample)
          ;(out[i] as number[]).push(token)
          if (token === eos) done[i] = true
        }
        if (eos !== undefined && done.every(Boolean)) break
      }
    } finally {
      cache?.dispose()
      this.net.train(wasTraining)
    }
    return out.map((row, i) => row.slice((prompts[i] as number[]).length))
  }
}
