import type { FlashDims, FlashParams } from './flashCompute.js'

/** Result of {@link loopOracle}: forward output and, when `dOut` was given, the gradients. */
export interface OracleResult {
  out: Float64Array
  dq: Float64Array
  dk: Float64Array
  dv: Float64Array
  dBias: Float64Array | null
}

/**
 * Test oracle: attention written as the plainest possible float64 loops over the full n×m matrix,
 * independent of both the kernel and tfjs. Semantics follow @xattn/core's attendReference
 * (GQA head i → KV head i % kvh, bottom-right causal, fully masked rows → 0); no dropout.
 */
export function loopOracle(
  dims: FlashDims,
  params: FlashParams,
  arrays: {
    q: ArrayLike<number>
    k: ArrayLike<number>
    v: ArrayLike<number>
    keyMask: ArrayLike<number> | null
    bias: ArrayLike<number> | null
    dOut: ArrayLike<number> | null
  },
): OracleResult {
  const { b, h, kvh, n, m, d, dv } = dims
  const { q, k, v, keyMask, bias, dOut } = arrays
  const out = new Float64Array(b * h * n * dv)
  const dq = new Float64Array(b * h * n * d)
  const dk = new Float64Array(b * kvh * m * d)
  const dvOut = new Float64Array(b * kvh * m * dv)
  const dBias = bias === null ? null : new Float64Array(bias.length)
  const logits = new Float64Array(m)
  const p = new Float64Array(m)
  const visible = new Uint8Array(m)
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      const g = hi % kvh
      const biasBase =
        ((params.biasBatch > 1 ? bi : 0) * params.biasHeads + (params.biasHeads > 1 ? hi : 0)) * n * m
      for (let i = 0; i < n; i++) {
        const qRow = ((bi * h + hi) * n + i) * d
        let max = Number.NEGATIVE_INFINITY
        let any = false
        for (let j = 0; j < m; j++) {
          const kRow = ((bi * kvh + g) * m + j) * d
          let s = 0
          for (let c = 0; c < d; c++) s += (q[qRow + c] as number) * (k[kRow + c] as number)
          s *= params.scale
          if (bias !== null) s += bias[biasBase + i * m + j] as number
          if (params.slopes !== null && j >= params.freeKeys) {
            s -= (params.slopes[hi] as number) * Math.abs(j - i - (m - n))
          }
          const ok = (keyMask === null || keyMask[bi * m + j] !== 0) && (!params.causal || j <= i + (m - n))
          visible[j] = ok ? 1 : 0
          logits[j] = s
          if (ok) {
            any = true
            if (s > max) max = s
          }
        }
        let sum = 0
        for (let j = 0; j < m; j++) {
          p[j] = any && visible[j] ? Math.exp((logits[j] as number) - max) : 0
          sum += p[j] as number
        }
        for (let j = 0; j < m; j++) if (sum > 0) p[j] = (p[j] as number) / sum
        const oRow = ((bi * h + hi) * n + i) * dv
        for (let j = 0; j < m; j++) {
          const vRow = ((bi * kvh + g) * m + j) * dv
          for (let c = 0; c < dv; c++)
            out[oRow + c] = (out[oRow + c] as number) + (p[j] as number) * (v[vRow + c] as number)
        }
        if (dOut === null) continue
        // dP_j = dO·v_j; dS_j = P_j (dP_j - sum_k P_k dP_k).
        let dot = 0
        const dpRow = new Float64Array(m)
        for (let j = 0; j < m; j++) {
          const vRow = ((bi * kvh + g) * m + j) * dv
          let s = 0
          for (let c = 0; c < dv; c++) s += (dOut[oRow + c] as number) * (v[vRow + c] as number)
          dpRow[j] = s
          dot += (p[j] as number) * s
        }
        for (let j = 0; j < m; j++) {
          const ds = (p[j] as number) * ((dpRow[j] as number) - dot)
          if (dBias !== null) dBias[biasBase + i * m + j] = (dBias[biasBase + i * m + j] as number) + ds
          const kRow = ((bi * kvh + g) * m + j) * d
          const vRow = ((bi * kvh + g) * m + j) * dv
          for (let c = 0; c < d; c++) {
            dq[qRow + c] = (dq[qRow + c] as number) + params.scale * ds * (k[kRow + c] as number)
            dk[kRow + c] = (dk[kRow + c] as number) + params.scale * ds * (q[qRow + c] as number)
          }
          for (let c = 0; c < dv; c++) {
            dvOut[vRow + c] = (dvOut[vRow + c] as number) + (p[j] as number) * (dOut[oRow + c] as number)
          }
        }
      }
    }
  }
  return { out, dq, dk, dv: dvOut, dBias }
}
