/**
 * The default training text (written for this playground): short, repetitive sentences, so a tiny
 * model learns its words within a few hundred steps in the browser.
 */
export const DEFAULT_CORPUS = `attention lets every token look at the tokens before it.
a query asks a question, the keys answer, and the values carry what is passed on.
the softmax turns the scores into weights that sum to one.
memory slots are extra keys and values the model learns; every query may read them.
grouped query attention shares one key head between several query heads.
flash attention computes the same numbers in tiles and never stores the whole score matrix.
rotary positions turn queries and keys by an angle that grows with the position.
the model reads a prompt, caches its keys and values, and writes one token at a time.
the loss falls as the model learns which letter follows which.
attention lets every token look at the tokens before it.
a small model trains in the browser on the webgpu, webgl or wasm backend.
`

/** Printable ASCII: token id = character code − 32; anything else becomes a space. */
export const VOCAB = 96

/** Characters → token ids in `[0, numTokens)` (codes beyond the vocabulary wrap). */
export function encode(text: string, numTokens = VOCAB): number[] {
  return Array.from(text, (ch) => {
    const code = ch.charCodeAt(0)
    const id = code >= 32 && code < 127 ? code - 32 : 0
    return id % numTokens
  })
}

/** Token ids → characters (ids past the printable range show as `·`). */
export function decode(ids: readonly number[]): string {
  return ids.map((id) => (id >= 0 && id < VOCAB ? String.fromCharCode(id + 32) : '·')).join('')
}

/** A seeded sampler of training windows `[batch, seqLen + 1]` from a text. */
export class CorpusSampler {
  private readonly ids: number[]
  private state: number
  constructor(
    text: string,
    private readonly seqLen: number,
    seed: number,
  ) {
    this.ids = encode(text.replace(/\s+/g, ' '))
    this.state = seed >>> 0
    if (this.ids.length < seqLen + 2) {
      throw new Error(`playground: the training text needs at least ${seqLen + 2} characters`)
    }
  }

  // mulberry32
  private next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  batch(size: number): number[][] {
    const span = this.ids.length - this.seqLen - 1
    return Array.from({ length: size }, () => {
      const start = Math.floor(this.next() * span)
      return this.ids.slice(start, start + this.seqLen + 1)
    })
  }
}
