import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu'
import { type GpuFlashSpec, gpuSpecKey, f32Literal as lit } from './webgpuSpec.js'

/** Threads per workgroup of every flash program. */
export const WORKGROUP = 64
// Floats of workgroup memory a tile may use: 12 KiB of the 16 KiB WebGPU guarantees.
const TILE_FLOATS = 3072

/** Rows (keys or queries) per shared tile: as many as fit, at most 64. */
function tileRows(width: number): number {
  return Math.max(1, Math.min(64, Math.floor(TILE_FLOATS / Math.max(1, width))))
}

const ceilDiv = (a: number, b: number) => Math.ceil(a / b)

/**
 * WGSL shared by the programs: sizes, visibility (key mask, bottom-right causal), the additive
 * logit terms (bias, ALiBi) and the counter-based dropout mask of the wasm kernel (lowbias32 on
 * (seed, batch, head, query, key)), so every backend drops the same weights for a seed.
 */
function commonWgsl(spec: GpuFlashSpec, dynamicKeys = false): string {
  const { b, h, kvh, n, m, d, dv, groups } = spec
  const biasIndex = spec.hasBias
    ? `((${spec.biasB > 1 ? 'bi' : '0'} * ${spec.biasH} + ${spec.biasH > 1 ? 'head' : '0'}) * FA_N + i) * FA_M + j`
    : '0'
  const slopes = spec.slopes
  return `
const FA_B: i32 = ${b};
const FA_H: i32 = ${h};
const FA_KVH: i32 = ${kvh};
const FA_N: i32 = ${n};
${dynamicKeys ? 'var<private> FA_M: i32;' : `const FA_M: i32 = ${m};`}
const FA_D: i32 = ${d};
const FA_DV: i32 = ${dv};
const FA_G: i32 = ${groups};
${dynamicKeys ? 'var<private> FA_OFF: i32;' : `const FA_OFF: i32 = ${m - n};`}
const FA_WG: i32 = ${WORKGROUP};
const FA_MIN: f32 = ${lit(-3.4028234663852886e38)};
${slopes === null ? '' : `var<private> FA_SLOPES: array<f32, ${h}> = array<f32, ${h}>(${slopes.map(lit).join(', ')});`}

fn fa_workgroupIndex() -> i32 {
  return i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x);
}

fn fa_visible(bi: i32, i: i32, j: i32) -> bool {
  ${spec.causal ? 'if (j > i + FA_OFF) { return false; }' : ''}
  ${spec.hasMask ? 'if (KeyMask[bi * FA_M + j] == 0) { return false; }' : ''}
  return true;
}

// Terms added to scale·q·k: the bias, then ALiBi (-slope·|j - i - (m - n)|, none on free keys).
fn fa_extra(bi: i32, head: i32, i: i32, j: i32, s: f32) -> f32 {
  var x = s;
  ${spec.hasBias ? `x = x + Bias[${biasIndex}];` : ''}
  ${
    slopes === null
      ? ''
      : `if (j >= ${spec.freeKeys}) { x = x - FA_SLOPES[head] * abs(f32(j) - f32(i + FA_OFF)); }`
  }
  return x;
}

fn fa_mix32(x0: u32) -> u32 {
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}

fn fa_rowKey(bi: i32, head: i32, i: i32) -> u32 {
  let s = fa_mix32(uniforms.faSeed ^ fa_mix32(u32(bi) + 0x632be5abu));
  return fa_mix32(s ^ fa_mix32(u32(head) * 0x9e3779b9u + fa_mix32(u32(i))));
}

// The dropout factor of weight (row, key): 0 or 1/(1 - rate); 1 without dropout.
fn fa_keep(rowKey: u32, j: i32) -> f32 {
  ${
    spec.dropping
      ? `if ((fa_mix32(rowKey + u32(j) * 0x85ebca6bu) >> 8u) >= ${spec.keepThreshold}u) { return ${lit(spec.dropScale)}; }
  return 0.0;`
      : 'return 1.0;'
  }
}
`
}

/**
 * Phony reads of every binding: tfjs builds the pipeline with layout 'auto', which drops bindings
 * a shader never mentions, and then fails to bind them.
 */
function touchBindings(names: readonly string[]): string {
  return ['_ = uniforms.NAN;', ...names.map((name) => `_ = ${name}[0];`)].join(' ')
}

