import * as tf from '@tensorflow/tfjs-core'
import { describe, expect, it } from 'vitest'
import { attendReference, ConfigError, getAttention, listAttention, registerAttention } from '../src/index.js'

describe('attention registry', () => {
  it('always has the reference implementation', () => {
    expect(getAttention('reference')).toBe(attendReference)
    expect(listAttention()[0]).toBe('reference')
  })

  it('says what to install for flash when it is not registered', () => {
    expect(() => getAttention('flash')).toThrow(
      new ConfigError(
        '@xattn/core',
        'attention',
        "no attention implementation named 'flash' is registered (registered: reference); install @xattn/flash and import it once (import '@xattn/flash')",
      ),
    )
  })

  it('registers and finds a custom implementation', () => {
    const doubled = (inputs: Parameters<typeof attendReference>[0]) =>
      tf.tidy(() => tf.mul(attendReference(inputs), 2) as tf.Tensor4D)
    registerAttention('doubled', doubled)
    expect(getAttention('doubled')).toBe(doubled)
    expect(listAttention()).toContain('doubled')
    expect(() => registerAttention('reference', doubled)).toThrow("'reference' is built in")
  })
})
