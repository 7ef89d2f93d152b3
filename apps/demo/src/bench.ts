#!/usr/bin/env node
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
// `npm run bench` (via turbo): generation tokens/s with and without the KV cache at 64, 256 and 1024
// generated tokens, on the wasm backend, for the demo's architecture (rotary, GQA, memory KV,
// flash attention when available) with random weights. `--write` replaces the generation section
// of docs/benchmarks.md; `--quick` runs 64 tokens only.
import * as tf from '@tensorflow/tfjs-core'
import { listAttention, useBackend } from '@xattn/core'
import { buildModel, type DemoModelConfig, describeModel } from './model.js'

const here = dirname(fileURLToPath(import.meta.url))
const docsPath = join(here, '..', '..', '..', 'docs', 'benchmarks.md')
const args = new Set(process.argv.slice(2))
const PROMPT = 8

async function main(): Promise<void> {
  const backend = await useBackend('wasm')
  let attention: 'flash' | 'reference' = 'reference'
  try {
    await import('@xattn/flash')
    if (listAttention().includes('flash')) attention = 'flash'
  } catch {
    // reference attention; reported in the table
  }
  const lengths = args.has('--quick') ? [64] : [64, 256, 1024]
  const maxLen = Math.max(...lengths)
  const config: DemoModelConfig = {
    numTokens: 13,
    maxSeqLen: PROMPT + maxLen,
    dim: 64,
    depth: 2,
    heads: 4,
    kvHeads: 2,
    dimHead: 32,
    memKv: 4,
    rotary: true,
    attention,
    seed: 0,
  }
  const { net, ar } = buildModel(config)
  const prompt = tf.tensor2d([Array.from({ length: PROMPT }, (_, i) => i % 10)], [1, PROMPT], 'int32')
  const rows: { tokens: number; cache: number; noCache: number }[] = []
  // Warm-up: compiles kernels and fills tfjs-wasm's allocator once.
  ;(await ar.generate(prompt, { seqLen: 8 })).dispose()
  for (const tokens of lengths) {
    const measure = async (cache: boolean) => {
      const started = performance.now()
      const out = await ar.generate(prompt, { seqLen: tokens, cache })
      const seconds = (performance.now() - started) / 1000
      out.dispose()
      return tokens / seconds
    }
    const cache = await measure(true)
    const noCache = await measure(false)
    rows.push({ tokens, cache, noCache })
    console.log(
      `${String(tokens).padStart(5)} tokens: ${cache.toFixed(1)} tok/s with cache, ${noCache.toFixed(1)} tok/s without (${(cache / noCache).toFixed(1)}×)`,
    )
  }
  prompt.dispose()
  const floatsPerToken = 2 * config.depth * config.kvHeads * config.dimHead
  const section = [
    '<!-- generation:begin -->',
    '## Generation (KV cache)',
    '',
    `Command: \`npm run bench\` (this part: \`pnpm --filter @xattn/demo run bench\`, after \`npm run build\`). Backend ${backend.name}${backend.simd === true ? ' (SIMD)' : ''}, batch 1, greedy, ${PROMPT}-token prompt, model: ${describeModel(config, net.parameterCount())}, random weights. Measured ${new Date().toISOString().slice(0, 10)} on a shared 2-core VM (other jobs running), so absolute numbers are noisy; the ratio is the point.`,
    '',
    '| generated tokens | with cache (tok/s) | without cache (tok/s) | speed-up |',
    '|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.tokens} | ${r.cache.toFixed(1)} | ${r.noCache.toFixed(1)} | ${(r.cache / r.noCache).toFixed(1)}× |`,
    ),
    '',
    `The cache feeds one token per step and grows by 2 · layers · kvHeads · dimHead = ${floatsPerToken} floats per token (GQA: kv heads, not query heads; memory KV is never cached); without it every step re-reads the whole sequence, so the gap widens with length.`,
    '<!-- generation:end -->',
  ].join('\n')
  net.dispose()
  if (args.has('--write')) {
    let text = '# Benchmarks\n'
    try {
      text = readFileSync(docsPath, 'utf8')
    } catch {
      // first section written
    }
    const begin = text.indexOf('<!-- generation:begin -->')
    const end = text.indexOf('<!-- generation:end -->')
    const next =
      begin >= 0 && end > begin
        ? text.slice(0, begin) + section + text.slice(end + '<!-- generation:end -->'.length)
        : `${text.trimEnd()}\n\n${section}\n`
    writeFileSync(docsPath, next)
    console.log(`wrote ${docsPath}`)
  } else {
    console.log(section)
  }
}

await main()
