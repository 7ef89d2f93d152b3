import { mergeConfig } from 'vitest/config'
import { sourceConfig } from '../../vitest.shared'

// `pnpm bench`: times flash against the reference attention in headless Chromium per backend and
// writes the browser section of docs/benchmarks.md.
const config = mergeConfig(sourceConfig({ testTimeout: 900_000 }), {
  test: { globalSetup: ['test/globalSetup.ts'], hookTimeout: 180_000, typecheck: { enabled: false } },
})
// mergeConfig concatenates arrays: replace the test files instead of adding to them.
config.test = { ...config.test, include: ['bench/**/*.bench.ts'] }
export default config
