import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { packPackage, publicPackages } from './packing.js'
import './scratch.js'

/**
 * Gives this test run a scratch folder of its own (mkdtemp under the OS temp folder, outside the
 * workspace so npm in a scenario never sees the pnpm workspace), packs every public package into
 * it once, and hands both to the workers. Nothing in it is shared with another run (another
 * shell, another clone, CI), so no run can delete what another is using, and there is nothing to
 * prune: the folder goes when the run ends. Only npm's own cache is shared, which npm makes safe
 * for concurrent use. Set XATTN_KEEP_SCRATCH=1 to keep the folder for a look afterwards.
 */
export default function setup(project: TestProject): () => void {
  const scratch = mkdtempSync(join(tmpdir(), 'xattn-integration-run-'))
  const cleanup = (): void => {
    if (process.env.XATTN_KEEP_SCRATCH === '1') {
      process.stderr.write(`[xattn] kept the integration scratch folder ${scratch}\n`)
    } else {
      rmSync(scratch, { recursive: true, force: true })
    }
  }
  try {
    const tarballDir = join(scratch, 'tarballs')
    mkdirSync(tarballDir)
    const tarballs: Record<string, string> = {}
    for (const pkg of publicPackages()) tarballs[pkg.name] = packPackage(pkg, tarballDir)
    project.provide('xattnScratch', scratch)
    project.provide('xattnTarballs', tarballs)
  } catch (error) {
    cleanup()
    throw error
  }
  return cleanup
}
