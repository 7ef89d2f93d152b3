// Plain-loop oracles written from the definitions (torch Linear, 'b n (h d) -> b h n d'), not
// from the code under test.

/** y[r, o] = Σ_i x[r, i] · w[o, i] (+ bias[o]) over flattened leading axes. */
export function linearLoops(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rows: number,
  inF: number,
  outF: number,
  bias?: ArrayLike<number>,
): Float64Array {
  const y = new Float64Array(rows * outF)
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let acc = bias ? Number(bias[o]) : 0
      for (let i = 0; i < inF; i++) acc += Number(x[r * inF + i]) * Number(w[o * inF + i])
      y[r * outF + o] = acc
    }
  }
  return y
}

/** [b, n, h·d] → [b, h, n, d] by index arithmetic. */
export function splitHeadsLoops(
  x: ArrayLike<number>,
  b: number,
  n: number,
  h: number,
  d: number,
): Float64Array {
  const out = new Float64Array(b * h * n * d)
  for (let bi = 0; bi < b; bi++)
    for (let ni = 0; ni < n; ni++)
      for (let hi = 0; hi < h; hi++)
        for (let di = 0; di < d; di++)
          out[((bi * h + hi) * n + ni) * d + di] = Number(x[(bi * n + ni) * h * d + hi * d + di])
  return out
}
