import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'
import { installedXattn, runScenario, type Scenario } from './support/scenario.js'

// Users install a subset of the packages. Each scenario packs the packages (as published), installs
// only the named ones with npm into a scratch project outside the workspace, and runs a short
// script there. Each test run installs into its own scratch folder (support/globalSetup.ts); a
// scenario used by several tests is installed once per run.

/** Shared prelude: tfjs on cpu, a tiny deterministic q/k/v, and a helper that captures errors. */
const PRELUDE = `
import * as tf from '@tensorflow/tfjs-core'
import { attendReference, getAttention, listAttention, useBackend } from '@xattn/core'
await useBackend('cpu')
const values = (n, seed) => Array.from({ length: n }, (_, i) => Math.sin(seed * 31 + i * 0.7))
const q = tf.tensor4d(values(1 * 4 * 3 * 8, 1), [1, 4, 3, 8])
const k = tf.tensor4d(values(1 * 2 * 5 * 8, 2), [1, 2, 5, 8])
const v = tf.tensor4d(values(1 * 2 * 5 * 8, 3), [1, 2, 5, 8])
const errorOf = (fn) => { try { fn(); return null } catch (e) { return { name: e.name, message: e.message } } }
const importError = async (name) => { try { await import(name); return null } catch (e) { return e.code ?? e.message } }
const maxDiff = (a, b) => { const x = a.dataSync(), y = b.dataSync(); let w = 0; for (let i = 0; i < x.length; i++) w = Math.max(w, Math.abs(x[i] - y[i])); return w }
`

const scenarios = {
  coreOnly: {
    name: 'core-only',
    packages: ['@xattn/core'],
    script: `${PRELUDE}
const out = attendReference({ q, k, v }, { causal: true })
const grad = tf.grad((x) => tf.sum(attendReference({ q: x, k, v })))(q)
console.log(JSON.stringify({
  shape: out.shape, gradShape: grad.shape, gradFinite: grad.dataSync().every(Number.isFinite),
  attention: listAttention(), flashError: errorOf(() => getAttention('flash')),
  flashImport: await importError('@xattn/flash'),
}))`,
  },
  coreKvHeads: {
    name: 'core-kv-heads',
    packages: ['@xattn/core', '@xattn/kv-heads'],
    script: `${PRELUDE}
const { headLayout } = await import('@xattn/core')
const { QKVProjection } = await import('@xattn/kv-heads')
const layout = headLayout({ heads: 4, oneKvHead: true, dimHead: 8 })
const projection = new QKVProjection({ layout, dim: 16, rng: 0 })
const projected = projection.forward(tf.ones([2, 3, 16]))
console.log(JSON.stringify({
  shapes: [projected.q.shape, projected.k.shape, projected.v.shape],
  parameters: [...projection.namedParameters()].map(([name]) => name),
  attention: listAttention(),
  transformerImport: await importError('@xattn/transformer'),
}))`,
  },
  coreMemoryFlash: {
    name: 'core-memory-kv-flash',
    packages: ['@xattn/core', '@xattn/memory-kv', '@xattn/flash'],
    script: `${PRELUDE}
const { headLayout } = await import('@xattn/core')
const { MemoryKV } = await import('@xattn/memory-kv')
await import('@xattn/flash')
const flash = getAttention('flash')
// GQA (4 query heads over 2 KV heads) with 3 memory slots, causal, ALiBi sparing the memory.
const memory = new MemoryKV({ layout: headLayout({ heads: 4, kvHeads: 2, dimHead: 8 }), numMemKv: 3, rng: 0 })
const withMemory = memory.prepend({ k, v })
const options = { causal: true, alibiSlopes: [0.5, 0.25, 0.125, 0.0625], alibiFreeKeys: 3 }
const kk = withMemory.k, vv = withMemory.v
const ref = attendReference({ q, k: kk, v: vv }, options)
const out = flash({ q, k: kk, v: vv }, options)
const gradOf = (attend) => tf.grad((x) => tf.sum(tf.square(attend({ q: x, k: kk, v: vv }, options))))(q)
console.log(JSON.stringify({
  memoryShape: kk.shape, attention: listAttention(),
  forwardDiff: maxDiff(out, ref), gradDiff: maxDiff(gradOf(flash), gradOf(attendReference)),
}))`,
  },
  transformerNoFlash: {
    name: 'transformer-no-flash',
    // kv-heads and memory-kv are regular dependencies of transformer: installed from their
    // tarballs here because they are not on the registry yet.
    packages: ['@xattn/core', '@xattn/kv-heads', '@xattn/memory-kv', '@xattn/transformer'],
    script: `${PRELUDE}
const transformer = await import('@xattn/transformer')
const { Decoder, TransformerWrapper } = transformer
const build = (attn) => new TransformerWrapper({
  numTokens: 20, maxSeqLen: 8,
  attnLayers: new Decoder({ dim: 16, depth: 1, heads: 4, attn: { dimHead: 8, kvHeads: 2, numMemKv: 2, ...attn } }),
})
const model = build({})
const logits = model.forward(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32'))
console.log(JSON.stringify({
  exports: Object.keys(transformer), attention: listAttention(),
  logitsShape: logits.shape, finite: logits.dataSync().every(Number.isFinite),
  flashModelError: errorOf(() => build({ flash: true })),
  flashError: errorOf(() => getAttention('flash')), flashImport: await importError('@xattn/flash'),
}))`,
  },
  transformerFlash: {
    name: 'transformer-flash',
    packages: ['@xattn/core', '@xattn/kv-heads', '@xattn/memory-kv', '@xattn/flash', '@xattn/transformer'],
    script: `${PRELUDE}
import '@xattn/flash'
const { Decoder, TransformerWrapper } = await import('@xattn/transformer')
const build = (flash) => new TransformerWrapper({
  numTokens: 20, maxSeqLen: 8, seed: 3,
  attnLayers: new Decoder({ dim: 16, depth: 1, heads: 4, alibiPosBias: true, attn: { dimHead: 8, kvHeads: 2, numMemKv: 2, flash } }),
})
const flashModel = build(true)
const refModel = build(false)
refModel.loadStateDict(flashModel.stateDict())
const tokens = tf.tensor2d([[1, 2, 3], [4, 5, 6]], [2, 3], 'int32')
const mask = tf.tensor2d([[true, true, true], [true, true, false]], [2, 3], 'bool')
const a = flashModel.forward(tokens, { mask })
const b = refModel.forward(tokens, { mask })
console.log(JSON.stringify({ attention: listAttention(), shape: a.shape, diff: maxDiff(a, b) }))`,
  },
} satisfies Record<string, Scenario>

