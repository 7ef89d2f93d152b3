/** Kernel name of the fused flash-attention forward pass (outputs: `out [b h n dv]`, `lse [b h n]`). */
export const FlashAttention = 'FlashAttention'
/** Kernel name of its backward pass (outputs: `dq`, `dk`, `dv`, then `dBias` when a bias is given). */
export const FlashAttentionGrad = 'FlashAttentionGrad'

/**
 * Attributes of both kernels. Inputs travel as an array — `[q, k, v, keyMask?, bias?]` forward,
 * `[q, k, v, out, lse, dOut, keyMask?, bias?]` backward — because tfjs can only save all inputs
 * for the gradient when they form an array, and the mask and bias are optional.
 */
export interface FlashAttentionAttrs {
  /** Bottom-right causal alignment. */
  causal: boolean
  /** Logit scale (already resolved from `d^-0.5` when not given). */
  scale: number
  /** One ALiBi slope per query head, or empty for none. */
  alibiSlopes: number[]
  /** Leading keys exempt from ALiBi (memory KV). */
  alibiFreeKeys: number
  /** Effective dropout rate: 0 unless training. */
  dropout: number
  /** Dropout seed (uint32). */
  seed: number
  /** Whether a `bool [b m]` key mask follows q, k, v in the inputs. */
  hasKeyMask: boolean
  /** Whether an additive bias `[b|1 h|1 n m]` is the last input. */
  hasBias: boolean
}
