import * as tf from '@tensorflow/tfjs-core'
import { headLayout, ShapeContractError } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, randomTensor } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import { expandKv, Linear, mergeHeads, QKVProjection, splitHeads } from '../src/index.js'
import { splitHeadsLoops } from './helpers.js'

describeEachBackend('splitHeads / mergeHeads / expandKv', () => {
  it('splitHeads is b n (h d) -> b h n d, mergeHeads its inverse', () => {
    const x = randomTensor([2, 3, 12], 1)
    const split = expectNoLeaks(() => splitHeads(x, 4), { returns: 1 })
    expect(split.shape).toEqual([2, 4, 3, 3])
    // Pure data movement: exact.
    expectClose(split, splitHeadsLoops(x.dataSync(), 2, 3, 4, 3), { atol: 0, label: 'split' })
    const merged = expectNoLeaks(() => mergeHeads(split), { returns: 1 })
    expectClose(merged, x, { atol: 0, label: 'merge' })
    tf.dispose([x, split, merged])
  })

  it('expandKv gives query head i the KV head i % kvHeads', () => {
    const layout = headLayout({ heads: 6, kvHeads: 2, dimHead: 2 })
    const kv = randomTensor([2, 2, 3, 5], 2)
    const full = expectNoLeaks(() => expandKv(kv, layout), { returns: 1 })
    expect(full.shape).toEqual([2, 6, 3, 5])
    const src = kv.dataSync()
    const expected = new Float32Array(2 * 6 * 3 * 5)
    for (let b = 0; b < 2; b++)
      for (let h = 0; h < 6; h++)
        for (let j = 0; j < 15; j++)
          expected[(b * 6 + h) * 15 + j] = src[(b * 2 + (h % 2)) * 15 + j] as number
    expectClose(full, expected, { atol: 0, label: 'expandKv' })
    tf.dispose([kv, full])
  })

  it('seed combination (one KV head): expandKv repeats the single KV head to every query head', () => {
    const layout = headLayout({ heads: 4, oneKvHead: true, dimHead: 3 })
    const kv = randomTensor([1, 1, 2, 3], 3)
    const full = expandKv(kv, layout)
    const src = Array.from(kv.dataSync())
    expect(Array.from(full.dataSync())).toEqual([...src, ...src, ...src, ...src])
    tf.dispose([kv, full])
  })

  it('errors name the package, the dimension and where it came from', () => {
    const layout = headLayout({ heads: 4, oneKvHead: true, dimHead: 3 })
    const memoryLike = tf.zeros([2, 4, 2, 3])
    expect(() => expandKv(memoryLike, layout)).toThrow(
      "@xattn/kv-heads expandKv: kv has shape [2,4,2,3] but the contract is 'b kvh m d' with kvh=1 (from the head layout), got kvh=4 (bindings so far: kvh=1, b=2)",
    )
    const x = tf.zeros([2, 3, 10])
    expect(() => splitHeads(x, 4)).toThrow(
      "@xattn/kv-heads splitHeads: x has shape [2,3,10] but the contract is 'b n (h d)', axis 2 (10) is not a multiple of 4 (bindings so far: h=4, b=2, n=3)",
    )
    const rank3 = tf.zeros([2, 3, 4])
    expect(() => mergeHeads(rank3)).toThrow(
      "@xattn/kv-heads mergeHeads: x has shape [2,3,4] but the contract is 'b h n d' (rank 4), got rank 3 (no bindings yet)",
    )
    tf.dispose([memoryLike, x, rank3])
  })
})

describeEachBackend('expandKv gradient and module lifetimes', () => {
  it('the gradient of expandKv sums the query heads that share a KV head', () => {
    const layout = headLayout({ heads: 6, kvHeads: 2, dimHead: 2 })
    const kv = randomTensor([1, 2, 3, 2], 4)
    const w = randomTensor([1, 6, 3, 2], 5)
    const grad = expectNoLeaks(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(expandKv(t, layout), w)))(kv), {
      returns: 1,
    })
    const wv = w.dataSync()
    const expected = new Float64Array(12)
    // KV head j feeds query heads j, j + 2, j + 4.
    for (let h = 0; h < 6; h++)
      for (let i = 0; i < 6; i++) {
        const at = (h % 2) * 6 + i
        expected[at] = (expected[at] as number) + (wv[h * 6 + i] as number)
      }
    expectClose(grad, expected, { atol: 1e-6, label: 'd/d kv' })
    tf.dispose([kv, w, grad])
  })

  it('modules free every tensor they own on dispose; failed calls allocate nothing', () => {
    const before = tf.memory().numTensors
    const layout = headLayout({ heads: 4, kvHeads: 2, dimHead: 2 })
    const qkv = new QKVProjection({ layout, dim: 8, rng: 1 })
    const lin = new Linear({ inFeatures: 8, outFeatures: 3, bias: true })
    expect(tf.memory().numTensors - before).toBe(5)
    const bad = tf.zeros([2, 3, 7])
    const during = tf.memory().numTensors
    expect(() => qkv.forward(bad)).toThrow(ShapeContractError)
    expect(() => lin.forward(bad)).toThrow(ShapeContractError)
    expect(() => splitHeads(bad, 2)).toThrow(ShapeContractError)
    expect(tf.memory().numTensors).toBe(during)
    bad.dispose()
    qkv.dispose()
    lin.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })
})
