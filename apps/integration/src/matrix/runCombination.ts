import '@tensorflow/tfjs-backend-cpu'
import '@tensorflow/tfjs-backend-wasm'
import * as tf from '@tensorflow/tfjs-core'
import { useBackend } from '@xattn/core'
// Registers the 'flash' attention implementation and its cpu/wasm kernels.
import '@xattn/flash'
import type { Combination } from './axes.js'
import { ComposedAttention, type ComposedAttentionOptions, type ComposedCall } from './composedAttention.js'

/** One invariant checked on a combination. */
export interface CheckResult {
  readonly name: InvariantName
  readonly ok: boolean
  /** Measured worst difference and tolerance, or what went wrong. */
  readonly detail: string
}

export type InvariantName =
  | 'finite forward'
  | 'finite gradients'
  | 'flash ≡ reference'
  | 'cached decoding ≡ full forward'
  | 'GQA with duplicated weights ≡ MHA'
  | 'dropout reproducible from its seed'
  | 'no tensor leaks'

export interface CombinationResult {
  readonly combination: Combination
  /** `rejected`: construction threw a ConfigError (the message says why). */
  readonly status: 'ok' | 'rejected'
  readonly rejection?: string
  readonly checks: readonly CheckResult[]
}

// Small on purpose: every combination builds up to three models and runs forward, backward and
// n prefix forwards; the point is the combination, not the size.
const B = 2
const N = 4
const DIM = 16
const HEADS = 4
const DIM_HEAD = 8
const CONTEXT_LEN = 6
const DIM_CONTEXT = 12
const SLOPES = [0.5, 0.25, 0.125, 0.0625]
const DROPOUT = 0.25

// Float32 tolerances. Outputs are O(1) (unit-scale inputs, Kaiming weights). Flash sums keys
// tile by tile with an online softmax, so its rounding differs from the reference by a few ulp
// per accumulated term: 2e-5 absolute for outputs; gradients accumulate over b·n positions and
// pass through the output projection: 1e-4 + 1e-3 relative. Cached decoding and GQA-vs-MHA run
// the same implementation on differently shaped (but equal-valued) operands: 1e-5.
const TOL = {
  flashOut: { atol: 2e-5, rtol: 0 },
  flashGrad: { atol: 1e-4, rtol: 1e-3 },
  same: { atol: 1e-5, rtol: 1e-5 },
}

function kvHeadsOf(heads: Combination['heads']): number {
  return heads === 'MHA' ? HEADS : heads === 'GQA' ? 2 : 1
}

/** The model options a combination asks for. */
export function modelOptions(
  c: Combination,
  overrides: Partial<ComposedAttentionOptions> = {},
): ComposedAttentionOptions {
  return {
    dim: DIM,
    heads: HEADS,
    kvHeads: kvHeadsOf(c.heads),
    dimHead: DIM_HEAD,
    valueDimHead: c.valueDim === 'different' ? 12 : DIM_HEAD,
    ...(c.crossAttention === 'on' ? { dimContext: DIM_CONTEXT } : {}),
    numMemKv: Number(c.numMemKv),
    attention: c.attention,
    seed: 11,
    ...overrides,
  }
}

function seededNormal(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed)
}

/**
 * The key mask over `m` keys: padded = the last keys of batch row 1 hidden, leftPadded = its first
 * keys, fullyPadded = all of row 1.
 */
function keyMaskOf(kind: Combination['keyMask'], m: number): tf.Tensor | null {
  if (kind === 'none') return null
  const values: boolean[] = []
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < m; j++) {
      const visible = kind === 'padded' ? j < m - 2 : kind === 'leftPadded' ? j >= 2 : false
      values.push(b === 0 ? j !== 1 : visible)
    }
  }
  return tf.tensor2d(values, [B, m], 'bool')
}

