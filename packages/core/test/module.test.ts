import * as tf from '@tensorflow/tfjs-core'
import { expectNoLeaks } from '@xattn/test-utils'
import { describe, expect, it } from 'vitest'
import { initKaimingUniform, initNormal, Module, SeededRandom, StateDictError } from '../src/index.js'

class Linear extends Module {
  readonly weight: tf.Variable
  constructor(inDim: number, outDim: number, rng: SeededRandom) {
    super()
    this.weight = this.addParameter('weight', initKaimingUniform([outDim, inDim], rng))
  }
}

class Block extends Module {
  readonly to_q: Linear
  readonly layers: Linear[]
  constructor(rng: SeededRandom) {
    super()
    this.to_q = this.addModule('to_q', new Linear(4, 8, rng))
    this.layers = [0, 1].map((i) => this.addModule(String(i), new Linear(8, 8, rng)))
    this.addParameter('gamma', tf.zeros([4]))
    this.addBuffer('inv_freq', tf.tensor1d([1, 0.5]))
    this.addBuffer('cache', tf.zeros([2]), { persistent: false })
  }
}

describe('Module', () => {
  it('names parameters with PyTorch-style dotted paths', () => {
    const block = new Block(new SeededRandom(1))
    expect([...block.namedParameters()].map(([name, v]) => [name, v.shape])).toEqual([
      ['gamma', [4]],
      ['to_q.weight', [8, 4]],
      ['0.weight', [8, 8]],
      ['1.weight', [8, 8]],
    ])
    expect([...block.stateDict().keys()]).toEqual([
      'gamma',
      'to_q.weight',
      '0.weight',
      '1.weight',
      'inv_freq',
    ])
    expect(block.parameterCount()).toBe(4 + 32 + 64 + 64)
    block.dispose()
  })

  it('reproduces parameters exactly from a seed', () => {
    const a = new Block(new SeededRandom(42))
    const b = new Block(new SeededRandom(42))
    const c = new Block(new SeededRandom(43))
    expect(Array.from(a.to_q.weight.dataSync())).toEqual(Array.from(b.to_q.weight.dataSync()))
    expect(Array.from(a.to_q.weight.dataSync())).not.toEqual(Array.from(c.to_q.weight.dataSync()))
    // nn.Linear's default init bounds weights by 1/sqrt(fanIn).
    const bound = 1 / Math.sqrt(4)
    expect(Math.max(...Array.from(a.to_q.weight.dataSync()).map(Math.abs))).toBeLessThanOrEqual(bound)
    for (const m of [a, b, c]) m.dispose()
  })

  it('draws standard normals with the right moments', () => {
    const draws = initNormal([20000], 7)
    const values = Array.from(draws.dataSync())
    draws.dispose()
    const mean = values.reduce((s, x) => s + x, 0) / values.length
    const variance = values.reduce((s, x) => s + (x - mean) ** 2, 0) / values.length
    // Standard error of the mean over 20000 draws is 0.007; 0.03 is over 4 sigma.
    expect(Math.abs(mean)).toBeLessThan(0.03)
    expect(Math.abs(variance - 1)).toBeLessThan(0.05)
  })

  it('round-trips a state dict and switches train/eval recursively', () => {
    const a = new Block(new SeededRandom(1))
    const b = new Block(new SeededRandom(2))
    expectNoLeaks(() => b.loadStateDict(a.stateDict()))
    for (const [name, tensor] of a.stateDict()) {
      expect(Array.from(b.stateDict().get(name)!.dataSync()), name).toEqual(Array.from(tensor.dataSync()))
    }
    b.eval()
    expect(b.training).toBe(false)
    expect(b.to_q.training).toBe(false)
    b.train()
    expect(b.layers[1]!.training).toBe(true)
    a.dispose()
    b.dispose()
  })

  it('reports every missing, unexpected and mis-shaped entry in one error and changes nothing', () => {
    const block = new Block(new SeededRandom(1))
    const before = Array.from(block.to_q.weight.dataSync())
    const state = new Map<string, tf.Tensor>([
      ['to_q.weight', tf.zeros([4, 8])],
      ['0.weight', tf.zeros([8, 8])],
      ['1.weight', tf.zeros([8, 8])],
      ['inv_freq', tf.zeros([2])],
      ['extra.bias', tf.zeros([3])],
    ])
    let error: unknown
    try {
      block.loadStateDict(state)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(StateDictError)
    expect((error as Error).message).toBe(
      '@xattn/core: loadStateDict: the state dict does not fit the module: missing 1 (gamma); unexpected 1 (extra.bias); mis-shaped 1 (to_q.weight: expected [8,4], got [4,8])',
    )
    expect((error as StateDictError).missing).toEqual(['gamma'])
    expect(Array.from(block.to_q.weight.dataSync())).toEqual(before)
    const lenient = block.loadStateDict(new Map([...state].filter(([k]) => k !== 'to_q.weight')), {
      strict: false,
    })
    expect(lenient).toEqual({ missing: ['gamma', 'to_q.weight'], unexpected: ['extra.bias'] })
    tf.dispose([...state.values()])
    block.dispose()
  })

  it('frees every tensor on dispose', () => {
    const before = tf.memory().numTensors
    const block = new Block(new SeededRandom(3))
    expect(tf.memory().numTensors).toBeGreaterThan(before)
    block.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })
})
