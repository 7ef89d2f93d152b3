// FlashAttention-2 forward and backward for one (batch, KV head) group, compiled by AssemblyScript to
// WebAssembly SIMD. The JavaScript driver copies one group's rows into linear memory, calls these
// entry points, and copies the results back; all pointers are byte offsets into that memory and all
// strides are in float32 elements.
//
// Layout per group (G = query heads sharing the KV head, dP/dvP = head dims padded to 4, mPad = m
// padded to 8, padding rows/columns are zero so that vector over-reads contribute nothing):
//   q [G, n, dP]   k [mPad, dP]   v [mPad, dvP]   out [G, n, dvP]   lse [G, n]
//   kt, vt: K and V transposed in key tiles of BC (see transposeTiles), ceil(m / BC)·BC keys
// Scratch: logits/probabilities tile S [BR, BC], dP tile [BR, BC], running row max/sum [G, BR],
// row deltas D [G, n].

const BR: i32 = 64
const BC: i32 = 64
const TILE_BYTES: usize = (<usize>(BR * BC)) << 2

export function blockRows(): i32 {
  return BR
}

export function blockCols(): i32 {
  return BC
}

export function heapBase(): usize {
  return __heap_base
}

// Constants of expRow, each splatted to 16 bytes. They are read from memory on purpose: as
// v128.const immediates V8 rebuilds every one of them on each loop iteration, which made the
// exponential cost as much as the matrix products around it.
const EXP_CONSTS: usize = memory.data<f32>(
  [
    -87.33654,
    -87.33654,
    -87.33654,
    -87.33654,
    88.0,
    88.0,
    88.0,
    88.0,
    12582912.0,
    12582912.0,
    12582912.0,
    12582912.0,
    <f32>Math.LOG2E,
    <f32>Math.LOG2E,
    <f32>Math.LOG2E,
    <f32>Math.LOG2E,
    0.693359375,
    0.693359375,
    0.693359375,
    0.693359375,
    2.1219444e-4,
    2.1219444e-4,
    2.1219444e-4,
    2.1219444e-4,
    1.98756915e-4,
    1.98756915e-4,
    1.98756915e-4,
    1.98756915e-4,
    1.3981999507e-3,
    1.3981999507e-3,
    1.3981999507e-3,
    1.3981999507e-3,
    8.3334519073e-3,
    8.3334519073e-3,
    8.3334519073e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    4.1665795894e-2,
    4.1665795894e-2,
    4.1665795894e-2,
    1.6666665459e-1,
    1.6666665459e-1,
    1.6666665459e-1,
    1.6666665459e-1,
    5.0000001201e-1,
    5.0000001201e-1,
    5.0000001201e-1,
    5.0000001201e-1,
    1.0,
    1.0,
    1.0,
    1.0,
  ],
  16,
)
const EXP_BIAS_BITS: usize = memory.data<i32>([127, 127, 127, 127], 16)

// Replaces row[j] by exp(row[j] - shift) for j < colsPad (a multiple of 4) and returns their sum.
// Cephes-style exp: 2^round(x log2 e) times a degree-6 polynomial on the remainder; rounding adds
// 1.5·2^23, which leaves round(x log2 e) in the low mantissa bits, where an integer add and shift
// also turn it into 2^n. Inputs below -87.3 (including -Infinity from masked logits) give exactly 0,
// so masked keys never leak weight into a row; accuracy is about 2 ulp. The constants are loaded
// once per row, outside the loop, for the reason given at EXP_CONSTS.
function expRow(row: usize, colsPad: i32, shift: f32): f32 {
  const c = EXP_CONSTS
  const lo = v128.load(c)
  const hi = v128.load(c, 16)
  const magic = v128.load(c, 32)
  const log2e = v128.load(c, 48)
  const ln2Hi = v128.load(c, 64)
  const ln2Lo = v128.load(c, 80)
  const p0 = v128.load(c, 96)
  const p1 = v128.load(c, 112)
  const p2 = v128.load(c, 128)
  const p3 = v128.load(c, 144)
  const p4 = v128.load(c, 160)
  const p5 = v128.load(c, 176)
  const one = v128.load(c, 192)
  const expBias = v128.load(EXP_BIAS_BITS)
  const vShift = f32x4.splat(shift)
  let vSum = f32x4.splat(0)
  for (let jv = 0; jv < colsPad; jv += 4) {
    const at = row + ((<usize>jv) << 2)
    const x = f32x4.sub(v128.load(at), vShift)
    const inRange = f32x4.ge(x, lo)
    const xc = f32x4.pmin(f32x4.pmax(x, lo), hi)
    const t = f32x4.add(f32x4.mul(xc, log2e), magic)
    const fx = f32x4.sub(t, magic)
    let r = f32x4.sub(xc, f32x4.mul(fx, ln2Hi))
    r = f32x4.add(r, f32x4.mul(fx, ln2Lo))
    let p = f32x4.add(f32x4.mul(p0, r), p1)
    p = f32x4.add(f32x4.mul(p, r), p2)
    p = f32x4.add(f32x4.mul(p, r), p3)
    p = f32x4.add(f32x4.mul(p, r), p4)
    p = f32x4.add(f32x4.mul(p, r), p5)
    p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), one)
    const pow2 = i32x4.shl(i32x4.add(t, expBias), 23)
    const y = v128.and(f32x4.mul(p, pow2), inRange)
    v128.store(at, y)
    vSum = f32x4.add(vSum, y)
  }
  return hsum(vSum)
}