/** The per-call uniform values of every flash program (the dropout seed). */
export function seedUniform(spec: GpuFlashSpec): Array<{ type: string; data: number[] }> {
  return [{ type: 'uint32', data: [spec.seed >>> 0] }]
}

/** The per-call uniform values of {@link FlashForwardProgram}: the dropout seed and the key count. */
export function forwardUniforms(spec: GpuFlashSpec): Array<{ type: string; data: number[] }> {
  return [...seedUniform(spec), { type: 'int32', data: [spec.m] }]
}

abstract class FlashProgram implements WebGPUProgram {
  outputShape: number[]
  shaderKey: string
  dispatchLayout = { x: [0] }
  dispatch: [number, number, number]
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1]
  variableNames: string[]
  // The dropout seed, passed with {@link seedUniform} on every run.
  uniforms = 'faSeed : u32,'
  protected readonly spec: GpuFlashSpec

  constructor(
    kind: string,
    spec: GpuFlashSpec,
    variableNames: string[],
    outputShape: number[],
    workgroups: number,
  ) {
    this.spec = spec
    this.variableNames = variableNames
    this.outputShape = outputShape
    this.dispatch = [workgroups, 1, 1]
    this.shaderKey = `xattnFlash${kind}:${gpuSpecKey(spec)}`
  }

  abstract getUserCode(): string
}

function optionalNames(spec: GpuFlashSpec): string[] {
  return [...(spec.hasMask ? ['KeyMask'] : []), ...(spec.hasBias ? ['Bias'] : [])]
}

/**
 * Forward pass, FlashAttention-2 style: one thread per query row; the rows of a workgroup all
 * read the same KV head (its query heads side by side, so GQA loads each K/V tile once for the
 * group), and K/V tiles are staged in workgroup memory. Online softmax keeps a running max and
 * sum per row. Output packs `[out (dv) | lse]` per row; `lse` is +Infinity for a row with no
 * visible key (whose output is 0).
 */
export class FlashForwardProgram extends FlashProgram {
  private readonly tile: number
  // The key count arrives as a uniform: decoding with a KV cache grows it by one every token, and
  // a baked-in m would compile new shaders per token.
  override uniforms = 'faSeed : u32, faM : i32,'
  constructor(spec: GpuFlashSpec) {
    const rows = spec.groups * spec.n
    const groups = spec.b * spec.kvh
    super(
      'Fwd',
      spec,
      ['Q', 'K', 'V', ...optionalNames(spec)],
      [spec.b * spec.h * spec.n * (spec.dv + 1)],
      groups * ceilDiv(rows, WORKGROUP),
    )
    this.shaderKey = `xattnFlashFwd:${gpuSpecKey({ ...spec, m: 0 })}`
    this.tile = tileRows(spec.d + spec.dv)
  }

