import type { GPGPUProgram } from '@tensorflow/tfjs-backend-webgl'
import { type GpuFlashSpec, f32Literal as lit } from './webgpuSpec.js'

/**
 * GLSL shared by the programs: sizes, visibility (key mask, bottom-right causal), the logit of a
 * (query, key) pair with its bias and ALiBi terms, and the counter-based dropout mask of the wasm
 * and webgpu kernels (lowbias32 on (seed, batch, head, query, key)).
 */
function commonGlsl(spec: GpuFlashSpec, withGrad: boolean): string {
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

bool fa_visible(int bi, int i, int j) {
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
      ? `uint s = fa_mix32(${spec.seed >>> 0}u ^ fa_mix32(uint(bi) + 0x632be5abu));
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

// dS = P ∘ (z·dP − delta), recomputed from the saved row log-sum-exp.
float fa_ds(int bi, int head, int i, int j) {
  float p = exp(fa_logit(bi, head, i, j) - getLse(bi, head, i));
  return p * (fa_keep(bi, head, i, j) * fa_dp(bi, head, i, j) - getDelta(bi, head, i));
}
`
    : ''
}
`
}

function optionalNames(spec: GpuFlashSpec): string[] {
  return [...(spec.hasMask ? ['KeyMask'] : []), ...(spec.hasBias ? ['Bias'] : [])]
}

class FlashGlProgram implements GPGPUProgram {
  readonly variableNames: string[]
  readonly outputShape: number[]
  readonly userCode: string
  constructor(variableNames: string[], outputShape: number[], userCode: string) {
    this.variableNames = variableNames
    this.outputShape = outputShape
    this.userCode = userCode
  }
}

// A fragment shader computes one output element, so there is no shared memory to tile through:
// each pass streams the keys of its row with the running max/sum where it needs them, and the
// score matrix is never stored.

/** Row log-sum-exp `[b h n]` by online softmax; +Infinity for a row with no visible key. */
export function flashLseProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    ['Q', 'K', ...optionalNames(spec)],
    [spec.b, spec.h, spec.n],
    `${commonGlsl(spec, false)}
void main() {
  ivec3 rc = getOutputCoords();
  int bi = rc.x; int head = rc.y; int i = rc.z;
  float mx = ${lit(-3.4028234663852886e38)};
  float l = 0.0;
  for (int j = 0; j < FA_M; j++) {
    if (!fa_visible(bi, i, j)) { continue; }
    float s = fa_logit(bi, head, i, j);
    float mNew = max(mx, s);
    l = l * exp(mx - mNew) + exp(s - mNew);
    mx = mNew;
  }
  setOutput(l > 0.0 ? mx + log(l) : uintBitsToFloat(0x7f800000u));
}
`,
  )
}

/** `out [b h n dv]`: one element per fragment, weights `exp(logit − lse)` (dropped where masked). */
export function flashOutProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    ['Q', 'K', 'V', 'Lse', ...optionalNames(spec)],
    [spec.b, spec.h, spec.n, spec.dv],
    `${commonGlsl(spec, false)}
void main() {
  ivec4 rc = getOutputCoords();
  int bi = rc.x; int head = rc.y; int i = rc.z; int c = rc.w;
  int g = head - (head / FA_KVH) * FA_KVH;
  float lse = getLse(bi, head, i);
  float acc = 0.0;
  for (int j = 0; j < FA_M; j++) {
    if (!fa_visible(bi, i, j)) { continue; }
    float p = exp(fa_logit(bi, head, i, j) - lse) * fa_keep(bi, head, i, j);
    acc += p * getV(bi, g, j, c);
  }
  setOutput(acc);
}
`,
  )
}

/** `delta [b h n] = rowsum(dOut · out)`. */
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

const GRAD_INPUTS = ['Q', 'K', 'V', 'DO', 'Lse', 'Delta']

/** `dq [b h n d] = scale · Σ_j dS_ij k_j`. */
export function flashDqProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    [...GRAD_INPUTS, ...optionalNames(spec)],
    [spec.b, spec.h, spec.n, spec.d],
    `${commonGlsl(spec, true)}
void main() {
  ivec4 rc = getOutputCoords();
  int bi = rc.x; int head = rc.y; int i = rc.z; int c = rc.w;
  int g = head - (head / FA_KVH) * FA_KVH;
  float acc = 0.0;
  for (int j = 0; j < FA_M; j++) {
    if (!fa_visible(bi, i, j)) { continue; }
    acc += fa_ds(bi, head, i, j) * getK(bi, g, j, c);
  }
  setOutput(acc * FA_SCALE);
}
`,
  )
}

/** `dk [b kvh m d] = scale · Σ dS_ij q_i` over the query heads sharing the KV head. */
export function flashDkProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    [...GRAD_INPUTS, ...optionalNames(spec)],
    [spec.b, spec.kvh, spec.m, spec.d],
    `${commonGlsl(spec, true)}
void main() {
  ivec4 rc = getOutputCoords();
  int bi = rc.x; int g = rc.y; int j = rc.z; int c = rc.w;
  float acc = 0.0;
  for (int r = 0; r < FA_G; r++) {
    int head = g + r * FA_KVH;
    for (int i = ${spec.causal ? 'max(0, j - FA_OFF)' : '0'}; i < FA_N; i++) {
      if (!fa_visible(bi, i, j)) { continue; }
      acc += fa_ds(bi, head, i, j) * getQ(bi, head, i, c);
    }
  }
  setOutput(acc * FA_SCALE);
}
`,
  )
}

/** `dv [b kvh m dv] = Σ z·P_ij dOut_i` over the query heads sharing the KV head. */
export function flashDvProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    [...GRAD_INPUTS, ...optionalNames(spec)],
    [spec.b, spec.kvh, spec.m, spec.dv],
    `${commonGlsl(spec, true)}
void main() {
  ivec4 rc = getOutputCoords();
  int bi = rc.x; int g = rc.y; int j = rc.z; int c = rc.w;
  float acc = 0.0;
  for (int r = 0; r < FA_G; r++) {
    int head = g + r * FA_KVH;
    for (int i = ${spec.causal ? 'max(0, j - FA_OFF)' : '0'}; i < FA_N; i++) {
      if (!fa_visible(bi, i, j)) { continue; }
      float p = exp(fa_logit(bi, head, i, j) - getLse(bi, head, i)) * fa_keep(bi, head, i, j);
      acc += p * getDO(bi, head, i, c);
    }
  }
  setOutput(acc);
}
`,
  )
}

/** dBias in the bias's own shape: dS summed over the batches and heads it broadcasts across. */
export function flashDBiasProgram(spec: GpuFlashSpec): GPGPUProgram {
  return new FlashGlProgram(
    [...GRAD_INPUTS, ...optionalNames(spec)],
    [spec.biasB, spec.biasH, spec.n, spec.m],
    `${commonGlsl(spec, true)}
void main() {
  ivec4 rc = getOutputCoords();
  int i = rc.z; int j = rc.w;
  float acc = 0.0;
  for (int bi = ${spec.biasB > 1 ? 'rc.x' : '0'}; bi < ${spec.biasB > 1 ? 'rc.x + 1' : 'FA_B'}; bi++) {
    if (!fa_visible(bi, i, j)) { continue; }
    for (int head = ${spec.biasH > 1 ? 'rc.y' : '0'}; head < ${spec.biasH > 1 ? 'rc.y + 1' : 'FA_H'}; head++) {
      acc += fa_ds(bi, head, i, j);
    }
  }
  setOutput(acc);
}
`,
  )
}
