// Plain-loop attention in float64, written from DESIGN §3 (GQA head i ↔ KV head i % kvh,
// bottom-right causal, key mask true = visible, fully masked rows give 0), independent of the
// code under test. Memory slots are given separately and prepended here by index arithmetic.

export interface LoopsAttention {
  q: ArrayLike<number> // [b h n d]
  k: ArrayLike<number> // [b kvh m d]
  v: ArrayLike<number> // [b kvh m dv]
  memK?: ArrayLike<number> | null // [kvh M d]
  memV?: ArrayLike<number> | null // [kvh M dv]
  b: number
  h: number
  kvh: number
  n: number
  m: number
  mem: number
  d: number
  dv: number
  causal?: boolean
  keyMask?: ArrayLike<number | boolean> | null // [b m], real keys only
}

export function attentionWithMemoryLoops(x: LoopsAttention): Float64Array {
  const { b, h, kvh, n, m, mem, d, dv } = x
  const total = mem + m
  const out = new Float64Array(b * h * n * dv)
  const key = (bi: number, kv: number, j: number, c: number) =>
    j < mem
      ? Number(x.memK?.[(kv * mem + j) * d + c])
      : Number(x.k[((bi * kvh + kv) * m + (j - mem)) * d + c])
  const value = (bi: number, kv: number, j: number, c: number) =>
    j < mem
      ? Number(x.memV?.[(kv * mem + j) * dv + c])
      : Number(x.v[((bi * kvh + kv) * m + (j - mem)) * dv + c])
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++) {
      const kv = hi % kvh
      for (let i = 0; i < n; i++) {
        const logits: number[] = []
        const visible: boolean[] = []
        for (let j = 0; j < total; j++) {
          let dot = 0
          for (let c = 0; c < d; c++) dot += Number(x.q[((bi * h + hi) * n + i) * d + c]) * key(bi, kv, j, c)
          logits.push(dot / Math.sqrt(d))
          let ok = !(x.causal === true && j > i + (total - n))
          if (j >= mem && x.keyMask && !x.keyMask[bi * m + (j - mem)]) ok = false
          visible.push(ok)
        }
        if (!visible.some(Boolean)) continue
        let max = Number.NEGATIVE_INFINITY
        for (let j = 0; j < total; j++) if (visible[j]) max = Math.max(max, logits[j] as number)
        const e = logits.map((l, j) => (visible[j] ? Math.exp(l - max) : 0))
        const sum = e.reduce((s, a) => s + a, 0)
        for (let c = 0; c < dv; c++) {
          let acc = 0
          for (let j = 0; j < total; j++) acc += ((e[j] as number) / sum) * value(bi, kv, j, c)
          out[((bi * h + hi) * n + i) * dv + c] = acc
        }
      }
    }
  return out
}