const FLASH_HINT = "install @xattn/flash and import it once (import '@xattn/flash')"

describe('selective installs', () => {
  it('core alone: reference attention and its gradient work; flash is a clear error', () => {
    const { dir, output } = runScenario(scenarios.coreOnly)
    expect(installedXattn(dir)).toEqual(['@xattn/core'])
    expect(output).toMatchObject({
      shape: [1, 4, 3, 8],
      gradShape: [1, 4, 3, 8],
      gradFinite: true,
      attention: ['reference'],
      flashImport: 'ERR_MODULE_NOT_FOUND',
    })
    const { flashError } = output as { flashError: { name: string; message: string } }
    expect(flashError.name).toBe('ConfigError')
    expect(flashError.message).toContain(FLASH_HINT)
  })

  it('core + kv-heads: an MQA projection works without transformer', () => {
    const { dir, output } = runScenario(scenarios.coreKvHeads)
    expect(installedXattn(dir)).toEqual(['@xattn/core', '@xattn/kv-heads'])
    expect(output).toMatchObject({
      shapes: [
        [2, 4, 3, 8],
        [2, 1, 3, 8],
        [2, 1, 3, 8],
      ],
      parameters: ['to_q.weight', 'to_k.weight', 'to_v.weight'],
      attention: ['reference'],
      transformerImport: 'ERR_MODULE_NOT_FOUND',
    })
  })

  it('core + memory-kv + flash: GQA with memory KV on flash matches the reference (outputs and gradients)', () => {
    const { dir, output } = runScenario(scenarios.coreMemoryFlash)
    expect(installedXattn(dir)).toEqual(['@xattn/core', '@xattn/flash', '@xattn/memory-kv'])
    expect(output).toMatchObject({ memoryShape: [1, 2, 8, 8], attention: ['reference', 'flash'] })
    const { forwardDiff, gradDiff } = output as { forwardDiff: number; gradDiff: number }
    // float32 with |q·k| ≲ 3 over 8-wide heads: reordered (tiled, online) softmax sums differ by
    // a few ulp of O(1) values.
    expect(forwardDiff).toBeLessThan(1e-5)
    expect(gradDiff).toBeLessThan(1e-4)
  })

  it('transformer without flash: loads; asking for flash names what to install', () => {
    const { dir, output } = runScenario(scenarios.transformerNoFlash)
    expect(installedXattn(dir)).toEqual([
      '@xattn/core',
      '@xattn/kv-heads',
      '@xattn/memory-kv',
      '@xattn/transformer',
    ])
    expect((output as { exports: string[] }).exports).toContain('AutoregressiveWrapper')
    expect(output).toMatchObject({
      attention: ['reference'],
      flashImport: 'ERR_MODULE_NOT_FOUND',
    })
    const { flashError } = output as { flashError: { name: string; message: string } }
    expect(flashError.message).toContain(FLASH_HINT)
    expect(output).toMatchObject({ logitsShape: [1, 3, 20], finite: true })
    const { flashModelError } = output as { flashModelError: { name: string; message: string } }
    expect(flashModelError.name).toBe('ConfigError')
    expect(flashModelError.message).toContain(FLASH_HINT)
  })

  it('transformer + flash: a flash model equals the same model on reference attention', () => {
    const { dir, output } = runScenario(scenarios.transformerFlash)
    expect(installedXattn(dir)).toEqual([
      '@xattn/core',
      '@xattn/flash',
      '@xattn/kv-heads',
      '@xattn/memory-kv',
      '@xattn/transformer',
    ])
    expect(output).toMatchObject({ attention: ['reference', 'flash'], shape: [2, 3, 20] })
    // Logits of a one-layer model, O(1): flash's tiled online softmax vs the reference, float32.
    expect((output as { diff: number }).diff).toBeLessThan(5e-5)
  })
})

