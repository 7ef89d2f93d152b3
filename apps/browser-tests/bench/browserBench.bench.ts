import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { expect, inject, it } from 'vitest'
import { makeCase } from '../src/cases.js'
import { CHROMIUM_PATH, launchChromium } from '../src/chromium.js'
import type { XattnHarness } from '../src/page/main.js'

const DOCS = join(import.meta.dirname, '..', '..', '..', 'docs', 'benchmarks.md')
const BEGIN = '<!-- browser:begin -->'
const END = '<!-- browser:end -->'
const BACKENDS = ['webgpu', 'webgl', 'wasm'] as const
const SIZES = [128, 256]
const H = 4
const KVH = 2
const D = 32

interface Row {
  backend: string
  n: number
  pass: string
  flash: number
  reference: number
}

function section(rows: Row[], adapter: string | null, chromium: string, seconds: number): string {
  const lines = [
    BEGIN,
    '## Browser (headless Chromium): flash vs reference per backend',
    '',
    "Command: `pnpm bench` (in `apps/browser-tests`; `pnpm bench` at the root runs every package's bench).",
    `Chromium: ${chromium}; WebGPU adapter: ${adapter ?? 'none'}; WebGL2 through ANGLE on SwiftShader; wasm`,
    'backend with SIMD, one thread. SwiftShader runs the GPU backends on the CPU, so their absolute times say',
    'nothing about a real GPU; the ratios compare the two attention paths on the same backend.',
    `Full run took ${seconds.toFixed(0)} s, on a shared 2-core VM with other jobs running (load average ${loadavg()[0]?.toFixed(1)}),`,
    'so single numbers are noisy; compare ratios.',
    '',
    `q = [1, ${H}, N, ${D}], k, v = [1, ${KVH}, N, ${D}] (GQA), causal. Median wall time of 5 calls after a warm-up,`,
    'including the download of the result (which waits for the GPU). fwd+bwd = `tf.grads` of `sum(out · dOut)`',
    'with respect to q, k and v. Ratio = reference ms / flash ms.',
    '',
    '| backend | N | pass | flash ms | reference ms | ratio |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${r.n} | ${r.pass} | ${r.flash.toFixed(1)} | ${r.reference.toFixed(1)} | ${(r.reference / r.flash).toFixed(2)}× |`,
    ),
    '',
    'webgpu: WGSL compute shaders, one thread per query row, K/V tiles in workgroup memory, online softmax.',
    'webgl: fragment shaders have no shared memory, so the kernel tiles keys on the host (blocks of 128: the',
    "block's logits `[b h n 128]` are written once and folded into running max/sum and accumulators); it runs",
    "at about the reference's speed while its memory stays O(n·128) instead of the reference's O(n·m).",
    END,
  ]
  return lines.join('\n')
}

function writeSection(text: string): void {
  const old = existsSync(DOCS) ? readFileSync(DOCS, 'utf8') : '# Benchmarks\n'
  const begin = old.indexOf(BEGIN)
  const end = old.indexOf(END)
  const next =
    begin >= 0 && end > begin
      ? old.slice(0, begin) + text + old.slice(end + END.length)
      : `${old.trimEnd()}\n\n${text}\n`
  writeFileSync(DOCS, next)
}

it('times flash against the reference in Chromium and writes docs/benchmarks.md', async () => {
  const started = performance.now()
  const browser = await launchChromium()
  try {
    const page = await browser.newPage()
    await page.goto(inject('pageUrl'))
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready')
    const rows: Row[] = []
    const adapter = await page.evaluate(() =>
      (window as unknown as { xattnHarness: XattnHarness }).xattnHarness.adapterInfo(),
    )
    for (const backend of BACKENDS) {
      for (const n of SIZES) {
        for (const grad of [false, true]) {
          const spec = makeCase(`bench ${n}`, [1, H, KVH, n, n, D, D], { causal: true, grad }, n)
          const [flash, reference] = await page.evaluate(
            async ([b, s]) => {
              const h = (window as unknown as { xattnHarness: XattnHarness }).xattnHarness
              await h.use(b)
              return [await h.time('flash', s, 5), await h.time('reference', s, 5)]
            },
            [backend, spec] as const,
          )
          rows.push({
            backend,
            n,
            pass: grad ? 'fwd+bwd' : 'fwd',
            flash: flash ?? Number.NaN,
            reference: reference ?? Number.NaN,
          })
          console.log(rows.at(-1))
        }
      }
    }
    const version = browser.version()
    writeSection(
      section(rows, adapter, `${version} (${CHROMIUM_PATH})`, (performance.now() - started) / 1000),
    )
    expect(rows.every((r) => r.flash > 0 && r.reference > 0)).toBe(true)
  } finally {
    await browser.close()
  }
})
