import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { transformSync } from 'esbuild'
import { describe, expect, it } from 'vitest'

// Every ```ts block in the root README and the package READMEs is a program a user may paste: it
// runs here, type annotations stripped, against the built packages. Blocks fenced ```ts fragment
// are excerpts (a layer's internals, a file-based import) and are only documentation.

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const scratch = join(repoRoot, 'apps', 'integration', 'node_modules', '.cache', 'readme-examples')

const readmes = [
  'README.md',
  ...readdirSync(join(repoRoot, 'packages'))
    .map((name) => join('packages', name, 'README.md'))
    .filter((path) => {
      try {
        return (
          JSON.parse(readFileSync(join(repoRoot, dirname(path), 'package.json'), 'utf8')).private !== true
        )
      } catch {
        return false
      }
    }),
]

function blocksOf(readme: string): { runnable: string[]; fragments: number } {
  const text = readFileSync(join(repoRoot, readme), 'utf8')
  const fences = [...text.matchAll(/```ts( fragment)?\n([\s\S]*?)```/g)]
  return {
    runnable: fences.filter((m) => m[1] === undefined).map((m) => m[2] as string),
    fragments: fences.filter((m) => m[1] !== undefined).length,
  }
}

describe('README examples run as written (built packages)', () => {
  mkdirSync(scratch, { recursive: true })
  for (const readme of readmes) {
    const { runnable } = blocksOf(readme)
    it(`${readme} has a runnable example`, () => {
      expect(runnable.length).toBeGreaterThan(0)
    })
    runnable.forEach((source, index) => {
      it(`${readme} example ${index + 1} runs`, () => {
        const program = transformSync(source, { loader: 'ts', format: 'esm' }).code
        const file = join(scratch, `${relative(repoRoot, readme).replace(/[/.]/g, '_')}-${index + 1}.mjs`)
        writeFileSync(file, program)
        const run = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 120_000 })
        expect(run.stderr.split('\n').filter((line) => /Error|error:/.test(line))).toEqual([])
        expect(run.status, run.stderr).toBe(0)
      })
    })
  }
})
