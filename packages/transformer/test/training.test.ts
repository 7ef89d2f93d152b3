import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, Module } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, expectNoLeaksAsync } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import {
  AdamW,
  clipByGlobalNorm,
  computeGradients,
  decodeOptimizerInto,
  disposeGradients,
  encodeOptimizer,
  GradientAccumulator,
  globalNorm,
  loadCheckpoint,
  readCheckpointConfig,
  saveCheckpoint,
  train,
  warmupCosineSchedule,
} from '../src/training/index.js'

/** y = x·Wᵀ + b: one matrix (decayed by default) and one vector (not decayed). */
class Affine extends Module {
  readonly weight: tf.Variable
  readonly bias: tf.Variable
  constructor(weight: number[][], bias: number[]) {
    super()
    this.weight = this.addParameter('weight', tf.tensor2d(weight))
    this.bias = this.addParameter('bias', tf.tensor1d(bias))
  }
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.weight, false, true), this.bias)
  }
}

function mseLoss(model: Affine, x: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar {
  return tf.mean(tf.square(tf.sub(model.forward(x), y)))
}

/** Regression data y = x·[[1,-2],[0.5,3]]ᵀ + [0.1,-0.3], deterministic. */
function regressionBatch(step: number, rows = 8): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const xs: number[][] = []
  for (let r = 0; r < rows; r++) {
    xs.push([Math.sin(step * 7 + r * 1.3), Math.cos(step * 3 + r * 0.7)])
  }
  const ys = xs.map(([a = 0, b = 0]) => [a - 2 * b + 0.1, 0.5 * a + 3 * b - 0.3])
  return { x: tf.tensor2d(xs), y: tf.tensor2d(ys) }
}

const values = (t: tf.Tensor) => Array.from(t.dataSync())

describeEachBackend('AdamW', () => {
  it('matches the torch.optim.AdamW update over two steps, decaying only matrices by default', () => {
    const model = new Affine([[0.5, -1]], [2])
    const opt = new AdamW(model, { lr: 0.1, weightDecay: 0.5, eps: 1e-8, betas: [0.9, 0.999] })
    const g1 = new Map<string, tf.Tensor>([
      ['weight', tf.tensor2d([[0.2, -0.4]])],
      ['bias', tf.tensor1d([1])],
    ])
    const g2 = new Map<string, tf.Tensor>([
      ['weight', tf.tensor2d([[-0.1, 0.3]])],
      ['bias', tf.tensor1d([0.5])],
    ])
    expectNoLeaks(() => opt.step(g1))
    expectNoLeaks(() => opt.step(g2))
    // Independent scalar transcription of torch's AdamW (decoupled decay, bias correction).
    const reference = (p0: number, grads: number[], decayed: boolean) => {
      let p = p0
      let m = 0
      let v = 0
      grads.forEach((g, i) => {
        const t = i + 1
        if (decayed) p *= 1 - 0.1 * 0.5
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        const denom = Math.sqrt(v) / Math.sqrt(1 - 0.999 ** t) + 1e-8
        p -= (0.1 / (1 - 0.9 ** t)) * (m / denom)
      })
      return p
    }
    // float32 arithmetic over two steps of O(1) values: 1e-6 absolute is ~10 ulp.
    expectClose(model.weight, [reference(0.5, [0.2, -0.1], true), reference(-1, [-0.4, 0.3], true)], {
      atol: 1e-6,
      label: 'weight',
    })
    expectClose(model.bias, [reference(2, [1, 0.5], false)], { atol: 1e-6, label: 'bias' })
    expect(opt.stepCount).toBe(2)
    for (const g of [...g1.values(), ...g2.values()]) g.dispose()
    opt.dispose()
    model.dispose()
  })

  it('creating and disposing an optimiser leaves no tensors behind', () => {
    const model = new Affine([[1, 1]], [0])
    expectNoLeaks(() => new AdamW(model).dispose())
    model.dispose()
  })

  it('optimiser state round-trips through safetensors bytes; a mismatched state is refused whole', () => {
    const model = new Affine([[0.5, -1]], [2])
    const opt = new AdamW(model, { lr: 0.1 })
    const g = new Map<string, tf.Tensor>([
      ['weight', tf.tensor2d([[0.2, -0.4]])],
      ['bias', tf.tensor1d([1])],
    ])
    opt.step(g)
    const restored = new AdamW(model, { lr: 0.1 })
    expectNoLeaks(() => decodeOptimizerInto(restored, encodeOptimizer(opt)))
    expect(restored.stepCount).toBe(1)
    const [a, b] = [opt.stateDict().tensors, restored.stateDict().tensors]
    for (const [name, t] of a) expectClose(b.get(name) as tf.Tensor, t, { atol: 0, label: name })
    const other = new Affine([[1, 2, 3]], [0])
    const otherOpt = new AdamW(other)
    expect(() => decodeOptimizerInto(otherOpt, encodeOptimizer(opt))).toThrow(
      /exp_avg.weight: expected \[1,3\], got \[1,2\]/,
    )
    expect(otherOpt.stepCount).toBe(0)
    for (const t of g.values()) t.dispose()
    for (const o of [opt, restored, otherOpt]) o.dispose()
    model.dispose()
    other.dispose()
  })

  it('rejects bad options and unknown or mis-shaped gradients by name', () => {
    const model = new Affine([[1, 1]], [0])
    expect(() => new AdamW(model, { lr: -1 })).toThrow(ConfigError)
    expect(() => new AdamW(model, { betas: [0.9, 1] })).toThrow(/betas\[1\]/)
    const opt = new AdamW(model)
    const bad = new Map([['nope', tf.scalar(1)]])
    expect(() => opt.step(bad)).toThrow(/no parameter named 'nope'/)
    const misShaped = new Map([['bias', tf.zeros([2])]])
    expect(() => opt.step(misShaped)).toThrow(/gradient 'bias' has shape \[2\]/)
    expect(opt.stepCount).toBe(0)
    for (const t of [...bad.values(), ...misShaped.values()]) t.dispose()
    opt.dispose()
    model.dispose()
  })
})