  getUserCode(): string {
    const TK = this.tile
    const rows = this.spec.groups * this.spec.n
    const perGroup = ceilDiv(rows, WORKGROUP)
    return `${commonWgsl(this.spec, true)}
const FA_TK: i32 = ${TK};
var<workgroup> fa_k: array<f32, ${Math.max(1, TK * this.spec.d)}>;
var<workgroup> fa_v: array<f32, ${Math.max(1, TK * this.spec.dv)}>;
var<workgroup> fa_end: i32;

fn main(index: i32) {
  ${touchBindings(this.variableNames)}
  FA_M = uniforms.faM;
  FA_OFF = FA_M - FA_N;
  let wg = fa_workgroupIndex();
  let inRange = wg < ${this.spec.b * this.spec.kvh * perGroup};
  let bg = min(wg / ${perGroup}, FA_B * FA_KVH - 1);
  let bi = bg / FA_KVH;
  let g = bg % FA_KVH;
  let t0 = (wg % ${perGroup}) * FA_WG;
  let t = t0 + i32(localIndex);
  let valid = inRange && t < ${rows};
  let tc = min(t, ${rows - 1});
  let head = g + (tc / FA_N) * FA_KVH;
  let i = tc % FA_N;
  // Keys past the diagonal of the workgroup's last row are never visible: stop there.
  let tLast = min(t0 + FA_WG, ${rows}) - 1;
  var maxI = FA_N - 1;
  if (tLast / FA_N == t0 / FA_N) { maxI = tLast % FA_N; }
  var end = FA_M;
  ${this.spec.causal ? 'end = clamp(maxI + FA_OFF + 1, 0, FA_M);' : ''}
  if (!inRange) { end = 0; }
  if (localIndex == 0u) { fa_end = end; }
  let keyEnd = workgroupUniformLoad(&fa_end);

  let qBase = ((bi * FA_H + head) * FA_N + i) * FA_D;
  var q: array<f32, ${Math.max(1, this.spec.d)}>;
  for (var c = 0; c < FA_D; c++) { q[c] = Q[qBase + c]; }
  var acc: array<f32, ${Math.max(1, this.spec.dv)}>;
  for (var c = 0; c < FA_DV; c++) { acc[c] = 0.0; }
  var mx = FA_MIN;
  var l = 0.0;
  let rowKey = fa_rowKey(bi, head, i);
  let kvBase = (bi * FA_KVH + g) * FA_M;
  for (var j0 = 0; j0 < keyEnd; j0 += FA_TK) {
    let cols = min(FA_TK, keyEnd - j0);
    for (var e = i32(localIndex); e < cols * FA_D; e += FA_WG) { fa_k[e] = K[(kvBase + j0) * FA_D + e]; }
    for (var e = i32(localIndex); e < cols * FA_DV; e += FA_WG) { fa_v[e] = V[(kvBase + j0) * FA_DV + e]; }
    workgroupBarrier();
    if (valid) {
      for (var jj = 0; jj < cols; jj++) {
        let j = j0 + jj;
        if (!fa_visible(bi, i, j)) { continue; }
        var s = 0.0;
        for (var c = 0; c < FA_D; c++) { s = s + q[c] * fa_k[jj * FA_D + c]; }
        s = fa_extra(bi, head, i, j, s * ${lit(this.spec.scale)});
        let mNew = max(mx, s);
        let corr = exp(mx - mNew);
        let p = exp(s - mNew);
        l = l * corr + p;
        // The normaliser uses undropped weights; only the value mix sees the dropout mask.
        let pv = p * fa_keep(rowKey, j);
        for (var c = 0; c < FA_DV; c++) { acc[c] = acc[c] * corr + pv * fa_v[jj * FA_DV + c]; }
        mx = mNew;
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let row = (bi * FA_H + head) * FA_N + i;
    let outBase = row * (FA_DV + 1);
    if (l > 0.0) {
      for (var c = 0; c < FA_DV; c++) { result[outBase + c] = acc[c] / l; }
      result[outBase + FA_DV] = mx + log(l);
    } else {
      for (var c = 0; c < FA_DV; c++) { result[outBase + c] = 0.0; }
      result[outBase + FA_DV] = uniforms.INFINITY;
    }
  }
}
`
  }
}

/**
 * Packs `[lse, delta]` per query row, `delta = rowsum(dOut · out)` being the softmax-Jacobian
 * correction of the backward pass. One buffer for both keeps the gradient programs within
 * WebGPU's guaranteed 8 storage buffers per shader stage (q, k, v, dOut, this, mask, bias, result).
 */
export class FlashDeltaProgram extends FlashProgram {
  constructor(spec: GpuFlashSpec) {
    const rows = spec.b * spec.h * spec.n
    super('Delta', spec, ['DO', 'O', 'Lse'], [rows * 2], ceilDiv(rows, WORKGROUP))
  }

  getUserCode(): string {
    const rows = this.spec.b * this.spec.h * this.spec.n
    return `
fn main(index: i32) {
  ${touchBindings(this.variableNames)}
  let row = i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x) * ${WORKGROUP} + i32(localIndex);
  if (row >= ${rows}) { return; }
  var s = 0.0;
  for (var c = 0; c < ${this.spec.dv}; c++) { s = s + DO[row * ${this.spec.dv} + c] * O[row * ${this.spec.dv} + c]; }
  result[row * 2] = Lse[row];
  result[row * 2 + 1] = s;
}
`
  }
}

/**
 * dq: one thread per query row with K/V tiles in workgroup memory, recomputing the
 * probabilities from the saved row log-sum-exp: `dS = P ∘ (z·dO·vᵀ − delta)`, `dq = scale·dS·k`.
 */
