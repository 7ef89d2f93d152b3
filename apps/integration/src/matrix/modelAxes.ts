import type { Axes, Tuple } from '../coveringArray.js'

/**
 * The feature axes of the model matrix: a one-layer `TransformerWrapper` from
 * `@xattn/transformer`, so positions, qk-norm and memory tokens join the attention features.
 */
export const MODEL_AXES = {
  /** MHA: kvHeads = heads = 4; GQA: kvHeads 2; MQA: one KV head. */
  heads: ['MHA', 'GQA', 'MQA'],
  numMemKv: ['0', '2'],
  attention: ['reference', 'flash'],
  backend: ['cpu', 'wasm'],
  /** Decoder (causal) or Encoder. */
  causal: ['off', 'on'],
  /** Attention blocks in the stack (each with its feedforward): the cache holds one entry per layer. */
  depth: ['1', '2'],
  /**
   * Token padding mask (and the context mask under cross-attention): right padding, left
   * padding (the first positions of a row hidden, as batched prompts are), or a fully padded row.
   */
  keyMask: ['none', 'padded', 'leftPadded', 'fullyPadded'],
  crossAttention: ['off', 'on'],
  positions: ['none', 'absolute', 'rotary', 'xpos', 'alibi', 't5', 'dynamic'],
  /** on: l2-normalised q/k with the qk-norm scale; dimScale: plus learned per-feature scales. */
  qkNorm: ['off', 'on', 'dimScale'],
  /** valueDimHead 40 vs dimHead 32. */
  valueDim: ['same', 'different'],
  /** Learned memory tokens prepended to the sequence (TransformerWrapper numMemoryTokens). */
  memoryTokens: ['0', '2'],
  /**
   * Attention extras. sparseTopk, talkingHeads (pre + post), softclamp and localAttn
   * (maxAttendPast 2) cannot be expressed by the flash kernel: @xattn/transformer then runs core's
   * reference building blocks whatever `attention` says (the matrix checks which path ran).
   * gateValues, headScale, zeroKv (addZeroKv), gateHeads (gateValueHeads) and valueResidual (the
   * stack's addValueResidual, ResFormer) run on flash.
   */
  extras: [
    'none',
    'sparseTopk',
    'talkingHeads',
    'softclamp',
    'gateValues',
    'headScale',
    'zeroKv',
    'gateHeads',
    'localAttn',
    'valueResidual',
  ],
  kvCache: ['off', 'on'],
  dropout: ['off', 'on'],
} as const satisfies Axes

export type ModelAxisName = keyof typeof MODEL_AXES
export type ModelCombination = { readonly [A in ModelAxisName]: (typeof MODEL_AXES)[A][number] }

/** Combinations known to have broken in x-transformers; each must appear in some row. */
export const MODEL_NAMED_TRIPLES: readonly Tuple[] = [
  { heads: 'MQA', numMemKv: '2', attention: 'flash' },
  { heads: 'GQA', numMemKv: '2', kvCache: 'on' },
  { attention: 'flash', kvCache: 'on', positions: 'alibi' },
  { heads: 'GQA', qkNorm: 'dimScale' },
  { attention: 'flash', keyMask: 'fullyPadded', causal: 'on' },
  { kvCache: 'on', keyMask: 'leftPadded', causal: 'on' },
  { attention: 'flash', extras: 'sparseTopk', kvCache: 'on' },
  { attention: 'flash', extras: 'zeroKv', numMemKv: '2', heads: 'MQA' },
]

/** An unsupported combination: kept out of the rows and asserted to be rejected. */
export interface ForbiddenCombination {
  readonly tuple: Tuple
  readonly why: string
  /** `construction`: the constructor throws a ConfigError naming `option`. */
  readonly rejectedAt: 'construction' | 'decoding'
  readonly option: string
}

export const MODEL_FORBIDDEN: readonly ForbiddenCombination[] = [
  {
    tuple: { positions: 'xpos', causal: 'off' },
    why: 'xpos scales keys by distance in one direction only, so it needs causal attention',
    rejectedAt: 'construction',
    option: 'rotaryXpos',
  },
  {
    tuple: { causal: 'off', depth: '2', kvCache: 'on' },
    why: "without causal masking an earlier position's hidden state after the first layer depends on later tokens, so keys cached by the second layer go stale: cached decoding cannot match the full forward",
    rejectedAt: 'decoding',
    option: 'causal',
  },
  {
    tuple: { memoryTokens: '2', kvCache: 'on' },
    why: 'memory tokens are prepended to every forward call, so a KV cache would hold them again at each step',
    rejectedAt: 'decoding',
    option: 'num_memory_tokens',
  },
]

export const MODEL_MATRIX_SEED = 7

/**
 * A bug the matrix found that its package has not fixed yet: rows containing `tuple` may fail
 * `invariant` (and only that one); `reproduce` is a deterministic check that it is still there,
 * so the entry must be removed when the bug is fixed.
 */
export interface KnownBug {
  readonly tuple: Tuple
  readonly invariant: string
  readonly why: string
}

/**
 * None at present. Fixed in @xattn/transformer: DynamicPositionBias with a single key position (j =
 * 1; now a forbidden-free, tested case) and a KV cache on a non-causal stack (now refused by name,
 * see MODEL_FORBIDDEN).
 */
export const MODEL_KNOWN_BUGS: readonly KnownBug[] = []
