import { AutoregressiveWrapper, Decoder, TransformerWrapper } from '@xattn/transformer'
import type { DemoOptions } from './args.js'
import { sequenceLength, VOCAB } from './task.js'

/** What rebuilds the demo's model (saved as the checkpoint's config). */
export interface DemoModelConfig {
  readonly numTokens: number
  readonly maxSeqLen: number
  readonly dim: number
  readonly depth: number
  readonly heads: number
  readonly kvHeads: number
  readonly dimHead: number
  readonly memKv: number
  readonly rotary: boolean
  readonly attention: 'flash' | 'reference'
  readonly seed: number
}

export function modelConfig(options: DemoOptions, attention: 'flash' | 'reference'): DemoModelConfig {
  return {
    numTokens: VOCAB,
    maxSeqLen: sequenceLength(options.digits),
    dim: options.dim,
    depth: options.depth,
    heads: options.heads,
    kvHeads: options.kvHeads,
    dimHead: options.dimHead,
    memKv: options.memKv,
    rotary: options.rotary,
    attention,
    seed: options.seed,
  }
}

/** The decoder: rotary (or absolute) positions, GQA, memory KV, the chosen attention kernel. */
export function buildModel(config: DemoModelConfig): { net: TransformerWrapper; ar: AutoregressiveWrapper } {
  const net = new TransformerWrapper({
    numTokens: config.numTokens,
    maxSeqLen: config.maxSeqLen,
    seed: config.seed,
    attnLayers: new Decoder({
      dim: config.dim,
      depth: config.depth,
      heads: config.heads,
      rotaryPosEmb: config.rotary,
      seed: config.seed,
      attn: {
        dimHead: config.dimHead,
        kvHeads: config.kvHeads,
        numMemKv: config.memKv,
        attention: config.attention,
      },
    }),
  })
  return { net, ar: new AutoregressiveWrapper(net) }
}

/** One line naming the model's features. */
export function describeModel(config: DemoModelConfig, parameters: number): string {
  const heads =
    config.kvHeads === config.heads
      ? `${config.heads} heads`
      : config.kvHeads === 1
        ? `MQA (${config.heads} query heads, 1 kv head)`
        : `GQA (${config.heads} query heads, ${config.kvHeads} kv heads)`
  const parts = [
    `${config.depth} layers × dim ${config.dim}`,
    heads,
    `dim/head ${config.dimHead}`,
    config.memKv > 0 ? `${config.memKv} memory KV` : 'no memory KV',
    config.rotary ? 'rotary' : 'absolute positions',
    `${config.attention} attention`,
    `${(parameters / 1000).toFixed(1)}k parameters`,
  ]
  return parts.join(', ')
}
