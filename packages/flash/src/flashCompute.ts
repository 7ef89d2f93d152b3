import { type FlashExports, flashModule, reserveBytes } from './flashModule.js'

/** Sizes of one attention call: `q [b h n d]`, `k [b kvh m d]`, `v [b kvh m dv]`. */
export interface FlashDims {
  readonly b: number
  readonly h: number
  readonly kvh: number
  readonly n: number
  readonly m: number
  readonly d: number
  readonly dv: number
}

/** Everything about a call that is not a tensor. */
export interface FlashParams {
  readonly causal: boolean
  readonly scale: number
  /** 1 or b: the bias's batch extent (it broadcasts when 1). */
  readonly biasBatch: number
  /** 1 or h: the bias's head extent. */
  readonly biasHeads: number
  /** One slope per query head, or null. */
  readonly slopes: ArrayLike<number> | null
  readonly freeKeys: number
  /** Effective dropout rate (0 when not training). */
  readonly dropout: number
  readonly seed: number
}

/** Forward inputs and the caller-owned outputs the results are written into. */
export interface ForwardArrays {
  readonly q: Float32Array
  readonly k: Float32Array
  readonly v: Float32Array
  readonly keyMask: ArrayLike<number> | null
  readonly bias: Float32Array | null
  readonly out: Float32Array
  readonly lse: Float32Array
}

/** Backward inputs (including the forward's `out` and `lse`) and caller-owned gradient outputs. */
export interface BackwardArrays {
  readonly q: Float32Array
  readonly k: Float32Array
  readonly v: Float32Array
  readonly out: Float32Array
  readonly lse: Float32Array
  readonly dOut: Float32Array
  readonly keyMask: ArrayLike<number> | null
  readonly bias: Float32Array | null
  readonly dq: Float32Array
  readonly dk: Float32Array
  readonly dv: Float32Array
  /** Same shape as the bias; accumulated into, so it must start at zero. */
  readonly dBias: Float32Array | null
}

const ALIGN_FLOATS = 4
// Vector loads of a bias row may run up to 7 floats past its last key.
const BIAS_SLACK_FLOATS = 8

const roundUp = (x: number, to: number) => Math.ceil(x / to) * to

/** Bump allocation of one group's buffers in the module's linear memory (float offsets). */
class Layout {
  private next: number
  constructor(base: number) {
    this.next = roundUp(base / 4, ALIGN_FLOATS)
  }
  take(floats: number): number {
    const at = this.next
    this.next = roundUp(at + Math.max(floats, 0), ALIGN_FLOATS)
    return at
  }
  get bytes(): number {
    return this.next * 4
  }
}

// Copies `rows` rows of `width` floats into a buffer with row stride `stride` >= width; padding
// columns must be zero because the kernel's vector loops read them.
function copyRowsIn(
  heap: Float32Array,
  at: number,
  stride: number,
  src: Float32Array,
  from: number,
  rows: number,
  width: number,
): void {
  if (stride === width) {
    heap.set(src.subarray(from, from + rows * width), at)
    return
  }
  for (let r = 0; r < rows; r++) {
    const dstRow = at + r * stride
    const srcRow = from + r * width
    for (let c = 0; c < width; c++) heap[dstRow + c] = src[srcRow + c] as number
    for (let c = width; c < stride; c++) heap[dstRow + c] = 0
  }
}

function copyRowsOut(
  heap: Float32Array,
  at: number,
  stride: number,
  dst: Float32Array,
  to: number,
  rows: number,
  width: number,
): void {
  if (stride === width) {
    dst.set(heap.subarray(at, at + rows * width), to)
    return
  }
  for (let r = 0; r < rows; r++) {
    const srcRow = at + r * stride
    const dstRow = to + r * width
    for (let c = 0; c < width; c++) dst[dstRow + c] = heap[srcRow + c] as number
  }
}

interface GroupShape {
  readonly groupHeads: number
  readonly dP: number
  readonly dvP: number
  readonly mPad: number
  readonly biasSlices: number
}

function groupShape(dims: FlashDims, params: FlashParams, hasBias: boolean): GroupShape {
  const groupHeads = dims.h / dims.kvh
  return {
    groupHeads,
    dP: roundUp(dims.d, 4),
    dvP: roundUp(dims.dv, 4),
    mPad: roundUp(dims.m, 8),
    biasSlices: hasBias ? (params.biasHeads > 1 ? groupHeads : 1) : 0,
  }
}

function dropoutArgs(params: FlashParams): [number, number, number, number] {
  if (params.dropout <= 0) return [0, 0, 0, params.seed >>> 0]
  // Keep a weight iff 24 random bits >= rate * 2^24, then rescale kept weights by 1 / (1 - rate).
  return [1, Math.round(params.dropout * 2 ** 24), 1 / (1 - params.dropout), params.seed >>> 0]
}

