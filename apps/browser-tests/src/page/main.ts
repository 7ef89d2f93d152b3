// The test page: loads tfjs with the browser backends and exposes `window.xattnHarness`, which the
// Node side drives through Playwright (`page.evaluate`).
import '@tensorflow/tfjs-backend-cpu'
import '@tensorflow/tfjs-backend-webgl'
import '@tensorflow/tfjs-backend-webgpu'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
import * as tf from '@tensorflow/tfjs-core'
import { attendReference, decodeSafetensors, getAttention } from '@xattn/core'
import '@xattn/flash'
import '@xattn/flash/webgpu'
import '@xattn/flash/webgl'
import { fromXTransformers } from '@xattn/transformer'
import { type AttendCase, type AttendFn, type AttendResult, runAttendCase } from '../attendCase.js'

setWasmPaths('/tfjs-wasm/')

const impls: Record<string, AttendFn> = {
  reference: attendReference,
  flash: (inputs, options) => getAttention('flash')(inputs, options),
}

export interface XattnHarness {
  /** Activates a backend; resolves to its name, or throws when it cannot start. */
  use(backend: string): Promise<string>
  run(impl: string, spec: AttendCase): Promise<AttendResult>
  /**
   * x-transformers fixture parity on the active backend: loads `fixtures/<name>` (served at
   * `/fixtures/`), runs the forward pass and returns the largest |logit − PyTorch's logit|.
   */
  parity(name: string, attention: string): Promise<{ maxAbsErr: number; leaked: number }>
  /** Milliseconds per call (median of `reps`), after a warm-up call. */
  time(impl: string, spec: AttendCase, reps: number): Promise<number>
  adapterInfo(): Promise<string | null>
}

async function use(backend: string): Promise<string> {
  const ok = await tf.setBackend(backend)
  if (!ok) throw new Error(`backend ${backend} failed to initialise`)
  await tf.ready()
  return tf.getBackend()
}

function implOf(name: string): AttendFn {
  const impl = impls[name]
  if (impl === undefined) throw new Error(`unknown attention implementation ${name}`)
  return impl
}

async function time(name: string, spec: AttendCase, reps: number): Promise<number> {
  // Forward only unless the case carries dOut (then forward + backward); includes the download
  // of the results, which waits for the GPU to finish.
  await runAttendCase(implOf(name), spec)
  const times: number[] = []
  for (let i = 0; i < reps; i++) {
    const start = performance.now()
    await runAttendCase(implOf(name), spec)
    times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)] ?? Number.NaN
}

/** What the browser reports about its WebGPU adapter (SwiftShader here), or null. */
async function adapterInfo(): Promise<string | null> {
  const gpu = (
    navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string> } | null> } }
  ).gpu
  const adapter = await gpu?.requestAdapter()
  if (adapter == null) return null
  const info = adapter.info ?? {}
  return (
    [info.vendor, info.architecture, info.device, info.description].filter((x) => x).join(' ') || 'unknown'
  )
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url)
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`)
  return new Uint8Array(await response.arrayBuffer())
}

async function parity(name: string, attention: string): Promise<{ maxAbsErr: number; leaked: number }> {
  const before = tf.memory().numTensors
  const base = `/fixtures/${name}/`
  const caseJson = JSON.parse(new TextDecoder().decode(await fetchBytes(`${base}case.json`))) as {
    config: Parameters<typeof fromXTransformers>[0]['config']
  }
  const model = await fromXTransformers({
    config: caseJson.config,
    weights: await fetchBytes(`${base}model.safetensors`),
    attention,
  })
  const inputs = decodeSafetensors(await fetchBytes(`${base}inputs.safetensors`))
  const expected = decodeSafetensors(await fetchBytes(`${base}logits.safetensors`))
  try {
    const rawMask = inputs.get('mask')
    const mask = rawMask === undefined ? null : tf.cast(rawMask, 'bool')
    const logits = model.forward(inputs.get('tokens') as tf.Tensor, { mask })
    const got = await logits.data()
    const want = await (expected.get('logits') as tf.Tensor).data()
    tf.dispose([logits, ...(mask === null ? [] : [mask])])
    let maxAbsErr = got.length === want.length ? 0 : Number.POSITIVE_INFINITY
    for (let i = 0; i < want.length; i++) {
      const diff = Math.abs((got[i] as number) - (want[i] as number))
      maxAbsErr = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : Math.max(maxAbsErr, diff)
    }
    tf.dispose([...inputs.values(), ...expected.values()])
    model.dispose()
    return { maxAbsErr, leaked: tf.memory().numTensors - before }
  } catch (error) {
    model.dispose()
    throw error
  }
}

const harness: XattnHarness = {
  use,
  parity,
  run: (name, spec) => runAttendCase(implOf(name), spec),
  time,
  adapterInfo,
}
;(window as unknown as { xattnHarness: XattnHarness }).xattnHarness = harness
const status = document.getElementById('status')
if (status !== null) status.textContent = 'ready'
