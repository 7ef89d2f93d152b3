import { mergeConfig } from 'vitest/config'
import { sourceConfig } from '../../vitest.shared'

// `pnpm bench`: times flash against the reference attention in headless Chromium per backend and
// writes the browser section of docs/benchmarks.md.
export default mergeConfig(sourceConfig({ testTimeout: 900_000 }), {
  test: {
    include: ['bench/**/*.bench.ts'],
    globalSetup: ['test/globalSetup.ts'],
    hookTimeout: 180_000,
    typecheck: { enabled: false },
  },
})
