export { BACKENDS, describeEachBackend, type TestBackend } from './backends.js'
export { expectClose, maxAbsDiff } from './close.js'
export { expectNoLeaks, expectNoLeaksAsync } from './leaks.js'
export { randomMask, randomTensor, testRng } from './random.js'
