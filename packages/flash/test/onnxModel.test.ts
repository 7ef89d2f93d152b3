import * as tf from '@tensorflow/tfjs-core'
import { attendReference } from '@xattn/core'
import { maxAbsDiff, randomTensor } from '@xattn/test-utils'
import * as ort from 'onnxruntime-node'
import { describe, expect, it } from 'vitest'
import { encodeAttentionModel, expandKvHeads } from '../bench/onnxAttentionModel.mjs'

// The bench's hand-encoded ONNX attention graph must load in onnxruntime-node and compute what
// @xattn/core's reference computes, or the ONNX Runtime comparison in docs/benchmarks.md is void.
describe('bench ONNX attention model', () => {
  const heads = 4
  const n = 7
  const d = 8
  for (const { kvHeads, causal } of [
    { kvHeads: 4, causal: false },
    { kvHeads: 4, causal: true },
    { kvHeads: 2, causal: true },
  ]) {
    it(`matches attendReference (kvHeads ${kvHeads}, causal ${causal})`, async () => {
      const q = randomTensor([1, heads, n, d], 11)
      const k = randomTensor([1, kvHeads, n, d], 12)
      const v = randomTensor([1, kvHeads, n, d], 13)
      const expected = tf.tidy(() => attendReference({ q, k, v }, { causal }))
      const session = await ort.InferenceSession.create(
        encodeAttentionModel({ heads, n, dimHead: d, causal }),
        {
          intraOpNumThreads: 1,
        },
      )
      const feed = (x: tf.Tensor, kvh: number) =>
        new ort.Tensor('float32', expandKvHeads(x.dataSync() as Float32Array, kvh, heads, n, d), [
          1,
          heads,
          n,
          d,
        ])
      const { out } = await session.run({ q: feed(q, heads), k: feed(k, kvHeads), v: feed(v, kvHeads) })
      await session.release()
      expect(out?.dims).toEqual([1, heads, n, d])
      // Float32 sums of d + n ≈ 15 unit-scale terms in a different order: differences near 1e-6,
      // far below 1e-4; a wrong mask, scale or head mapping moves outputs by ~1e-1.
      expect(maxAbsDiff(out?.data as Float32Array, expected)).toBeLessThan(1e-4)
      tf.dispose([q, k, v, expected])
    })
  }
})
