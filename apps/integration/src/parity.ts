import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, decodeSafetensors, listAttention, useBackend } from '@xattn/core'
import {
  AutoregressiveWrapper,
  fromXTransformers,
  type TransformerWrapper,
  type XTransformersConfig,
} from '@xattn/transformer'

/** Logits tolerance of the acceptance test (float32 over a 2-layer model: observed errors are ~1e-6). */
export const LOGITS_ATOL = 1e-4
/** Relative tolerance of the training loss. */
export const LOSS_RTOL = 1e-5
/** Absolute tolerance of every parameter gradient. */
export const GRAD_ATOL = 1e-4

export interface ParityCase {
  readonly name: string
  readonly dir: string
  readonly config: XTransformersConfig
}

export type VariantStatus = 'ok' | 'FAIL' | 'rejected' | 'skipped'

export interface VariantResult {
  readonly caseName: string
  readonly backend: string
  readonly attention: string
  readonly maxAbsErr: number | null
  readonly status: VariantStatus
  /** Why a variant failed or was rejected/skipped; the first diverging layer for failures. */
  readonly detail: string
  /** The kwarg a ConfigError named, for rejected cases. */
  readonly rejectedOption?: string
  /** Training check (loss, gradients), when run. */
  readonly train?: { readonly lossRelErr: number; readonly maxGradErr: number; readonly ok: boolean }
}

/** Cases under each directory: a directory holding `case.json`, or its subdirectories that do. */
export function findCases(dirs: readonly string[]): ParityCase[] {
  const cases: ParityCase[] = []
  for (const raw of dirs) {
    const dir = resolve(raw)
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new Error(`parity: ${dir} is not a directory (expected a fixture case or a folder of cases)`)
    }
    const candidates = existsSync(join(dir, 'case.json'))
      ? [dir]
      : readdirSync(dir)
          .sort()
          .map((name) => join(dir, name))
          .filter((path) => statSync(path).isDirectory() && existsSync(join(path, 'case.json')))
    for (const caseDir of candidates) {
      const json = JSON.parse(readFileSync(join(caseDir, 'case.json'), 'utf8')) as {
        name?: string
        config: XTransformersConfig
      }
      cases.push({
        name: json.name ?? caseDir.split('/').pop() ?? caseDir,
        dir: caseDir,
        config: json.config,
      })
    }
  }
  return cases
}

/** Activates a backend (cpu, wasm). */
export async function setBackend(backend: string): Promise<void> {
  await useBackend(backend)
}

/** Whether the 'flash' attention implementation is registered (after trying to import @xattn/flash). */
export async function flashAvailable(): Promise<boolean> {
  if (listAttention().includes('flash')) return true
  try {
    await import('@xattn/flash')
  } catch {
    return false
  }
  return listAttention().includes('flash')
}

function read(dir: string, file: string): Map<string, tf.Tensor> {
  return decodeSafetensors(readFileSync(join(dir, file)))
}

function maxAbs(a: tf.Tensor, b: tf.Tensor): number {
  if (a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i]))
    return Number.POSITIVE_INFINITY
  const x = a.dataSync()
  const y = b.dataSync()
  let worst = 0
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs((x[i] as number) - (y[i] as number))
    if (!(d <= worst)) worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d
  }
  return worst
}

interface CaseInputs {
  tokens: tf.Tensor
  mask: tf.Tensor | null
  context: tf.Tensor | null
  contextMask: tf.Tensor | null
  dispose(): void
}

function loadInputs(dir: string): CaseInputs {
  const raw = read(dir, 'inputs.safetensors')
  const asBool = (t: tf.Tensor | undefined) => (t === undefined ? null : tf.cast(t, 'bool'))
  const tokens = raw.get('tokens') as tf.Tensor
  const mask = asBool(raw.get('mask'))
  const context = raw.get('context') ?? null
  const contextMask = asBool(raw.get('context_mask'))
  return {
    tokens,
    mask,
    context,
    contextMask,
    dispose() {
      for (const t of raw.values()) t.dispose()
      mask?.dispose()
      contextMask?.dispose()
    },
  }
}

/** The first layer whose input (x-transformers' `layer_hiddens.i`) differs by more than `atol`. */
function firstDivergingLayer(
  model: TransformerWrapper,
  dir: string,
  inputs: CaseInputs,
  atol: number,
): string {
  const expected = read(dir, 'intermediates.safetensors')
  const result = model.forwardWithIntermediates(inputs.tokens, {
    mask: inputs.mask,
    context: inputs.context,
    contextMask: inputs.contextMask,
  })
  try {
    for (let i = 0; i < result.hiddens.length; i++) {
      const want = expected.get(`layer_hiddens.${i}`)
      const got = result.hiddens[i]
      if (want === undefined || got === undefined) return `layer_hiddens.${i} missing`
      const err = maxAbs(got, want)
      if (err > atol)
        return `first diverging: layer_hiddens.${i} (input of layer ${i}) max_abs_err=${err.toExponential(2)}`
    }
    const last = expected.get('last_hidden')
    if (last !== undefined) {
      const err = maxAbs(
        result.embeddings,
        tf.slice(
          last,
          [0, (last.shape[1] as number) - result.embeddings.shape[1], 0],
          result.embeddings.shape,
        ),
      )
      if (err > atol) return `first diverging: last_hidden (final norm) max_abs_err=${err.toExponential(2)}`
    }
    return 'hiddens agree; the output head differs'
  } finally {
    for (const t of expected.values()) t.dispose()
    result.logits?.dispose()
    result.embeddings.dispose()
    for (const t of [...result.hiddens, ...result.attention]) t.dispose()
    for (const { k, v, tokenShift } of result.cache) tf.dispose([k, v, ...(tokenShift ?? [])])
  }
}

