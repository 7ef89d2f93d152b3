// An independent, deliberately naive attention in plain loops and float64, written from the
// rules in DESIGN §3 (not from the code under test). Used as the oracle for attendReference.

export interface LoopsInput {
  q: Float32Array | number[]
  k: Float32Array | number[]
  v: Float32Array | number[]
  b: number
  h: number
  kvh: number
  n: number
  m: number
  d: number
  dv: number
  causal?: boolean
  keyMask?: Uint8Array | number[] | null // [b, m]
  bias?: Float32Array | number[] | null // full [b, h, n, m] (tests expand broadcasts themselves)
  alibiSlopes?: number[] | null
  alibiFreeKeys?: number
  scale?: number
}

export function attentionLoops(x: LoopsInput): Float64Array {
  const { b, h, kvh, n, m, d, dv } = x
  const scale = x.scale ?? 1 / Math.sqrt(d)
  const out = new Float64Array(b * h * n * dv)
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      const kvi = hi % kvh
      for (let i = 0; i < n; i++) {
        const logits: number[] = []
        const visible: boolean[] = []
        for (let j = 0; j < m; j++) {
          let dot = 0
          for (let c = 0; c < d; c++) {
            dot +=
              Number(x.q[((bi * h + hi) * n + i) * d + c]) * Number(x.k[((bi * kvh + kvi) * m + j) * d + c])
          }
          let logit = dot * scale
          if (x.bias) logit += Number(x.bias[((bi * h + hi) * n + i) * m + j])
          if (x.alibiSlopes && j >= (x.alibiFreeKeys ?? 0)) {
            logit -= (x.alibiSlopes[hi] as number) * Math.abs(j - i - (m - n))
          }
          let ok = true
          if (x.causal && j > i + (m - n)) ok = false
          if (x.keyMask && !x.keyMask[bi * m + j]) ok = false
          logits.push(logit)
          visible.push(ok)
        }
        if (!visible.some(Boolean)) continue // fully masked row: output stays 0
        let max = Number.NEGATIVE_INFINITY
        for (let j = 0; j < m; j++) if (visible[j]) max = Math.max(max, logits[j] as number)
        const weights = logits.map((l, j) => (visible[j] ? Math.exp(l - max) : 0))
        const total = weights.reduce((s, w) => s + w, 0)
        for (let c = 0; c < dv; c++) {
          let acc = 0
          for (let j = 0; j < m; j++)
            acc += ((weights[j] as number) / total) * Number(x.v[((bi * kvh + kvi) * m + j) * dv + c])
          out[((bi * h + hi) * n + i) * dv + c] = acc
        }
      }
    }
  }
  return out
}