function fillKeyAdd(
  heap: Float32Array,
  at: number,
  mPad: number,
  keyMask: ArrayLike<number>,
  from: number,
  m: number,
) {
  for (let j = 0; j < m; j++) heap[at + j] = keyMask[from + j] ? 0 : Number.NEGATIVE_INFINITY
  heap.fill(Number.NEGATIVE_INFINITY, at + m, at + mPad)
}

// Where in the caller's bias tensor the [n, m] slice of (batch, head) starts.
function biasOffset(dims: FlashDims, params: FlashParams, batch: number, head: number): number {
  const bi = params.biasBatch > 1 ? batch : 0
  const hi = params.biasHeads > 1 ? head : 0
  return (bi * params.biasHeads + hi) * dims.n * dims.m
}

/**
 * FlashAttention-2 forward over typed arrays: tiled online softmax in WebAssembly SIMD, one
 * (batch, KV head) group at a time so each KV head is read once for all of its query heads and
 * scratch memory stays O(group) rather than O(b·h). Writes `out [b h n dv]` and the row
 * log-sum-exp `lse [b h n]` (+Infinity for rows with no visible key).
 */
export function flashForward(dims: FlashDims, params: FlashParams, arrays: ForwardArrays): void {
  const { b, h, kvh, n, m, d, dv } = dims
  const flash: FlashExports = flashModule()
  const shape = groupShape(dims, params, arrays.bias !== null)
  const { groupHeads, dP, dvP, mPad } = shape
  const br = flash.blockRows()
  const bc = flash.blockCols()
  const layout = new Layout(flash.heapBase())
  const qAt = layout.take(groupHeads * n * dP)
  const kAt = layout.take(mPad * dP)
  const vAt = layout.take(mPad * dvP)
  const ktAt = layout.take(dP * roundUp(m, bc))
  const keyAddAt = layout.take(mPad)
  const biasAt = layout.take(shape.biasSlices * n * m + (shape.biasSlices > 0 ? BIAS_SLACK_FLOATS : 0))
  const slopesAt = layout.take(groupHeads)
  const outAt = layout.take(groupHeads * n * dvP)
  const lseAt = layout.take(groupHeads * n)
  const scratchAt = layout.take(br * bc + 2 * groupHeads * br)
  const heap = reserveBytes(flash, layout.bytes)
  const [dropping, keepThreshold, dropScale, seed] = dropoutArgs(params)
  const hasMask = arrays.keyMask !== null
  const bias = arrays.bias
  const slopes = params.slopes
  for (let bi = 0; bi < b; bi++) {
    if (arrays.keyMask !== null) fillKeyAdd(heap, keyAddAt, mPad, arrays.keyMask, bi * m, m)
    for (let g = 0; g < kvh; g++) {
      for (let r = 0; r < groupHeads; r++) {
        // x-transformers' head order: query head g + r·kvh reads KV head g.
        const head = g + r * kvh
        copyRowsIn(heap, qAt + r * n * dP, dP, arrays.q, (bi * h + head) * n * d, n, d)
        if (slopes !== null) heap[slopesAt + r] = slopes[head] as number
        if (bias !== null && (r === 0 || shape.biasSlices > 1)) {
          const from = biasOffset(dims, params, bi, head)
          heap.set(bias.subarray(from, from + n * m), biasAt + r * n * m)
        }
      }
      copyRowsIn(heap, kAt, dP, arrays.k, (bi * kvh + g) * m * d, m, d)
      copyRowsIn(heap, vAt, dvP, arrays.v, (bi * kvh + g) * m * dv, m, dv)
      flash.forward(
        groupHeads,
        n,
        m,
        dP,
        dvP,
        mPad,
        qAt * 4,
        kAt * 4,
        vAt * 4,
        ktAt * 4,
        keyAddAt * 4,
        hasMask ? 1 : 0,
        biasAt * 4,
        shape.biasSlices > 1 ? n * m : 0,
        bias !== null ? 1 : 0,
        slopesAt * 4,
        slopes !== null ? 1 : 0,
        params.freeKeys,
        params.scale,
        params.causal ? 1 : 0,
        dropping,
        keepThreshold,
        dropScale,
        seed,
        bi,
        g,
        kvh,
        outAt * 4,
        lseAt * 4,
        scratchAt * 4,
      )
      for (let r = 0; r < groupHeads; r++) {
        const head = g + r * kvh
        copyRowsOut(heap, outAt + r * n * dvP, dvP, arrays.out, (bi * h + head) * n * dv, n, dv)
        arrays.lse.set(heap.subarray(lseAt + r * n, lseAt + (r + 1) * n), (bi * h + head) * n)
      }
    }
  }
}

/**
 * FlashAttention-2 backward over typed arrays: recomputes probabilities tile by tile from the
 * saved row log-sum-exp (no n×m matrix is kept), loops key tiles outermost so dK/dV tiles stay
 * in cache, and writes `dq`, `dk`, `dv` and (accumulating over broadcast dims) `dBias`.
 */
