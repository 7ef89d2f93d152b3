import type { GPGPUProgram } from '@tensorflow/tfjs-backend-webgl'
import { type GpuFlashSpec, f32Literal as lit } from './webgpuSpec.js'

/**
 * GLSL shared by the programs: sizes, visibility (key mask, bottom-right causal), the logit of a
 * (query, key) pair with its bias and ALiBi terms, and the counter-based dropout mask of the wasm
 * and webgpu kernels (lowbias32 on (seed, batch, head, query, key)).
 */
function commonGlsl(spec: GpuFlashSpec, withGrad: boolean, withLogits = true): string {
  const { b, h, kvh, n, m, d, dv, groups } = spec
  const slopes = spec.slopes
  return `
const int FA_B = ${b};
const int FA_H = ${h};
const int FA_KVH = ${kvh};
const int FA_N = ${n};
const int FA_M = ${m};
const int FA_D = ${d};
const int FA_DV = ${dv};
const int FA_G = ${groups};
const int FA_OFF = ${m - n};
const float FA_SCALE = ${lit(spec.scale)};
${slopes === null ? '' : `const float FA_SLOPES[${h}] = float[${h}](${slopes.map(lit).join(', ')});`}

${
  withLogits
    ? `bool fa_visible(int bi, int i, int j) {
  ${spec.causal ? 'if (j > i + FA_OFF) { return false; }' : ''}
  ${spec.hasMask ? 'if (getKeyMask(bi, j) < 0.5) { return false; }' : ''}
  return true;
}

// scale·q·k, then the bias, then ALiBi (-slope·|j - i - (m - n)|, none on free keys).
float fa_logit(int bi, int head, int i, int j) {
  int g = head - (head / FA_KVH) * FA_KVH;
  float s = 0.0;
  for (int c = 0; c < FA_D; c++) { s += getQ(bi, head, i, c) * getK(bi, g, j, c); }
  s = s * FA_SCALE;
  ${spec.hasBias ? `s += getBias(${spec.biasB > 1 ? 'bi' : '0'}, ${spec.biasH > 1 ? 'head' : '0'}, i, j);` : ''}
  ${slopes === null ? '' : `if (j >= ${spec.freeKeys}) { s -= FA_SLOPES[head] * abs(float(j) - float(i + FA_OFF)); }`}
  return s;
}

`
    : ''
}
uint fa_mix32(uint x0) {
  uint x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}

// The dropout factor of weight (row, key): 0 or 1/(1 - rate); 1 without dropout.
float fa_keep(int bi, int head, int i, int j) {
  ${
    spec.dropping
      ? `uint s = fa_mix32(uint(faSeed) ^ fa_mix32(uint(bi) + 0x632be5abu));
  uint rowKey = fa_mix32(s ^ fa_mix32(uint(head) * 0x9e3779b9u + fa_mix32(uint(i))));
  if ((fa_mix32(rowKey + uint(j) * 0x85ebca6bu) >> 8u) >= ${spec.keepThreshold}u) { return ${lit(spec.dropScale)}; }
  return 0.0;`
      : 'return 1.0;'
  }
}
${
  withGrad
    ? `
float fa_dp(int bi, int head, int i, int j) {
  int g = head - (head / FA_KVH) * FA_KVH;
  float s = 0.0;
  for (int c = 0; c < FA_DV; c++) { s += getDO(bi, head, i, c) * getV(bi, g, j, c); }
  return s;
}
`
    : ''
}
`
}

function optionalNames(spec: GpuFlashSpec): string[] {
  return [...(spec.hasMask ? ['KeyMask'] : []), ...(spec.hasBias ? ['Bias'] : [])]
}

type UniformSpec = NonNullable<GPGPUProgram['customUniforms']>

class FlashGlProgram implements GPGPUProgram {
  readonly variableNames: string[]
  readonly outputShape: number[]
  readonly userCode: string
  readonly customUniforms?: UniformSpec
  constructor(variableNames: string[], outputShape: number[], userCode: string, uniforms?: UniformSpec) {
    this.variableNames = variableNames
    this.outputShape = outputShape
    this.userCode = userCode
    if (uniforms !== undefined) this.customUniforms = uniforms
  }
}

/**
 * Keys per block. A fragment shader computes one output element and has no shared memory, so the
 * kernel tiles on the host instead: per block of keys, one pass writes the block's logits
 * `[b h n BK]` (O(n) memory, never the n × m matrix) and later passes fold it into running
 * statistics and accumulators, each reading the logits instead of recomputing q·k per element.
 */
export const WEBGL_KEY_BLOCK = 128

// The block's first key and width arrive as uniforms, so one compiled shader serves every block.
// So does the dropout seed (as the int with the same bits): training draws a new one every step.
const BLOCK_UNIFORMS: UniformSpec = [
  { name: 'faJ0', type: 'int' },
  { name: 'faCols', type: 'int' },
  { name: 'faSeed', type: 'int' },
]