describeEachBackend('gradient utilities', () => {
  it('clips by global norm like torch clip_grad_norm_, and leaves small gradients alone', () => {
    const grads = new Map<string, tf.Tensor>([
      ['a', tf.tensor1d([3, 0])],
      ['b', tf.tensor2d([[0, 4]])],
    ])
    expect(globalNorm(grads)).toBeCloseTo(5, 5)
    const { grads: clipped, norm } = expectNoLeaks(() => clipByGlobalNorm(grads, 1), { returns: 2 })
    expect(norm).toBeCloseTo(5, 5)
    // coefficient 1 / (5 + 1e-6)
    expectClose(clipped.get('a') as tf.Tensor, [0.6, 0], { atol: 1e-6 })
    expectClose(clipped.get('b') as tf.Tensor, [0, 0.8], { atol: 1e-6 })
    const { grads: same } = clipByGlobalNorm(grads, 10)
    expectClose(same.get('a') as tf.Tensor, [3, 0], { atol: 0 })
    expect(() => clipByGlobalNorm(grads, 0)).toThrow(/maxNorm/)
    disposeGradients(clipped)
    disposeGradients(same)
    disposeGradients(grads)
  })

  it('accumulated micro-batch gradients equal the gradient of the whole batch', () => {
    const model = new Affine([[0.3, -0.2]], [0.1])
    const whole = regressionBatch(0, 8)
    const halves = [0, 4].map((start) => ({
      x: tf.slice(whole.x, [start, 0], [4, 2]),
      y: tf.slice(whole.y, [start, 0], [4, 1]),
    }))
    const y1 = tf.slice(whole.y, [0, 0], [8, 1])
    const full = computeGradients(model, () => mseLoss(model, whole.x, y1))
    const acc = new GradientAccumulator()
    expectNoLeaks(
      () => {
        for (const half of halves) {
          const { grads } = computeGradients(model, () => mseLoss(model, half.x, half.y))
          acc.add(grads)
          disposeGradients(grads)
        }
      },
      { returns: 2 },
    )
    expect(acc.count).toBe(2)
    const mean = acc.take()
    // Two float32 reductions of 8 terms in different orders: agree to a few ulp.
    for (const name of ['weight', 'bias']) {
      expectClose(mean.get(name) as tf.Tensor, full.grads.get(name) as tf.Tensor, { atol: 1e-6, label: name })
    }
    expect(() => acc.take()).toThrow(/nothing was added/)
    disposeGradients(mean)
    disposeGradients(full.grads)
    for (const t of [whole.x, whole.y, y1, ...halves.flatMap((h) => [h.x, h.y])]) t.dispose()
    model.dispose()
  })
})

it('warmup + cosine schedule: linear warmup, cosine to minLr, flat afterwards', () => {
  const s = warmupCosineSchedule({ peakLr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-4 })
  expect(s(0)).toBeCloseTo(1e-4, 12)
  expect(s(4)).toBeCloseTo(5e-4, 12)
  expect(s(9)).toBeCloseTo(1e-3, 12)
  expect(s(10)).toBeCloseTo(1e-3, 12)
  expect(s(60)).toBeCloseTo(5.5e-4, 12) // half way: cos(π/2) = 0
  expect(s(110)).toBeCloseTo(1e-4, 12)
  expect(s(500)).toBeCloseTo(1e-4, 12)
  expect(() => warmupCosineSchedule({ peakLr: 1, warmupSteps: 5, totalSteps: 3 })).toThrow(/totalSteps/)
  expect(() => warmupCosineSchedule({ peakLr: 0, totalSteps: 3 })).toThrow(/peakLr/)
})

