/** What {@link drawHeatmap} draws: one head's attention weights `[rows, cols]`. */
export interface HeatmapData {
  /** Row-major weights, rows = queries, cols = keys (memory slots first). */
  readonly values: ArrayLike<number>
  readonly rows: number
  readonly cols: number
  /** Leading key columns that are memory slots (marked in a different colour). */
  readonly memSlots: number
  /** Labels of the query tokens (one per row); keys after the memory slots share them. */
  readonly labels: readonly string[]
}

/**
 * Draws an attention map as a heatmap: white = 0, dark = 1 (blue for token keys, purple for
 * memory slots, which also get a labelled band along the top).
 */
export function drawHeatmap(canvas: HTMLCanvasElement, data: HeatmapData): void {
  const ctx = canvas.getContext('2d')
  if (ctx === null) return
  const { width, height } = canvas
  const band = 16
  const labelW = 14
  ctx.fillStyle = '#fff'
  ctx.fillRect(0, 0, width, height)
  if (data.rows === 0 || data.cols === 0) return
  const cell = Math.max(1, Math.min((width - labelW) / data.cols, (height - band - labelW) / data.rows))
  const left = labelW
  const top = band
  for (let i = 0; i < data.rows; i++) {
    for (let j = 0; j < data.cols; j++) {
      const w = Math.max(0, Math.min(1, Number(data.values[i * data.cols + j])))
      const memory = j < data.memSlots
      // Lightness falls with the weight; hue tells memory slots from tokens.
      ctx.fillStyle = memory ? `hsl(280, 70%, ${100 - 65 * w}%)` : `hsl(215, 80%, ${100 - 65 * w}%)`
      ctx.fillRect(left + j * cell, top + i * cell, Math.ceil(cell), Math.ceil(cell))
    }
  }
  if (data.memSlots > 0) {
    ctx.fillStyle = '#7b2cbf'
    ctx.fillRect(left, 0, data.memSlots * cell, band - 3)
    ctx.fillStyle = '#fff'
    ctx.font = '10px sans-serif'
    ctx.fillText('mem', left + 2, band - 6)
  }
  if (cell >= 8) {
    ctx.fillStyle = '#333'
    ctx.font = `${Math.min(11, cell - 1)}px monospace`
    data.labels.forEach((label, i) => {
      ctx.fillText(label === ' ' ? '␣' : label, 2, top + i * cell + cell - 2)
    })
  }
  ctx.strokeStyle = '#666'
  ctx.strokeRect(left, top, data.cols * cell, data.rows * cell)
}