function hmax(x: v128): f32 {
  return Mathf.max(
    Mathf.max(f32x4.extract_lane(x, 0), f32x4.extract_lane(x, 1)),
    Mathf.max(f32x4.extract_lane(x, 2), f32x4.extract_lane(x, 3)),
  )
}

function hsum(x: v128): f32 {
  return (
    f32x4.extract_lane(x, 0) +
    f32x4.extract_lane(x, 1) +
    (f32x4.extract_lane(x, 2) + f32x4.extract_lane(x, 3))
  )
}

// lowbias32 integer hash: counter-based randomness, so the backward pass regenerates the forward's
// dropout mask from (seed, batch, head, query, key) without storing it.
function mix32(x: u32): u32 {
  x ^= x >>> 16
  x *= 0x7feb352d
  x ^= x >>> 15
  x *= 0x846ca68b
  x ^= x >>> 16
  return x
}

function dropRowKey(seed: u32, batch: i32, head: i32, row: i32): u32 {
  const s = mix32(seed ^ mix32(<u32>batch + 0x632be5ab))
  return mix32(s ^ mix32(<u32>head * 0x9e3779b9 + mix32(<u32>row)))
}

function dropKeep(rowKey: u32, col: i32, keepThreshold: u32): bool {
  return mix32(rowKey + <u32>col * 0x85ebca6b) >>> 8 >= keepThreshold
}

function zero(ptr: usize, floats: i32): void {
  memory.fill(ptr, 0, (<usize>floats) << 2)
}

// Transposes the (rows x cols) source into key tiles of BC: tile t is a contiguous [cols][BC] block at
// dst + t·cols·BC with dst[t][c][jj] = src[t·BC + jj][c], zero past the last key. Transposed K/V
// make q·k an axpy over keys, which vectorises without horizontal sums; tile-contiguous blocks keep
// the row stride at BC floats, since a stride of the full (power-of-two) key count maps every row
// of a tile to the same cache set.
function transposeTiles(src: usize, rows: i32, cols: i32, dst: usize): void {
  const srcRowBytes = (<usize>cols) << 2
  const dstRowBytes = (<usize>BC) << 2
  const tiles = (rows + BC - 1) / BC
  for (let t = 0; t < tiles; t++) {
    const tileBase = dst + <usize>t * cols * BC * 4
    const j0 = t * BC
    const count = min(BC, rows - j0)
    if (count < BC) zero(tileBase, cols * BC)
    // Source rows are read in order and scattered into the 16 KB tile, which stays in L1; walking
    // a source column instead strides through all of K and costs more than it moves.
    for (let jj = 0; jj < count; jj++) {
      const sRow = src + <usize>(j0 + jj) * srcRowBytes
      let dp = tileBase + ((<usize>jj) << 2)
      for (let c = 0; c < cols; c++) {
        store<f32>(dp, load<f32>(sRow + ((<usize>c) << 2)))
        dp += dstRowBytes
      }
    }
  }
}

