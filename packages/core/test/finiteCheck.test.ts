import * as tf from '@tensorflow/tfjs-core'
import { describeEachBackend, expectNoLeaks } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import {
  assertAllFinite,
  assertFinite,
  attendReference,
  ConfigError,
  checkAttendCall,
  ShapeContractError,
} from '../src/index.js'

describeEachBackend('assertFinite', () => {
  it('passes finite tensors, skips null, int32 and empty ones, and leaves nothing behind', () => {
    const x = tf.tensor2d([1, -2, 3e38, -3e38], [2, 2])
    const ids = tf.tensor1d([1, 2], 'int32')
    const empty = tf.zeros([0, 4])
    expectNoLeaks(() =>
      assertAllFinite('@xattn/core probe', { x, ids, empty, none: null, missing: undefined }),
    )
    expectNoLeaks(() => assertFinite('@xattn/core probe', 'x', x))
    tf.dispose([x, ids, empty])
  })

  it.each([
    ['NaN', Number.NaN],
    ['+Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('names the contract and the tensor holding %s', (_, bad) => {
    const good = tf.ones([2, 3])
    const x = tf.tensor2d([0, 1, 2, 3, bad, 5], [2, 3])
    expectNoLeaks(() =>
      expect(() => assertAllFinite('@xattn/flash probe', { good, x })).toThrow(
        new ShapeContractError(
          '@xattn/flash probe',
          'x',
          'x holds NaN or Infinity values (shape [2,3]); every element must be finite',
        ),
      ),
    )
    try {
      assertFinite('@xattn/flash probe', 'x', x)
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(ShapeContractError)
      expect((error as ShapeContractError).package).toBe('@xattn/flash')
      expect((error as ShapeContractError).tensor).toBe('x')
    }
    tf.dispose([good, x])
  })
})

describeEachBackend('checkAttendCall values and option keys', () => {
  const inputs = () => ({ q: tf.ones([1, 2, 3, 4]), k: tf.ones([1, 1, 5, 4]), v: tf.ones([1, 1, 5, 4]) })

  it.each(['q', 'k', 'v'] as const)('rejects a NaN in %s before any attention work', (name) => {
    const t = inputs()
    const bad = { ...t, [name]: tf.fill(t[name].shape, Number.NaN) }
    expectNoLeaks(() =>
      expect(() => attendReference(bad)).toThrow(
        `@xattn/core attendReference: ${name} holds NaN or Infinity values (shape [${t[name].shape.join(',')}]); every element must be finite`,
      ),
    )
    tf.dispose([...Object.values(t), bad[name]])
  })

  it('rejects an infinite bias', () => {
    const t = inputs()
    const bias = tf.fill([1, 1, 3, 5], Number.NEGATIVE_INFINITY)
    expect(() => attendReference(t, { bias })).toThrow(
      '@xattn/core attendReference: bias holds NaN or Infinity values (shape [1,1,3,5]); every element must be finite',
    )
    tf.dispose([...Object.values(t), bias])
  })

  it('rejects an unknown option key by name, listing the options', () => {
    const t = inputs()
    const call = () => attendReference(t, { causall: true } as never)
    expectNoLeaks(() =>
      expect(call).toThrow(
        new ConfigError(
          '@xattn/core',
          'causall',
          "@xattn/core attendReference: unknown option 'causall'; the options are causal, keyMask, bias, alibiSlopes, alibiFreeKeys, scale, dropout, training, seed",
        ),
      ),
    )
    expect(() => checkAttendCall('@xattn/x probe', t, { a: 1, causal: true, b: 2 } as never)).toThrow(
      "@xattn/x probe: unknown options 'a', 'b'; the options are",
    )
    // Every documented key (with undefined values) still passes.
    expect(() =>
      checkAttendCall('@xattn/x probe', t, {
        causal: undefined,
        keyMask: undefined,
        bias: undefined,
        alibiSlopes: undefined,
        alibiFreeKeys: undefined,
        scale: undefined,
        dropout: undefined,
        training: undefined,
        seed: undefined,
      } as never),
    ).not.toThrow()
    tf.dispose(Object.values(t))
  })
})