// A bundler that honours `sideEffects` drops modules whose exports are unused unless they are
// listed there. `import '@xattn/flash'` is used only for its side effects (registering the
// attention implementation and the kernels), so every file that performs a registration must
// be listed, or bundled apps silently lose flash.
describe('bundling a selective install (esbuild, sideEffects honoured)', () => {
  const entries = {
    "import '@xattn/flash'": "import '@xattn/flash'",
    "import '@xattn/flash/cpu'": "import '@xattn/flash/cpu'",
  }
  for (const [title, line] of Object.entries(entries)) {
    it(`${title} still registers flash after bundling`, async () => {
      const { dir } = runScenario(scenarios.coreMemoryFlash)
      const entry = join(dir, 'bundle-entry.mjs')
      writeFileSync(
        entry,
        `import * as tf from '@tensorflow/tfjs-core'\nimport '@tensorflow/tfjs-backend-cpu'\nimport { listAttention } from '@xattn/core'\n${line}\n` +
          "console.log(JSON.stringify({ attention: listAttention(), cpuKernel: tf.getKernel('FlashAttention', 'cpu') !== undefined }))\n",
      )
      const outfile = join(dir, 'bundle-out.mjs')
      await build({
        entryPoints: [entry],
        outfile,
        bundle: true,
        platform: 'node',
        format: 'esm',
        absWorkingDir: dir,
        external: ['@tensorflow/*'],
        logLevel: 'silent',
      })
      const run = spawnSync(process.execPath, [outfile], { cwd: dir, encoding: 'utf8' })
      expect(run.status, run.stderr).toBe(0)
      const output = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? 'null')
      const expected = line.endsWith("flash'") ? ['reference', 'flash'] : ['reference']
      expect(output).toEqual({ attention: expected, cpuKernel: true })
    })
  }

  it("@xattn/core's gradient registrations survive bundling (tf.grad of attention works)", async () => {
    const { dir } = runScenario(scenarios.coreOnly)
    const entry = join(dir, 'bundle-grad-entry.mjs')
    writeFileSync(
      entry,
      [
        "import * as tf from '@tensorflow/tfjs-core'",
        "import '@tensorflow/tfjs-backend-cpu'",
        "import { attendReference } from '@xattn/core'",
        'const q = tf.ones([1, 2, 3, 4])',
        'const g = tf.grad((x) => tf.sum(tf.square(attendReference({ q: x, k: x, v: x }))))(q)',
        'console.log(JSON.stringify({ shape: g.shape, finite: g.dataSync().every(Number.isFinite) }))',
        '',
      ].join('\n'),
    )
    const outfile = join(dir, 'bundle-grad-out.mjs')
    await build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      absWorkingDir: dir,
      external: ['@tensorflow/*'],
      logLevel: 'silent',
    })
    const run = spawnSync(process.execPath, [outfile], { cwd: dir, encoding: 'utf8' })
    expect(run.status, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1) ?? 'null')).toEqual({
      shape: [1, 2, 3, 4],
      finite: true,
    })
  })
})