export function flashBackward(dims: FlashDims, params: FlashParams, arrays: BackwardArrays): void {
  const { b, h, kvh, n, m, d, dv } = dims
  const flash: FlashExports = flashModule()
  const hasBias = arrays.bias !== null
  const { groupHeads, dP, dvP, mPad, biasSlices } = groupShape(dims, params, hasBias)
  const br = flash.blockRows()
  const bc = flash.blockCols()
  const layout = new Layout(flash.heapBase())
  const qAt = layout.take(groupHeads * n * dP)
  const kAt = layout.take(mPad * dP)
  const vAt = layout.take(mPad * dvP)
  const ktAt = layout.take(dP * roundUp(m, bc))
  const vtAt = layout.take(dvP * roundUp(m, bc))
  const oAt = layout.take(groupHeads * n * dvP)
  const dOAt = layout.take(groupHeads * n * dvP)
  const lseAt = layout.take(groupHeads * n)
  const keyAddAt = layout.take(mPad)
  const biasAt = layout.take(biasSlices * n * m + (hasBias ? BIAS_SLACK_FLOATS : 0))
  const slopesAt = layout.take(groupHeads)
  const dqAt = layout.take(groupHeads * n * dP)
  const dkAt = layout.take(mPad * dP)
  const dvAt = layout.take(mPad * dvP)
  const dBiasAt = layout.take(hasBias ? groupHeads * n * m : 0)
  const scratchAt = layout.take(2 * br * bc + groupHeads * n)
  const heap = reserveBytes(flash, layout.bytes)
  const [dropping, keepThreshold, dropScale, seed] = dropoutArgs(params)
  const bias = arrays.bias
  const dBias = arrays.dBias
  const slopes = params.slopes
  for (let bi = 0; bi < b; bi++) {
    if (arrays.keyMask !== null) fillKeyAdd(heap, keyAddAt, mPad, arrays.keyMask, bi * m, m)
    for (let g = 0; g < kvh; g++) {
      for (let r = 0; r < groupHeads; r++) {
        const head = g + r * kvh
        const rowFrom = (bi * h + head) * n
        copyRowsIn(heap, qAt + r * n * dP, dP, arrays.q, rowFrom * d, n, d)
        copyRowsIn(heap, oAt + r * n * dvP, dvP, arrays.out, rowFrom * dv, n, dv)
        copyRowsIn(heap, dOAt + r * n * dvP, dvP, arrays.dOut, rowFrom * dv, n, dv)
        heap.set(arrays.lse.subarray(rowFrom, rowFrom + n), lseAt + r * n)
        if (slopes !== null) heap[slopesAt + r] = slopes[head] as number
        if (bias !== null && (r === 0 || biasSlices > 1)) {
          const from = biasOffset(dims, params, bi, head)
          heap.set(bias.subarray(from, from + n * m), biasAt + r * n * m)
        }
      }
      copyRowsIn(heap, kAt, dP, arrays.k, (bi * kvh + g) * m * d, m, d)
      copyRowsIn(heap, vAt, dvP, arrays.v, (bi * kvh + g) * m * dv, m, dv)
      flash.backward(
        groupHeads,
        n,
        m,
        dP,
        dvP,
        mPad,
        qAt * 4,
        kAt * 4,
        vAt * 4,
        ktAt * 4,
        vtAt * 4,
        oAt * 4,
        dOAt * 4,
        lseAt * 4,
        keyAddAt * 4,
        arrays.keyMask !== null ? 1 : 0,
        biasAt * 4,
        biasSlices > 1 ? n * m : 0,
        hasBias ? 1 : 0,
        slopesAt * 4,
        slopes !== null ? 1 : 0,
        params.freeKeys,
        params.scale,
        params.causal ? 1 : 0,
        dropping,
        keepThreshold,
        dropScale,
        seed,
        bi,
        g,
        kvh,
        dqAt * 4,
        dkAt * 4,
        dvAt * 4,
        dBiasAt * 4,
        scratchAt * 4,
      )
      for (let r = 0; r < groupHeads; r++) {
        const head = g + r * kvh
        copyRowsOut(heap, dqAt + r * n * dP, dP, arrays.dq, (bi * h + head) * n * d, n, d)
        if (dBias !== null) {
          // A broadcast bias collects the gradient of every (batch, head) it was added to.
          const to = biasOffset(dims, params, bi, head)
          const from = dBiasAt + r * n * m
          for (let e = 0; e < n * m; e++)
            dBias[to + e] = (dBias[to + e] as number) + (heap[from + e] as number)
        }
      }
      copyRowsOut(heap, dkAt, dP, arrays.dk, (bi * kvh + g) * m * d, m, d)
      copyRowsOut(heap, dvAt, dvP, arrays.dv, (bi * kvh + g) * m * dv, m, dv)
    }
  }
}
