import type { AttendCase } from './attendCase.js'

/** mulberry32: seeded test data, independent of the code under test. */
function rng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function uniform(size: number, seed: number, scale = 1): number[] {
  const next = rng(seed)
  // Rounded through float32 so that Node and the page start from identical values.
  return Array.from(new Float32Array(Array.from({ length: size }, () => (next() * 2 - 1) * scale)))
}

interface CaseOptions {
  readonly keyMask?: 'random' | 'fullyMaskedRow'
  readonly bias?: 'full' | 'broadcast'
  readonly causal?: boolean
  readonly alibi?: boolean
  readonly alibiFreeKeys?: number
  readonly grad?: boolean
  readonly dropout?: number
}

/** Builds a case with seeded inputs: `dims = [b, h, kvh, n, m, d, dv]`. */
export function makeCase(
  name: string,
  dims: AttendCase['dims'],
  options: CaseOptions = {},
  seed = 1,
): AttendCase {
  const [b, h, kvh, n, m, d, dv] = dims
  let keyMask: number[] | undefined
  if (options.keyMask !== undefined) {
    const next = rng(seed + 5)
    keyMask = Array.from({ length: b * m }, () => (next() < 0.7 ? 1 : 0))
    // Batch 0 sees at least its first key; the last batch sees nothing (fully masked rows → 0).
    keyMask[0] = 1
    if (options.keyMask === 'fullyMaskedRow') keyMask.fill(0, (b - 1) * m, b * m)
  }
  const biasShape = options.bias === 'broadcast' ? [1, h, n, m] : [b, h, n, m]
  return {
    name,
    dims,
    q: uniform(b * h * n * d, seed + 1),
    k: uniform(b * kvh * m * d, seed + 2),
    v: uniform(b * kvh * m * dv, seed + 3),
    ...(options.grad === true ? { dOut: uniform(b * h * n * dv, seed + 4) } : {}),
    ...(keyMask === undefined ? {} : { keyMask }),
    ...(options.bias === undefined
      ? {}
      : {
          bias: {
            shape: biasShape,
            values: uniform(
              biasShape.reduce((a, x) => a * x, 1),
              seed + 6,
              0.5,
            ),
          },
        }),
    ...(options.causal === undefined ? {} : { causal: options.causal }),
    ...(options.alibi === true
      ? { alibiSlopes: Array.from({ length: h }, (_, i) => 2 ** (-(i + 1) / 2)) }
      : {}),
    ...(options.alibiFreeKeys === undefined ? {} : { alibiFreeKeys: options.alibiFreeKeys }),
    ...(options.dropout === undefined ? {} : { dropout: { rate: options.dropout, seed: seed * 7919 } }),
  }
}

/**
 * The flash equivalence matrix, sized for SwiftShader: every contract feature at least once,
 * with and without gradients, including tiles that do not divide n, m or d.
 */
export function equivalenceCases(): AttendCase[] {
  return [
    makeCase('plain MHA', [2, 2, 2, 5, 7, 8, 8], { grad: true }, 11),
    makeCase('GQA causal m>n', [1, 4, 2, 6, 9, 8, 4], { causal: true, grad: true }, 12),
    makeCase(
      'MQA keyMask + fully masked batch',
      [2, 3, 1, 4, 6, 4, 8],
      { keyMask: 'fullyMaskedRow', grad: true },
      13,
    ),
    makeCase(
      'bias [b h n m] + causal',
      [2, 2, 1, 5, 5, 8, 8],
      { bias: 'full', causal: true, grad: true },
      14,
    ),
    makeCase(
      'bias [1 h n m] + keyMask',
      [2, 2, 2, 3, 6, 4, 4],
      { bias: 'broadcast', keyMask: 'random', grad: true },
      15,
    ),
    makeCase(
      'alibi + free memory keys',
      [1, 4, 2, 5, 8, 8, 8],
      { alibi: true, alibiFreeKeys: 3, causal: true, grad: true },
      16,
    ),
    makeCase(
      'long rows (several key tiles)',
      [1, 2, 1, 70, 150, 16, 16],
      { causal: true, keyMask: 'random', grad: true },
      17,
    ),
    // KV-cache decoding: one query over a growing cache. WebGPU's forward shader takes m as a
    // uniform, so the second call reuses the first call's compiled shader with more keys.
    makeCase('decode step n = 1, m = 5', [1, 4, 2, 1, 5, 8, 8], { causal: true, alibi: true }, 19),
    makeCase('decode step n = 1, m = 6', [1, 4, 2, 1, 6, 8, 8], { causal: true, alibi: true }, 19),
    // Wide heads: fewer keys fit a WebGPU tile (3072 floats / (d + dv) = 24), so m spans 3 tiles.
    makeCase('wide heads d = dv = 64', [1, 2, 1, 9, 60, 64, 64], { causal: true, grad: true }, 18),
  ]
}

/**
 * Dropout cases: every flash kernel derives its mask from the same counter-based hash of (seed,
 * batch, head, query, key), so the browser kernels must reproduce the Node cpu kernel exactly.
 */
export function dropoutCases(): AttendCase[] {
  return [
    makeCase('dropout GQA causal', [2, 4, 2, 6, 9, 8, 8], { causal: true, grad: true, dropout: 0.25 }, 21),
    // Same shapes, another seed above 2^31: the seed reaches the shaders as a uniform (one compiled
    // shader for every seed), and WebGL passes it as the int with the same bits.
    {
      ...makeCase(
        'dropout GQA causal, seed ≥ 2^31',
        [2, 4, 2, 6, 9, 8, 8],
        { causal: true, grad: true, dropout: 0.25 },
        21,
      ),
      dropout: { rate: 0.25, seed: 0x9e3779b1 },
    },
    makeCase(
      'dropout bias + keyMask',
      [1, 2, 1, 5, 7, 4, 8],
      { bias: 'full', keyMask: 'random', grad: true, dropout: 0.5 },
      22,
    ),
  ]
}
