import {
  engine,
  type GradConfig,
  type NamedAttrMap,
  type NamedTensorMap,
  type Tensor,
  zeros,
} from '@tensorflow/tfjs-core'
import { FlashAttention, type FlashAttentionAttrs, FlashAttentionGrad } from './kernelNames.js'

/** Runs a flash kernel with array inputs (tfjs's types only know name→tensor maps). */
export function runFlashKernel(
  name: string,
  inputs: readonly Tensor[],
  attrs: FlashAttentionAttrs,
): Tensor[] {
  return engine().runKernel(
    name,
    inputs as unknown as NamedTensorMap,
    attrs as unknown as NamedAttrMap,
  ) as unknown as Tensor[]
}

/**
 * Gradient of {@link FlashAttention}: one FlashAttentionGrad call yields dq, dk, dv (and dBias).
 * It runs eagerly inside `gradFunc` rather than in the per-input closures, because tfjs wraps each
 * closure in its own tidy and would dispose the sibling gradients computed alongside; gradients
 * nobody asks for are disposed by the surrounding backward tidy.
 */
export const flashAttentionGradConfig: GradConfig = {
  kernelName: FlashAttention,
  saveAllInputs: true,
  outputsToSave: [true, true],
  gradFunc: (dys, saved, rawAttrs) => {
    const attrs = rawAttrs as unknown as FlashAttentionAttrs
    const dOut = (Array.isArray(dys) ? dys[0] : dys) as Tensor
    const inputCount = 3 + (attrs.hasKeyMask ? 1 : 0) + (attrs.hasBias ? 1 : 0)
    const inputs = saved.slice(0, inputCount)
    const [out, lse] = saved.slice(inputCount) as [Tensor, Tensor]
    const [q, k, v, ...rest] = inputs as [Tensor, Tensor, Tensor, ...Tensor[]]
    const grads = runFlashKernel(FlashAttentionGrad, [q, k, v, out, lse, dOut, ...rest], attrs)
    const result: Record<string, () => Tensor> = {
      '0': () => grads[0] as Tensor,
      '1': () => grads[1] as Tensor,
      '2': () => grads[2] as Tensor,
    }
    let next = 3
    if (attrs.hasKeyMask) {
      const keyMask = rest[0] as Tensor
      // A boolean mask has no gradient; tfjs still wants a float32 tensor of its shape.
      result[String(next)] = () => zeros(keyMask.shape)
      next++
    }
    if (attrs.hasBias) result[String(next)] = () => grads[3] as Tensor
    return result
  },
}
