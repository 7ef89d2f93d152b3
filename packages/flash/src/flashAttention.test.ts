import * as tf from '@tensorflow/tfjs-core'
import { type AttendInputs, type AttendOptions, attendReference, getAttention } from '@xattn/core'
import { describeEachBackend, expectClose, testRng } from '@xattn/test-utils'
import { expect, it } from 'vitest'
import { attendCases, caseTensors } from './attendCases.js'
import { flashAttention } from './index.js'

type Impl = (inputs: AttendInputs, options: AttendOptions) => tf.Tensor4D

// Tolerances, float32 throughout. Both sides sum the same products in different orders (tiles of
// 64 keys with an online max vs one matMul and softmax) and flash uses a ~2 ulp polynomial exp.
// With unit-scale inputs, d <= 16 and m <= 129, a worst-case rounding bound (d + m)·u·|terms| with
// u = 6e-8 is ~1e-5; outputs are convex mixes of |v| <= 1 so an absolute bound fits them.
// Gradients chain one more reduction (over n or m, and the dS = P(dP - D) cancellation), so they
// get 4x the room, plus a relative term for the larger entries of dq/dk (|q|,|k| <= 1.5, bias <= 2).
const OUT_TOL = { atol: 2e-5, rtol: 1e-4 }
const GRAD_TOL = { atol: 8e-5, rtol: 4e-4 }

function evaluate(impl: Impl, t: ReturnType<typeof caseTensors>) {
  return tf.tidy(() => {
    const xs = t.bias === null ? [t.q, t.k, t.v] : [t.q, t.k, t.v, t.bias]
    const loss = (...args: tf.Tensor[]) => {
      const [q, k, v, bias] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined]
      const out = impl({ q, k, v }, { ...t.options, bias: bias ?? null })
      return tf.sum(tf.mul(out, t.weight)) as tf.Scalar
    }
    const out = impl({ q: t.q, k: t.k, v: t.v }, t.options)
    const grads = tf.grads(loss)(xs)
    return { out: out.dataSync().slice(), grads: grads.map((g) => g.dataSync().slice()) }
  })
}

const CASES = attendCases(220, testRng(20240611))

describeEachBackend('flashAttention equals attendReference', () => {
  it(`over ${CASES.length} randomised cases (outputs and gradients of q, k, v, bias)`, () => {
    let worstOut = 0
    let worstGrad = 0
    for (const c of CASES) {
      const t = caseTensors(c, testRng(c.seed))
      const before = tf.memory().numTensors
      const flash = evaluate(flashAttention, t)
      // Every public call leaves the tensor count as it found it.
      expect(tf.memory().numTensors, `${c.label}: tensors left behind`).toBe(before)
      const ref = evaluate(attendReference, t)
      expectClose(flash.out, ref.out, { ...OUT_TOL, label: `${c.label} out` })
      const names = ['dq', 'dk', 'dv', 'dBias']
      flash.grads.forEach((g, i) => {
        expectClose(g, ref.grads[i] as Float32Array, { ...GRAD_TOL, label: `${c.label} ${names[i]}` })
        for (let e = 0; e < g.length; e++) {
          worstGrad = Math.max(
            worstGrad,
            Math.abs((g[e] as number) - ((ref.grads[i] as Float32Array)[e] as number)),
          )
        }
      })
      for (let e = 0; e < flash.out.length; e++) {
        worstOut = Math.max(worstOut, Math.abs((flash.out[e] as number) - (ref.out[e] as number)))
      }
      tf.dispose([t.q, t.k, t.v, t.weight])
      if (t.keyMask !== null) t.keyMask.dispose()
      if (t.bias !== null) t.bias.dispose()
    }
    if (process.env.FLASH_VERBOSE) console.log(`worst |out diff| ${worstOut}, worst |grad diff| ${worstGrad}`)
    // 220 cases × (forward + gradients) × two implementations take ~20 s alone but passed the 60 s
    // default under the full parallel `pnpm test` load on 2 shared cores: 300 s keeps the case count.
  }, 300_000)

  it("is registered as the core attention 'flash'", () => {
    expect(getAttention('flash')).toBe(flashAttention)
  })
})
