/** A live loss curve on a canvas: loss per step, with the axes labelled. */
export class LossChart {
  private readonly losses: number[] = []
  constructor(private readonly canvas: HTMLCanvasElement) {
    this.draw()
  }

  clear(): void {
    this.losses.length = 0
    this.draw()
  }

  push(loss: number): void {
    this.losses.push(loss)
    this.draw()
  }

  get values(): readonly number[] {
    return this.losses
  }

  private draw(): void {
    const ctx = this.canvas.getContext('2d')
    if (ctx === null) return
    const { width, height } = this.canvas
    const pad = { left: 44, right: 10, top: 12, bottom: 26 }
    ctx.fillStyle = '#fff'
    ctx.fillRect(0, 0, width, height)
    ctx.strokeStyle = '#999'
    ctx.lineWidth = 1
    ctx.beginPath()
    ctx.moveTo(pad.left, pad.top)
    ctx.lineTo(pad.left, height - pad.bottom)
    ctx.lineTo(width - pad.right, height - pad.bottom)
    ctx.stroke()
    ctx.fillStyle = '#333'
    ctx.font = '11px sans-serif'
    ctx.fillText('step', width - pad.right - 24, height - 8)
    ctx.fillText('loss', pad.left + 6, pad.top + 8)
    if (this.losses.length === 0) return
    const max = Math.max(...this.losses)
    const min = Math.min(0, ...this.losses)
    const steps = Math.max(1, this.losses.length - 1)
    const x = (i: number) => pad.left + (i / steps) * (width - pad.left - pad.right)
    const y = (v: number) =>
      height - pad.bottom - ((v - min) / (max - min || 1)) * (height - pad.top - pad.bottom)
    ctx.fillText(max.toFixed(2), 4, y(max) + 4)
    ctx.fillText(min.toFixed(2), 4, y(min))
    ctx.fillText(String(this.losses.length), width - pad.right - 20, height - pad.bottom + 14)
    ctx.strokeStyle = '#d9480f'
    ctx.lineWidth = 2
    ctx.beginPath()
    this.losses.forEach((v, i) => {
      if (i === 0) ctx.moveTo(x(i), y(v))
      else ctx.lineTo(x(i), y(v))
    })
    ctx.stroke()
  }
}