// out[t][j] = sum_c a[t][c] * bt[c][j] for t < rows, j < colsPad (a multiple of 8); out has row
// stride BC. Four rows by eight columns per step keep 8 accumulators in registers.
function tileQK(
  a: usize,
  aStride: i32,
  rows: i32,
  bt: usize,
  btStride: i32,
  colsPad: i32,
  kdim: i32,
  out: usize,
): void {
  const aRow = (<usize>aStride) << 2
  const btRow = (<usize>btStride) << 2
  const outRow = (<usize>BC) << 2
  let t = 0
  for (; t + 4 <= rows; t += 4) {
    const a0 = a + <usize>t * aRow
    const a1 = a0 + aRow
    const a2 = a1 + aRow
    const a3 = a2 + aRow
    const o0 = out + <usize>t * outRow
    for (let jv = 0; jv < colsPad; jv += 8) {
      let c00 = f32x4.splat(0)
      let c01 = f32x4.splat(0)
      let c10 = f32x4.splat(0)
      let c11 = f32x4.splat(0)
      let c20 = f32x4.splat(0)
      let c21 = f32x4.splat(0)
      let c30 = f32x4.splat(0)
      let c31 = f32x4.splat(0)
      let pb = bt + ((<usize>jv) << 2)
      for (let c = 0; c < kdim; c++) {
        const b0 = v128.load(pb)
        const b1 = v128.load(pb, 16)
        const off = (<usize>c) << 2
        const x0 = f32x4.splat(load<f32>(a0 + off))
        const x1 = f32x4.splat(load<f32>(a1 + off))
        const x2 = f32x4.splat(load<f32>(a2 + off))
        const x3 = f32x4.splat(load<f32>(a3 + off))
        c00 = f32x4.add(c00, f32x4.mul(x0, b0))
        c01 = f32x4.add(c01, f32x4.mul(x0, b1))
        c10 = f32x4.add(c10, f32x4.mul(x1, b0))
        c11 = f32x4.add(c11, f32x4.mul(x1, b1))
        c20 = f32x4.add(c20, f32x4.mul(x2, b0))
        c21 = f32x4.add(c21, f32x4.mul(x2, b1))
        c30 = f32x4.add(c30, f32x4.mul(x3, b0))
        c31 = f32x4.add(c31, f32x4.mul(x3, b1))
        pb += btRow
      }
      const ob = o0 + ((<usize>jv) << 2)
      v128.store(ob, c00)
      v128.store(ob, c01, 16)
      v128.store(ob + outRow, c10)
      v128.store(ob + outRow, c11, 16)
      v128.store(ob + 2 * outRow, c20)
      v128.store(ob + 2 * outRow, c21, 16)
      v128.store(ob + 3 * outRow, c30)
      v128.store(ob + 3 * outRow, c31, 16)
    }
  }
  for (; t < rows; t++) {
    const a0 = a + <usize>t * aRow
    const o0 = out + <usize>t * outRow
    for (let jv = 0; jv < colsPad; jv += 8) {
      let c00 = f32x4.splat(0)
      let c01 = f32x4.splat(0)
      let pb = bt + ((<usize>jv) << 2)
      for (let c = 0; c < kdim; c++) {
        const x0 = f32x4.splat(load<f32>(a0 + ((<usize>c) << 2)))
        c00 = f32x4.add(c00, f32x4.mul(x0, v128.load(pb)))
        c01 = f32x4.add(c01, f32x4.mul(x0, v128.load(pb, 16)))
        pb += btRow
      }
      const ob = o0 + ((<usize>jv) << 2)
      v128.store(ob, c00)
      v128.store(ob, c01, 16)
    }
  }
}

