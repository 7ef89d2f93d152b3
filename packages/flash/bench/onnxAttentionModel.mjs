// Bench-only: scaled dot-product attention as an ONNX model, encoded in memory so that the
// onnxruntime-node comparison needs neither Python nor the `onnx` package. The encoder covers only the
// protobuf messages and fields this graph uses (field numbers from onnx/onnx.proto, opset 17, IR 8).
//
//   q, k, v: float32 [1, h, n, d] (MHA-shaped: GQA/MQA callers repeat KV heads first, see expandKvHeads)
//   out = softmax(q · kᵀ · scale (+ causal mask)) · v, float32 [1, h, n, d]

const WIRE_VARINT = 0
const WIRE_BYTES = 2
const TENSOR_FLOAT = 1 // TensorProto.DataType.FLOAT
const ATTR_INT = 2 // AttributeProto.AttributeType.INT
const ATTR_INTS = 7 // AttributeProto.AttributeType.INTS

const utf8 = new TextEncoder()

// int64 fields are varints of the value's 64-bit two's complement, so a negative value (Softmax's
// axis = -1) takes ten bytes; BigInt keeps that exact.
function varint(value) {
  let v = BigInt.asUintN(64, BigInt(value))
  const bytes = []
  do {
    let byte = Number(v & 0x7fn)
    v >>= 7n
    if (v !== 0n) byte |= 0x80
    bytes.push(byte)
  } while (v !== 0n)
  return Uint8Array.from(bytes)
}

function concat(parts) {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const key = (field, wire) => varint((field << 3) | wire)
const intField = (field, value) => concat([key(field, WIRE_VARINT), varint(value)])
function bytesField(field, payload) {
  const bytes = typeof payload === 'string' ? utf8.encode(payload) : payload
  return concat([key(field, WIRE_BYTES), varint(bytes.length), bytes])
}
// Repeated int64 as separate entries (unpacked): proto2/proto3 parsers accept both forms.
const repeatedInts = (field, values) => concat(values.map((v) => intField(field, v)))

/** TensorProto (dims 1, data_type 2, name 8, raw_data 9), float32 little-endian. */
function tensorProto(name, dims, data) {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return concat([repeatedInts(1, dims), intField(2, TENSOR_FLOAT), bytesField(8, name), bytesField(9, raw)])
}

/** ValueInfoProto { name 1, type 2: TypeProto { tensor_type 1: { elem_type 1, shape 2: { dim 1: { dim_value 1 } } } } }. */
function valueInfo(name, dims) {
  const shape = concat(dims.map((d) => bytesField(1, intField(1, d))))
  const tensorType = concat([intField(1, TENSOR_FLOAT), bytesField(2, shape)])
  return concat([bytesField(1, name), bytesField(2, bytesField(1, tensorType))])
}

/** AttributeProto { name 1, i 3, ints 8, type 20 }. */
function intAttribute(name, value) {
  return concat([bytesField(1, name), intField(3, value), intField(20, ATTR_INT)])
}
function intsAttribute(name, values) {
  return concat([bytesField(1, name), repeatedInts(8, values), intField(20, ATTR_INTS)])
}

/** NodeProto { input 1, output 2, name 3, op_type 4, attribute 5 }. */
function node(opType, inputs, outputs, attributes = []) {
  return concat([
    ...inputs.map((i) => bytesField(1, i)),
    ...outputs.map((o) => bytesField(2, o)),
    bytesField(3, `${opType}_${outputs[0]}`),
    bytesField(4, opType),
    ...attributes.map((a) => bytesField(5, a)),
  ])
}

/**
 * Additive causal mask [n, m], aligned bottom-right like @xattn/core (query i sees keys
 * j ≤ i + m − n). Requires n ≤ m: a fully masked row would be NaN in ORT's softmax, whereas
 * attendReference returns zeros there.
 */
export function causalMask(n, m) {
  if (n > m) throw new Error(`causalMask: needs n <= m so that no row is fully masked, got n=${n}, m=${m}`)
  const mask = new Float32Array(n * m)
  for (let i = 0; i < n; i++) mask.fill(Number.NEGATIVE_INFINITY, i * m + i + (m - n) + 1, (i + 1) * m)
  return mask
}

/**
 * Encodes attention as an ONNX ModelProto (Uint8Array, loadable by `InferenceSession.create`).
 * Inputs q [1,h,n,d], k [1,h,m,d], v [1,h,m,dv]; output `out` [1,h,n,dv].
 * Graph: Transpose(k, [0,1,3,2]) → MatMul(q, ·) → Mul(·, scale) → [Add(·, mask)] → Softmax(-1) → MatMul(·, v).
 */
export function encodeAttentionModel({
  heads,
  n,
  m = n,
  dimHead,
  valueDimHead = dimHead,
  causal = false,
  scale,
}) {
  const s = scale ?? 1 / Math.sqrt(dimHead)
  const nodes = [
    node('Transpose', ['k'], ['kT'], [intsAttribute('perm', [0, 1, 3, 2])]),
    node('MatMul', ['q', 'kT'], ['logits']),
    node('Mul', ['logits', 'scale'], ['scaled']),
  ]
  const initializers = [tensorProto('scale', [], Float32Array.of(s))]
  let scores = 'scaled'
  if (causal) {
    initializers.push(tensorProto('mask', [n, m], causalMask(n, m)))
    nodes.push(node('Add', ['scaled', 'mask'], ['masked']))
    scores = 'masked'
  }
  nodes.push(node('Softmax', [scores], ['attn'], [intAttribute('axis', -1)]))
  nodes.push(node('MatMul', ['attn', 'v'], ['out']))

  // GraphProto { node 1, name 2, initializer 5, input 11, output 12 }.
  const graph = concat([
    ...nodes.map((nd) => bytesField(1, nd)),
    bytesField(2, 'xattn_attention'),
    ...initializers.map((t) => bytesField(5, t)),
    bytesField(11, valueInfo('q', [1, heads, n, dimHead])),
    bytesField(11, valueInfo('k', [1, heads, m, dimHead])),
    bytesField(11, valueInfo('v', [1, heads, m, valueDimHead])),
    bytesField(12, valueInfo('out', [1, heads, n, valueDimHead])),
  ])
  // OperatorSetIdProto { domain 1 (empty = ai.onnx), version 2 }.
  const opset = concat([bytesField(1, ''), intField(2, 17)])
  // ModelProto { ir_version 1, producer_name 2, graph 7, opset_import 8 }.
  return concat([intField(1, 8), bytesField(2, 'xattn-bench'), bytesField(7, graph), bytesField(8, opset)])
}

/**
 * Tiles the KV heads along the head axis ([1, kvh, m, d] → [1, h, m, d]) with @xattn/core's
 * x-transformers grouping, query head i reads KV head i % kvh: ORT's graph is plain MHA.
 */
export function expandKvHeads(data, kvHeads, heads, m, d) {
  if (heads % kvHeads !== 0)
    throw new Error(`expandKvHeads: heads ${heads} not divisible by kvHeads ${kvHeads}`)
  const block = m * d
  const out = new Float32Array(heads * block)
  for (let h = 0; h < heads; h++) {
    const src = (h % kvHeads) * block
    out.set(data.subarray(src, src + block), h * block)
  }
  return out
}
