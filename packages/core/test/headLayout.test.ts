import { describe, expect, it } from 'vitest'
import { ConfigError, headLayout } from '../src/index.js'

describe('headLayout', () => {
  it('derives groups and projection widths, frozen', () => {
    const layout = headLayout({ heads: 8, kvHeads: 2, dimHead: 16, valueDimHead: 4 })
    expect(layout).toEqual({
      heads: 8,
      kvHeads: 2,
      groups: 4,
      dimHead: 16,
      valueDimHead: 4,
      dimInner: 128,
      dimKvInner: 32,
      dimValueInner: 8,
      dimOutInner: 32,
    })
    expect(Object.isFrozen(layout)).toBe(true)
  })

  it('defaults to multi-head and maps oneKvHead to a single KV head', () => {
    expect(headLayout({ heads: 4, dimHead: 8 }).kvHeads).toBe(4)
    expect(headLayout({ heads: 4, oneKvHead: true, dimHead: 8 })).toMatchObject({ kvHeads: 1, groups: 4 })
  })

  it('rejects kvHeads that do not divide heads', () => {
    expect(() => headLayout({ heads: 6, kvHeads: 4, dimHead: 8 })).toThrow(
      new ConfigError(
        '@xattn/core',
        'kvHeads',
        'headLayout: kvHeads must divide heads, got heads=6, kvHeads=4',
      ),
    )
  })

  it('rejects oneKvHead together with kvHeads', () => {
    expect(() => headLayout({ heads: 4, kvHeads: 2, oneKvHead: true, dimHead: 8 })).toThrow(
      '@xattn/core: headLayout: give either oneKvHead or kvHeads, not both (got oneKvHead: true, kvHeads: 2)',
    )
  })

  it('rejects non-positive or fractional sizes', () => {
    expect(() => headLayout({ heads: 0, dimHead: 8 })).toThrow(
      '@xattn/core: headLayout: heads must be a positive integer, got 0',
    )
    expect(() => headLayout({ heads: 4, dimHead: 2.5 })).toThrow(
      '@xattn/core: headLayout: dimHead must be a positive integer, got 2.5',
    )
    expect(() => headLayout({ heads: 4, dimHead: 8, valueDimHead: -1 })).toThrow(
      'valueDimHead must be a positive integer',
    )
  })
})
