import { sourceConfig } from '../../vitest.shared'

// Tests run against the workspace sources (like the packages); `npm run demo` runs the built dist.
export default sourceConfig({ testTimeout: 120_000 })
