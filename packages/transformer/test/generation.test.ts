import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, SeededRandom } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, expectNoLeaksAsync } from '@xattn/test-utils'
import { describe, expect, it, vi } from 'vitest'
import { AutoregressiveWrapper } from '../src/generation/autoregressiveWrapper.js'
import { KvCache } from '../src/generation/kvCache.js'
import { argmax, filterLogits, sampleToken } from '../src/generation/sampling.js'
import { ToyNet } from './generationToyNet.js'

const ints = (t: tf.Tensor) => Array.from(t.dataSync())

describe('sampling filters', () => {
  const row = [Math.log(0.5), Math.log(0.25), Math.log(0.15), Math.log(0.1)]
  const kept = (r: ArrayLike<number>) => Array.from(r, (x) => x > Number.NEGATIVE_INFINITY)

  it('topK keeps the k largest, topP the nucleus, minP tokens above minP·max', () => {
    expect(kept(filterLogits(row, { topK: 2 }))).toEqual([true, true, false, false])
    // Mass before each token: 0, .5, .75, .9 → with p = 0.7 the third token is already past it.
    expect(kept(filterLogits(row, { topP: 0.7 }))).toEqual([true, true, false, false])
    expect(kept(filterLogits(row, { topP: 0.4 }))).toEqual([true, false, false, false])
    // 0.3 · 0.5 = 0.15: 0.15 stays (not below the limit), 0.1 goes.
    expect(kept(filterLogits(row, { minP: 0.3 }))).toEqual([true, true, true, false])
  })

  it('greedy is argmax (first index on ties); sampling follows the seed and the distribution', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1)
    const rng = new SeededRandom(0)
    expect(sampleToken(row, { temperature: 0, rng })).toBe(0)
    const draw = (seed: number) => {
      const r = new SeededRandom(seed)
      return Array.from({ length: 20 }, () => sampleToken(row, { temperature: 1, rng: r }))
    }
    expect(draw(7)).toEqual(draw(7))
    const counts = [0, 0, 0, 0]
    const r = new SeededRandom(3)
    for (let i = 0; i < 4000; i++) {
      const token = sampleToken(row, { temperature: 1, rng: r })
      counts[token] = (counts[token] ?? 0) + 1
    }
    // Binomial standard deviation at n = 4000 is ≤ 0.008: 0.03 is ~4σ.
    for (const [i, p] of [0.5, 0.25, 0.15, 0.1].entries()) {
      expect(Math.abs((counts[i] as number) / 4000 - p)).toBeLessThan(0.03)
    }
    const r2 = new SeededRandom(5)
    for (let i = 0; i < 50; i++)
      expect(sampleToken(row, { temperature: 2, filter: { topK: 2 }, rng: r2 })).toBeLessThan(2)
  })
})

