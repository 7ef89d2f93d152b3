/**
 * A pairwise covering array: a short list of rows (one value per axis) in which every pair of
 * values of every two axes appears in some row, plus any required higher-order tuples. Greedy
 * (AETG-style): each new row starts from an uncovered pair and fills the other axes with the
 * value that covers the most uncovered pairs, ties broken by a seeded generator; of several such
 * candidates the best is kept. Same axes + seed → same rows, and adding an axis value only adds
 * rows' worth of pairs, so the matrix grows with the features.
 */

/** Axis name → its values (strings, so rows print and compare plainly). */
export type Axes = Readonly<Record<string, readonly string[]>>

/** One combination: a value for every axis. */
export type Row = Readonly<Record<string, string>>

/** A partial row: values for some axes (a required tuple). */
export type Tuple = Readonly<Record<string, string>>

export interface CoveringOptions {
  /** Seed of the tie-breaking generator. */
  readonly seed: number
  /** Tuples (e.g. named triples) that must each appear in some row. */
  readonly required?: readonly Tuple[]
  /**
   * Tuples no row may contain (unsupported combinations, tested separately for their rejection).
   * A pair that is itself forbidden is not required to be covered.
   */
  readonly forbidden?: readonly Tuple[]
  /** Candidates tried per row; more gives shorter arrays. Default 24. */
  readonly candidates?: number
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const SEP = '\u0000'

/** Whether `row` (possibly partial) sets every axis of `tuple` to the tuple's value. */
function contains(row: Readonly<Record<string, string | undefined>>, tuple: Tuple): boolean {
  return Object.entries(tuple).every(([axis, value]) => row[axis] === value)
}
const pairKey = (a: string, va: string, b: string, vb: string) => [a, va, b, vb].join(SEP)

/** Every pair of (axis, value) over two different axes, as keys (axis order as in `axes`). */
function allPairs(axes: Axes, forbidden: readonly Tuple[] = []): Set<string> {
  const names = Object.keys(axes)
  const pairs = new Set<string>()
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const a = names[i] as string
      const b = names[j] as string
      for (const va of axes[a] ?? []) {
        for (const vb of axes[b] ?? []) {
          if (!forbidden.some((t) => contains({ [a]: va, [b]: vb }, t))) pairs.add(pairKey(a, va, b, vb))
        }
      }
    }
  }
  return pairs
}

function pairsOf(axes: Axes, row: Readonly<Record<string, string | undefined>>): string[] {
  const names = Object.keys(axes)
  const keys: string[] = []
  for (let i = 0; i < names.length; i++) {
    const a = names[i] as string
    const va = row[a]
    if (va === undefined) continue
    for (let j = i + 1; j < names.length; j++) {
      const b = names[j] as string
      const vb = row[b]
      if (vb !== undefined) keys.push(pairKey(a, va, b, vb))
    }
  }
  return keys
}

function validate(axes: Axes, required: readonly Tuple[], forbidden: readonly Tuple[]): void {
  for (const [name, values] of Object.entries(axes)) {
    if (values.length === 0) throw new Error(`covering array: axis '${name}' has no values`)
    if (new Set(values).size !== values.length)
      throw new Error(`covering array: axis '${name}' repeats a value`)
  }
  for (const tuple of [...required, ...forbidden]) {
    for (const [name, value] of Object.entries(tuple)) {
      if (!(axes[name] ?? []).includes(value)) {
        throw new Error(
          `covering array: required tuple ${JSON.stringify(tuple)} names ${name}=${value}, not an axis value`,
        )
      }
    }
  }
}

/** Builds the covering array. */
export function coveringArray(axes: Axes, options: CoveringOptions): Row[] {
  const required = options.required ?? []
  const forbidden = options.forbidden ?? []
  validate(axes, required, forbidden)
  for (const tuple of required) {
    if (forbidden.some((f) => contains(tuple, f))) {
      throw new Error(`covering array: required tuple ${JSON.stringify(tuple)} contains a forbidden one`)
    }
  }
  const rng = mulberry32(options.seed)
  const names = Object.keys(axes)
  const uncovered = allPairs(axes, forbidden)
  const rows: Row[] = []
  const candidates = options.candidates ?? 24

  // Fill the unset axes of `start` in a random order, each with the value covering the most
  // uncovered pairs given what is already set.
  const complete = (start: Record<string, string>): { row: Row; gain: number } => {
    const row: Record<string, string> = { ...start }
    const order = names.filter((n) => row[n] === undefined)
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1))
      ;[order[i], order[j]] = [order[j] as string, order[i] as string]
    }
    for (const name of order) {
      let best: string[] = []
      let bestGain = -1
      for (const value of axes[name] ?? []) {
        if (forbidden.some((t) => contains({ ...row, [name]: value }, t))) continue
        const gain = pairsOf(axes, { ...row, [name]: value }).filter((k) => uncovered.has(k)).length
        if (gain > bestGain) {
          bestGain = gain
          best = [value]
        } else if (gain === bestGain) best.push(value)
      }
      if (best.length === 0) return { row: {}, gain: -1 }
      row[name] = best[Math.floor(rng() * best.length)] as string
    }
    // Axis order, so rows print the same way whatever order the axes were filled in.
    const ordered = Object.fromEntries(names.map((n) => [n, row[n] as string]))
    return { row: ordered, gain: pairsOf(axes, ordered).filter((k) => uncovered.has(k)).length }
  }
  const accept = (row: Row) => {
    rows.push(row)
    for (const k of pairsOf(axes, row)) uncovered.delete(k)
  }

  for (const tuple of required) {
    let best: { row: Row; gain: number } | null = null
    for (let c = 0; c < candidates; c++) {
      const candidate = complete({ ...tuple })
      if (best === null || candidate.gain > best.gain) best = candidate
    }
    if (best === null || best.gain < 0) {
      throw new Error(`covering array: no allowed row contains ${JSON.stringify(tuple)}`)
    }
    accept(best.row)
  }
  while (uncovered.size > 0) {
    const seeds = [...uncovered]
    let best: { row: Row; gain: number } | null = null
    for (let c = 0; c < candidates; c++) {
      const key = seeds[Math.floor(rng() * seeds.length)] as string
      const [a, va, b, vb] = key.split(SEP) as [string, string, string, string]
      const candidate = complete({ [a]: va, [b]: vb })
      if (best === null || candidate.gain > best.gain) best = candidate
    }
    // A pair that no allowed row can hold (e.g. forbidden triples around it) stops the loop;
    // uncoveredPairs then names it.
    if (best === null || best.gain <= 0) break
    accept(best.row)
  }
  return rows
}

/**
 * The pairs of axis values that no row covers, as `'a=x & b=y'` (empty for a covering array).
 * Forbidden pairs are not expected.
 */
export function uncoveredPairs(axes: Axes, rows: readonly Row[], forbidden: readonly Tuple[] = []): string[] {
  const uncovered = allPairs(axes, forbidden)
  for (const row of rows) for (const k of pairsOf(axes, row)) uncovered.delete(k)
  return [...uncovered].map((k) => {
    const [a, va, b, vb] = k.split(SEP)
    return `${a}=${va} & ${b}=${vb}`
  })
}

/** The required tuples that no row contains. */
export function missingTuples(rows: readonly Row[], tuples: readonly Tuple[]): Tuple[] {
  return tuples.filter(
    (tuple) => !rows.some((row) => Object.entries(tuple).every(([axis, value]) => row[axis] === value)),
  )
}
