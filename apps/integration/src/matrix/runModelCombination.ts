import '@tensorflow/tfjs-backend-cpu'
import '@tensorflow/tfjs-backend-wasm'
import * as tf from '@tensorflow/tfjs-core'
import { useBackend } from '@xattn/core'
import '@xattn/flash'
import {
  type AttentionCache,
  AutoregressiveWrapper,
  Decoder,
  decodeModelInto,
  Encoder,
  encodeModel,
  TransformerWrapper,
} from '@xattn/transformer'
import { flashCalls } from './flashCalls.js'
import type { ModelCombination } from './modelAxes.js'

/** One invariant checked on a model combination. */
export interface ModelCheck {
  readonly name: ModelInvariant
  readonly ok: boolean
  readonly detail: string
}

export type ModelInvariant =
  | 'finite forward'
  | 'finite gradients'
  | 'flash ≡ reference'
  | 'cached decoding ≡ full forward'
  | 'GQA with duplicated weights ≡ MHA'
  | 'train-mode dropout'
  | 'checkpoint round trip'
  | 'generate: cached ≡ uncached'
  | 'no tensor leaks'

export interface ModelResult {
  readonly combination: ModelCombination
  readonly status: 'ok' | 'rejected'
  readonly rejection?: string
  readonly rejectionOption?: string
  readonly checks: readonly ModelCheck[]
}

const B = 2
const N = 4
const NUM_TOKENS = 20
const DIM = 16
const HEADS = 4
// The rotary width is at least 32 (x-transformers: max(dimHead / 2, 32)), so heads are 32 wide.
const DIM_HEAD = 32
const VALUE_DIM_HEAD = 40
const CONTEXT_LEN = 6
const DROPOUT = 0.25

// Float32 tolerances on logits (O(1): one or two pre-norm layers, Kaiming-scale weights, 20-way
// head). Flash reorders the softmax sums (online, tiled): 5e-5; gradients of sum(logits²)
// accumulate over b·n positions into every parameter: 5e-4 + 1e-3 relative. Cached decoding and the
// GQA/MHA twin run the same kernels on equal values in other shapes: 2e-5.
const TOL = {
  flashOut: { atol: 5e-5, rtol: 1e-4 },
  flashGrad: { atol: 5e-4, rtol: 1e-3 },
  same: { atol: 2e-5, rtol: 1e-4 },
}

/** Extras that make @xattn/transformer run core's reference building blocks even under flash. */
const FALLBACK_EXTRAS: ReadonlySet<string> = new Set(['sparseTopk', 'talkingHeads', 'softclamp', 'localAttn'])

const kvHeadsOf = (heads: ModelCombination['heads']) => (heads === 'MHA' ? HEADS : heads === 'GQA' ? 2 : 1)

