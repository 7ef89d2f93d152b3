import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { describe, expect, it } from 'vitest'
import {
  publicPackages,
  REPO_ROOT,
  tarballFiles,
  tarballManifest,
  tarballText,
  workspacePackages,
} from './support/packing.js'
import { tarballOf } from './support/scratch.js'

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
        const tarball = tarballOf(pkg.name)
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
        const tarball = tarballOf(pkg.name)
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
        const tarball = tarballOf(pkg.name)
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

      // npm and pnpm put LICENSE in every tarball whatever `files` says; this checks it is there
      // (the folder has its copy of the root LICENSE) and agrees with the manifest's `license`.
      it('ships the MIT LICENSE, matching the manifest', () => {
        const tarball = tarballOf(pkg.name)
        expect(tarballFiles(tarball)).toContain('LICENSE')
        const license = tarballText(tarball, 'LICENSE')
        expect(license).toMatch(/^MIT License\n/)
        expect(license).toContain('Copyright (c) 2026 the xattn authors')
        expect(license).toBe(readFileSync(join(REPO_ROOT, 'LICENSE'), 'utf8'))
        expect(tarballManifest(tarball).license).toBe('MIT')
      })

      // What users install must not need a private workspace package. devDependencies are exempt:
      // npm, pnpm and yarn never install the devDependencies of a package that is itself a
      // dependency, and pnpm's publishConfig cannot drop them, so the published manifest keeps
      // e.g. `"@xattn/test-utils": "0.0.0"` there. That is harmless: it is never resolved, and the
      // @xattn scope belongs to this project, so nobody else can publish a package by that name.
      it('needs no private workspace package at install time', () => {
        const manifest = tarballManifest(tarballOf(pkg.name))
        const privateNames = workspacePackages()
          .filter((p) => p.manifest.private === true)
          .map((p) => p.name)
        expect(privateNames, 'the private workspace packages').toContain('@xattn/test-utils')
        for (const field of [
          'dependencies',
          'peerDependencies',
          'optionalDependencies',
          'bundleDependencies',
        ]) {
          const value = manifest[field] ?? {}
          const names = Array.isArray(value) ? value.map(String) : Object.keys(value)
          expect(
            names.filter((name) => privateNames.includes(name)),
            `${field} names a private package`,
          ).toEqual([])
        }
        const devNames = Object.keys((manifest.devDependencies ?? {}) as Record<string, string>)
        for (const name of devNames.filter((n) => privateNames.includes(n))) {
          expect(name, 'a private devDependency outside the project scope').toMatch(/^@xattn\//)
        }
      })
    })
  }
})