describeEachBackend('AutoregressiveWrapper.loss', () => {
  it('is the mean next-token cross-entropy over non-ignored targets, with mask[:, :-1] passed on', () => {
    const net = new ToyNet(11, 8)
    const ar = new AutoregressiveWrapper(net)
    const tokens = tf.tensor2d(
      [
        [1, 4, 2, 9, 3],
        [5, 0, -100, 7, 10],
      ],
      [2, 5],
      'int32',
    )
    const loss = expectNoLeaks(() => ar.loss(tokens), { returns: 1 })
    // Independent: logits of the inputs (ignore index replaced by pad 0), CE in float64 here.
    const inputs = tf.tensor2d(
      [
        [1, 4, 2, 9],
        [5, 0, 0, 7],
      ],
      [2, 4],
      'int32',
    )
    const logits = net.forward(inputs).arraySync() as number[][][]
    const targets = [
      [4, 2, 9, 3],
      [0, -100, 7, 10],
    ]
    let sum = 0
    let count = 0
    for (const [i, row] of targets.entries()) {
      for (const [j, target] of row.entries()) {
        if (target === -100) continue
        const l = logits[i]?.[j] as number[]
        const max = Math.max(...l)
        const lse = max + Math.log(l.reduce((s, x) => s + Math.exp(x - max), 0))
        sum += lse - (l[target] as number)
        count++
      }
    }
    // float32 log-softmax of O(10) logits: relative 1e-6 is a few ulp.
    expectClose(loss, [sum / count], { rtol: 1e-6, atol: 0 })
    const mask = tf.tensor2d(
      [
        [true, true, true, true, true],
        [true, true, true, false, false],
      ],
      [2, 5],
      'bool',
    )
    const masked = ar.loss(tokens, { mask })
    expect(Number.isFinite(masked.dataSync()[0])).toBe(true)
    // lossMask keeps targets 1 and 3 of row 0 (tokens[0][2] = 2, tokens[0][4] = 3), none of row 1.
    const lossMask = tf.tensor2d(
      [
        [true, false, true, false, true],
        [false, false, false, false, false],
      ],
      [2, 5],
      'bool',
    )
    const partial = ar.loss(tokens, { lossMask })
    const ce = (i: number, j: number, target: number) => {
      const l = logits[i]?.[j] as number[]
      const max = Math.max(...l)
      return max + Math.log(l.reduce((s, x) => s + Math.exp(x - max), 0)) - (l[target] as number)
    }
    expectClose(partial, [(ce(0, 1, 2) + ce(0, 3, 3)) / 2], { rtol: 1e-6, atol: 0 })
    lossMask.dispose()
    partial.dispose()
    expect(() => ar.loss(tokens, { mask: tf.ones([2, 3], 'bool') as tf.Tensor2D })).toThrow(
      /mask must be bool \[2, 5\]/,
    )
    expect(() => ar.loss(tf.zeros([2, 5]) as tf.Tensor2D)).toThrow(ConfigError)
    for (const t of [loss, inputs, tokens, mask, masked]) t.dispose()
    net.dispose()
  })
})

