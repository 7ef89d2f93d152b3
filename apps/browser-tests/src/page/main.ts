// The test page: loads tfjs with the browser backends and exposes `window.xattnHarness`, which the
// Node side drives through Playwright (`page.evaluate`).
import '@tensorflow/tfjs-backend-cpu'
import '@tensorflow/tfjs-backend-webgl'
import '@tensorflow/tfjs-backend-webgpu'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
import * as tf from '@tensorflow/tfjs-core'
import { attendReference, getAttention } from '@xattn/core'
import '@xattn/flash'
import '@xattn/flash/webgpu'
import '@xattn/flash/webgl'
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
  /** Milliseconds per call (median of `reps`), after a warm-up call. */
  time(impl: string, spec: AttendCase, reps: number): Promise<number>
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
  const { dOut: _unused, ...noGrad } = spec
  await runAttendCase(implOf(name), noGrad)
  const times: number[] = []
  for (let i = 0; i < reps; i++) {
    const start = performance.now()
    await runAttendCase(implOf(name), noGrad)
    times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)] ?? Number.NaN
}

const harness: XattnHarness = {
  use,
  run: (name, spec) => runAttendCase(implOf(name), spec),
  time,
}
;(window as unknown as { xattnHarness: XattnHarness }).xattnHarness = harness
const status = document.getElementById('status')
if (status !== null) status.textContent = 'ready'
