#!/usr/bin/env node
// `pnpm bench`: flash vs @xattn/core's attendReference on the same tfjs backend (cpu, wasm), forward
// and forward+backward, h=8, d=64, MHA / GQA / MQA / causal. Runs against the built dist.
//   --quick        N=256 only (smoke run)
//   --write        replace the flash section of docs/benchmarks.md with the results
//   --onnx         only the ONNX Runtime comparison (bench/onnxBench.mjs; with --write, its docs block)
//   --memory-child internal: one N=16384 causal row in a fresh process, for its peak RSS
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import '@tensorflow/tfjs-backend-cpu'
import '@tensorflow/tfjs-backend-wasm'
import * as tf from '@tensorflow/tfjs-core'
import { attendReference } from '@xattn/core'
import { flashAttention, flashHeapBytes } from '@xattn/flash'

const HEADS = 8
const DIM = 64
const MB = 1024 * 1024
const here = dirname(fileURLToPath(import.meta.url))
const docsPath = join(here, '..', '..', '..', 'docs', 'benchmarks.md')
const args = new Set(process.argv.slice(2))

const VARIANTS = [
  { name: 'MHA', kvHeads: 8, causal: false },
  { name: 'GQA kv2', kvHeads: 2, causal: false },
  { name: 'MQA kv1', kvHeads: 1, causal: false },
  { name: 'causal', kvHeads: 8, causal: true },
]

// attendReference materialises [b, h, n, m] several times over and is slow: it runs where it
// finishes in reasonable time (the issue measured 90 s for one cpu forward at N=4096; on cpu a
// forward+backward at N=2048 takes minutes, on wasm seconds).
function referenceAllowed(backend, n, variant) {
  if (n <= 1024) return true
  if (n === 2048) return backend === 'wasm' || variant.name === 'MHA'
  return false
}

const gc = globalThis.gc ?? (() => {})

function inputs(n, kvHeads) {
  const rand = (shape) => tf.randomUniform(shape, -1, 1, 'float32', 1)
  return {
    q: rand([1, HEADS, n, DIM]),
    k: rand([1, kvHeads, n, DIM]),
    v: rand([1, kvHeads, n, DIM]),
    dOut: rand([1, HEADS, n, DIM]),
  }
}

function forward(impl, t, causal) {
  // Block form: returning the typed array from tidy would make tfjs walk its millions of entries.
  tf.tidy(() => {
    impl({ q: t.q, k: t.k, v: t.v }, { causal }).dataSync()
  })
}

function forwardBackward(impl, t, causal) {
  tf.tidy(() => {
    // An explicit output gradient: a scalar loss (tf.sum) would add the cpu backend's slow
    // broadcasting multiply to both sides and blur the comparison.
    const grads = tf.grads((q, k, v) => impl({ q, k, v }, { causal }))([t.q, t.k, t.v], t.dOut)
    for (const g of grads) g.dataSync()
  })
}

// Best wall time of up to `reps` runs (fewer when one run already takes seconds: the minimum is the
// least disturbed by other processes on a shared machine), plus the
// peak bytes of live tfjs tensors during a profiled run and the growth of flash's own heap.
async function measure(body, reps) {
  gc()
  const heapBefore = flashHeapBytes()
  const start = performance.now()
  const info = await tf.profile(body)
  const first = performance.now() - start
  const times = [first]
  const more = first > 2000 ? 0 : reps - 1
  for (let i = 0; i < more; i++) {
    const t0 = performance.now()
    body()
    times.push(performance.now() - t0)
  }
  return {
    ms: Math.min(...times),
    peakMB: info.peakBytes / MB,
    heapMB: (flashHeapBytes() - heapBefore) / MB,
  }
}

function flops(n, causal, pass) {
  const fwd = 4 * HEADS * n * n * DIM * (causal ? 0.5 : 1)
  // FlashAttention accounting: backward = 2.5 forward (five n·m·d matmuls against two).
  return pass === 'fwd' ? fwd : 3.5 * fwd
}

function fmt(x, digits = 1) {
  return x === null ? '—' : x.toFixed(digits)
}

async function runBackend(backend, sizes, rows) {
  await tf.setBackend(backend)
  await tf.ready()
  for (const n of sizes) {
    for (const variant of VARIANTS) {
      const t = inputs(n, variant.kvHeads)
      for (const pass of ['fwd', 'fwd+bwd']) {
        const run = pass === 'fwd' ? forward : forwardBackward
        forward(flashAttention, t, variant.causal) // warm: compile the module, grow its heap once
        const flash = await measure(() => run(flashAttention, t, variant.causal), 3)
        const ref = referenceAllowed(backend, n, variant)
          ? await measure(() => run(attendReference, t, variant.causal), 1)
          : null
        const row = {
          backend,
          n,
          variant: variant.name,
          pass,
          flashMs: flash.ms,
          refMs: ref?.ms ?? null,
          ratio: ref === null ? null : ref.ms / flash.ms,
          flashMB: flash.peakMB + flash.heapMB,
          refMB: ref?.peakMB ?? null,
          gflops: flops(n, variant.causal, pass) / (flash.ms * 1e6),
        }
        rows.push(row)
        console.log(
          `${backend.padEnd(4)} N=${String(n).padEnd(5)} ${variant.name.padEnd(8)} ${pass.padEnd(7)} flash ${fmt(row.flashMs)} ms` +
            ` (${fmt(row.gflops)} GFLOP/s, ${fmt(row.flashMB)} MB)  ref ${fmt(row.refMs)} ms (${fmt(row.refMB)} MB)  x${fmt(row.ratio)}`,
        )
      }
      tf.dispose([t.q, t.k, t.v, t.dOut])
    }
  }
}