/** Builds the combination's model (throws ConfigError for unsupported combinations). */
export function buildModel(
  c: ModelCombination,
  overrides: { kvHeads?: number; flash?: boolean; seed?: number } = {},
): TransformerWrapper {
  const attn = {
    dimHead: DIM_HEAD,
    kvHeads: overrides.kvHeads ?? kvHeadsOf(c.heads),
    ...(c.numMemKv === '0' ? {} : { numMemKv: Number(c.numMemKv) }),
    ...((overrides.flash ?? c.attention === 'flash') ? { flash: true } : {}),
    ...(c.qkNorm === 'off' ? {} : { qkNorm: true }),
    ...(c.qkNorm === 'dimScale' ? { qkNormDimScale: true } : {}),
    ...(c.valueDim === 'different' ? { valueDimHead: VALUE_DIM_HEAD } : {}),
    ...(c.dropout === 'on' ? { dropout: DROPOUT } : {}),
    ...{
      none: {},
      sparseTopk: { sparseTopk: 2 },
      talkingHeads: { preTalkingHeads: true, postTalkingHeads: true },
      softclamp: { softclampLogits: true, logitSoftclampValue: 5 },
      gateValues: { gateValues: true },
      headScale: { headScale: true },
      zeroKv: { addZeroKv: true },
      gateHeads: { gateValueHeads: true },
      localAttn: { maxAttendPast: 2 },
      valueResidual: {},
    }[c.extras],
  }
  const positions = {
    none: {},
    absolute: {},
    rotary: { rotaryPosEmb: true },
    xpos: { rotaryPosEmb: true, rotaryXpos: true },
    alibi: { alibiPosBias: true },
    t5: { relPosBias: true },
    dynamic: { dynamicPosBias: true },
  }[c.positions]
  const stackOptions = {
    dim: DIM,
    depth: Number(c.depth),
    heads: HEADS,
    attn,
    ...(c.crossAttention === 'on' ? { crossAttend: true, crossAttn: { dimHead: DIM_HEAD } } : {}),
    ...positions,
    ...(c.extras === 'valueResidual' ? { addValueResidual: true } : {}),
    seed: 3 + (overrides.seed ?? 0),
  }
  const attnLayers = c.causal === 'on' ? new Decoder(stackOptions) : new Encoder(stackOptions)
  return new TransformerWrapper({
    numTokens: NUM_TOKENS,
    maxSeqLen: 16,
    attnLayers,
    ...(c.positions === 'none' ? { useAbsPosEmb: false } : {}),
    ...(c.memoryTokens === '0' ? {} : { numMemoryTokens: Number(c.memoryTokens) }),
    seed: 5 + (overrides.seed ?? 0),
  })
}

function maskOf(kind: ModelCombination['keyMask'], m: number): tf.Tensor | null {
  if (kind === 'none') return null
  const values: boolean[] = []
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < m; j++) {
      const visible = kind === 'padded' ? j < m - 1 : kind === 'leftPadded' ? j >= 2 : false
      values.push(b === 0 ? true : visible)
    }
  }
  return tf.tensor2d(values, [B, m], 'bool')
}

function compare(
  name: ModelInvariant,
  a: readonly tf.Tensor[],
  b: readonly tf.Tensor[],
  tol: { atol: number; rtol: number },
): ModelCheck {
  let worst = 0
  let ok = a.length === b.length
  for (let i = 0; i < a.length && ok; i++) {
    const x = (a[i] as tf.Tensor).dataSync()
    const y = (b[i] as tf.Tensor).dataSync()
    if (x.length !== y.length) ok = false
    for (let j = 0; j < x.length && ok; j++) {
      const diff = Math.abs((x[j] as number) - (y[j] as number))
      if (!(diff <= tol.atol + tol.rtol * Math.abs(y[j] as number))) ok = false
      if (!(diff <= worst)) worst = diff
    }
  }
  return { name, ok, detail: `max |diff| ${worst.toExponential(2)} (atol ${tol.atol}, rtol ${tol.rtol})` }
}

const finite = (ts: readonly tf.Tensor[]) =>
  ts.every((t) => (t.dataSync() as Float32Array).every(Number.isFinite))

function gradients(model: TransformerWrapper, tokens: tf.Tensor, call: object): tf.Tensor[] {
  const named = [...model.namedParameters()].filter(([, v]) => v.trainable)
  const { grads, value } = tf.variableGrads(
    () => tf.sum(tf.square(model.forward(tokens, call))) as tf.Scalar,
    named.map(([, v]) => v),
  )
  value.dispose()
  return named.map(([, v]) => grads[v.name] as tf.Tensor)
}

/**
 * The state dict of `model` rewritten for its MHA twin: every per-KV-head tensor is repeated so
 * that query head i gets KV head `i % kvHeads` (to_k/to_v rows, mem_k/mem_v and per-KV-head
 * qk-norm scales).
 */
