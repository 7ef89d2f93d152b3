import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The monorepo root (this file is apps/integration/test/support/packing.ts). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')

/**
 * Scratch space outside the workspace: tarballs and scenario projects live here so that npm in a
 * scenario never sees the pnpm workspace (no hoisted @xattn/* to fall back on by accident).
 */
export const SCRATCH_ROOT = join(
  tmpdir(),
  `xattn-integration-${createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 8)}`,
)

/**
 * Whether a stale scratch entry may go: only when untouched for 15 minutes, so a run that
 * started earlier (with other dist contents) is not robbed of its tarball or install.
 */
export function isStale(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs > 15 * 60 * 1000
  } catch {
    return false
  }
}

export interface PublicPackage {
  /** `@xattn/core` */
  readonly name: string
  /** Folder name under packages/ (= the name without scope). */
  readonly folder: string
  readonly dir: string
  readonly manifest: Readonly<Record<string, unknown>>
}

/** Every non-private package under packages/: the ones users install. */
export function publicPackages(): PublicPackage[] {
  const root = join(REPO_ROOT, 'packages')
  return readdirSync(root)
    .sort()
    .flatMap((folder) => {
      const path = join(root, folder, 'package.json')
      if (!existsSync(path)) return []
      const manifest = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
      if (manifest.private === true) return []
      return [{ name: String(manifest.name), folder, dir: join(root, folder), manifest }]
    })
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((entry) => join(dir, entry))
    .filter((path) => statSync(path).isFile())
    .sort()
}

/**
 * A hash of everything `pnpm pack` reads for one package: its manifest and README, its `dist`,
 * and every workspace manifest (pack rewrites `workspace:^` ranges to the siblings' versions).
 */
function packInputsHash(pkg: PublicPackage): string {
  const hash = createHash('sha256')
  const inputs = [
    join(pkg.dir, 'package.json'),
    join(pkg.dir, 'README.md'),
    ...filesUnder(join(pkg.dir, 'dist')),
  ]
  for (const other of publicPackages()) inputs.push(join(other.dir, 'package.json'))
  for (const path of inputs) {
    if (!existsSync(path)) continue
    hash.update(relative(REPO_ROOT, path))
    hash.update(readFileSync(path))
  }
  return hash.digest('hex').slice(0, 16)
}

/**
 * Packs a package with `pnpm pack` (which applies `publishConfig` and rewrites `workspace:`
 * ranges), caching the tarball by the hash of its inputs. Requires a prior build (`dist`).
 */
export function packPackage(pkg: PublicPackage, { prune = false } = {}): { tarball: string; hash: string } {
  if (!existsSync(join(pkg.dir, 'dist'))) {
    throw new Error(
      `${pkg.name} has no dist/: run 'pnpm exec turbo run build --filter=@xattn/integration...' first`,
    )
  }
  const dir = join(SCRATCH_ROOT, 'tarballs')
  // The working tree is shared with builds that may be rewriting dist/ right now: a pack counts
  // only if the inputs hash the same before and after it.
  for (let attempt = 0; attempt < 5; attempt++) {
    const hash = packInputsHash(pkg)
    const tarball = join(dir, `${pkg.folder}-${hash}.tgz`)
    if (existsSync(tarball)) return { tarball, hash }
    // Stale tarballs of this package (other hashes) go only when one process packs (the global
    // setup): a test worker pruning could delete a tarball another worker has just made.
    for (const entry of prune && existsSync(dir) ? readdirSync(dir) : []) {
      const path = join(dir, entry)
      if (entry.startsWith(`${pkg.folder}-`) && entry.endsWith('.tgz') && isStale(path)) {
        rmSync(path, { force: true })
      }
    }
    const work = join(dir, `tmp-${pkg.folder}-${process.pid}-${Date.now()}`)
    mkdirSync(work, { recursive: true })
    try {
      const [command, ...prefix] = pnpmCommand()
      execFileSync(command as string, [...prefix, 'pack', '--pack-destination', work], {
        cwd: pkg.dir,
        stdio: 'pipe',
      })
      const [produced] = readdirSync(work).filter((f) => f.endsWith('.tgz'))
      if (produced === undefined) throw new Error(`pnpm pack produced no tarball for ${pkg.name}`)
      if (packInputsHash(pkg) === hash) {
        renameSync(join(work, produced), tarball)
        return { tarball, hash }
      }
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
    execFileSync('sleep', ['2'])
  }
  throw new Error(`${pkg.name}: dist/ kept changing while packing (a build running?)`)
}

/**
 * How to run pnpm: the pnpm that runs this test (`npm_execpath`, set by `pnpm run`) when there is
 * one, so a pnpm that is not on PATH (bootstrap's private copy) still works; else `pnpm`.
 */
function pnpmCommand(): string[] {
  const execPath = process.env.npm_execpath
  if (execPath === undefined || !/pnpm/.test(execPath) || !existsSync(execPath)) return ['pnpm']
  // A JavaScript entry runs under this Node; pnpm's own executable runs as is.
  return /\.[cm]?js$/.test(execPath) ? [process.execPath, execPath] : [execPath]
}

/** Lists the files in a tarball (paths without the leading `package/`). */
export function tarballFiles(tarball: string): string[] {
  return execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.replace(/^package\//, ''))
    .sort()
}

/** The package.json inside a tarball, as published. */
export function tarballManifest(tarball: string): Record<string, unknown> {
  return JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }))
}
