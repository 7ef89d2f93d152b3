import '@tensorflow/tfjs-backend-cpu'
import '@tensorflow/tfjs-backend-wasm'
import * as tf from '@tensorflow/tfjs-core'
import { beforeAll, describe } from 'vitest'

export type TestBackend = 'cpu' | 'wasm'

/** The backends every numeric test runs on in Node. */
export const BACKENDS: readonly TestBackend[] = ['cpu', 'wasm']

/**
 * Runs a describe block once per backend, with that backend active for its tests.
 * Tests inside must not switch backends themselves.
 */
export function describeEachBackend(
  title: string,
  body: (backend: TestBackend) => void,
  backends: readonly TestBackend[] = BACKENDS,
): void {
  for (const backend of backends) {
    describe(`${title} [${backend}]`, () => {
      beforeAll(async () => {
        await tf.setBackend(backend)
        await tf.ready()
      })
      body(backend)
    })
  }
}
