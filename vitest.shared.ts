import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

/** Registers the Node backends and activates cpu before each test file. */
export const TEST_SETUP_FILE = fileURLToPath(new URL('./packages/test-utils/src/setup.ts', import.meta.url))

// vitest 5's error reporter calls Map.groupBy, which Node 20 lacks (added in Node 21): without
// this, a failing test crashes the reporter instead of being reported.
export function polyfillMapGroupBy(): void {
  const mapConstructor = Map as unknown as { groupBy?: unknown }
  if (typeof mapConstructor.groupBy === 'function') return
  mapConstructor.groupBy = <K, V>(items: Iterable<V>, keyOf: (item: V, index: number) => K) => {
    const groups = new Map<K, V[]>()
    let index = 0
    for (const item of items) {
      const key = keyOf(item, index++)
      const group = groups.get(key)
      if (group === undefined) groups.set(key, [item])
      else group.push(item)
    }
    return groups
  }
}
polyfillMapGroupBy()

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
      setupFiles: [TEST_SETUP_FILE],
      testTimeout: options.testTimeout ?? 60_000,
      hookTimeout: 60_000,
      // Type tests (`*.test-d.ts`) are compiled by each package's `typecheck` task (tsc over src and
      // test), where an unused `@ts-expect-error` fails the build; running tsc again here is waste.
      typecheck: { enabled: false },
      // tfjs-core's gradient registrations are extensionless ESM; vite transforms them (and the
      // ops they import) instead of handing them to Node, which cannot load them.
      server: { deps: { inline: [/@xattn\//, /tfjs-core\/dist\/(?!tf-core)/] } },
    },
  })
}
