import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core'
import type { FlashAttentionAttrs } from './kernelNames.js'

/** What a flash kernel body receives: its inputs as an array (see {@link FlashAttentionAttrs}). */
export interface FlashKernelArgs<B> {
  readonly inputs: readonly TensorInfo[]
  readonly backend: B
  readonly attrs: FlashAttentionAttrs
}

/**
 * The one place that holds tfjs's `as unknown as KernelFunc` cast: tfjs types kernel inputs as a
 * name→tensor map and attrs as a loose record, while our kernels take an input array and typed attrs.
 */
export function flashKernelFunc<B>(body: (args: FlashKernelArgs<B>) => TensorInfo[]): KernelFunc {
  return body as unknown as KernelFunc
}