export class FlashDqProgram extends FlashProgram {
  private readonly tile: number
  constructor(spec: GpuFlashSpec) {
    const rows = spec.groups * spec.n
    super(
      'Dq',
      spec,
      ['Q', 'K', 'V', 'DO', 'LD', ...optionalNames(spec)],
      [spec.b, spec.h, spec.n, spec.d],
      spec.b * spec.kvh * ceilDiv(rows, WORKGROUP),
    )
    this.tile = tileRows(spec.d + spec.dv)
  }

  getUserCode(): string {
    const TK = this.tile
    const rows = this.spec.groups * this.spec.n
    const perGroup = ceilDiv(rows, WORKGROUP)
    return `${commonWgsl(this.spec)}
const FA_TK: i32 = ${TK};
var<workgroup> fa_k: array<f32, ${Math.max(1, TK * this.spec.d)}>;
var<workgroup> fa_v: array<f32, ${Math.max(1, TK * this.spec.dv)}>;
var<workgroup> fa_end: i32;

fn main(index: i32) {
  ${touchBindings(this.variableNames)}
  let wg = fa_workgroupIndex();
  let inRange = wg < ${this.spec.b * this.spec.kvh * perGroup};
  let bg = min(wg / ${perGroup}, FA_B * FA_KVH - 1);
  let bi = bg / FA_KVH;
  let g = bg % FA_KVH;
  let t0 = (wg % ${perGroup}) * FA_WG;
  let t = t0 + i32(localIndex);
  let valid = inRange && t < ${rows};
  let tc = min(t, ${rows - 1});
  let head = g + (tc / FA_N) * FA_KVH;
  let i = tc % FA_N;
  let tLast = min(t0 + FA_WG, ${rows}) - 1;
  var maxI = FA_N - 1;
  if (tLast / FA_N == t0 / FA_N) { maxI = tLast % FA_N; }
  var end = FA_M;
  ${this.spec.causal ? 'end = clamp(maxI + FA_OFF + 1, 0, FA_M);' : ''}
  if (!inRange) { end = 0; }
  if (localIndex == 0u) { fa_end = end; }
  let keyEnd = workgroupUniformLoad(&fa_end);

  let row = (bi * FA_H + head) * FA_N + i;
  var q: array<f32, ${Math.max(1, this.spec.d)}>;
  var dq: array<f32, ${Math.max(1, this.spec.d)}>;
  for (var c = 0; c < FA_D; c++) { q[c] = Q[row * FA_D + c]; dq[c] = 0.0; }
  var dO: array<f32, ${Math.max(1, this.spec.dv)}>;
  for (var c = 0; c < FA_DV; c++) { dO[c] = DO[row * FA_DV + c]; }
  let lse = LD[row * 2];
  let delta = LD[row * 2 + 1];
  let rowKey = fa_rowKey(bi, head, i);
  let kvBase = (bi * FA_KVH + g) * FA_M;
  for (var j0 = 0; j0 < keyEnd; j0 += FA_TK) {
    let cols = min(FA_TK, keyEnd - j0);
    for (var e = i32(localIndex); e < cols * FA_D; e += FA_WG) { fa_k[e] = K[(kvBase + j0) * FA_D + e]; }
    for (var e = i32(localIndex); e < cols * FA_DV; e += FA_WG) { fa_v[e] = V[(kvBase + j0) * FA_DV + e]; }
    workgroupBarrier();
    if (valid) {
      for (var jj = 0; jj < cols; jj++) {
        let j = j0 + jj;
        if (!fa_visible(bi, i, j)) { continue; }
        var s = 0.0;
        for (var c = 0; c < FA_D; c++) { s = s + q[c] * fa_k[jj * FA_D + c]; }
        s = fa_extra(bi, head, i, j, s * ${lit(this.spec.scale)});
        let p = exp(s - lse);
        var dp = 0.0;
        for (var c = 0; c < FA_DV; c++) { dp = dp + dO[c] * fa_v[jj * FA_DV + c]; }
        let ds = p * (fa_keep(rowKey, j) * dp - delta);
        for (var c = 0; c < FA_D; c++) { dq[c] = dq[c] + ds * fa_k[jj * FA_D + c]; }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    for (var c = 0; c < FA_D; c++) { result[row * FA_D + c] = dq[c] * ${lit(this.spec.scale)}; }
  }
}
`
  }
}

/**
 * dk and dv: one thread per key, looping over every query row of the key's group (all the query
 * heads that share its KV head) with q/dOut tiles in workgroup memory. Output packs
 * `[dk (d) | dv (dv)]` per key.
 */
