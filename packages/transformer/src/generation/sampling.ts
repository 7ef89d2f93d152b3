import { ConfigError, type SeededRandom } from '@xattn/core'

const PKG = '@xattn/transformer'

/** Logit filters applied before sampling (to raw logits, before the temperature, as x-transformers). */
export type LogitFilter = { readonly topK: number } | { readonly topP: number } | { readonly minP: number }

/** Checks a filter's option by name before any work. */
export function checkFilter(filter: LogitFilter | undefined, numTokens: number): void {
  if (filter === undefined) return
  if ('topK' in filter) {
    if (!Number.isInteger(filter.topK) || filter.topK < 1 || filter.topK > numTokens) {
      throw new ConfigError(
        PKG,
        'filter.topK',
        `generate: filter.topK must be an integer in [1, ${numTokens}], got ${filter.topK}`,
      )
    }
  } else if ('topP' in filter) {
    if (!(filter.topP > 0 && filter.topP <= 1)) {
      throw new ConfigError(PKG, 'filter.topP', `generate: filter.topP must be in (0, 1], got ${filter.topP}`)
    }
  } else if ('minP' in filter) {
    if (!(filter.minP >= 0 && filter.minP <= 1)) {
      throw new ConfigError(PKG, 'filter.minP', `generate: filter.minP must be in [0, 1], got ${filter.minP}`)
    }
  } else {
    throw new ConfigError(
      PKG,
      'filter',
      `generate: filter must be { topK } | { topP } | { minP }, got ${JSON.stringify(filter)}`,
    )
  }
}

/** Index of the largest value; ties go to the lowest index (torch.argmax on CPU does the same). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0
  let bestValue = Number.NEGATIVE_INFINITY
  for (let i = 0; i < row.length; i++) {
    const value = row[i] as number
    if (value > bestValue) {
      bestValue = value
      best = i
    }
  }
  return best
}

function softmax(row: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i] as number)
  const out = new Float64Array(row.length)
  let sum = 0
  for (let i = 0; i < row.length; i++) {
    const e = (row[i] as number) === Number.NEGATIVE_INFINITY ? 0 : Math.exp((row[i] as number) - max)
    out[i] = e
    sum += e
  }
  for (let i = 0; i < row.length; i++) out[i] = (out[i] as number) / sum
  return out
}

/**
 * Applies a filter to one row of logits: removed entries become −∞.
 * - topK: keeps the k largest (ties at the k-th value kept).
 * - topP (nucleus): keeps the smallest prefix of the descending order whose probability mass
 *   reaches p (the most likely token is always kept).
 * - minP: keeps tokens whose probability is at least `minP · max probability`.
 *
 * @example
 * filterLogits([2, 1, 0, -1], { topK: 2 }) // [2, 1, -Infinity, -Infinity]
 */
export function filterLogits(row: ArrayLike<number>, filter: LogitFilter): Float64Array {
  const out = Float64Array.from(row as ArrayLike<number>)
  const order = () => Array.from(out.keys()).sort((a, b) => (out[b] as number) - (out[a] as number))
  if ('topK' in filter) {
    const kth = out[order()[filter.topK - 1] as number] as number
    for (let i = 0; i < out.length; i++) if ((out[i] as number) < kth) out[i] = Number.NEGATIVE_INFINITY
  } else if ('topP' in filter) {
    const probs = softmax(out)
    const sorted = order()
    let cumulative = 0
    let remove = false
    for (const index of sorted) {
      // A token is removed once the mass *before* it already exceeds p.
      if (remove) out[index] = Number.NEGATIVE_INFINITY
      cumulative += probs[index] as number
      if (cumulative > filter.topP) remove = true
    }
  } else {
    const probs = softmax(out)
    let max = 0
    for (const p of probs) max = Math.max(max, p)
    const limit = filter.minP * max
    for (let i = 0; i < out.length; i++) if ((probs[i] as number) < limit) out[i] = Number.NEGATIVE_INFINITY
  }
  return out
}

/**
 * Picks the next token from one row of logits: greedy (argmax) at temperature 0, else a draw from
 * `softmax(filter(logits) / temperature)` using `rng`.
 *
 * @example
 * const rng = new SeededRandom(0)
 * sampleToken(logitsRow, { temperature: 0.8, filter: { topP: 0.9 }, rng }) // a token id
 */
export function sampleToken(
  row: ArrayLike<number>,
  { temperature, filter, rng }: { temperature: number; filter?: LogitFilter | undefined; rng: SeededRandom },
): number {
  if (temperature === 0) return argmax(filter === undefined ? row : filterLogits(row, filter))
  const filtered =
    filter === undefined ? Float64Array.from(row as ArrayLike<number>) : filterLogits(row, filter)
  for (let i = 0; i < filtered.length; i++) filtered[i] = (filtered[i] as number) / temperature
  const probs = softmax(filtered)
  let u = rng.uniform()
  for (let i = 0; i < probs.length; i++) {
    u -= probs[i] as number
    if (u < 0) return i
  }
  // Rounding left a sliver of mass: take the last token that has any.
  for (let i = probs.length - 1; i >= 0; i--) if ((probs[i] as number) > 0) return i
  return 0
}