function mhaState(model: TransformerWrapper, valueDimHead: number): Map<string, tf.Tensor> {
  const state = new Map<string, tf.Tensor>()
  for (const [name, tensor] of model.stateDict()) {
    state.set(
      name,
      tf.tidy(() => {
        const leaf = name.split('.').at(-1) === 'weight' ? name.split('.').at(-2) : name.split('.').at(-1)
        const perHeadRows = leaf === 'to_k' ? DIM_HEAD : leaf === 'to_v' ? valueDimHead : 0
        if (perHeadRows > 0) {
          const kvh = (tensor.shape[0] as number) / perHeadRows
          if (kvh === HEADS) return tensor.clone()
          const index = tf.tensor1d(
            Array.from({ length: HEADS }, (_, i) => i % kvh),
            'int32',
          )
          const inDim = tensor.shape[1] as number
          return tf.reshape(tf.gather(tf.reshape(tensor, [kvh, perHeadRows, inDim]), index), [
            HEADS * perHeadRows,
            inDim,
          ])
        }
        if (leaf === 'mem_k' || leaf === 'mem_v' || leaf === 'qk_norm_k_scale') {
          const kvh = tensor.shape[0] as number
          if (kvh === HEADS) return tensor.clone()
          return tf.gather(
            tensor,
            tf.tensor1d(
              Array.from({ length: HEADS }, (_, i) => i % kvh),
              'int32',
            ),
          )
        }
        return tensor.clone()
      }),
    )
  }
  return state
}