const NEG_INF = 'uintBitsToFloat(0xff800000u)'
const POS_INF = 'uintBitsToFloat(0x7f800000u)'

/** The block's logits `[b h n cols]`; −Infinity where the key is not visible. */
export function flashScoresProgram(spec: GpuFlashSpec, cols: number): GPGPUProgram {
  return new FlashGlProgram(
    ['Q', 'K', ...optionalNames(spec)],
    [spec.b, spec.h, spec.n, cols],
    `${commonGlsl(spec, false)}
void main() {
  ivec4 rc = getOutputCoords();
  int j = faJ0 + rc.w;
  setOutput(fa_visible(rc.x, rc.z, j) ? fa_logit(rc.x, rc.y, rc.z, j) : ${NEG_INF});
}
`,
    BLOCK_UNIFORMS,
  )
}

/**
 * Running softmax statistics `[b h n 2]` (max, sum) after folding in a block of logits; the
 * first block starts from (−Infinity, 0).
 */
export function flashStatsProgram(spec: GpuFlashSpec, first: boolean): GPGPUProgram {
  return new FlashGlProgram(
    first ? ['S'] : ['S', 'Stats'],
    [spec.b, spec.h, spec.n, 2],
    `
void main() {
  ivec4 rc = getOutputCoords();
  float mOld = ${first ? NEG_INF : 'getStats(rc.x, rc.y, rc.z, 0)'};
  float lOld = ${first ? '0.0' : 'getStats(rc.x, rc.y, rc.z, 1)'};
  float mNew = mOld;
  for (int k = 0; k < faCols; k++) { mNew = max(mNew, getS(rc.x, rc.y, rc.z, k)); }
  if (rc.w == 0) { setOutput(mNew); return; }
  // A row with nothing visible so far keeps sum 0 (and −Infinity − −Infinity is never formed).
  if (mNew == ${NEG_INF}) { setOutput(0.0); return; }
  float l = lOld * exp(mOld - mNew);
  for (int k = 0; k < faCols; k++) { l += exp(getS(rc.x, rc.y, rc.z, k) - mNew); }
  setOutput(l);
}
`,
    BLOCK_UNIFORMS,
  )
}

/** The unnormalised output `[b h n dv]` after a block: rescaled old value + Σ exp(s − max)·z·v. */
export function flashAccProgram(spec: GpuFlashSpec, first: boolean): GPGPUProgram {
  return new FlashGlProgram(
    first ? ['S', 'V', 'StatsNew'] : ['S', 'V', 'StatsNew', 'StatsOld', 'Acc'],
    [spec.b, spec.h, spec.n, spec.dv],
    `${commonGlsl(spec, false, false)}
void main() {
  ivec4 rc = getOutputCoords();
  int bi = rc.x; int head = rc.y; int i = rc.z; int c = rc.w;
  int g = head - (head / FA_KVH) * FA_KVH;
  float mNew = getStatsNew(bi, head, i, 0);
  if (mNew == ${NEG_INF}) { setOutput(0.0); return; }
  float acc = ${first ? '0.0' : 'getAcc(bi, head, i, c) * exp(getStatsOld(bi, head, i, 0) - mNew)'};
  for (int k = 0; k < faCols; k++) {
    float s = getS(bi, head, i, k);
    if (s == ${NEG_INF}) { continue; }
    int j = faJ0 + k;
    acc += exp(s - mNew) * fa_keep(bi, head, i, j) * getV(bi, g, j, c);
  }
  setOutput(acc);
}
`,
    BLOCK_UNIFORMS,
  )
}

/** `out = acc / sum` (0 for a row with no visible key). */
export function flashNormalizeProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    ['Acc', 'Stats'],
    [spec.b, spec.h, spec.n, spec.dv],
    `
void main() {
  ivec4 rc = getOutputCoords();
  float l = getStats(rc.x, rc.y, rc.z, 1);
  setOutput(l > 0.0 ? getAcc(rc.x, rc.y, rc.z, rc.w) / l : 0.0);
}
`,
  )
}

/** Row log-sum-exp `[b h n]`: max + log(sum); +Infinity for a row with no visible key. */
export function flashLseProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    ['Stats'],
    [spec.b, spec.h, spec.n],
    `
void main() {
  ivec3 rc = getOutputCoords();
  float l = getStats(rc.x, rc.y, rc.z, 1);
  setOutput(l > 0.0 ? getStats(rc.x, rc.y, rc.z, 0) + log(l) : ${POS_INF});
}
`,
  )
}

/** `delta [b h n] = rowsum(dOut · out)`, the softmax-Jacobian correction of the backward pass. */
export function flashDeltaProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    ['DO', 'O'],
    [spec.b, spec.h, spec.n],
    `
void main() {
  ivec3 rc = getOutputCoords();
  float s = 0.0;
  for (int c = 0; c < ${spec.dv}; c++) { s += getDO(rc.x, rc.y, rc.z, c) * getO(rc.x, rc.y, rc.z, c); }
  setOutput(s);
}
`,
  )
}

