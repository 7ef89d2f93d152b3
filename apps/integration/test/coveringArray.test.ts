import { describe, expect, it } from 'vitest'
import { type Axes, coveringArray, missingTuples, type Row, uncoveredPairs } from '../src/coveringArray.js'

// The checker (uncoveredPairs) is tested on hand-made rows first, so that the generator's
// tests do not rely on a checker that could share its bug.

const small: Axes = { a: ['0', '1'], b: ['0', '1'], c: ['0', '1'] }

describe('uncoveredPairs (the checker)', () => {
  it('finds nothing missing in the full factorial', () => {
    const rows: Row[] = []
    for (const a of ['0', '1']) for (const b of ['0', '1']) for (const c of ['0', '1']) rows.push({ a, b, c })
    expect(uncoveredPairs(small, rows)).toEqual([])
  })

  it('accepts the classic 4-row pairwise array for three binary axes', () => {
    const rows = [
      { a: '0', b: '0', c: '0' },
      { a: '0', b: '1', c: '1' },
      { a: '1', b: '0', c: '1' },
      { a: '1', b: '1', c: '0' },
    ]
    expect(uncoveredPairs(small, rows)).toEqual([])
  })

  it('names exactly the missing pairs', () => {
    const rows = [
      { a: '0', b: '0', c: '0' },
      { a: '1', b: '1', c: '1' },
    ]
    expect(uncoveredPairs(small, rows).sort()).toEqual(
      ['a=0 & b=1', 'a=1 & b=0', 'a=0 & c=1', 'a=1 & c=0', 'b=0 & c=1', 'b=1 & c=0'].sort(),
    )
  })

  it('missingTuples names the required tuples no row contains', () => {
    const rows = [{ a: '0', b: '0', c: '1' }]
    expect(missingTuples(rows, [{ a: '0', c: '1' }, { a: '1' }])).toEqual([{ a: '1' }])
  })
})

describe('coveringArray (the generator)', () => {
  const axes: Axes = {
    heads: ['MHA', 'GQA', 'MQA'],
    memKv: ['0', '2'],
    attention: ['reference', 'flash'],
    backend: ['cpu', 'wasm'],
    mask: ['none', 'padded', 'fullyPadded'],
    positions: ['none', 'alibi', 'rotary', 'xpos', 't5'],
    cache: ['off', 'on'],
  }
  const required = [
    { heads: 'MQA', memKv: '2', attention: 'flash' },
    { heads: 'GQA', memKv: '2', cache: 'on' },
  ]

  it('covers every pair and every required tuple, with one value per axis', () => {
    for (const seed of [1, 2, 3, 42]) {
      const rows = coveringArray(axes, { seed, required })
      expect(uncoveredPairs(axes, rows)).toEqual([])
      expect(missingTuples(rows, required)).toEqual([])
      for (const row of rows) {
        expect(Object.keys(row).sort()).toEqual(Object.keys(axes).sort())
        for (const [axis, value] of Object.entries(row)) expect(axes[axis]).toContain(value)
      }
    }
  })

  it('is far smaller than the full factorial and not smaller than the largest axis product', () => {
    const rows = coveringArray(axes, { seed: 7, required })
    // Lower bound: the two largest axes (5 × 3) need 15 distinct rows.
    expect(rows.length).toBeGreaterThanOrEqual(15)
    // Full factorial: 3·2·2·2·3·5·2 = 720.
    expect(rows.length).toBeLessThanOrEqual(30)
  })

  it('is reproducible from its seed and varies with it', () => {
    expect(coveringArray(axes, { seed: 5, required })).toEqual(coveringArray(axes, { seed: 5, required }))
    expect(coveringArray(axes, { seed: 5, required })).not.toEqual(coveringArray(axes, { seed: 6, required }))
  })

  it('grows with the axes: a new value is covered with every other value', () => {
    const grown = { ...axes, positions: [...(axes.positions ?? []), 'dynamic'] }
    const rows = coveringArray(grown, { seed: 5, required })
    expect(uncoveredPairs(grown, rows)).toEqual([])
    expect(rows.some((r) => r.positions === 'dynamic' && r.heads === 'MQA')).toBe(true)
  })

  it('rejects empty axes, repeated values and required tuples with unknown values', () => {
    expect(() => coveringArray({ a: [] }, { seed: 1 })).toThrow(/axis 'a' has no values/)
    expect(() => coveringArray({ a: ['x', 'x'] }, { seed: 1 })).toThrow(/repeats/)
    expect(() => coveringArray(small, { seed: 1, required: [{ a: '7' }] })).toThrow(/a=7/)
  })

  it('never emits a forbidden tuple, and covers every allowed pair', () => {
    const forbidden = [
      { positions: 'xpos', mask: 'none' },
      { memKv: '2', cache: 'on', heads: 'MQA' },
    ]
    const rows = coveringArray(axes, { seed: 3, forbidden })
    expect(missingTuples(rows, forbidden)).toEqual(forbidden)
    expect(uncoveredPairs(axes, rows, forbidden)).toEqual([])
    // The allowed parts of the forbidden triple still meet pairwise.
    expect(rows.some((r) => r.memKv === '2' && r.cache === 'on')).toBe(true)
    // Without the forbidden list, the checker does expect the forbidden pair.
    expect(uncoveredPairs(axes, rows)).toEqual(['mask=none & positions=xpos'])
  })

  it('rejects a required tuple that contains a forbidden one', () => {
    expect(() =>
      coveringArray(small, { seed: 1, required: [{ a: '0', b: '1' }], forbidden: [{ a: '0' }] }),
    ).toThrow(/forbidden/)
  })
})
