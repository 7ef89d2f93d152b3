import { AXES, type Combination } from './axes.js'
import type { RejectionProbe } from './compatDoc.js'
import { ComposedAttention } from './composedAttention.js'
import { modelOptions } from './runCombination.js'

const BASE = Object.fromEntries(
  Object.entries(AXES).map(([axis, values]) => [axis, values[0]]),
) as unknown as Combination

/** A configuration that must be rejected at construction, with the constructor call. */
export interface RejectionCase extends RejectionProbe {
  readonly construct: () => unknown
  /** The option the ConfigError must name. */
  readonly option: string
}

/**
 * Configurations outside the matrix's axes that no package supports: each must throw a
 * ConfigError naming the option, before any parameter or tensor exists.
 */
export const REJECTIONS: readonly RejectionCase[] = [
  {
    name: "attention: 'sparse'",
    why: 'no implementation registered under that name',
    option: 'attention',
    construct: () => new ComposedAttention(modelOptions(BASE, { attention: 'sparse' })),
  },
  {
    name: 'heads: 4, kvHeads: 3',
    why: 'KV heads must divide the query heads',
    option: 'kvHeads',
    construct: () => new ComposedAttention(modelOptions(BASE, { kvHeads: 3 })),
  },
  {
    name: 'numMemKv: 1.5',
    why: 'memory slots are a whole number',
    option: 'numMemKv',
    construct: () => new ComposedAttention(modelOptions(BASE, { numMemKv: 1.5 })),
  },
  {
    name: 'valueDimHead: 0',
    why: 'value heads need at least one feature',
    option: 'valueDimHead',
    construct: () => new ComposedAttention(modelOptions(BASE, { valueDimHead: 0 })),
  },
]

/** Runs a rejection case: the ConfigError's message, or a description of what happened instead. */
export function probeRejection(rejection: RejectionCase): { rejected: boolean; message: string } {
  try {
    const built = rejection.construct() as { dispose?: () => void }
    built.dispose?.()
    return { rejected: false, message: 'constructed without error' }
  } catch (error) {
    const e = error as Error & { option?: string }
    const rejected = e.name === 'ConfigError' && e.option === rejection.option
    return { rejected, message: rejected ? e.message : `${e.name} (option ${e.option}): ${e.message}` }
  }
}
