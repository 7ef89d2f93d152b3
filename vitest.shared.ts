import { defineConfig } from 'vitest/config'

/**
 * Vitest config for workspace packages: `@xattn/*` imports resolve to their TypeScript sources
 * through the `@xattn/source` export condition, so tests never need a prior build.
 * `apps/integration` deliberately does not use it: it tests the built `dist`.
 */
export function sourceConfig(options: { testTimeout?: number } = {}) {
  return defineConfig({
    resolve: { conditions: ['@xattn/source', 'module', 'node', 'import', 'default'] },
    ssr: { resolve: { conditions: ['@xattn/source', 'module', 'node', 'import', 'default'] } },
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: options.testTimeout ?? 60_000,
      hookTimeout: 60_000,
      typecheck: { enabled: true, include: ['src/**/*.test-d.ts', 'test/**/*.test-d.ts'] },
      server: { deps: { inline: [/@xattn\//] } },
    },
  })
}
