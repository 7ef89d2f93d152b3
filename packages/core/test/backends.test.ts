import * as tf from '@tensorflow/tfjs-core'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, useBackend } from '../src/index.js'

describe('useBackend', () => {
  afterAll(async () => {
    await tf.setBackend('cpu')
  })

  it('loads the wasm backend in Node with no setup and reports SIMD', async () => {
    const info = await useBackend('wasm')
    expect(info.name).toBe('wasm')
    expect(tf.getBackend()).toBe('wasm')
    expect(typeof info.simd).toBe('boolean')
    expect(info.threads).toBeGreaterThanOrEqual(1)
  })

  it('loads the cpu backend', async () => {
    expect(await useBackend('cpu')).toEqual({ name: 'cpu' })
  })

  it('names an unknown backend clearly', async () => {
    await expect(useBackend('tpu')).rejects.toThrow(ConfigError)
    await expect(useBackend('tpu')).rejects.toThrow(
      "useBackend: no TensorFlow.js backend named 'tpu' is registered",
    )
  })
})