// o[t][:] += sum_j p[t][j] * v[j][:] for t < rows, j < colsPad; p has row stride BC, width is a
// multiple of 4. Two rows by sixteen columns per step: 8 accumulators, 4 loads, 2 broadcasts.
function tileAccPV(
  p: usize,
  rows: i32,
  colsPad: i32,
  v: usize,
  vStride: i32,
  o: usize,
  oStride: i32,
  width: i32,
): void {
  const vRow = (<usize>vStride) << 2
  const oRow = (<usize>oStride) << 2
  const pRow = (<usize>BC) << 2
  let t = 0
  for (; t + 2 <= rows; t += 2) {
    const p0 = p + <usize>t * pRow
    const p1 = p0 + pRow
    const o0 = o + <usize>t * oRow
    const o1 = o0 + oRow
    let c = 0
    for (; c + 16 <= width; c += 16) {
      const cb = (<usize>c) << 2
      let a0 = v128.load(o0 + cb)
      let a1 = v128.load(o0 + cb, 16)
      let a2 = v128.load(o0 + cb, 32)
      let a3 = v128.load(o0 + cb, 48)
      let b0 = v128.load(o1 + cb)
      let b1 = v128.load(o1 + cb, 16)
      let b2 = v128.load(o1 + cb, 32)
      let b3 = v128.load(o1 + cb, 48)
      let pv = v + cb
      for (let j = 0; j < colsPad; j++) {
        const jb = (<usize>j) << 2
        const x0 = f32x4.splat(load<f32>(p0 + jb))
        const x1 = f32x4.splat(load<f32>(p1 + jb))
        const v0 = v128.load(pv)
        const v1 = v128.load(pv, 16)
        const v2 = v128.load(pv, 32)
        const v3 = v128.load(pv, 48)
        a0 = f32x4.add(a0, f32x4.mul(x0, v0))
        a1 = f32x4.add(a1, f32x4.mul(x0, v1))
        a2 = f32x4.add(a2, f32x4.mul(x0, v2))
        a3 = f32x4.add(a3, f32x4.mul(x0, v3))
        b0 = f32x4.add(b0, f32x4.mul(x1, v0))
        b1 = f32x4.add(b1, f32x4.mul(x1, v1))
        b2 = f32x4.add(b2, f32x4.mul(x1, v2))
        b3 = f32x4.add(b3, f32x4.mul(x1, v3))
        pv += vRow
      }
      v128.store(o0 + cb, a0)
      v128.store(o0 + cb, a1, 16)
      v128.store(o0 + cb, a2, 32)
      v128.store(o0 + cb, a3, 48)
      v128.store(o1 + cb, b0)
      v128.store(o1 + cb, b1, 16)
      v128.store(o1 + cb, b2, 32)
      v128.store(o1 + cb, b3, 48)
    }
    for (; c < width; c += 4) {
      const cb = (<usize>c) << 2
      let a0 = v128.load(o0 + cb)
      let b0 = v128.load(o1 + cb)
      let pv = v + cb
      for (let j = 0; j < colsPad; j++) {
        const jb = (<usize>j) << 2
        const v0 = v128.load(pv)
        a0 = f32x4.add(a0, f32x4.mul(f32x4.splat(load<f32>(p0 + jb)), v0))
        b0 = f32x4.add(b0, f32x4.mul(f32x4.splat(load<f32>(p1 + jb)), v0))
        pv += vRow
      }
      v128.store(o0 + cb, a0)
      v128.store(o1 + cb, b0)
    }
  }
  if (t < rows) {
    const p0 = p + <usize>t * pRow
    const o0 = o + <usize>t * oRow
    for (let c = 0; c < width; c += 4) {
      const cb = (<usize>c) << 2
      let a0 = v128.load(o0 + cb)
      let pv = v + cb
      for (let j = 0; j < colsPad; j++) {
        a0 = f32x4.add(a0, f32x4.mul(f32x4.splat(load<f32>(p0 + ((<usize>j) << 2))), v128.load(pv)))
        pv += vRow
      }
      v128.store(o0 + cb, a0)
    }
  }
}

