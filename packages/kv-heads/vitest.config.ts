import { sourceConfig } from '../../vitest.shared'

export default sourceConfig()
