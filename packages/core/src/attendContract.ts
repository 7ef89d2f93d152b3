import { type DimConstraint, defineContract, divisibleBy } from './contract.js'
import { ConfigError } from './errors.js'
import { assertAllFinite } from './finiteCheck.js'

/**
 * Options of an attention call; every implementation ('reference', 'flash', …) honours all of
 * them with the same numbers.
 */
export interface AttendOptions {
  /** Bottom-right causal: query i (of n) may see key j (of m) iff `j <= i + (m - n)`. */
  readonly causal?: boolean
  /** `bool [b, m]`, `true` = may attend. */
  readonly keyMask?: import('@tensorflow/tfjs-core').Tensor | null
  /** Additive logits bias `[b|1, h|1, n, m]`, added before masking. */
  readonly bias?: import('@tensorflow/tfjs-core').Tensor | null
  /**
   * Per-head ALiBi slopes (length h): bias `-slope · |j - i - (m - n)|`, computed on the fly so
   * that implementations need not materialise it. Combines with `bias`.
   */
  readonly alibiSlopes?: ArrayLike<number> | null
  /** The first `alibiFreeKeys` keys (memory KV slots) get no ALiBi bias. Default 0. */
  readonly alibiFreeKeys?: number
  /** Logit scale; default `d^-0.5`. */
  readonly scale?: number
  /** Attention dropout probability, applied only when `training` is true. */
  readonly dropout?: number
  readonly training?: boolean
  /** Seed of the dropout mask; the same seed gives the same mask. */
  readonly seed?: number
}

/** The tensors of an attention call: `q [b h n d]`, `k [b kvh m d]`, `v [b kvh m dv]`. */
export interface AttendInputs {
  readonly q: import('@tensorflow/tfjs-core').Tensor
  readonly k: import('@tensorflow/tfjs-core').Tensor
  readonly v: import('@tensorflow/tfjs-core').Tensor
}

/** The shapes every attention implementation accepts. `h` must be a multiple of `kvh` (GQA). */
export const ATTEND_SPEC = {
  q: { pattern: 'b h n d', dtype: 'float32' },
  k: { pattern: 'b kvh m d', dtype: 'float32' },
  v: { pattern: 'b kvh m dv', dtype: 'float32' },
  keyMask: { pattern: 'b m?', dtype: 'bool' },
  bias: { pattern: 'b|1 h|1 n m?', dtype: 'float32' },
} as const

/** Every key of {@link AttendOptions}; any other key is a typo and is rejected by name. */
export const ATTEND_OPTION_KEYS: readonly (keyof AttendOptions)[] = [
  'causal',
  'keyMask',
  'bias',
  'alibiSlopes',
  'alibiFreeKeys',
  'scale',
  'dropout',
  'training',
  'seed',
]

const ATTEND_CONSTRAINTS: Readonly<Record<string, DimConstraint>> = { h: divisibleBy('kvh') }

/**
 * The attention contract under a caller's name, e.g. `attendContract('@xattn/flash flashAttention')`,
 * so that errors name the package whose boundary was crossed.
 */
export function attendContract(name: string) {
  return defineContract(name, ATTEND_SPEC, ATTEND_CONSTRAINTS)
}

/**
 * Checks the tensors and options of an attention call; returns the bound sizes. Throws
 * `ShapeContractError` for tensors and `ConfigError` for options (an unknown option key, such as
 * a misspelt `causall`, included), before any attention work. Last, on host backends (`cpu`,
 * `wasm`), it checks that `q`, `k`, `v` and `bias` hold only finite values: one O(size) reduction
 * and one read, cheap next to the O(n·m·d) attention (see `assertAllFinite`).
 */
export function checkAttendCall(name: string, inputs: AttendInputs, options: AttendOptions = {}) {
  const pkgName = name.split(' ')[0] ?? name
  const unknown = Object.keys(options).filter(
    (key) => !(ATTEND_OPTION_KEYS as readonly string[]).includes(key),
  )
  if (unknown.length > 0) {
    throw new ConfigError(
      pkgName,
      unknown[0] as string,
      `${name}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((key) => `'${key}'`).join(', ')}; ` +
        `the options are ${ATTEND_OPTION_KEYS.join(', ')}`,
    )
  }
  const sizes = attendContract(name).check({
    q: inputs.q,
    k: inputs.k,
    v: inputs.v,
    keyMask: options.keyMask ?? undefined,
    bias: options.bias ?? undefined,
  })
  const pkg = pkgName
  if (options.scale !== undefined && !(Number.isFinite(options.scale) && options.scale > 0)) {
    throw new ConfigError(
      pkg,
      'scale',
      `${name}: scale must be a positive finite number, got ${options.scale}`,
    )
  }
  const dropout = options.dropout ?? 0
  if (!(dropout >= 0 && dropout < 1)) {
    throw new ConfigError(pkg, 'dropout', `${name}: dropout must be in [0, 1), got ${dropout}`)
  }
  if (options.alibiSlopes != null) {
    const slopes = options.alibiSlopes
    if (slopes.length !== sizes.h) {
      throw new ConfigError(
        pkg,
        'alibiSlopes',
        `${name}: alibiSlopes must have one slope per query head (h=${sizes.h}), got ${slopes.length}`,
      )
    }
    for (let i = 0; i < slopes.length; i++) {
      if (!Number.isFinite(slopes[i])) {
        throw new ConfigError(
          pkg,
          'alibiSlopes',
          `${name}: alibiSlopes[${i}] must be finite, got ${slopes[i]}`,
        )
      }
    }
  }
  const freeKeys = options.alibiFreeKeys ?? 0
  if (!Number.isInteger(freeKeys) || freeKeys < 0 || freeKeys > sizes.m) {
    throw new ConfigError(
      pkg,
      'alibiFreeKeys',
      `${name}: alibiFreeKeys must be an integer in [0, m=${sizes.m}], got ${freeKeys}`,
    )
  }
  assertAllFinite(name, { q: inputs.q, k: inputs.k, v: inputs.v, bias: options.bias })
  return sizes
}
