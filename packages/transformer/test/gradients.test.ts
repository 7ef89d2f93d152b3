import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import { describeEachBackend, randomTensor } from '@xattn/test-utils'
import { describe, expect, it } from 'vitest'
import { createFromXTransformers, type TransformerWrapper, type XTransformersConfig } from '../src/index.js'

// The 9 fixtures with train.safetensors check gradients exactly against PyTorch (apps/integration
// parity). Here: every fixture configuration is differentiable (finite gradients for every
// parameter), and for the options no train fixture covers, the gradient agrees with a central
// finite difference along a random direction.

const FIXTURES = fileURLToPath(new URL('../../../fixtures/x-transformers/', import.meta.url))
const CASES = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort()

function configOf(name: string): XTransformersConfig {
  return (
    JSON.parse(readFileSync(join(FIXTURES, name, 'case.json'), 'utf8')) as { config: XTransformersConfig }
  ).config
}

function lossOf(model: TransformerWrapper, tokens: tf.Tensor, context: tf.Tensor | null): tf.Scalar {
  const logits = model.forward(tokens, { context })
  // A smooth scalar of every logit: mean log-sum-exp.
  return tf.mean(tf.logSumExp(logits, -1)) as tf.Scalar
}

function contextFor(config: XTransformersConfig): tf.Tensor | null {
  const kwargs = config.layers_kwargs as Record<string, unknown>
  if (kwargs.cross_attend !== true) return null
  const dim = (kwargs.cross_attn_dim_context as number | undefined) ?? (kwargs.dim as number)
  return randomTensor([1, 3, dim], 7)
}

describeEachBackend('every fixture configuration is differentiable', () => {
  for (const name of CASES) {
    it(name, () => {
      const config = configOf(name)
      const model = createFromXTransformers(config).eval()
      const tokens = tf.tensor2d([[3, 1, 4, 1, 5, 9]], [1, 6], 'int32')
      const context = contextFor(config)
      const params = model.parameters()
      const { value, grads } = tf.variableGrads(() => lossOf(model, tokens, context), params)
      expect(Object.keys(grads).length).toBe(params.length)
      for (const variable of params) {
        const g = grads[variable.name] as tf.Tensor
        expect(Number.isFinite(tf.sum(tf.abs(g)).dataSync()[0]), `${name}: finite gradient`).toBe(true)
      }
      tf.dispose([value, ...Object.values(grads), tokens, context ?? []])
      model.dispose()
    })
  }
})

describe('gradients agree with finite differences where no train fixture checks them', () => {
  for (const name of [
    'sparse_topk',
    'talking_heads',
    'residual_attn',
    'softclamp_logits',
    'gate_residual',
    'dynamic_pos_bias',
    'rel_pos_bias',
    'shift_tokens',
    'cross_attend_num_mem_kv_one_kv_head',
  ]) {
    it(name, () => {
      const config = configOf(name)
      const model = createFromXTransformers(config).eval()
      const tokens = tf.tensor2d([[3, 1, 4, 1, 5, 9]], [1, 6], 'int32')
      const context = contextFor(config)
      const params = model.parameters()
      const { value, grads } = tf.variableGrads(() => lossOf(model, tokens, context), params)
      // Directional derivative along a random direction d: ⟨∇L, d⟩ vs (L(θ+εd) − L(θ−εd)) / 2ε.
      // Sparse top-k's loss is only piecewise smooth (the selection can flip under a perturbation), so
      // there the direction moves only parameters that cannot change any selection: the last
      // attention layer's values and output, and everything after it.
      const names = new Map([...model.namedParameters()].map(([n, v]) => [v.name, n]))
      const movable = (variableName: string) => {
        if (name !== 'sparse_topk') return true
        const n = names.get(variableName) ?? ''
        return /^attn_layers\.layers\.(2\.1\.to_(v|out)|3\.)|^attn_layers\.final_norm|^to_logits/.test(n)
      }
      const directions = params.map((p, i) =>
        movable(p.name) ? randomTensor([...p.shape], 100 + i, 1) : tf.zeros(p.shape),
      )
      let analytic = 0
      params.forEach((p, i) => {
        analytic += tf
          .sum(tf.mul(grads[p.name] as tf.Tensor, directions[i] as tf.Tensor))
          .dataSync()[0] as number
      })
      // Small enough that sparse top-k's selection does not flip between the two evaluations.
      const eps = 1e-3
      const shifted = (sign: number) => {
        params.forEach((p, i) => {
          tf.tidy(() => p.assign(tf.add(p, tf.mul(directions[i] as tf.Tensor, sign * eps))))
        })
        const loss = tf.tidy(() => lossOf(model, tokens, context).dataSync()[0] as number)
        params.forEach((p, i) => {
          tf.tidy(() => p.assign(tf.sub(p, tf.mul(directions[i] as tf.Tensor, sign * eps))))
        })
        return loss
      }
      const numeric = (shifted(1) - shifted(-1)) / (2 * eps)
      // float32 central differences at ε = 1e-3: truncation well under 5 %, rounding noise ~1e-3.
      expect(Math.abs(numeric - analytic)).toBeLessThanOrEqual(0.05 * Math.abs(analytic) + 2e-3)
      expect(Math.abs(analytic)).toBeGreaterThan(1e-3)
      tf.dispose([value, ...Object.values(grads), ...directions, tokens, context ?? []])
      model.dispose()
    })
  }
})
