/** Where the demo writes: stdout for results, stderr for progress (a TTY gets a live bar). */
export interface DemoIo {
  readonly out: (line: string) => void
  readonly progress: NodeJS.WriteStream | { isTTY?: boolean; write(chunk: string): boolean }
}

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`
}

/**
 * A one-line progress bar with loss and tokens/s. On a TTY it redraws in place; otherwise it
 * prints a plain line every tenth of the run, so logs stay readable.
 */
export class ProgressBar {
  private lastPlainDecile = -1
  private drawn = false
  private pending: string | null = null

  constructor(
    private readonly stream: DemoIo['progress'],
    private readonly total: number,
    private readonly enabled = true,
    /** Step the run started from (a resumed run), for the ETA. */
    private readonly start = 0,
  ) {}

  update(
    step: number,
    info: { loss: number; tokensPerSecond: number; elapsedMs: number; extra?: string },
  ): void {
    if (!this.enabled) return
    const done = Math.min(step, this.total)
    const fraction = this.total === 0 ? 1 : done / this.total
    const eta = done <= this.start ? 0 : (info.elapsedMs / (done - this.start)) * (this.total - done)
    const text = `step ${String(done).padStart(String(this.total).length)}/${this.total}  loss ${info.loss.toFixed(4)}  ${Math.round(info.tokensPerSecond)} tok/s  ${formatDuration(info.elapsedMs)} (eta ${formatDuration(eta)})${info.extra === undefined ? '' : `  ${info.extra}`}`
    if (this.stream.isTTY === true) {
      const width = 24
      const filled = Math.round(fraction * width)
      this.stream.write(`\r\x1b[2K[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${text}`)
      this.drawn = true
      return
    }
    const decile = Math.floor(fraction * 10)
    if (decile > this.lastPlainDecile) {
      this.lastPlainDecile = decile
      this.stream.write(`${text}\n`)
      this.pending = null
    } else {
      this.pending = text
    }
  }

  /** Ends the bar's line (TTY), or prints the last state if it fell between tenths (plain). */
  finish(): void {
    if (this.enabled && this.drawn) this.stream.write('\n')
    if (this.enabled && this.pending !== null) this.stream.write(`${this.pending}\n`)
    this.drawn = false
    this.pending = null
  }
}
