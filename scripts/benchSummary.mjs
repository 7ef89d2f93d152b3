#!/usr/bin/env node
// Prints the headline rows of docs/benchmarks.md after `pnpm bench` has rewritten it: flash vs
// reference at N = 1024 and 2048, generation with and without the KV cache, training throughput,
// and the browser backends. The full tables stay in the file.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const docs = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'benchmarks.md')
const text = readFileSync(docs, 'utf8')

function section(name) {
  const begin = text.indexOf(`<!-- ${name}:begin -->`)
  const end = text.indexOf(`<!-- ${name}:end -->`)
  return begin >= 0 && end > begin ? text.slice(begin, end).split('\n') : []
}

function table(lines, keep = () => true) {
  const rows = lines.filter((line) => line.startsWith('|'))
  return rows.filter((line, i) => i < 2 || keep(line.split('|').map((cell) => cell.trim())))
}

const parts = [
  [
    'flash vs reference (N = 1024, 2048)',
    table(section('flash'), (cells) => ['1024', '2048'].includes(cells[2])),
  ],
  ['generation (KV cache)', table(section('generation'))],
  ['training throughput', table(section('training'))],
  ['browser backends', table(section('browser'))],
]
console.log(`\nBenchmark summary (full tables and commands: docs/benchmarks.md)`)
for (const [title, rows] of parts) {
  if (rows.length <= 2) continue
  console.log(`\n${title}`)
  for (const row of rows) console.log(row)
}