function worstExcess(
  a: tf.Tensor,
  b: tf.Tensor,
  tol: { atol: number; rtol: number },
): { ok: boolean; worst: number } {
  const x = a.dataSync()
  const y = b.dataSync()
  if (x.length !== y.length) return { ok: false, worst: Number.POSITIVE_INFINITY }
  let worst = 0
  let ok = true
  for (let i = 0; i < x.length; i++) {
    const diff = Math.abs((x[i] as number) - (y[i] as number))
    if (!(diff <= tol.atol + tol.rtol * Math.abs(y[i] as number))) ok = false
    if (!(diff <= worst)) worst = diff
  }
  return { ok, worst }
}

function allFinite(tensors: readonly tf.Tensor[]): boolean {
  return tensors.every((t) => (t.dataSync() as Float32Array).every(Number.isFinite))
}

function compare(
  name: InvariantName,
  a: tf.Tensor[],
  b: tf.Tensor[],
  tol: { atol: number; rtol: number },
): CheckResult {
  let worst = 0
  let ok = a.length === b.length
  for (let i = 0; i < a.length && ok; i++) {
    const r = worstExcess(a[i] as tf.Tensor, b[i] as tf.Tensor, tol)
    ok = ok && r.ok
    worst = Math.max(worst, r.worst)
  }
  return { name, ok, detail: `max |diff| ${worst.toExponential(2)} (atol ${tol.atol}, rtol ${tol.rtol})` }
}

/** Gradients of a fixed scalar loss w.r.t. every parameter, in name order. */
function gradients(model: ComposedAttention, x: tf.Tensor, call: ComposedCall): tf.Tensor[] {
  const named = [...model.namedParameters()]
  const { grads, value } = tf.variableGrads(
    () => tf.sum(tf.square(model.forward(x, call))) as tf.Scalar,
    named.map(([, v]) => v),
  )
  value.dispose()
  return named.map(([, v]) => grads[v.name] as tf.Tensor)
}

/**
 * The MHA twin of a GQA/MQA model: KV projection rows and memory slots duplicated so that query
 * head i's KV head is the GQA model's KV head `i % kvHeads` (x-transformers' mapping).
 */
function mhaTwin(model: ComposedAttention, options: ComposedAttentionOptions): ComposedAttention {
  const { kvHeads, heads, dimHead, valueDimHead } = model.layout
  const twin = new ComposedAttention({ ...options, kvHeads: heads })
  const source = model.stateDict()
  const state = new Map<string, tf.Tensor>()
  const headIndex = tf.tensor1d(
    Array.from({ length: heads }, (_, i) => i % kvHeads),
    'int32',
  )
  const duplicateRows = (w: tf.Tensor, width: number) =>
    tf.tidy(() => {
      const inDim = w.shape[1] as number
      const perHead = tf.reshape(w, [kvHeads, width, inDim])
      return tf.reshape(tf.gather(perHead, headIndex), [heads * width, inDim])
    })
  for (const [name, tensor] of source) {
    if (name === 'to_k.weight') state.set(name, duplicateRows(tensor, dimHead))
    else if (name === 'to_v.weight') state.set(name, duplicateRows(tensor, valueDimHead))
    else if (name === 'memory.mem_k' || name === 'memory.mem_v') state.set(name, tf.gather(tensor, headIndex))
    else state.set(name, tensor.clone())
  }
  twin.loadStateDict(state)
  tf.dispose([...state.values(), headIndex])
  return twin
}

/**
 * Builds the combination's model and checks its invariants. Every tensor it creates is disposed
 * before it returns; the leak check compares the tensor count around the whole run.
 */
