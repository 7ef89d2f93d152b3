import { describe, expect, it } from 'vitest'
import { type FlashDims, type FlashParams, flashBackward, flashForward } from './flashCompute.js'
import { loopOracle } from './loopOracle.js'

function rng(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function uniform(size: number, next: () => number, scale = 1): Float32Array {
  const a = new Float32Array(size)
  for (let i = 0; i < size; i++) a[i] = (next() * 2 - 1) * scale
  return a
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs((a[i] as number) - (b[i] as number))
    if (!(diff <= worst)) worst = diff
  }
  return worst
}

interface Case {
  dims: FlashDims
  params: FlashParams
  mask: boolean
  bias: boolean
  /** Overrides the random key mask: whether key j of batch b is visible. */
  visible?: (b: number, j: number) => boolean
}

function runCase({ dims, params, mask, bias, visible }: Case, seed: number) {
  const next = rng(seed)
  const { b, h, kvh, n, m, d, dv } = dims
  const q = uniform(b * h * n * d, next)
  const k = uniform(b * kvh * m * d, next)
  const v = uniform(b * kvh * m * dv, next)
  const keyMask = mask ? Uint8Array.from({ length: b * m }, () => (next() < 0.7 ? 1 : 0)) : null
  if (keyMask !== null && b > 1) keyMask.fill(0, 0, m)
  if (keyMask !== null && visible !== undefined) {
    for (let e = 0; e < keyMask.length; e++) keyMask[e] = visible(Math.floor(e / m), e % m) ? 1 : 0
  }
  const biasArr = bias ? uniform(params.biasBatch * params.biasHeads * n * m, next) : null
  const dOut = uniform(b * h * n * dv, next)
  const out = new Float32Array(b * h * n * dv)
  const lse = new Float32Array(b * h * n)
  flashForward(dims, params, { q, k, v, keyMask, bias: biasArr, out, lse })
  const dq = new Float32Array(q.length)
  const dk = new Float32Array(k.length)
  const dvArr = new Float32Array(v.length)
  const dBias = biasArr === null ? null : new Float32Array(biasArr.length)
  flashBackward(dims, params, { q, k, v, out, lse, dOut, keyMask, bias: biasArr, dq, dk, dv: dvArr, dBias })
  const ref = loopOracle(dims, params, { q, k, v, keyMask, bias: biasArr, dOut })
  return {
    out: maxDiff(out, ref.out),
    dq: maxDiff(dq, ref.dq),
    dk: maxDiff(dk, ref.dk),
    dv: maxDiff(dvArr, ref.dv),
    dBias: dBias === null || ref.dBias === null ? 0 : maxDiff(dBias, ref.dBias),
  }
}

const base: FlashParams = {
  causal: false,
  scale: 0.3,
  biasBatch: 1,
  biasHeads: 1,
  slopes: null,
  freeKeys: 0,
  dropout: 0,
  seed: 0,
}

describe('flash typed-array kernels vs a float64 loop oracle', () => {
  const cases: [string, Case][] = [
    [
      'tiny',
      { dims: { b: 1, h: 1, kvh: 1, n: 3, m: 5, d: 4, dv: 4 }, params: base, mask: false, bias: false },
    ],
    [
      'odd dims',
      { dims: { b: 1, h: 2, kvh: 1, n: 7, m: 9, d: 5, dv: 3 }, params: base, mask: false, bias: false },
    ],
    [
      'causal gqa m>n',
      {
        dims: { b: 2, h: 4, kvh: 2, n: 65, m: 130, d: 8, dv: 12 },
        params: { ...base, causal: true },
        mask: true,
        bias: false,
      },
    ],
    [
      'causal m<n',
      {
        dims: { b: 1, h: 2, kvh: 2, n: 70, m: 40, d: 16, dv: 16 },
        params: { ...base, causal: true },
        mask: false,
        bias: false,
      },
    ],
    [
      'bias per head + alibi',
      {
        dims: { b: 2, h: 3, kvh: 1, n: 63, m: 129, d: 16, dv: 20 },
        params: { ...base, biasBatch: 2, biasHeads: 3, slopes: [0.5, 0.25, 0.125], freeKeys: 3 },
        mask: true,
        bias: true,
      },
    ],
    [
      // Whole 64-key tiles masked (skipped by the kernel) next to partly masked ones.
      'masked key tiles',
      {
        dims: { b: 2, h: 2, kvh: 1, n: 70, m: 200, d: 8, dv: 8 },
        params: { ...base, causal: true },
        mask: true,
        bias: true,
        visible: (bi, j) => (bi === 0 ? j < 64 || j >= 128 : j >= 64 && j % 3 !== 0),
      },
    ],
    [
      'bias broadcast',
      { dims: { b: 2, h: 2, kvh: 2, n: 64, m: 64, d: 64, dv: 64 }, params: base, mask: false, bias: true },
    ],
  ]
  for (const [name, c] of cases) {
    it(name, () => {
      const diff = runCase(c, 7)
      expect(diff.out).toBeLessThan(2e-6)
      expect(diff.dq).toBeLessThan(1e-5)
      expect(diff.dk).toBeLessThan(1e-5)
      expect(diff.dv).toBeLessThan(1e-5)
      expect(diff.dBias).toBeLessThan(1e-5)
    })
  }
})