/**
 * The training loss through @xattn/transformer's AutoregressiveWrapper (x-transformers' loss: mean
 * next-token cross-entropy over all b·(n-1) targets; the net sees `tokens[:, :-1]` and
 * `mask[:, :-1]`) and its gradient for every parameter.
 */
function checkTraining(model: TransformerWrapper, dir: string, inputs: CaseInputs) {
  const expected = read(dir, 'train.safetensors')
  try {
    // x-transformers' AutoregressiveWrapper(model, ignore_index=-100, pad_value=0): inputs
    // tokens[:, :-1] with mask[:, :-1], targets tokens[:, 1:], mean cross-entropy.
    const wrapper = new AutoregressiveWrapper(model)
    const named = [...model.namedParameters()]
    const { value, grads } = tf.variableGrads(
      () =>
        wrapper.loss(
          inputs.tokens as tf.Tensor2D,
          inputs.mask === null ? {} : { mask: inputs.mask as tf.Tensor2D },
        ),
      named.map(([, v]) => v),
    )
    const wantLoss = (expected.get('loss') as tf.Tensor).dataSync()[0] as number
    const gotLoss = value.dataSync()[0] as number
    const lossRelErr = Math.abs(gotLoss - wantLoss) / Math.abs(wantLoss)
    let maxGradErr = 0
    let worst = ''
    for (const [name, variable] of named) {
      const want = expected.get(`grad.${name}`)
      const got = grads[variable.name]
      const err = want === undefined || got === undefined ? Number.POSITIVE_INFINITY : maxAbs(got, want)
      if (err > maxGradErr) {
        maxGradErr = err
        worst = name
      }
    }
    value.dispose()
    for (const g of Object.values(grads)) g.dispose()
    return { lossRelErr, maxGradErr, worst, ok: lossRelErr <= LOSS_RTOL && maxGradErr <= GRAD_ATOL }
  } finally {
    for (const t of expected.values()) t.dispose()
  }
}

/**
 * Runs one case on the active backend with one attention implementation; `train` also checks
 * the loss and gradients when the case has `train.safetensors`.
 */
export async function runVariant(
  c: ParityCase,
  backend: string,
  attention: string,
  { train = false }: { train?: boolean } = {},
): Promise<VariantResult> {
  const base = { caseName: c.name, backend, attention }
  let model: TransformerWrapper
  try {
    model = await fromXTransformers({
      config: c.config,
      weights: readFileSync(join(c.dir, 'model.safetensors')),
      ...(existsSync(join(c.dir, 'buffers.safetensors'))
        ? { buffers: readFileSync(join(c.dir, 'buffers.safetensors')) }
        : {}),
      attention,
    })
  } catch (error) {
    if (error instanceof ConfigError) {
      return {
        ...base,
        maxAbsErr: null,
        status: 'rejected',
        detail: error.message,
        rejectedOption: error.option,
      }
    }
    return { ...base, maxAbsErr: null, status: 'FAIL', detail: `load failed: ${(error as Error).message}` }
  }
  const inputs = loadInputs(c.dir)
  const expected = read(c.dir, 'logits.safetensors')
  try {
    const logits = model.forward(inputs.tokens, {
      mask: inputs.mask,
      context: inputs.context,
      contextMask: inputs.contextMask,
    })
    const err = maxAbs(logits, expected.get('logits') as tf.Tensor)
    logits.dispose()
    let status: VariantStatus = err <= LOGITS_ATOL ? 'ok' : 'FAIL'
    let detail = status === 'ok' ? '' : firstDivergingLayer(model, c.dir, inputs, LOGITS_ATOL)
    let trainResult: VariantResult['train']
    if (train && existsSync(join(c.dir, 'train.safetensors'))) {
      model.train()
      const t = checkTraining(model, c.dir, inputs)
      model.eval()
      trainResult = { lossRelErr: t.lossRelErr, maxGradErr: t.maxGradErr, ok: t.ok }
      const note = `train loss_rel_err=${t.lossRelErr.toExponential(2)} max_grad_err=${t.maxGradErr.toExponential(2)}${t.ok ? '' : ` (worst ${t.worst})`}`
      detail = detail === '' ? note : `${detail}; ${note}`
      if (!t.ok) status = 'FAIL'
    }
    return {
      ...base,
      maxAbsErr: err,
      status,
      detail,
      ...(trainResult === undefined ? {} : { train: trainResult }),
    }
  } catch (error) {
    return {
      ...base,
      maxAbsErr: null,
      status: 'FAIL',
      detail: `forward failed: ${(error as Error).stack ?? String(error)}`,
    }
  } finally {
    inputs.dispose()
    for (const t of expected.values()) t.dispose()
    model.dispose()
  }
}

/** One output line: `case backend attention max_abs_err status [detail]`. */
export function formatResult(r: VariantResult): string {
  const err = r.maxAbsErr === null ? '-' : r.maxAbsErr.toExponential(2)
  const status = r.status === 'rejected' ? `rejected (${r.rejectedOption ?? '?'})` : r.status
  const detail = r.detail === '' ? '' : `  ${r.detail}`
  return `${r.caseName} ${r.backend} ${r.attention} ${err} ${status}${r.status === 'rejected' ? '' : detail}`
}
