// Types for the bench-only ONNX encoder, so test/onnxModel.test.ts type-checks against it.
export interface AttentionModelOptions {
  heads: number
  n: number
  m?: number
  dimHead: number
  valueDimHead?: number
  causal?: boolean
  scale?: number
}
export function encodeAttentionModel(options: AttentionModelOptions): Uint8Array
export function causalMask(n: number, m: number): Float32Array
export function expandKvHeads(
  data: Float32Array,
  kvHeads: number,
  heads: number,
  m: number,
  d: number,
): Float32Array