export class FlashDkDvProgram extends FlashProgram {
  private readonly tile: number
  constructor(spec: GpuFlashSpec) {
    super(
      'DkDv',
      spec,
      ['Q', 'K', 'V', 'DO', 'LD', ...optionalNames(spec)],
      [spec.b * spec.kvh * spec.m * (spec.d + spec.dv)],
      spec.b * spec.kvh * ceilDiv(spec.m, WORKGROUP),
    )
    this.tile = tileRows(spec.d + spec.dv + 2)
  }

  getUserCode(): string {
    const TQ = this.tile
    const rows = this.spec.groups * this.spec.n
    const perGroup = ceilDiv(this.spec.m, WORKGROUP)
    return `${commonWgsl(this.spec)}
const FA_TQ: i32 = ${TQ};
var<workgroup> fa_q: array<f32, ${Math.max(1, TQ * this.spec.d)}>;
var<workgroup> fa_do: array<f32, ${Math.max(1, TQ * this.spec.dv)}>;
var<workgroup> fa_lse: array<f32, ${TQ}>;
var<workgroup> fa_delta: array<f32, ${TQ}>;
var<workgroup> fa_end: i32;

fn main(index: i32) {
  ${touchBindings(this.variableNames)}
  let wg = fa_workgroupIndex();
  let inRange = wg < ${this.spec.b * this.spec.kvh * perGroup};
  let bg = min(wg / ${perGroup}, FA_B * FA_KVH - 1);
  let bi = bg / FA_KVH;
  let g = bg % FA_KVH;
  let j = (wg % ${perGroup}) * FA_WG + i32(localIndex);
  let valid = inRange && j < FA_M;
  var end = ${rows};
  if (!inRange) { end = 0; }
  if (localIndex == 0u) { fa_end = end; }
  let rowEnd = workgroupUniformLoad(&fa_end);

  let jc = min(j, FA_M - 1);
  let kvRow = (bi * FA_KVH + g) * FA_M + jc;
  var k: array<f32, ${Math.max(1, this.spec.d)}>;
  var dk: array<f32, ${Math.max(1, this.spec.d)}>;
  for (var c = 0; c < FA_D; c++) { k[c] = K[kvRow * FA_D + c]; dk[c] = 0.0; }
  var v: array<f32, ${Math.max(1, this.spec.dv)}>;
  var dv: array<f32, ${Math.max(1, this.spec.dv)}>;
  for (var c = 0; c < FA_DV; c++) { v[c] = V[kvRow * FA_DV + c]; dv[c] = 0.0; }
  for (var t0 = 0; t0 < rowEnd; t0 += FA_TQ) {
    let count = min(FA_TQ, rowEnd - t0);
    // Row t of the group is query i = t % n of head g + (t / n)·kvh.
    for (var e = i32(localIndex); e < count * FA_D; e += FA_WG) {
      let t = t0 + e / FA_D;
      let qRow = (bi * FA_H + g + (t / FA_N) * FA_KVH) * FA_N + t % FA_N;
      fa_q[e] = Q[qRow * FA_D + e % FA_D];
    }
    for (var e = i32(localIndex); e < count * FA_DV; e += FA_WG) {
      let t = t0 + e / FA_DV;
      let qRow = (bi * FA_H + g + (t / FA_N) * FA_KVH) * FA_N + t % FA_N;
      fa_do[e] = DO[qRow * FA_DV + e % FA_DV];
    }
    for (var e = i32(localIndex); e < count; e += FA_WG) {
      let t = t0 + e;
      let qRow = (bi * FA_H + g + (t / FA_N) * FA_KVH) * FA_N + t % FA_N;
      fa_lse[e] = LD[qRow * 2];
      fa_delta[e] = LD[qRow * 2 + 1];
    }
    workgroupBarrier();
    if (valid) {
      for (var tt = 0; tt < count; tt++) {
        let t = t0 + tt;
        let head = g + (t / FA_N) * FA_KVH;
        let i = t % FA_N;
        if (!fa_visible(bi, i, j)) { continue; }
        var s = 0.0;
        for (var c = 0; c < FA_D; c++) { s = s + fa_q[tt * FA_D + c] * k[c]; }
        s = fa_extra(bi, head, i, j, s * ${lit(this.spec.scale)});
        let p = exp(s - fa_lse[tt]);
        var dp = 0.0;
        for (var c = 0; c < FA_DV; c++) { dp = dp + fa_do[tt * FA_DV + c] * v[c]; }
        let z = fa_keep(fa_rowKey(bi, head, i), j);
        let ds = p * (z * dp - fa_delta[tt]);
        for (var c = 0; c < FA_D; c++) { dk[c] = dk[c] + ds * fa_q[tt * FA_D + c]; }
        for (var c = 0; c < FA_DV; c++) { dv[c] = dv[c] + p * z * fa_do[tt * FA_DV + c]; }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let outBase = kvRow * (FA_D + FA_DV);
    for (var c = 0; c < FA_D; c++) { result[outBase + c] = dk[c] * ${lit(this.spec.scale)}; }
    for (var c = 0; c < FA_DV; c++) { result[outBase + FA_D + c] = dv[c]; }
  }
}
`
  }
}