describeEachBackend('AutoregressiveWrapper.generate', () => {
  it('greedy with the cache equals greedy without, feeding one token per step, even past maxSeqLen', async () => {
    const net = new ToyNet(13, 8)
    const ar = new AutoregressiveWrapper(net)
    const prompt = tf.tensor2d(
      [
        [3, 1, 4],
        [1, 5, 9],
      ],
      [2, 3],
      'int32',
    )
    const uncached = await ar.generate(prompt, { seqLen: 9, cache: false })
    net.calls.length = 0
    const cached = await expectNoLeaksAsync(() => ar.generate(prompt, { seqLen: 9 }), { returns: 1 })
    expect(cached.shape).toEqual([2, 9])
    expect(ints(cached)).toEqual(ints(uncached))
    // Prompt, then single tokens until 8 positions; then the window (8) is re-read each step.
    expect(net.calls).toEqual([3, 1, 1, 1, 1, 1, 8, 8, 8])
    // Reference: greedy by hand with full forward passes over the last 8 tokens.
    const rows = [
      [3, 1, 4],
      [1, 5, 9],
    ]
    for (let step = 0; step < 9; step++) {
      const window = rows.map((r) => r.slice(-8))
      const logits = tf.tidy(() => net.forward(tf.tensor2d(window, [2, window[0]?.length ?? 0], 'int32')))
      const last = (logits.arraySync() as number[][][]).map((r) => r.at(-1) as number[])
      logits.dispose()
      for (const [i, l] of last.entries()) rows[i]?.push(argmax(l))
    }
    expect(ints(cached)).toEqual(rows.flatMap((r) => r.slice(3)))
    for (const t of [prompt, uncached, cached]) t.dispose()
    net.dispose()
  })

  it('stops when every row produced eos, padding after it; variable-length prompts decode unpadded', async () => {
    const net = new ToyNet(13, 16)
    const ar = new AutoregressiveWrapper(net, { padValue: 0 })
    const prompt = tf.tensor2d(
      [
        [3, 1, 4],
        [1, 5, 9],
      ],
      [2, 3],
      'int32',
    )
    const free = ints(await ar.generate(prompt, { seqLen: 8 }))
    const rowA = free.slice(0, 8)
    const rowB = free.slice(8)
    const eos = rowA[2] as number
    const stopped = await ar.generate(prompt, { seqLen: 8, eos })
    const endA = rowA.indexOf(eos)
    const endB = rowB.indexOf(eos)
    const width = endB < 0 ? 8 : Math.max(endA, endB) + 1
    expect(stopped.shape).toEqual([2, width])
    const pad = (row: number[], end: number) =>
      row.slice(0, width).map((t, j) => (end >= 0 && j > end ? 0 : t))
    expect(ints(stopped)).toEqual([...pad(rowA, endA), ...pad(rowB, endB)])

    // Row 1 is left-padded to length 3 with a 2-token prompt [5, 9].
    const padded = tf.tensor2d(
      [
        [3, 1, 4],
        [0, 5, 9],
      ],
      [2, 3],
      'int32',
    )
    const mixed = ints(await ar.generate(padded, { seqLen: 5, promptLens: [3, 2] }))
    const alone = tf.tensor2d([[5, 9]], [1, 2], 'int32')
    const single = ints(await ar.generate(alone, { seqLen: 5 }))
    expect(mixed.slice(5)).toEqual(single)
    expect(mixed.slice(0, 5)).toEqual(rowA.slice(0, 5))
    await expect(ar.generate(padded, { seqLen: 5, promptLens: [3, 4] })).rejects.toThrow(/promptLens/)
    for (const t of [prompt, stopped, padded, alone]) t.dispose()
    net.dispose()
  })

  it('sampling is reproducible per seed, topK 1 is greedy, and options are checked by name', async () => {
    const net = new ToyNet(13, 16)
    const ar = new AutoregressiveWrapper(net)
    const prompt = tf.tensor2d([[3, 1, 4]], [1, 3], 'int32')
    const a = ints(await ar.generate(prompt, { seqLen: 10, temperature: 1, seed: 42 }))
    const b = ints(await ar.generate(prompt, { seqLen: 10, temperature: 1, seed: 42 }))
    expect(a).toEqual(b)
    const greedy = ints(await ar.generate(prompt, { seqLen: 10 }))
    expect(ints(await ar.generate(prompt, { seqLen: 10, temperature: 1.5, filter: { topK: 1 } }))).toEqual(
      greedy,
    )
    await expect(ar.generate(prompt, { seqLen: 0 })).rejects.toThrow(/seqLen/)
    await expect(ar.generate(prompt, { seqLen: 2, filter: { topP: 2 } })).rejects.toThrow(/filter.topP/)
    await expect(ar.generate(prompt, { seqLen: 2, temperature: -1 })).rejects.toThrow(/temperature/)
    const noCache = new AutoregressiveWrapper(new ToyNet(13, 16, 8, 1, 'num_memory_tokens'))
    await expect(noCache.generate(prompt, { seqLen: 2, cache: true })).rejects.toThrow(/num_memory_tokens/)
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    expect(ints(await noCache.generate(prompt, { seqLen: 10 }))).toEqual(greedy)
    await noCache.generate(prompt, { seqLen: 1 })
    expect(ints(await noCache.generate(prompt, { seqLen: 10, cache: false }))).toEqual(greedy)
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/KV cache disabled because of 'num_memory_tokens'/)
    warn.mockRestore()
    prompt.dispose()
    net.dispose()
    noCache.net.dispose()
  })
})

describeEachBackend('KvCache', () => {
  it('grows by 2·layers·kvHeads·dimHead floats per token, frees replaced entries and everything on dispose', () => {
    const [layers, kvHeads, dimHead] = [3, 2, 4]
    const cache = new KvCache()
    const before = tf.memory().numTensors
    const entries = (m: number) =>
      Array.from({ length: layers }, () => ({
        k: tf.ones([1, kvHeads, m, dimHead]) as tf.Tensor4D,
        v: tf.ones([1, kvHeads, m, dimHead]) as tf.Tensor4D,
      }))
    cache.update(entries(5), 5)
    const floats = cache.floats()
    cache.update(entries(6), 1)
    expect(cache.floats() - floats).toBe(2 * layers * kvHeads * dimHead)
    expect(cache.offset).toBe(6)
    expect(tf.memory().numTensors - before).toBe(2 * layers)
    expect(() => cache.update(entries(7).slice(1), 1)).toThrow(/returned 2 cache entries, previously 3/)
    cache.dispose()
    expect(cache.offset).toBe(0)
    // The 3 entries built for the rejected update stay the test's own.
    expect(tf.memory().numTensors - before).toBe(6)
  })
})