/** Builds the model of a combination and checks its invariants; disposes everything it made. */
export async function runModelCombination(c: ModelCombination): Promise<ModelResult> {
  await useBackend(c.backend)
  const before = tf.memory().numTensors
  let model: TransformerWrapper
  try {
    model = buildModel(c)
  } catch (error) {
    const e = error as Error & { option?: string }
    if (e.name === 'ConfigError') {
      return {
        combination: c,
        status: 'rejected',
        rejection: e.message,
        ...(e.option === undefined ? {} : { rejectionOption: e.option }),
        checks: [],
      }
    }
    throw error
  }
  const checks: ModelCheck[] = []
  const owned: tf.Tensor[] = []
  const models: TransformerWrapper[] = [model]
  try {
    const cross = c.crossAttention === 'on'
    const tokens = tf.tensor2d(
      Array.from({ length: B * N }, (_, i) => (i * 7 + 3) % NUM_TOKENS),
      [B, N],
      'int32',
    )
    const mask = maskOf(c.keyMask, N)
    const context = cross ? tf.randomNormal([B, CONTEXT_LEN, DIM], 0, 1, 'float32', 9) : null
    const contextMask = cross ? maskOf(c.keyMask, CONTEXT_LEN) : null
    owned.push(...[tokens, mask, context, contextMask].filter((t): t is tf.Tensor => t !== null))
    const call = { mask, context, contextMask }
    model.eval()

    const callsBefore = flashCalls()
    const out = model.forward(tokens, call)
    const flashRan = flashCalls() > callsBefore
    owned.push(out)
    checks.push({ name: 'finite forward', ok: finite([out]), detail: `logits [${out.shape.join(',')}]` })
    const grads = gradients(model, tokens, call)
    owned.push(...grads)
    checks.push({ name: 'finite gradients', ok: finite(grads), detail: `${grads.length} parameters` })

    if (c.dropout === 'on') {
      model.train(true)
      const trainOut = model.forward(tokens, call)
      const trainGrads = gradients(model, tokens, call)
      model.eval()
      owned.push(trainOut, ...trainGrads)
      const differs = !compare('train-mode dropout', [trainOut], [out], TOL.same).ok
      const ok = differs && finite([trainOut, ...trainGrads])
      checks.push({ name: 'train-mode dropout', ok, detail: `finite, differs from eval: ${differs}` })
    }

    if (c.attention === 'flash') {
      const twin = buildModel(c, { flash: false })
      models.push(twin)
      twin.loadStateDict(model.stateDict())
      twin.eval()
      const refOut = twin.forward(tokens, call)
      const refGrads = gradients(twin, tokens, call)
      owned.push(refOut, ...refGrads)
      const forward = compare('flash ≡ reference', [out], [refOut], TOL.flashOut)
      const backward = compare('flash ≡ reference', grads, refGrads, TOL.flashGrad)
      // Extras the kernel cannot express run the reference blocks by design; all others must
      // really have run flash.
      const fallback = FALLBACK_EXTRAS.has(c.extras)
      checks.push({
        name: 'flash ≡ reference',
        ok: forward.ok && backward.ok && flashRan !== fallback,
        detail: `logits ${forward.detail}; gradients ${backward.detail}; flash kernel ran: ${flashRan} (expected ${!fallback})`,
      })
    }

    if (c.kvCache === 'on') {
      const steps: tf.Tensor[] = []
      const expected: tf.Tensor[] = []
      let cache: AttentionCache[] | null = null
      try {
        for (let t = 0; t < N; t++) {
          const step = tf.slice(tokens, [0, t], [B, 1])
          const prefix = tf.slice(tokens, [0, 0], [B, t + 1])
          const prefixMask = mask === null ? null : tf.slice(mask, [0, 0], [B, t + 1])
          owned.push(step, prefix, ...(prefixMask === null ? [] : [prefixMask]))
          const result = model.forwardWithCache(step, { ...call, mask: prefixMask, cache })
          if (cache !== null) for (const entry of cache) tf.dispose([entry.k, entry.v])
          cache = result.cache
          owned.push(result.embeddings, ...(result.logits === null ? [] : [result.logits]))
          if (result.logits !== null) steps.push(result.logits)
          const full = model.forward(prefix, { ...call, mask: prefixMask })
          const last = tf.slice(full, [0, t, 0], [B, 1, NUM_TOKENS])
          full.dispose()
          owned.push(last)
          expected.push(last)
        }
        checks.push(compare('cached decoding ≡ full forward', steps, expected, TOL.same))
      } catch (error) {
        // A throw is a failed invariant of this row, not a crash of the matrix.
        checks.push({
          name: 'cached decoding ≡ full forward',
          ok: false,
          detail: `threw: ${(error as Error).message}`,
        })
      } finally {
        if (cache !== null) for (const entry of cache) tf.dispose([entry.k, entry.v])
      }
    }

    if (c.kvCache === 'on' && c.causal === 'on' && c.crossAttention === 'off') {
      // The generation loop itself: greedy decoding with the KV cache gives the same tokens as
      // re-reading the whole sequence every step, for prompts of different lengths.
      const ar = new AutoregressiveWrapper(model)
      const prompt = tf.slice(tokens, [0, 0], [B, 3]) as tf.Tensor2D
      owned.push(prompt)
      try {
        const options = { seqLen: 3, promptLens: [3, 2] }
        const cached = await ar.generate(prompt, { ...options, cache: true })
        const uncached = await ar.generate(prompt, { ...options, cache: false })
        owned.push(cached, uncached)
        const same = compare('generate: cached ≡ uncached', [cached], [uncached], { atol: 0, rtol: 0 })
        checks.push({ ...same, detail: `tokens ${JSON.stringify(cached.arraySync())}` })
      } catch (error) {
        checks.push({
          name: 'generate: cached ≡ uncached',
          ok: false,
          detail: `threw: ${(error as Error).message}`,
        })
      }
    }

    {
      // Every parameter and persistent buffer of every feature survives a checkpoint: a model
      // built from other seeds, loaded with the bytes, gives the same logits bit for bit.
      const fresh = buildModel(c, { seed: 100 })
      models.push(fresh)
      // Constant-initialised parameters (norm gains, qk-norm scales) would match without a load.
      for (const [, v] of fresh.namedParameters()) tf.tidy(() => v.assign(tf.add(v, tf.scalar(0.5))))
      try {
        decodeModelInto(fresh, encodeModel(model))
        fresh.eval()
        const again = fresh.forward(tokens, call)
        owned.push(again)
        checks.push(compare('checkpoint round trip', [again], [out], { atol: 0, rtol: 0 }))
      } catch (error) {
        checks.push({
          name: 'checkpoint round trip',
          ok: false,
          detail: `threw: ${(error as Error).message}`,
        })
      }
    }

    if (c.heads !== 'MHA') {
      const twin = buildModel(c, { kvHeads: HEADS })
      models.push(twin)
      const state = mhaState(model, c.valueDim === 'different' ? VALUE_DIM_HEAD : DIM_HEAD)
      try {
        twin.loadStateDict(state)
        twin.eval()
        const mhaOut = twin.forward(tokens, call)
        owned.push(mhaOut)
        checks.push(compare('GQA with duplicated weights ≡ MHA', [out], [mhaOut], TOL.same))
      } catch (error) {
        checks.push({
          name: 'GQA with duplicated weights ≡ MHA',
          ok: false,
          detail: (error as Error).message,
        })
      } finally {
        tf.dispose([...state.values()])
      }
    }
  } finally {
    tf.dispose(owned)
    for (const m of models) m.dispose()
  }
  const leaked = tf.memory().numTensors - before
  checks.push({ name: 'no tensor leaks', ok: leaked === 0, detail: `${leaked} tensors left` })
  return { combination: c, status: 'ok', checks }
}

