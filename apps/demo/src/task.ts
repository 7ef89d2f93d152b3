import { SeededRandom } from '@xattn/core'

/** Token ids: digits are 0–9, then the separator and the task markers. */
export const SEP = 10
export const COPY = 11
export const REVERSE = 12
export const VOCAB = 13

export type TaskName = 'reverse' | 'copy' | 'mixed'

export interface Example {
  /** `[task, d1 … dN, sep]` */
  readonly prompt: number[]
  /** the N answer digits */
  readonly answer: number[]
}

/** Sequence length of one example: task + N digits + separator + N answer digits. */
export function sequenceLength(digits: number): number {
  return 2 * digits + 2
}

/** A deterministic stream of examples for a task. */
export class TaskData {
  private readonly rng: SeededRandom

  constructor(
    readonly task: TaskName,
    readonly digits: number,
    seed: number,
  ) {
    this.rng = new SeededRandom(seed)
  }

  next(): Example {
    const digits = Array.from({ length: this.digits }, () => this.rng.nextUint32() % 10)
    const kind = this.task === 'mixed' ? (this.rng.uniform() < 0.5 ? 'copy' : 'reverse') : this.task
    const answer = kind === 'reverse' ? [...digits].reverse() : [...digits]
    return { prompt: [kind === 'reverse' ? REVERSE : COPY, ...digits, SEP], answer }
  }

  /** A batch of full sequences and, per token, whether it is an answer token (a training target). */
  batch(size: number): { tokens: number[][]; answerMask: boolean[][] } {
    const tokens: number[][] = []
    const answerMask: boolean[][] = []
    for (let i = 0; i < size; i++) {
      const { prompt, answer } = this.next()
      tokens.push([...prompt, ...answer])
      answerMask.push([...prompt.map(() => false), ...answer.map(() => true)])
    }
    return { tokens, answerMask }
  }
}

/** Renders an example like `reverse 3 1 4 1 5 9 → 9 5 1 4 1 3`. */
export function render(prompt: readonly number[], answer: readonly number[]): string {
  const task = prompt[0] === REVERSE ? 'reverse' : 'copy'
  return `${task} ${prompt.slice(1, -1).join('')} → ${answer.join('')}`
}