// y[j][:] += sum_t p[t][j] * x[t][:] for j < colsPad (even), t < rows; p has row stride BC.
function tileAccPtV(
  p: usize,
  rows: i32,
  colsPad: i32,
  x: usize,
  xStride: i32,
  y: usize,
  yStride: i32,
  width: i32,
): void {
  const xRow = (<usize>xStride) << 2
  const yRow = (<usize>yStride) << 2
  const pRow = (<usize>BC) << 2
  for (let j = 0; j < colsPad; j += 2) {
    const y0 = y + <usize>j * yRow
    const y1 = y0 + yRow
    const pj = p + ((<usize>j) << 2)
    let c = 0
    for (; c + 16 <= width; c += 16) {
      const cb = (<usize>c) << 2
      let a0 = v128.load(y0 + cb)
      let a1 = v128.load(y0 + cb, 16)
      let a2 = v128.load(y0 + cb, 32)
      let a3 = v128.load(y0 + cb, 48)
      let b0 = v128.load(y1 + cb)
      let b1 = v128.load(y1 + cb, 16)
      let b2 = v128.load(y1 + cb, 32)
      let b3 = v128.load(y1 + cb, 48)
      let pp = pj
      let px = x + cb
      for (let t = 0; t < rows; t++) {
        const s0 = f32x4.splat(load<f32>(pp))
        const s1 = f32x4.splat(load<f32>(pp, 4))
        const x0 = v128.load(px)
        const x1 = v128.load(px, 16)
        const x2 = v128.load(px, 32)
        const x3 = v128.load(px, 48)
        a0 = f32x4.add(a0, f32x4.mul(s0, x0))
        a1 = f32x4.add(a1, f32x4.mul(s0, x1))
        a2 = f32x4.add(a2, f32x4.mul(s0, x2))
        a3 = f32x4.add(a3, f32x4.mul(s0, x3))
        b0 = f32x4.add(b0, f32x4.mul(s1, x0))
        b1 = f32x4.add(b1, f32x4.mul(s1, x1))
        b2 = f32x4.add(b2, f32x4.mul(s1, x2))
        b3 = f32x4.add(b3, f32x4.mul(s1, x3))
        pp += pRow
        px += xRow
      }
      v128.store(y0 + cb, a0)
      v128.store(y0 + cb, a1, 16)
      v128.store(y0 + cb, a2, 32)
      v128.store(y0 + cb, a3, 48)
      v128.store(y1 + cb, b0)
      v128.store(y1 + cb, b1, 16)
      v128.store(y1 + cb, b2, 32)
      v128.store(y1 + cb, b3, 48)
    }
    for (; c < width; c += 4) {
      const cb = (<usize>c) << 2
      let a0 = v128.load(y0 + cb)
      let b0 = v128.load(y1 + cb)
      let pp = pj
      let px = x + cb
      for (let t = 0; t < rows; t++) {
        const x0 = v128.load(px)
        a0 = f32x4.add(a0, f32x4.mul(f32x4.splat(load<f32>(pp)), x0))
        b0 = f32x4.add(b0, f32x4.mul(f32x4.splat(load<f32>(pp, 4)), x0))
        pp += pRow
        px += xRow
      }
      v128.store(y0 + cb, a0)
      v128.store(y1 + cb, b0)
    }
  }
}

// Turns one row of raw q·k products into scaled, biased, masked logits in place and returns the row
// maximum. Keys at or past jLimit (tile end, or the bottom-right causal diagonal) and keys whose
// keyAdd is -Infinity become -Infinity, which expRow maps to exactly 0.
function rowLogits(
  s: usize,
  colsPad: i32,
  j0: i32,
  jLimit: i32,
  scale: f32,
  biasRow: usize,
  hasBias: bool,
  slope: f32,
  hasSlope: bool,
  freeKeys: i32,
  qPos: f32,
  keyAdd: usize,
  hasMask: bool,
): f32 {
  const vScale = f32x4.splat(scale)
  const vNegSlope = f32x4.splat(-slope)
  const vQPos = f32x4.splat(qPos)
  const vFree = f32x4.splat(<f32>freeKeys)
  const vLimit = f32x4.splat(<f32>jLimit)
  const vNegInf = f32x4.splat(-Infinity)
  let jf = f32x4.add(f32x4.splat(<f32>j0), f32x4(0, 1, 2, 3))
  const vFour = f32x4.splat(4)
  let vMax = vNegInf
  for (let jv = 0; jv < colsPad; jv += 4) {
    const jb = (<usize>jv) << 2
    let x = f32x4.mul(v128.load(s + jb), vScale)
    if (hasBias) x = f32x4.add(x, v128.load(biasRow + jb))
    if (hasSlope) {
      // ALiBi: -slope * |j - (i + m - n)|, zero for the leading memory keys.
      const ab = f32x4.mul(vNegSlope, f32x4.abs(f32x4.sub(jf, vQPos)))
      x = f32x4.add(x, v128.and(ab, f32x4.ge(jf, vFree)))
    }
    if (hasMask) x = f32x4.add(x, v128.load(keyAdd + ((<usize>(j0 + jv)) << 2)))
    x = v128.bitselect(x, vNegInf, f32x4.lt(jf, vLimit))
    v128.store(s + jb, x)
    vMax = f32x4.pmax(vMax, x)
    jf = f32x4.add(jf, vFour)
  }
  return hmax(vMax)
}

