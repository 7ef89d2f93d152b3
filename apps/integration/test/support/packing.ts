import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The monorepo root (this file is apps/integration/test/support/packing.ts). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')

export interface PublicPackage {
  /** `@xattn/core` */
  readonly name: string
  /** Folder name under packages/ (= the name without scope). */
  readonly folder: string
  readonly dir: string
  readonly manifest: Readonly<Record<string, unknown>>
}

/** Every package under packages/, private ones included (see {@link publicPackages}). */
export function workspacePackages(): PublicPackage[] {
  const root = join(REPO_ROOT, 'packages')
  return readdirSync(root)
    .sort()
    .flatMap((folder) => {
      const path = join(root, folder, 'package.json')
      if (!existsSync(path)) return []
      const manifest = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
      return [{ name: String(manifest.name), folder, dir: join(root, folder), manifest }]
    })
}

/** Every non-private package under packages/: the ones users install. */
export function publicPackages(): PublicPackage[] {
  return workspacePackages().filter((pkg) => pkg.manifest.private !== true)
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((entry) => join(dir, entry))
    .filter((path) => statSync(path).isFile())
    .sort()
}

/**
 * A hash of everything `pnpm pack` reads for one package: its manifest, README and LICENSE, its
 * `dist`, and every workspace manifest (pack rewrites `workspace:` ranges to the siblings' versions).
 */
function packInputsHash(pkg: PublicPackage): string {
  const hash = createHash('sha256')
  const inputs = [
    join(pkg.dir, 'package.json'),
    join(pkg.dir, 'README.md'),
    join(pkg.dir, 'LICENSE'),
    ...filesUnder(join(pkg.dir, 'dist')),
  ]
  for (const other of workspacePackages()) inputs.push(join(other.dir, 'package.json'))
  for (const path of inputs) {
    if (!existsSync(path)) continue
    hash.update(relative(REPO_ROOT, path))
    hash.update(readFileSync(path))
  }
  return hash.digest('hex')
}

/**
 * Packs a package with `pnpm pack` (which applies `publishConfig` and rewrites `workspace:`
 * ranges) into `destination`, a folder that belongs to this test run alone (see globalSetup.ts).
 * Requires a prior build (`dist`). Returns the tarball's path.
 */
export function packPackage(pkg: PublicPackage, destination: string): string {
  if (!existsSync(join(pkg.dir, 'dist'))) {
    throw new Error(
      `${pkg.name} has no dist/: run 'pnpm exec turbo run build --filter=@xattn/integration...' first`,
    )
  }
  const tarball = join(destination, `${pkg.folder}.tgz`)
  // The working tree may be shared with a build rewriting dist/ right now (another shell): a pack
  // counts only if its inputs hash the same before and after it.
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = packInputsHash(pkg)
    const work = join(destination, `.pack-${pkg.folder}-${attempt}`)
    mkdirSync(work, { recursive: true })
    try {
      const [command, ...prefix] = pnpmCommand()
      execFileSync(command as string, [...prefix, 'pack', '--pack-destination', work], {
        cwd: pkg.dir,
        stdio: 'pipe',
      })
      const [produced] = readdirSync(work).filter((f) => f.endsWith('.tgz'))
      if (produced === undefined) throw new Error(`pnpm pack produced no tarball for ${pkg.name}`)
      if (packInputsHash(pkg) === before) {
        renameSync(join(work, produced), tarball)
        return tarball
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

/** A file inside a tarball, as published (`path` without the leading `package/`). */
export function tarballText(tarball: string, path: string): string {
  return execFileSync('tar', ['-xzOf', tarball, `package/${path}`], { encoding: 'utf8' })
}

/** The package.json inside a tarball, as published. */
export function tarballManifest(tarball: string): Record<string, unknown> {
  return JSON.parse(tarballText(tarball, 'package.json'))
}
