import { getKernel } from '@tensorflow/tfjs-core'
import { describe, expect, it } from 'vitest'
import { FlashAttention, FlashAttentionGrad } from './kernelNames.js'
import './webgl.js'
import { flashDkvProgram, flashScoresProgram } from './webglPrograms.js'
import './webgpu.js'
import { FlashDqProgram, FlashForwardProgram } from './webgpuPrograms.js'
import { f32Literal, type GpuFlashSpec, gpuFlashSpec } from './webgpuSpec.js'

// The kernels themselves run in headless Chromium (apps/browser-tests); here, in Node, the parts
// that need no GPU: registration, the float constants baked into shaders, and the shader specs.

const info = (shape: number[]) => ({ dataId: {}, shape, dtype: 'float32' as const })

const attrs = {
  causal: true,
  scale: 0.125,
  alibiSlopes: [0.5, 0.25, 0.125, 0.0625],
  alibiFreeKeys: 2,
  dropout: 0.25,
  seed: 7,
  hasKeyMask: true,
  hasBias: true,
}

describe('@xattn/flash/webgpu and /webgl entries', () => {
  it('register FlashAttention and FlashAttentionGrad for their backends', () => {
    for (const backend of ['webgpu', 'webgl']) {
      expect(getKernel(FlashAttention, backend)?.backendName).toBe(backend)
      expect(getKernel(FlashAttentionGrad, backend)?.backendName).toBe(backend)
    }
  })
})

describe('f32Literal', () => {
  it('round-trips float32 values exactly through shader source', () => {
    const values = [
      0.125,
      1 / 3,
      -Math.PI,
      1e-30,
      3e-45,
      123456.789,
      -3.4028234663852886e38,
      3.4028234663852886e38,
    ]
    for (const x of values) {
      const text = f32Literal(x)
      expect(text, text).toMatch(/[.e]/)
      expect(Math.abs(Number(text)), text).toBeLessThanOrEqual(3.4028234663852886e38)
      expect(Math.fround(Number(text)), text).toBe(Math.fround(x))
    }
  })
})

describe('gpuFlashSpec', () => {
  it('reads sizes from the tensors and the dropout threshold of the wasm kernel', () => {
    const spec = gpuFlashSpec(
      info([2, 4, 5, 8]),
      info([2, 2, 9, 8]),
      info([2, 2, 9, 6]),
      info([1, 4, 5, 9]),
      attrs,
    )
    expect(spec).toMatchObject({ b: 2, h: 4, kvh: 2, n: 5, m: 9, d: 8, dv: 6, groups: 2, biasB: 1, biasH: 4 })
    expect(spec.keepThreshold).toBe(Math.round(0.25 * 2 ** 24))
    expect(spec.dropScale).toBeCloseTo(4 / 3, 12)
  })

  it('specialises the shaders on every option (distinct cache keys, constants in the source)', () => {
    const spec: GpuFlashSpec = gpuFlashSpec(
      info([1, 4, 5, 8]),
      info([1, 2, 9, 8]),
      info([1, 2, 9, 8]),
      null,
      {
        ...attrs,
        hasBias: false,
      },
    )
    const forward = new FlashForwardProgram(spec)
    const other = new FlashForwardProgram({ ...spec, causal: false })
    expect(forward.shaderKey).not.toBe(other.shaderKey)
    // The seed and (for the forward) the key count are uniforms: KV-cache decoding and dropout
    // training reuse one compiled shader.
    expect(new FlashForwardProgram({ ...spec, m: 10, seed: 99 }).shaderKey).toBe(forward.shaderKey)
    expect(new FlashDqProgram({ ...spec, seed: 99 }).shaderKey).toBe(new FlashDqProgram(spec).shaderKey)
    const wgsl = forward.getUserCode()
    expect(wgsl).toContain('FA_OFF = FA_M - FA_N;')
    expect(new FlashDqProgram(spec).getUserCode()).toContain('const FA_OFF: i32 = 4;')
    expect(wgsl).toContain('if (j > i + FA_OFF) { return false; }')
    expect(wgsl).toContain(`>= ${Math.round(0.25 * 2 ** 24)}u`)
    expect(other.getUserCode()).not.toContain('if (j > i + FA_OFF)')
    // Gradient programs stay within WebGPU's 8 storage buffers per stage (7 inputs + result).
    expect(new FlashDqProgram({ ...spec, hasBias: true }).variableNames.length).toBeLessThanOrEqual(7)
    expect(flashScoresProgram(spec, 9).userCode).toContain('getKeyMask(bi, j) < 0.5')
    expect(flashDkvProgram(spec, 'dk', true).outputShape).toEqual([1, 2, 9, 8])
  })
})
