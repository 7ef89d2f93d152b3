import { ConfigError } from './errors.js'

/** Options of {@link headLayout}; the names mirror x-transformers' attention kwargs. */
export interface HeadLayoutOptions {
  /** Query heads. */
  readonly heads: number
  /** Key/value heads; must divide `heads`. Defaults to `heads` (multi-head attention). */
  readonly kvHeads?: number
  /** Shorthand for `kvHeads: 1` (multi-query attention); not together with `kvHeads`. */
  readonly oneKvHead?: boolean
  /** Features per query/key head. */
  readonly dimHead: number
  /** Features per value head; defaults to `dimHead`. */
  readonly valueDimHead?: number
}

/**
 * The validated head arrangement of one attention layer: the only source of per-head parameter
 * shapes (memory KV, qk-norm scales, value norms). Frozen.
 *
 * `groups = heads / kvHeads` query heads share each KV head; query head `i` uses KV head
 * `i % kvHeads` (the x-transformers mapping).
 */
export interface HeadLayout {
  readonly heads: number
  readonly kvHeads: number
  readonly groups: number
  readonly dimHead: number
  readonly valueDimHead: number
  /** `heads * dimHead`: width of the query projection. */
  readonly dimInner: number
  /** `kvHeads * dimHead`: width of the key projection. */
  readonly dimKvInner: number
  /** `kvHeads * valueDimHead`: width of the value projection. */
  readonly dimValueInner: number
  /** `heads * valueDimHead`: width of the merged attention output. */
  readonly dimOutInner: number
}

function requirePositiveInteger(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(
      '@xattn/core',
      option,
      `headLayout: ${option} must be a positive integer, got ${String(value)}`,
    )
  }
  return value
}

/**
 * Validates a head arrangement once and returns it frozen.
 *
 * @example
 * const layout = headLayout({ heads: 8, kvHeads: 2, dimHead: 64 })
 * layout.groups // 4
 */
export function headLayout(options: HeadLayoutOptions): HeadLayout {
  const heads = requirePositiveInteger('heads', options.heads)
  const dimHead = requirePositiveInteger('dimHead', options.dimHead)
  if (options.oneKvHead === true && options.kvHeads !== undefined) {
    throw new ConfigError(
      '@xattn/core',
      'oneKvHead',
      `headLayout: give either oneKvHead or kvHeads, not both (got oneKvHead: true, kvHeads: ${options.kvHeads})`,
    )
  }
  const kvHeads = options.oneKvHead === true ? 1 : requirePositiveInteger('kvHeads', options.kvHeads ?? heads)
  if (heads % kvHeads !== 0) {
    throw new ConfigError(
      '@xattn/core',
      'kvHeads',
      `headLayout: kvHeads must divide heads, got heads=${heads}, kvHeads=${kvHeads}`,
    )
  }
  const valueDimHead = requirePositiveInteger('valueDimHead', options.valueDimHead ?? dimHead)
  return Object.freeze({
    heads,
    kvHeads,
    groups: heads / kvHeads,
    dimHead,
    valueDimHead,
    dimInner: heads * dimHead,
    dimKvInner: kvHeads * dimHead,
    dimValueInner: kvHeads * valueDimHead,
    dimOutInner: heads * valueDimHead,
  })
}
