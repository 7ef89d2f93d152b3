import * as tf from '@tensorflow/tfjs-core'
import { afterAll, describe, expect, it } from 'vitest'
import { atMost, defineContract, divisibleBy, ShapeContractError } from '../src/index.js'

const Attend = defineContract(
  '@xattn/flash attend',
  { q: 'b h n d', k: 'b kvh m d', v: 'b kvh m dv', keyMask: 'b m?' },
  { h: divisibleBy('kvh') },
)

const made: tf.Tensor[] = []
const zeros = (shape: number[], dtype: tf.DataType = 'float32') => {
  const t = tf.zeros(shape, dtype)
  made.push(t)
  return t
}
afterAll(() => tf.dispose(made))

describe('defineContract', () => {
  it('binds every symbolic dimension across tensors and returns the sizes', () => {
    const sizes = Attend.check({ q: zeros([2, 4, 16, 8]), k: zeros([2, 1, 18, 8]), v: zeros([2, 1, 18, 6]) })
    expect(sizes).toEqual({ b: 2, h: 4, n: 16, d: 8, kvh: 1, m: 18, dv: 6 })
  })

  it('names the contract, tensor, pattern, given binding and actual size on a mismatch', () => {
    const call = () =>
      Attend.check(
        { q: zeros([2, 4, 16, 8]), k: zeros([2, 4, 18, 8]), v: zeros([2, 4, 18, 8]) },
        { given: { kvh: 1 }, givenBy: 'the head layout' },
      )
    expect(call).toThrow(ShapeContractError)
    expect(call).toThrow(
      "@xattn/flash attend: k has shape [2,4,18,8] but the contract is 'b kvh m d' with kvh=1 (from the head layout), got kvh=4 (bindings so far: kvh=1, b=2, h=4, n=16, d=8)",
    )
  })

  it('reports a wrong rank', () => {
    const k = zeros([2, 18, 8]) as tf.Tensor
    expect(() => Attend.check({ q: zeros([2, 4, 16, 8]), k, v: zeros([2, 1, 18, 8]) })).toThrow(
      "@xattn/flash attend: k has shape [2,18,8] but the contract is 'b kvh m d' (rank 4), got rank 3 (bindings so far: b=2, h=4, n=16, d=8)",
    )
  })

  it('treats a trailing ? as an optional tensor that is still checked when given', () => {
    const inputs = { q: zeros([1, 2, 3, 4]), k: zeros([1, 2, 5, 4]), v: zeros([1, 2, 5, 4]) }
    expect(Attend.check(inputs).m).toBe(5)
    expect(() => Attend.check({ ...inputs, keyMask: zeros([1, 3]) })).toThrow(
      "@xattn/flash attend: keyMask has shape [1,3] but the contract is 'b m' with m=5 (from k), got m=3",
    )
  })

  it('rejects a missing required tensor and a non-tensor value', () => {
    expect(() => Attend.check({ q: zeros([1, 2, 3, 4]), k: zeros([1, 2, 5, 4]) } as never)).toThrow(
      "@xattn/flash attend: v is required ('b kvh m dv') but was not given",
    )
    expect(() =>
      Attend.check({ q: zeros([1, 2, 3, 4]), k: zeros([1, 2, 5, 4]), v: [[1]] as unknown as tf.Tensor }),
    ).toThrow("@xattn/flash attend: v must be a tf.Tensor matching 'b kvh m dv', got an array")
  })

  it('applies divisibility constraints after binding', () => {
    expect(() =>
      Attend.check({ q: zeros([1, 6, 3, 4]), k: zeros([1, 4, 5, 4]), v: zeros([1, 4, 5, 4]) }),
    ).toThrow(
      '@xattn/flash attend: h=6 must be divisible by kvh (bindings so far: b=1, h=6, n=3, d=4, kvh=4, m=5, dv=4)',
    )
  })

  it('supports fixed sizes, broadcast axes, product groups and dtypes', () => {
    const Merge = defineContract(
      '@xattn/kv-heads merge',
      { x: 'b n (h d)', bias: { pattern: 'b|1 h|1 n 3?', dtype: 'float32' } },
      { n: atMost(8) },
    )
    expect(Merge.check({ x: zeros([2, 5, 12]) }, { given: { h: 4 } })).toEqual({ h: 4, b: 2, n: 5, d: 3 })
    expect(Merge.check({ x: zeros([2, 5, 12]), bias: zeros([1, 4, 5, 3]) }, { given: { h: 4 } }).b).toBe(2)
    expect(() => Merge.check({ x: zeros([2, 5, 10]) }, { given: { h: 4 } })).toThrow(
      "@xattn/kv-heads merge: x has shape [2,5,10] but the contract is 'b n (h d)', axis 2 (10) is not a multiple of 4",
    )
    expect(() =>
      Merge.check({ x: zeros([2, 5, 12]), bias: zeros([1, 4, 5, 2]) }, { given: { h: 4 } }),
    ).toThrow('axis 3 must be 3, got 2')
    expect(() => Merge.check({ x: zeros([2, 9, 12]) }, { given: { h: 4 } })).toThrow('n=9 must be at most 8')
    expect(() =>
      Merge.check({ x: zeros([2, 5, 12]), bias: zeros([1, 4, 5, 3], 'int32') }, { given: { h: 4 } }),
    ).toThrow('bias has dtype int32 but the contract requires float32')
  })

  it('rejects empty axes unless the contract allows them', () => {
    expect(() =>
      Attend.check({ q: zeros([1, 2, 0, 4]), k: zeros([1, 2, 5, 4]), v: zeros([1, 2, 5, 4]) }),
    ).toThrow(
      "@xattn/flash attend: q has shape [1,2,0,4] but the contract is 'b h n d': axis 2 is empty (size 0)",
    )
    const Empty = defineContract('@xattn/core empty', { x: 'b n' }, {}, { allowEmpty: true })
    expect(Empty.check({ x: zeros([1, 0]) })).toEqual({ b: 1, n: 0 })
  })

  it('rejects tensors that are not part of the contract', () => {
    expect(() =>
      Attend.check({
        q: zeros([1, 2, 3, 4]),
        k: zeros([1, 2, 5, 4]),
        v: zeros([1, 2, 5, 4]),
        mask: zeros([1]),
      } as never),
    ).toThrow('@xattn/flash attend: mask is not part of this contract (expected q, k, v, keyMask)')
  })
})