describeEachBackend('train', () => {
  it('fits a regression, leaves no tensors behind, and stops when onStep returns false', async () => {
    const model = new Affine(
      [
        [0, 0],
        [0, 0],
      ],
      [0, 0],
    )
    const optimizer = new AdamW(model, { lr: 0.05, weightDecay: 0 })
    const seen: number[] = []
    const result = await expectNoLeaksAsync(() =>
      train({
        model,
        optimizer,
        steps: 300,
        batch: (step) => regressionBatch(step),
        loss: ({ x, y }) => mseLoss(model, x, y),
        tokensIn: ({ x }) => x.shape[0],
        clipNorm: 10,
        schedule: warmupCosineSchedule({ peakLr: 0.05, warmupSteps: 10, totalSteps: 300 }),
        onStep: (info) => {
          seen.push(info.step)
          expect(info.tokens).toBe(8)
          return info.loss < 1e-4 ? false : undefined
        },
      }),
    )
    expect(result.losses[0]).toBeGreaterThan(1)
    expect(result.losses.at(-1)).toBeLessThan(1e-4)
    expect(result.stoppedEarly).toBe(true)
    expect(seen[0]).toBe(0)
    expect(seen.length).toBe(result.losses.length)
    // The learned parameters approach the generating ones (loss < 1e-4 bounds the error).
    expectClose(model.weight, [1, -2, 0.5, 3], { atol: 0.05 })
    optimizer.dispose()
    model.dispose()
  })

  it('accumulating two half batches takes the same steps as one full batch', async () => {
    const run = async (accumulate: number) => {
      const model = new Affine(
        [
          [0.1, 0.2],
          [0.3, 0.4],
        ],
        [0, 0],
      )
      const optimizer = new AdamW(model, { lr: 0.01 })
      await train({
        model,
        optimizer,
        steps: 5,
        accumulate,
        batch: (step, micro) => {
          const { x, y } = regressionBatch(step, 8)
          if (accumulate === 1) return { x, y }
          const part = { x: tf.slice(x, [micro * 4, 0], [4, 2]), y: tf.slice(y, [micro * 4, 0], [4, 2]) }
          x.dispose()
          y.dispose()
          return part
        },
        loss: ({ x, y }) => mseLoss(model, x, y),
      })
      const out = [...values(model.weight), ...values(model.bias)]
      optimizer.dispose()
      model.dispose()
      return out
    }
    // Adam normalises by √v, so tiny float32 gradient differences stay tiny: 1e-5 after 5 steps.
    expectClose(await run(2), await run(1), { atol: 1e-5 })
  })
})

describeEachBackend('checkpoints', () => {
  it('save + resume (model and optimiser) continues exactly like uninterrupted training', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xattn-ckpt-'))
    try {
      const options = (model: Affine, optimizer: AdamW, steps: number) => ({
        model,
        optimizer,
        steps,
        batch: (step: number) => regressionBatch(step),
        loss: ({ x, y }: { x: tf.Tensor2D; y: tf.Tensor2D }) => mseLoss(model, x, y),
      })
      const straight = new Affine(
        [
          [0.1, 0.2],
          [0.3, 0.4],
        ],
        [0, 0],
      )
      const straightOpt = new AdamW(straight, { lr: 0.02 })
      await train(options(straight, straightOpt, 6))

      const first = new Affine(
        [
          [0.1, 0.2],
          [0.3, 0.4],
        ],
        [0, 0],
      )
      const firstOpt = new AdamW(first, { lr: 0.02 })
      await train(options(first, firstOpt, 3))
      await saveCheckpoint(dir, { model: first, optimizer: firstOpt, config: { kind: 'affine' } })

      const resumed = new Affine(
        [
          [9, 9],
          [9, 9],
        ],
        [9, 9],
      )
      const resumedOpt = new AdamW(resumed, { lr: 0.02 })
      expect(await readCheckpointConfig(dir)).toEqual({ config: { kind: 'affine' }, step: 3 })
      await expectNoLeaksAsync(() => loadCheckpoint(dir, { model: resumed, optimizer: resumedOpt }))
      expect(resumedOpt.stepCount).toBe(3)
      await train(options(resumed, resumedOpt, 6))
      // Same float32 operations in the same order: bit-identical.
      expectClose(resumed.weight, straight.weight, { atol: 0 })
      expectClose(resumed.bias, straight.bias, { atol: 0 })

      const other = new Affine([[0, 0, 0]], [0])
      await expect(loadCheckpoint(dir, { model: other })).rejects.toThrow(/mis-shaped/)
      for (const m of [straight, first, resumed, other]) m.dispose()
      for (const o of [straightOpt, firstOpt, resumedOpt]) o.dispose()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