/**
 * Per key block `[b h n 2·cols]`: columns `k < cols` hold `dS = P ∘ (z·dP − delta)`, columns
 * `cols + k` hold the dropped weights `z·P`, with P recomputed from the saved log-sum-exp.
 */
export function flashDsProgram(spec: GpuFlashSpec, cols: number): GPGPUProgram {
  return new FlashGlProgram(
    ['Q', 'K', 'V', 'DO', 'Lse', 'Delta', ...optionalNames(spec)],
    [spec.b, spec.h, spec.n, 2 * cols],
    `${commonGlsl(spec, true)}
void main() {
  ivec4 rc = getOutputCoords();
  int bi = rc.x; int head = rc.y; int i = rc.z;
  bool weights = rc.w >= faCols;
  int j = faJ0 + (weights ? rc.w - faCols : rc.w);
  if (!fa_visible(bi, i, j)) { setOutput(0.0); return; }
  float p = exp(fa_logit(bi, head, i, j) - getLse(bi, head, i));
  float z = fa_keep(bi, head, i, j);
  setOutput(weights ? p * z : p * (z * fa_dp(bi, head, i, j) - getDelta(bi, head, i)));
}
`,
    BLOCK_UNIFORMS,
  )
}

/** `dq [b h n d]` after a block: old + scale · Σ_k dS_k k_k. */
export function flashDqProgram(spec: GpuFlashSpec, first: boolean): GPGPUProgram {
  return new FlashGlProgram(
    first ? ['DS', 'K'] : ['DS', 'K', 'Dq'],
    [spec.b, spec.h, spec.n, spec.d],
    `
void main() {
  ivec4 rc = getOutputCoords();
  int g = rc.y - (rc.y / ${spec.kvh}) * ${spec.kvh};
  float acc = 0.0;
  for (int k = 0; k < faCols; k++) { acc += getDS(rc.x, rc.y, rc.z, k) * getK(rc.x, g, faJ0 + k, rc.w); }
  setOutput(${first ? '' : 'getDq(rc.x, rc.y, rc.z, rc.w) + '}acc * ${lit(spec.scale)});
}
`,
    BLOCK_UNIFORMS,
  )
}

/**
 * dk (`source` = Q, `offset` 0: scale · Σ dS q) or dv (`source` = DO, `offset` = cols: Σ z·P dOut)
 * for the block's keys, summed over the query heads sharing the KV head; keys outside the block
 * keep their previous value (0 before the first block).
 */
export function flashDkvProgram(spec: GpuFlashSpec, which: 'dk' | 'dv', first: boolean): GPGPUProgram {
  const width = which === 'dk' ? spec.d : spec.dv
  const source = which === 'dk' ? 'getQ' : 'getDO'
  const factor = which === 'dk' ? ` * ${lit(spec.scale)}` : ''
  const offset = which === 'dk' ? '0' : 'faCols'
  return new FlashGlProgram(
    first ? ['DS', which === 'dk' ? 'Q' : 'DO'] : ['DS', which === 'dk' ? 'Q' : 'DO', 'Old'],
    [spec.b, spec.kvh, spec.m, width],
    `
void main() {
  ivec4 rc = getOutputCoords();
  int bi = rc.x; int g = rc.y; int j = rc.z; int c = rc.w;
  int k = j - faJ0;
  if (k < 0 || k >= faCols) { setOutput(${first ? '0.0' : 'getOld(bi, g, j, c)'}); return; }
  float acc = 0.0;
  for (int r = 0; r < ${spec.groups}; r++) {
    int head = g + r * ${spec.kvh};
    for (int i = 0; i < ${spec.n}; i++) { acc += getDS(bi, head, i, ${offset} + k) * ${source}(bi, head, i, c); }
  }
  setOutput(acc${factor});
}
`,
    BLOCK_UNIFORMS,
  )
}

/** dBias in the bias's own shape for the block's keys: dS summed over broadcast batches and heads. */
export function flashDBiasProgram(spec: GpuFlashSpec, first: boolean): GPGPUProgram {
  return new FlashGlProgram(
    first ? ['DS'] : ['DS', 'Old'],
    [spec.biasB, spec.biasH, spec.n, spec.m],
    `
void main() {
  ivec4 rc = getOutputCoords();
  int k = rc.w - faJ0;
  if (k < 0 || k >= faCols) { setOutput(${first ? '0.0' : 'getOld(rc.x, rc.y, rc.z, rc.w)'}); return; }
  float acc = 0.0;
  for (int bi = ${spec.biasB > 1 ? 'rc.x' : '0'}; bi < ${spec.biasB > 1 ? 'rc.x + 1' : String(spec.b)}; bi++) {
    for (int head = ${spec.biasH > 1 ? 'rc.y' : '0'}; head < ${spec.biasH > 1 ? 'rc.y + 1' : String(spec.h)}; head++) {
      acc += getDS(bi, head, rc.z, k);
    }
  }
  setOutput(acc);
}
`,
    BLOCK_UNIFORMS,
  )
}
