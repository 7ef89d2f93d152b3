import { defineConfig } from 'vitest/config'
import { polyfillMapGroupBy } from '../../vitest.shared'

polyfillMapGroupBy()

// No `@xattn/source` condition here: the integration app tests the built packages (`dist`).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/globalSetup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
})