/**
 * dBias, one thread per bias element: `dS` summed over the batches and heads the bias
 * broadcasts across.
 */
export class FlashDBiasProgram extends FlashProgram {
  constructor(spec: GpuFlashSpec) {
    const size = spec.biasB * spec.biasH * spec.n * spec.m
    super(
      'DBias',
      spec,
      ['Q', 'K', 'V', 'DO', 'LD', ...optionalNames(spec)],
      [spec.biasB, spec.biasH, spec.n, spec.m],
      ceilDiv(size, WORKGROUP),
    )
  }

  getUserCode(): string {
    const { biasB, biasH, n, m } = this.spec
    const size = biasB * biasH * n * m
    return `${commonWgsl(this.spec)}
fn main(index: i32) {
  ${touchBindings(this.variableNames)}
  let e = fa_workgroupIndex() * FA_WG + i32(localIndex);
  if (e >= ${size}) { return; }
  let j = e % FA_M;
  let i = (e / FA_M) % FA_N;
  let hb = e / (FA_M * FA_N) % ${biasH};
  let bb = e / (FA_M * FA_N * ${biasH});
  var total = 0.0;
  for (var bi = ${biasB > 1 ? 'bb' : '0'}; bi < ${biasB > 1 ? 'bb + 1' : 'FA_B'}; bi++) {
    if (!fa_visible(bi, i, j)) { continue; }
    for (var head = ${biasH > 1 ? 'hb' : '0'}; head < ${biasH > 1 ? 'hb + 1' : 'FA_H'}; head++) {
      let g = head % FA_KVH;
      let row = (bi * FA_H + head) * FA_N + i;
      let kvRow = (bi * FA_KVH + g) * FA_M + j;
      var s = 0.0;
      for (var c = 0; c < FA_D; c++) { s = s + Q[row * FA_D + c] * K[kvRow * FA_D + c]; }
      s = fa_extra(bi, head, i, j, s * ${lit(this.spec.scale)});
      let p = exp(s - LD[row * 2]);
      var dp = 0.0;
      for (var c = 0; c < FA_DV; c++) { dp = dp + DO[row * FA_DV + c] * V[kvRow * FA_DV + c]; }
      total = total + p * (fa_keep(fa_rowKey(bi, head, i), j) * dp - LD[row * 2 + 1]);
    }
  }
  result[e] = total;
}
`
  }
}

/** Copies columns `[offset, offset + width)` of a packed `[rows, stride]` buffer into `outputShape`. */
export class SliceColumnsProgram implements WebGPUProgram {
  outputShape: number[]
  shaderKey: string
  dispatchLayout = { x: [0] }
  dispatch: [number, number, number]
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1]
  variableNames = ['P']
  private readonly total: number

  constructor(
    outputShape: number[],
    private readonly stride: number,
    private readonly offset: number,
    private readonly width: number,
  ) {
    this.total = outputShape.reduce((a, x) => a * x, 1)
    this.outputShape = outputShape
    this.dispatch = [ceilDiv(this.total, WORKGROUP), 1, 1]
    this.shaderKey = `xattnSliceColumns:${this.total}:${stride}:${offset}:${width}`
  }

  getUserCode(): string {
    return `
fn main(index: i32) {
  ${touchBindings(this.variableNames)}
  let e = i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x) * ${WORKGROUP} + i32(localIndex);
  if (e >= ${this.total}) { return; }
  result[e] = P[(e / ${this.width}) * ${this.stride} + ${this.offset} + e % ${this.width}];
}
`
  }
}
