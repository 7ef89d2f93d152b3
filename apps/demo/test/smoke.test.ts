import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs-core'
import { expect, it } from 'vitest'
import { type DemoOptions, parseArgs } from '../src/args.js'
import { runDemo } from '../src/demo.js'
import { TaskData } from '../src/task.js'

it('task data: prompt = task, digits, separator; the answer reverses or copies the digits', () => {
  const reverse = new TaskData('reverse', 4, 1).next()
  expect(reverse.prompt).toHaveLength(6)
  expect(reverse.prompt[0]).toBe(12)
  expect(reverse.prompt[5]).toBe(10)
  expect(reverse.answer).toEqual(reverse.prompt.slice(1, 5).reverse())
  const copy = new TaskData('copy', 4, 1).next()
  expect(copy.answer).toEqual(copy.prompt.slice(1, 5))
  const { tokens, answerMask } = new TaskData('mixed', 3, 2).batch(5)
  expect(tokens.map((t) => t.length)).toEqual([8, 8, 8, 8, 8])
  expect(answerMask[0]).toEqual([false, false, false, false, false, true, true, true])
})

it('a tiny run trains, evaluates with the cache, samples and saves a checkpoint without leaking', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xattn-demo-'))
  try {
    const options = parseArgs([
      '--steps',
      '3',
      '--batch',
      '4',
      '--digits',
      '3',
      '--dim',
      '32',
      '--heads',
      '2',
      '--kv-heads',
      '1',
      '--mem-kv',
      '2',
      '--eval',
      '8',
      '--samples',
      '1',
      '--backend',
      'cpu',
      '--checkpoint',
      join(dir, 'ckpt'),
    ]) as DemoOptions
    const lines: string[] = []
    const progress: string[] = []
    const before = tf.memory().numTensors
    const result = await runDemo(
      options,
      {
        out: (line) => lines.push(line),
        progress: { isTTY: false, write: (s: string) => progress.push(s) > 0 },
      },
      dir,
    )
    expect(tf.memory().numTensors).toBe(before)
    expect(result.steps).toBe(3)
    expect(Number.isFinite(result.finalLoss)).toBe(true)
    expect(result.accuracy).toBeGreaterThanOrEqual(0)
    expect(['flash', 'reference']).toContain(result.attention)
    const text = lines.join('\n')
    expect(text).toMatch(/model: 2 layers × dim 32/)
    expect(text).toContain('MQA (2 query heads, 1 kv head)')
    expect(text).toContain('memory KV')
    expect(text).toMatch(/held-out accuracy: .*with the KV cache/)
    expect(text).toMatch(/target (reached|missed)/)
    // Not a TTY: plain progress lines, no carriage returns.
    expect(progress.join('')).toMatch(/step 3\/3 {2}loss/)
    expect(progress.join('')).not.toContain('\r')
    for (const file of ['model.safetensors', 'optimizer.safetensors', 'config.json']) {
      expect(existsSync(join(dir, 'ckpt', file)), file).toBe(true)
    }
    const config = JSON.parse(readFileSync(join(dir, 'ckpt', 'config.json'), 'utf8'))
    expect(config.step).toBe(3)
    expect(config.config.model.kvHeads).toBe(1)

    // Resuming continues at the saved step; different model flags are refused by name.
    const resumed = await runDemo(
      { ...options, steps: 5, resume: true, quiet: true, samples: 0 },
      { out: (line) => lines.push(line), progress: { isTTY: false, write: () => true } },
      dir,
    )
    expect(resumed.steps).toBe(5)
    expect(lines.join('\n')).toContain('at step 3')
    expect(tf.memory().numTensors).toBe(before)
    await expect(
      runDemo({ ...options, dim: 48, resume: true }, { out: () => {}, progress: { write: () => true } }, dir),
    ).rejects.toThrow(/--resume: the model flags differ/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
