import { defineConfig } from 'vitest/config'
import { polyfillMapGroupBy } from '../../vitest.shared'

polyfillMapGroupBy()

// The test builds the page with Vite and drives it in headless Chromium; nothing runs in Node's tfjs.
export default defineConfig({
  test: { include: ['test/**/*.test.ts'], testTimeout: 240_000, hookTimeout: 240_000 },
})
