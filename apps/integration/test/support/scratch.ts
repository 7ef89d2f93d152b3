import { inject } from 'vitest'

// What globalSetup.ts hands to the test workers (vitest's provide/inject): this run's own scratch
// folder and the tarballs it packed there once.
declare module 'vitest' {
  export interface ProvidedContext {
    /** A folder made by mkdtemp for this test run alone; removed when the run ends. */
    xattnScratch: string
    /** Package name (`@xattn/core`) → its `pnpm pack` tarball inside the scratch folder. */
    xattnTarballs: Record<string, string>
  }
}

/** This test run's scratch folder (see globalSetup.ts). */
export function scratchDir(): string {
  return inject('xattnScratch')
}

/** The tarball globalSetup.ts packed for a public package, by name. */
export function tarballOf(name: string): string {
  const tarball = inject('xattnTarballs')[name]
  if (tarball === undefined) throw new Error(`globalSetup packed no tarball for ${name}`)
  return tarball
}