// Whether any of the `cols` keys from j0 is visible under the key-padding mask: key tiles that are
// all padding (common at the end of padded batches) are skipped outright, since every one of their
// probabilities would be 0.
function tileVisible(keyAdd: usize, j0: i32, cols: i32): bool {
  for (let j = 0; j < cols; j++) {
    if (load<f32>(keyAdd + ((<usize>(j0 + j)) << 2)) === 0) return true
  }
  return false
}

function scaleRow(row: usize, width: i32, factor: f32): void {
  const f = f32x4.splat(factor)
  for (let c = 0; c < width; c += 4) {
    const p = row + ((<usize>c) << 2)
    v128.store(p, f32x4.mul(v128.load(p), f))
  }
}

export function forward(
  groupHeads: i32,
  n: i32,
  m: i32,
  dP: i32,
  dvP: i32,
  mPad: i32,
  q: usize,
  k: usize,
  v: usize,
  kt: usize,
  keyAdd: usize,
  hasMask: bool,
  bias: usize,
  biasHeadStride: i32,
  hasBias: bool,
  slopes: usize,
  hasSlopes: bool,
  freeKeys: i32,
  scale: f32,
  causal: bool,
  dropping: bool,
  keepThreshold: u32,
  dropScale: f32,
  seed: u32,
  batch: i32,
  firstHead: i32,
  headStep: i32,
  out: usize,
  lse: usize,
  scratch: usize,
): void {
  const off = m - n
  const s = scratch
  const rowMax = s + TILE_BYTES
  const rowSum = rowMax + ((<usize>(groupHeads * BR)) << 2)
  const qHeadBytes = <usize>n * dP * 4
  const oHeadBytes = <usize>n * dvP * 4
  const outRowBytes = (<usize>dvP) << 2
  zero(k + <usize>m * dP * 4, (mPad - m) * dP)
  zero(v + <usize>m * dvP * 4, (mPad - m) * dvP)
  transposeTiles(k, m, dP, kt)
  zero(out, groupHeads * n * dvP)
  for (let i0 = 0; i0 < n; i0 += BR) {
    const rows = min(BR, n - i0)
    // Exclusive bound on the keys any row of this tile may see: later key tiles are skipped.
    const kvEnd = causal ? min(m, i0 + rows + off) : m
    for (let e = 0; e < groupHeads * BR; e++) {
      store<f32>(rowMax + ((<usize>e) << 2), -Infinity)
      store<f32>(rowSum + ((<usize>e) << 2), 0)
    }
    for (let j0 = 0; j0 < kvEnd; j0 += BC) {
      const cols = min(BC, kvEnd - j0)
      const colsPad = (cols + 7) & ~7
      if (hasMask && !tileVisible(keyAdd, j0, cols)) continue
      for (let r = 0; r < groupHeads; r++) {
        const head = firstHead + r * headStep
        const slope: f32 = hasSlopes ? load<f32>(slopes + ((<usize>r) << 2)) : 0
        const qTile = q + <usize>r * qHeadBytes + <usize>i0 * dP * 4
        const oTile = out + <usize>r * oHeadBytes + <usize>i0 * outRowBytes
        tileQK(qTile, dP, rows, kt + <usize>j0 * dP * 4, BC, colsPad, dP, s)
        for (let t = 0; t < rows; t++) {
          const i = i0 + t
          const sRow = s + <usize>(t * BC) * 4
          const jLimit = causal ? min(j0 + cols, i + off + 1) : j0 + cols
          const biasRow = bias + (<usize>r * biasHeadStride + <usize>i * m + j0) * 4
          const mx = rowLogits(
            sRow,
            colsPad,
            j0,
            jLimit,
            scale,
            biasRow,
            hasBias,
            slope,
            hasSlopes,
            freeKeys,
            <f32>(i + off),
            keyAdd,
            hasMask,
          )
          const statAt = (<usize>(r * BR + t)) << 2
          const mOld = load<f32>(rowMax + statAt)
          const mNew = Mathf.max(mOld, mx)
          if (mNew === -Infinity) {
            zero(sRow, colsPad)
            continue
          }
          const alpha: f32 = mOld === -Infinity ? 0 : Mathf.exp(mOld - mNew)
          const tileSum = expRow(sRow, colsPad, mNew)
          store<f32>(rowSum + statAt, load<f32>(rowSum + statAt) * alpha + tileSum)
          store<f32>(rowMax + statAt, mNew)
          const oRow = oTile + <usize>t * outRowBytes
          if (alpha !== 1) scaleRow(oRow, dvP, alpha)
          if (dropping) {
            // The normaliser above uses undropped weights; only the value mix sees the mask.
            const rowKey = dropRowKey(seed, batch, head, i)
            for (let j = 0; j < cols; j++) {
              const pp = sRow + ((<usize>j) << 2)
              store<f32>(pp, dropKeep(rowKey, j0 + j, keepThreshold) ? load<f32>(pp) * dropScale : 0)
            }
          }
        }
        tileAccPV(s, rows, colsPad, v + <usize>j0 * dvP * 4, dvP, oTile, dvP, dvP)
      }
    }
    for (let r = 0; r < groupHeads; r++) {
      for (let t = 0; t < rows; t++) {
        const i = i0 + t
        const statAt = (<usize>(r * BR + t)) << 2
        const l = load<f32>(rowSum + statAt)
        const lseAt = lse + ((<usize>(r * n + i)) << 2)
        if (l === 0) {
          // Fully masked row: output stays 0 and +Infinity makes every backward probability 0.
          store<f32>(lseAt, Infinity)
        } else {
          scaleRow(out + <usize>r * oHeadBytes + <usize>i * outRowBytes, dvP, 1 / l)
          store<f32>(lseAt, load<f32>(rowMax + statAt) + Mathf.log(l))
        }
      }
    }
  }
}

