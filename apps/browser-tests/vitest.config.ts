import { mergeConfig } from 'vitest/config'
import { sourceConfig } from '../../vitest.shared'

// Node computes the expected values on tfjs's cpu backend (the shared setup file); the page runs
// the same cases in headless Chromium.
export default mergeConfig(sourceConfig({ testTimeout: 120_000 }), {
  test: { globalSetup: ['test/globalSetup.ts'], hookTimeout: 180_000, fileParallelism: false },
})
