// Vitest setup for every package: both Node backends are registered and cpu is active, so a test
// can create tensors without ceremony; `describeEachBackend` switches per block.
import '@tensorflow/tfjs-backend-cpu'
import '@tensorflow/tfjs-backend-wasm'
import * as tf from '@tensorflow/tfjs-core'
import { beforeAll } from 'vitest'

beforeAll(async () => {
  await tf.setBackend('cpu')
  await tf.ready()
})
