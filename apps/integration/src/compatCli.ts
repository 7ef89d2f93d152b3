// Regenerates docs/compatibility.md from the combination matrix run on the built packages.
// Usage: pnpm --filter @xattn/integration run compat [--check]
import { readFileSync, writeFileSync } from 'node:fs'
import {
  compatibilityPath,
  knownBugFor,
  matrixRows,
  modelMatrixRows,
  renderCompatibility,
} from './matrix/compatDoc.js'
import { MODEL_AXES, MODEL_FORBIDDEN } from './matrix/modelAxes.js'
import { probeRejection, REJECTIONS } from './matrix/rejections.js'
import { runCombination } from './matrix/runCombination.js'
import { probeForbidden, runModelCombination } from './matrix/runModelCombination.js'

async function main(): Promise<void> {
  const check = process.argv.includes('--check')
  const results = []
  for (const row of matrixRows()) results.push(await runCombination(row))
  const rejections = REJECTIONS.map((probe) => ({ probe, message: probeRejection(probe).message }))
  const modelResults = []
  for (const row of modelMatrixRows()) modelResults.push(await runModelCombination(row))
  const forbidden = MODEL_FORBIDDEN.map((f) => ({
    forbidden: f,
    message: probeForbidden(f, MODEL_AXES).message,
  }))
  const text = renderCompatibility(results, rejections, { results: modelResults, forbidden })
  const path = compatibilityPath()
  // Known bugs (MODEL_KNOWN_BUGS) excuse their own invariant only.
  const failed = [...results, ...modelResults].filter(
    (r) =>
      r.status !== 'ok' || r.checks.some((c) => !c.ok && knownBugFor(r.combination, c.name) === undefined),
  ).length
  if (check) {
    const current = readFileSync(path, 'utf8')
    if (current !== text) {
      process.stderr.write(`${path} is stale: run pnpm --filter @xattn/integration run compat\n`)
      process.exit(1)
    }
  } else {
    writeFileSync(path, text)
    process.stderr.write(
      `wrote ${path}: ${results.length} + ${modelResults.length} combinations, ${failed} failing\n`,
    )
  }
  if (failed > 0) process.exit(1)
}

await main()