export async function runCombination(c: Combination): Promise<CombinationResult> {
  await useBackend(c.backend)
  const tensorsBefore = tf.memory().numTensors
  const options = modelOptions(c)
  let model: ComposedAttention
  try {
    model = new ComposedAttention(options)
  } catch (error) {
    if ((error as Error).name === 'ConfigError') {
      return { combination: c, status: 'rejected', rejection: (error as Error).message, checks: [] }
    }
    throw error
  }
  const checks: CheckResult[] = []
  const disposables: tf.Tensor[] = []
  const models: ComposedAttention[] = [model]
  try {
    const cross = c.crossAttention === 'on'
    const x = seededNormal([B, N, DIM], 1)
    const context = cross ? seededNormal([B, CONTEXT_LEN, DIM_CONTEXT], 2) : null
    const keyMask = keyMaskOf(c.keyMask, cross ? CONTEXT_LEN : N)
    disposables.push(x, ...(context === null ? [] : [context]), ...(keyMask === null ? [] : [keyMask]))
    const dropout = c.dropout === 'on'
    // The equivalence invariants run in eval mode (implementations draw different, each
    // reproducible, dropout masks); dropout=on adds the train-mode checks below.
    const call: ComposedCall = {
      context,
      keyMask,
      causal: c.causal === 'on',
      alibiSlopes: c.positions === 'alibi' ? SLOPES : null,
    }
    model.eval()

    const out = model.forward(x, call)
    disposables.push(out)
    checks.push({ name: 'finite forward', ok: allFinite([out]), detail: `shape [${out.shape.join(',')}]` })
    const grads = gradients(model, x, call)
    disposables.push(...grads)
    checks.push({ name: 'finite gradients', ok: allFinite(grads), detail: `${grads.length} parameters` })

    if (dropout) {
      const trainCall: ComposedCall = { ...call, dropout: DROPOUT, seed: 5 }
      model.train(true)
      const first = model.forward(x, trainCall)
      const again = model.forward(x, trainCall)
      const trainGrads = gradients(model, x, trainCall)
      model.eval()
      disposables.push(first, again, ...trainGrads)
      const same = worstExcess(again, first, { atol: 0, rtol: 0 })
      const differs = !worstExcess(first, out, TOL.same).ok
      const finite = allFinite([first, ...trainGrads])
      checks.push({
        name: 'dropout reproducible from its seed',
        ok: same.ok && differs && finite,
        detail: `same seed max |diff| ${same.worst}; differs from eval: ${differs}; finite output and gradients: ${finite}`,
      })
    }

    if (c.attention !== 'reference') {
      // Same seed → same weights: the twin differs only in the implementation.
      const twin = new ComposedAttention({ ...options, attention: 'reference' })
      models.push(twin)
      const refOut = twin.forward(x, call)
      const refGrads = gradients(twin, x, call)
      disposables.push(refOut, ...refGrads)
      const forward = compare('flash ≡ reference', [out], [refOut], TOL.flashOut)
      const backward = compare('flash ≡ reference', grads, refGrads, TOL.flashGrad)
      checks.push({
        name: 'flash ≡ reference',
        ok: forward.ok && backward.ok,
        detail: `outputs ${forward.detail}; gradients ${backward.detail}`,
      })
    }

    if (c.kvCache === 'on') {
      const decoded = model.decode(x, call)
      const expected = tf.tidy(() => {
        const rows: tf.Tensor[] = []
        for (let t = 0; t < N; t++) {
          const prefix = tf.slice(x, [0, 0, 0], [B, t + 1, DIM])
          const prefixMask = keyMask !== null && !cross ? tf.slice(keyMask, [0, 0], [B, t + 1]) : keyMask
          const full = model.forward(prefix, { ...call, keyMask: prefixMask })
          rows.push(tf.slice(full, [0, t, 0], [B, 1, DIM]))
        }
        return tf.concat(rows, 1)
      })
      disposables.push(decoded, expected)
      checks.push(compare('cached decoding ≡ full forward', [decoded], [expected], TOL.same))
    }

    if (c.heads !== 'MHA') {
      const twin = mhaTwin(model, options)
      models.push(twin)
      const mhaOut = twin.forward(x, call)
      disposables.push(mhaOut)
      checks.push(compare('GQA with duplicated weights ≡ MHA', [out], [mhaOut], TOL.same))
    }
  } finally {
    tf.dispose(disposables)
    for (const m of models) m.dispose()
  }
  const leaked = tf.memory().numTensors - tensorsBefore
  checks.push({ name: 'no tensor leaks', ok: leaked === 0, detail: `${leaked} tensors left` })
  return { combination: c, status: 'ok', checks }
}