/**
 * Decoding with a KV cache on a model that cannot (memory tokens): the model must say so by name
 * (`cacheUnsupportedReason()`), which generation checks before using a cache.
 */
export function cacheUnsupportedReason(c: ModelCombination): string | null {
  const model = buildModel(c)
  try {
    return model.cacheUnsupportedReason()
  } finally {
    model.dispose()
  }
}

/** The first value of every axis, with `tuple` laid over it. */
export function combinationWith(
  tuple: Readonly<Record<string, string>>,
  axes: Readonly<Record<string, readonly string[]>>,
): ModelCombination {
  const base = Object.fromEntries(Object.entries(axes).map(([axis, values]) => [axis, values[0]]))
  return { ...base, ...tuple } as unknown as ModelCombination
}

/**
 * Checks that an unsupported combination is refused by name: a ConfigError naming the option at
 * construction, or `cacheUnsupportedReason()` naming it before decoding.
 */
export function probeForbidden(
  forbidden: {
    readonly tuple: Readonly<Record<string, string>>
    readonly rejectedAt: 'construction' | 'decoding'
    readonly option: string
  },
  axes: Readonly<Record<string, readonly string[]>>,
): { ok: boolean; message: string } {
  const c = combinationWith(forbidden.tuple, axes)
  if (forbidden.rejectedAt === 'decoding') {
    const reason = cacheUnsupportedReason(c)
    const model = buildModel(c)
    const tokens = tf.tensor2d([1, 2], [2, 1], 'int32')
    const first = model.forwardWithCache(tokens)
    let refusal = 'the second cached step was accepted'
    let refused = false
    try {
      tf.dispose(model.forwardWithCache(tokens, { cache: first.cache }).cache.flatMap((e) => [e.k, e.v]))
    } catch (error) {
      const e = error as Error & { option?: string }
      refused = e.name === 'ConfigError' && e.option === forbidden.option
      refusal = e.message
    } finally {
      tf.dispose([tokens, first.embeddings, ...(first.logits === null ? [] : [first.logits])])
      tf.dispose(first.cache.flatMap((e) => [e.k, e.v]))
      model.dispose()
    }
    return {
      ok: reason === forbidden.option && refused,
      message: `cacheUnsupportedReason() = ${JSON.stringify(reason)}; a cached step throws: ${refusal}`,
    }
  }
  try {
    buildModel(c).dispose()
    return { ok: false, message: 'constructed without error' }
  } catch (error) {
    const e = error as Error & { option?: string }
    return { ok: e.name === 'ConfigError' && e.option === forbidden.option, message: e.message }
  }
}