export function backward(
  groupHeads: i32,
  n: i32,
  m: i32,
  dP: i32,
  dvP: i32,
  mPad: i32,
  q: usize,
  k: usize,
  v: usize,
  kt: usize,
  vt: usize,
  o: usize,
  dO: usize,
  lse: usize,
  keyAdd: usize,
  hasMask: bool,
  bias: usize,
  biasHeadStride: i32,
  hasBias: bool,
  slopes: usize,
  hasSlopes: bool,
  freeKeys: i32,
  scale: f32,
  causal: bool,
  dropping: bool,
  keepThreshold: u32,
  dropScale: f32,
  seed: u32,
  batch: i32,
  firstHead: i32,
  headStep: i32,
  dq: usize,
  dk: usize,
  dv: usize,
  dBias: usize,
  scratch: usize,
): void {
  const off = m - n
  const s = scratch
  const dp = s + TILE_BYTES
  const delta = dp + TILE_BYTES
  const qHeadBytes = <usize>n * dP * 4
  const oHeadBytes = <usize>n * dvP * 4
  const vScale = f32x4.splat(scale)
  zero(k + <usize>m * dP * 4, (mPad - m) * dP)
  zero(v + <usize>m * dvP * 4, (mPad - m) * dvP)
  transposeTiles(k, m, dP, kt)
  transposeTiles(v, m, dvP, vt)
  zero(dq, groupHeads * n * dP)
  zero(dk, mPad * dP)
  zero(dv, mPad * dvP)
  if (hasBias) zero(dBias, groupHeads * n * m)
  // D_i = dO_i · O_i equals sum_j P_ij dP_ij, the softmax-Jacobian correction, also under dropout.
  for (let e = 0; e < groupHeads * n; e++) {
    const rowBytes = <usize>e * dvP * 4
    let acc = f32x4.splat(0)
    for (let c = 0; c < dvP; c += 4) {
      const cb = rowBytes + ((<usize>c) << 2)
      acc = f32x4.add(acc, f32x4.mul(v128.load(dO + cb), v128.load(o + cb)))
    }
    store<f32>(delta + ((<usize>e) << 2), hsum(acc))
  }
  for (let j0 = 0; j0 < m; j0 += BC) {
    const cols = min(BC, m - j0)
    const colsPad = (cols + 7) & ~7
    if (hasMask && !tileVisible(keyAdd, j0, cols)) continue
    for (let r = 0; r < groupHeads; r++) {
      const head = firstHead + r * headStep
      const slope: f32 = hasSlopes ? load<f32>(slopes + ((<usize>r) << 2)) : 0
      // Causal: query tiles whose last row is still above this key tile's first column are skipped.
      const firstRow = causal ? max(0, j0 - off) : 0
      for (let i0 = (firstRow / BR) * BR; i0 < n; i0 += BR) {
        const rows = min(BR, n - i0)
        const qTile = q + <usize>r * qHeadBytes + <usize>i0 * dP * 4
        const doTile = dO + <usize>r * oHeadBytes + <usize>i0 * dvP * 4
        tileQK(qTile, dP, rows, kt + <usize>j0 * dP * 4, BC, colsPad, dP, s)
        tileQK(doTile, dvP, rows, vt + <usize>j0 * dvP * 4, BC, colsPad, dvP, dp)
        for (let t = 0; t < rows; t++) {
          const i = i0 + t
          const sRow = s + <usize>(t * BC) * 4
          const dpRow = dp + <usize>(t * BC) * 4
          const jLimit = causal ? min(j0 + cols, i + off + 1) : j0 + cols
          const biasRow = bias + (<usize>r * biasHeadStride + <usize>i * m + j0) * 4
          rowLogits(
            sRow,
            colsPad,
            j0,
            jLimit,
            scale,
            biasRow,
            hasBias,
            slope,
            hasSlopes,
            freeKeys,
            <f32>(i + off),
            keyAdd,
            hasMask,
          )
          expRow(sRow, colsPad, load<f32>(lse + ((<usize>(r * n + i)) << 2)))
          if (!dropping) {
            const vD = f32x4.splat(load<f32>(delta + ((<usize>(r * n + i)) << 2)))
            for (let jv = 0; jv < colsPad; jv += 4) {
              const jb = (<usize>jv) << 2
              v128.store(dpRow + jb, f32x4.mul(v128.load(sRow + jb), f32x4.sub(v128.load(dpRow + jb), vD)))
            }
          }
          if (dropping) {
            // dP_ij = z_ij dO_i·v_j with z = keep/(1-rate); dV needs the dropped weights p z.
            const rowKey = dropRowKey(seed, batch, head, i)
            const dD = load<f32>(delta + ((<usize>(r * n + i)) << 2))
            for (let j = 0; j < colsPad; j++) {
              const jb = (<usize>j) << 2
              const z: f32 = j < cols && dropKeep(rowKey, j0 + j, keepThreshold) ? dropScale : 0
              const p = load<f32>(sRow + jb)
              store<f32>(dpRow + jb, p * (load<f32>(dpRow + jb) * z - dD))
              store<f32>(sRow + jb, p * z)
            }
          }
          if (hasBias) {
            const dbRow = dBias + (<usize>r * n * m + <usize>i * m + j0) * 4
            for (let j = 0; j < cols; j++)
              store<f32>(dbRow + ((<usize>j) << 2), load<f32>(dpRow + ((<usize>j) << 2)))
          }
          for (let jv = 0; jv < colsPad; jv += 4) {
            const jb = (<usize>jv) << 2
            v128.store(dpRow + jb, f32x4.mul(v128.load(dpRow + jb), vScale))
          }
        }
        tileAccPtV(s, rows, colsPad, doTile, dvP, dv + <usize>j0 * dvP * 4, dvP, dvP)
        tileAccPV(
          dp,
          rows,
          colsPad,
          k + <usize>j0 * dP * 4,
          dP,
          dq + <usize>r * qHeadBytes + <usize>i0 * dP * 4,
          dP,
          dP,
        )
        tileAccPtV(dp, rows, colsPad, qTile, dP, dk + <usize>j0 * dP * 4, dP, dP)
      }
    }
  }
}
