import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu'
import * as tf from '@tensorflow/tfjs-core'
import { attendReference, ConfigError, ShapeContractError } from '@xattn/core'
import { describeEachBackend, expectClose, randomMask, randomTensor } from '@xattn/test-utils'
import { describe, expect, it } from 'vitest'
import { FlashAttention, flashAttention, flashHeapBytes } from './index.js'

const q = () => randomTensor([1, 4, 5, 8], 1)
const k = () => randomTensor([1, 2, 6, 8], 2)
const v = () => randomTensor([1, 2, 6, 3], 3)

describeEachBackend('flashAttention input checks', () => {
  const bad: [string, () => { inputs: { q: tf.Tensor; k: tf.Tensor; v: tf.Tensor }; options?: object }][] = [
    ['q of rank 3', () => ({ inputs: { q: randomTensor([4, 5, 8], 1), k: k(), v: v() } })],
    [
      'kvh not dividing h',
      () => ({ inputs: { q: q(), k: randomTensor([1, 3, 6, 8], 2), v: randomTensor([1, 3, 6, 3], 3) } }),
    ],
    ['mismatched d', () => ({ inputs: { q: q(), k: randomTensor([1, 2, 6, 7], 2), v: v() } })],
    ['mismatched m', () => ({ inputs: { q: q(), k: k(), v: randomTensor([1, 2, 5, 3], 3) } })],
    ['int32 q', () => ({ inputs: { q: tf.zeros([1, 4, 5, 8], 'int32'), k: k(), v: v() } })],
    [
      'keyMask of wrong length',
      () => ({ inputs: { q: q(), k: k(), v: v() }, options: { keyMask: randomMask([1, 5], 4) } }),
    ],
    ['float keyMask', () => ({ inputs: { q: q(), k: k(), v: v() }, options: { keyMask: tf.ones([1, 6]) } })],
    [
      'bias of wrong shape',
      () => ({ inputs: { q: q(), k: k(), v: v() }, options: { bias: tf.zeros([1, 4, 6, 5]) } }),
    ],
  ]
  for (const [name, make] of bad) {
    it(`rejects ${name} with ShapeContractError before any kernel runs`, () => {
      const { inputs, options } = make()
      const before = tf.memory().numTensors
      expect(() => flashAttention(inputs, options)).toThrow(ShapeContractError)
      expect(tf.memory().numTensors).toBe(before)
      tf.dispose([inputs.q, inputs.k, inputs.v, ...Object.values(options ?? {})] as tf.Tensor[])
    })
  }

  it('rejects bad options with ConfigError', () => {
    const [a, b, c] = [q(), k(), v()]
    expect(() => flashAttention({ q: a, k: b, v: c }, { alibiSlopes: [1, 2] })).toThrow(ConfigError)
    expect(() => flashAttention({ q: a, k: b, v: c }, { dropout: 1 })).toThrow(ConfigError)
    expect(() => flashAttention({ q: a, k: b, v: c }, { alibiFreeKeys: 7 })).toThrow(ConfigError)
    tf.dispose([a, b, c])
  })

  it.each(['q', 'k', 'v', 'bias'] as const)(
    'rejects NaN in %s with ShapeContractError naming it, before the kernel runs, leaving nothing',
    async (name) => {
      const t = { q: q(), k: k(), v: v(), bias: tf.zeros([1, 4, 5, 6]) }
      const bad = { ...t, [name]: tf.fill(t[name].shape, Number.NaN) }
      const before = tf.memory().numTensors
      const info = await tf.profile(() => {
        expect(() => flashAttention({ q: bad.q, k: bad.k, v: bad.v }, { bias: bad.bias })).toThrow(
          `@xattn/flash flashAttention: ${name} holds NaN or Infinity values (shape [${t[name].shape.join(',')}]); every element must be finite`,
        )
      })
      expect(info.kernelNames).not.toContain(FlashAttention)
      expect(tf.memory().numTensors).toBe(before)
      tf.dispose([...Object.values(t), bad[name]])
    },
  )

  it('rejects an unknown option key (a typo of causal) with ConfigError naming it', () => {
    const [a, b, c] = [q(), k(), v()]
    expect(() => flashAttention({ q: a, k: b, v: c }, { causall: true } as never)).toThrow(
      new ConfigError(
        '@xattn/flash',
        'causall',
        "@xattn/flash flashAttention: unknown option 'causall'; the options are causal, keyMask, bias, alibiSlopes, alibiFreeKeys, scale, dropout, training, seed",
      ),
    )
    tf.dispose([a, b, c])
  })

  it('runs no kernel for rejected inputs', async () => {
    const [a, c] = [q(), v()]
    const info = await tf.profile(() => {
      try {
        flashAttention({ q: a, k: randomTensor([1, 3, 6, 8], 2), v: c })
      } catch {
        // expected
      }
    })
    expect(info.kernels.filter((kernel) => kernel.name === FlashAttention)).toEqual([])
    tf.dispose([a, c])
  })

  it('works under tf.variableGrads and leaves no tensors behind', () => {
    const vars = [tf.variable(q()), tf.variable(k()), tf.variable(v())] as const
    const before = tf.memory().numTensors
    const { value, grads } = tf.variableGrads(
      () => tf.sum(flashAttention({ q: vars[0], k: vars[1], v: vars[2] }, { causal: true })) as tf.Scalar,
    )
    const ref = tf.variableGrads(
      () => tf.sum(attendReference({ q: vars[0], k: vars[1], v: vars[2] }, { causal: true })) as tf.Scalar,
    )
    for (const variable of vars) {
      expectClose(grads[variable.name] as tf.Tensor, ref.grads[variable.name] as tf.Tensor, {
        atol: 5e-5,
        label: variable.name,
      })
    }
    tf.dispose([value, ref.value, ...Object.values(grads), ...Object.values(ref.grads)])
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose(vars as unknown as tf.Tensor[])
  })

  it('leaks no tensor and grows no WebAssembly heap over 1000 forward+backward calls', () => {
    const [a, b, c] = [q(), k(), v()]
    const heap = () =>
      (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.buffer.byteLength ?? 0
    const step = () =>
      tf.tidy(() => {
        const grads = tf.grads(
          (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
            tf.sum(flashAttention({ q: x, k: y, v: z })) as tf.Scalar,
        )([a, b, c])
        return grads[0]?.dataSync()[0]
      })
    step()
    const tensors = tf.memory().numTensors
    const flashHeap = flashHeapBytes()
    const backendHeap = heap()
    for (let i = 0; i < 1000; i++) step()
    expect(tf.memory().numTensors).toBe(tensors)
    expect(flashHeapBytes()).toBe(flashHeap)
    expect(heap()).toBe(backendHeap)
    tf.dispose([a, b, c])
  })
})

describe('flashAttention on a backend without flash kernels', () => {
  it('throws a ConfigError that says what to import', async () => {
    const previous = tf.getBackend()
    const [a, b, c] = [q(), k(), v()]
    tf.registerBackend('no-flash', () => new MathBackendCPU())
    try {
      await tf.setBackend('no-flash')
      expect(() => flashAttention({ q: a, k: b, v: c })).toThrow(ConfigError)
      expect(() => flashAttention({ q: a, k: b, v: c })).toThrow(/'no-flash'.*import '@xattn\/flash'/)
    } finally {
      await tf.setBackend(previous)
      tf.removeBackend('no-flash')
      tf.dispose([a, b, c])
    }
  })
})

describe('the embedded WebAssembly module', () => {
  it('is current with asm/flash.ts (recompiled with the pinned AssemblyScript)', () => {
    const script = fileURLToPath(new URL('../scripts/buildWasm.mjs', import.meta.url))
    const result = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' })
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
  })
})