// One N=16384 causal row in this (fresh) process: peak RSS above the state with inputs allocated.
async function memoryChild() {
  await tf.setBackend('cpu')
  await tf.ready()
  const n = 16384
  const t = inputs(n, HEADS)
  gc()
  const rssBefore = process.resourceUsage().maxRSS * 1024
  let t0 = performance.now()
  forward(flashAttention, t, true)
  const fwdMs = performance.now() - t0
  t0 = performance.now()
  forwardBackward(flashAttention, t, true)
  const fwdBwdMs = performance.now() - t0
  const peakAbove = process.resourceUsage().maxRSS * 1024 - rssBefore
  // Outputs of forward+backward: dq, dk, dv (out is freed before the gradients exist, but count it).
  const outputBytes = 4 * HEADS * n * DIM * 4
  process.stdout.write(
    JSON.stringify({
      fwdMs,
      fwdBwdMs,
      peakAboveMB: peakAbove / MB,
      outputsMB: outputBytes / MB,
      heapMB: flashHeapBytes() / MB,
    }),
  )
}

function markdown(rows, big, command, seconds) {
  const lines = []
  lines.push('<!-- flash:begin -->')
  lines.push('## @xattn/flash')
  lines.push('')
  lines.push(
    `Command: \`${command}\` (in \`packages/flash\`; \`pnpm bench\` at the root runs every package's bench).`,
  )
  lines.push(
    `Machine: ${process.platform} ${process.arch}, Node ${process.version}, tfjs 4.22, one thread; full run took ${Math.round(seconds)} s.`,
  )
  lines.push('')
  lines.push(
    'q = [1, 8, N, 64], k, v = [1, kvHeads, N, 64]; best wall time of up to 3 runs (one when a run takes over 2 s).',
  )
  lines.push(
    'Ratio = attendReference time / flash time on the same backend, same process. MB: peak live tfjs tensor bytes',
  )
  lines.push(
    "during the call (tf.profile), plus for flash the growth of its own WebAssembly heap. '—' = reference not run",
  )
  lines.push(
    '(see below). GFLOP/s counts 4·h·N²·d for a forward (half when causal) and 3.5× that for forward+backward.',
  )
  lines.push('')
  lines.push(
    '| backend | N | variant | pass | flash ms | GFLOP/s | flash MB | reference ms | reference MB | ratio |',
  )
  lines.push('|---|---|---|---|---|---|---|---|---|---|')
  for (const r of rows) {
    lines.push(
      `| ${r.backend} | ${r.n} | ${r.variant} | ${r.pass} | ${fmt(r.flashMs)} | ${fmt(r.gflops)} | ${fmt(r.flashMB)} | ${fmt(r.refMs)} | ${fmt(r.refMB)} | ${r.ratio === null ? '—' : `${fmt(r.ratio)}×`} |`,
    )
  }
  if (big !== null) {
    lines.push('')
    lines.push(
      `N=16384, h=8, d=64, causal, cpu backend, fresh process: forward ${fmt(big.fwdMs / 1000, 2)} s, forward+backward ` +
        `${fmt(big.fwdBwdMs / 1000, 2)} s; peak RSS above the inputs ${fmt(big.peakAboveMB)} MB, of which ${fmt(big.outputsMB)} MB ` +
        `are the outputs (out, dq, dk, dv), so ${fmt(big.peakAboveMB - big.outputsMB)} MB beyond inputs and outputs ` +
        `(flash's WebAssembly heap: ${fmt(big.heapMB)} MB). The wasm backend runs the same kernel module.`,
    )
  }
  lines.push('')
  lines.push('<!-- flash:notes -->')
  lines.push('<!-- flash:end -->')
  return lines.join('\n')
}

function writeDocs(section) {
  let text = ''
  try {
    text = readFileSync(docsPath, 'utf8')
  } catch {
    text = '# Benchmarks\n\n'
  }
  const begin = text.indexOf('<!-- flash:begin -->')
  const end = text.indexOf('<!-- flash:end -->')
  // Hand-written analysis between the notes marker and the end marker survives regeneration.
  let notes = '\n'
  if (begin >= 0 && end > begin) {
    const old = text.slice(begin, end)
    const at = old.indexOf('<!-- flash:notes -->')
    if (at >= 0) notes = old.slice(at + '<!-- flash:notes -->'.length)
  }
  const filled = section.replace('<!-- flash:notes -->\n', `<!-- flash:notes -->${notes}`)
  const next =
    begin >= 0 && end > begin
      ? text.slice(0, begin) + filled + text.slice(end + '<!-- flash:end -->'.length)
      : `${text.trimEnd()}\n\n${filled}\n`
  writeFileSync(docsPath, next)
  console.log(`wrote ${docsPath}`)
}

if (args.has('--onnx')) {
  const { runOnnxComparison } = await import('./onnxBench.mjs')
  await runOnnxComparison({ write: args.has('--write'), docsPath, command: 'pnpm bench -- --onnx' })
} else if (args.has('--memory-child')) {
  await memoryChild()
} else {
  const started = performance.now()
  const quick = args.has('--quick')
  const sizes = quick ? [256] : [256, 1024, 2048, 4096]
  const rows = []
  await runBackend('cpu', sizes, rows)
  await runBackend('wasm', sizes, rows)
  let big = null
  if (!quick) {
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', fileURLToPath(import.meta.url), '--memory-child'],
      {
        encoding: 'utf8',
      },
    )
    if (child.status !== 0) throw new Error(`N=16384 child failed: ${child.stderr}`)
    big = JSON.parse(child.stdout)
    console.log(`N=16384 causal cpu: ${JSON.stringify(big)}`)
  }
  const command = `pnpm bench${quick ? ' -- --quick' : ''}`
  if (args.has('--write')) writeDocs(markdown(rows, big, command, (performance.now() - started) / 1000))
}
