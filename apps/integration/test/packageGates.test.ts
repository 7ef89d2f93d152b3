import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { describe, expect, it } from 'vitest'
import { packPackage, publicPackages, tarballFiles, tarballManifest } from './support/packing.js'

// Packaging gates on the tarballs users get (`pnpm pack` applies publishConfig and rewrites
// `workspace:` ranges): publint (strict: warnings fail too) and arethetypeswrong with the
// ESM-only profile (node10 and node16-cjs resolution are out of scope for ESM-only packages).
// Both tools run offline on a local tarball.

const attwBin = join(
  dirname(createRequire(import.meta.url).resolve('@arethetypeswrong/cli/package.json')),
  'dist',
  'index.js',
)

const packages = publicPackages()

describe('package gates', () => {
  it('finds the public packages', () => {
    expect(packages.map((p) => p.name)).toEqual(
      expect.arrayContaining([
        '@xattn/core',
        '@xattn/flash',
        '@xattn/kv-heads',
        '@xattn/memory-kv',
        '@xattn/transformer',
      ]),
    )
  })

  for (const pkg of packages) {
    describe(pkg.name, () => {
      it('publint (strict) reports nothing', async () => {
        const { tarball } = packPackage(pkg)
        const bytes = readFileSync(tarball)
        const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
        const { messages, pkg: manifest } = await publint({
          pack: { tarball: buffer },
          strict: true,
          level: 'suggestion',
        })
        const problems = messages.map((m) => `${m.type}: ${formatMessage(m, manifest) ?? m.code}`)
        expect(problems).toEqual([])
      })

      it('arethetypeswrong (esm-only profile) passes', () => {
        const { tarball } = packPackage(pkg)
        const run = spawnSync(
          process.execPath,
          [attwBin, tarball, '--profile', 'esm-only', '--format', 'ascii'],
          {
            encoding: 'utf8',
          },
        )
        expect(run.status, `attw output:\n${run.stdout}\n${run.stderr}`).toBe(0)
      })

      it('publishes dist only, with no source condition and no workspace: ranges', () => {
        const { tarball } = packPackage(pkg)
        const files = tarballFiles(tarball)
        const stray = files.filter(
          (f) => !(f === 'package.json' || f === 'README.md' || f === 'LICENSE' || f.startsWith('dist/')),
        )
        expect(stray, 'files outside dist/').toEqual([])
        expect(files).toContain('dist/index.js')
        expect(files).toContain('dist/index.d.ts')
        const manifest = tarballManifest(tarball)
        const text = JSON.stringify(manifest)
        expect(text, 'published manifest mentions the @xattn/source condition').not.toContain('@xattn/source')
        expect(text, 'published manifest keeps a workspace: range').not.toContain('workspace:')
        expect(manifest.type).toBe('module')
        const peers = (manifest.peerDependencies ?? {}) as Record<string, string>
        expect(
          peers['@tensorflow/tfjs-core'],
          'tfjs-core must be a peer (one engine, one kernel registry)',
        ).toBeDefined()
        const deps = (manifest.dependencies ?? {}) as Record<string, string>
        expect(deps['@tensorflow/tfjs-core'], 'tfjs-core must not be a regular dependency').toBeUndefined()
        if (pkg.name !== '@xattn/core') {
          expect(peers['@xattn/core'], 'satellite packages peer on @xattn/core').toBeDefined()
        }
        const exportsMap = manifest.exports as Record<string, unknown>
        expect(exportsMap['./internal/*'], 'internals are blocked').toBeNull()
      })
    })
  }
})
