import * as tf from '@tensorflow/tfjs-core'
import { SafetensorsError } from './errors.js'

/** The safetensors dtypes this reader understands, and what they become in TensorFlow.js. */
export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL'

const ITEM_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
}

/** One decoded entry: floats become float32, integers int32 (range-checked), BOOL stays bool. */
export interface SafetensorsEntry {
  /** The dtype stored in the file. */
  readonly fileDtype: SafetensorsDtype
  readonly dtype: 'float32' | 'int32' | 'bool'
  readonly shape: readonly number[]
  readonly values: Float32Array | Int32Array | Uint8Array
}

export interface SafetensorsContents {
  readonly entries: ReadonlyMap<string, SafetensorsEntry>
  readonly metadata: Readonly<Record<string, string>>
}

const PKG = '@xattn/core'
const MAX_HEADER_BYTES = 100 * 1024 * 1024

function fail(message: string): never {
  throw new SafetensorsError(PKG, `safetensors: ${message}`)
}

function toBytes(source: Uint8Array | ArrayBuffer): Uint8Array {
  return source instanceof Uint8Array ? source : new Uint8Array(source)
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1
  const exponent = (bits >> 10) & 0x1f
  const fraction = bits & 0x3ff
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024)
  if (exponent === 0x1f) return fraction === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024)
}

function decodeValues(
  name: string,
  dtype: SafetensorsDtype,
  view: DataView,
  count: number,
): Float32Array | Int32Array | Uint8Array {
  // Every read goes through a DataView with explicit little-endian order: entries need not be
  // aligned in the file, and the format is little-endian on every platform.
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true)
      return out
    }
    case 'F64': {
      const out = new Float32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true)
      return out
    }
    case 'F16': {
      const out = new Float32Array(count)
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true))
      return out
    }
    case 'BF16': {
      // bfloat16 is the upper half of a float32.
      const bits = new Uint32Array(count)
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true) << 16
      return new Float32Array(bits.buffer)
    }
    case 'I64': {
      const out = new Int32Array(count)
      for (let i = 0; i < count; i++) {
        const value = view.getBigInt64(i * 8, true)
        if (value > 2147483647n || value < -2147483648n) {
          fail(
            `tensor '${name}' (I64) holds ${value} at index ${i}, outside the int32 range TensorFlow.js supports`,
          )
        }
        out[i] = Number(value)
      }
      return out
    }
    case 'I32': {
      const out = new Int32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true)
      return out
    }
    case 'I16': {
      const out = new Int32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getInt16(i * 2, true)
      return out
    }
    case 'I8': {
      const out = new Int32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getInt8(i)
      return out
    }
    case 'U8': {
      const out = new Int32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getUint8(i)
      return out
    }
    case 'BOOL': {
      const out = new Uint8Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getUint8(i) === 0 ? 0 : 1
      return out
    }
  }
}

function tfDtypeOf(dtype: SafetensorsDtype): SafetensorsEntry['dtype'] {
  if (dtype === 'BOOL') return 'bool'
  return dtype.startsWith('F') || dtype === 'BF16' ? 'float32' : 'int32'
}

/**
 * Parses a safetensors file without creating tensors. Validates the header length, the JSON, every
 * dtype, shape and offset; a truncated or corrupted file throws {@link SafetensorsError}.
 */
export function parseSafetensors(source: Uint8Array | ArrayBuffer): SafetensorsContents {
  const bytes = toBytes(source)
  if (bytes.byteLength < 8) fail(`file is ${bytes.byteLength} bytes, too short for the 8-byte header length`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = view.getBigUint64(0, true)
  if (headerLength > BigInt(bytes.byteLength - 8)) {
    fail(`header length ${headerLength} exceeds the ${bytes.byteLength - 8} bytes after it (truncated file?)`)
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES))
    fail(`header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes`)
  const headerEnd = 8 + Number(headerLength)
  let header: unknown
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, headerEnd)))
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${(error as Error).message})`)
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    fail('header must be a JSON object')

  const dataLength = bytes.byteLength - headerEnd
  const metadata: Record<string, string> = {}
  const entries = new Map<string, SafetensorsEntry>()
  const spans: { name: string; begin: number; end: number }[] = []
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null) fail('__metadata__ must be an object of strings')
      for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof value !== 'string') fail(`__metadata__.${key} must be a string`)
        metadata[key] = value
      }
      continue
    }
    if (typeof raw !== 'object' || raw === null) fail(`entry '${name}' must be an object`)
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>
    if (typeof dtype !== 'string' || !(dtype in ITEM_SIZE)) {
      fail(
        `tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(ITEM_SIZE).join(', ')})`,
      )
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
      fail(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`)
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
      fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`)
    }
    const [begin, end] = offsets as [number, number]
    const fileDtype = dtype as SafetensorsDtype
    const count = (shape as number[]).reduce((a, b) => a * b, 1)
    const expectedBytes = count * ITEM_SIZE[fileDtype]
    if (end < begin || end > dataLength) {
      fail(
        `tensor '${name}' has data_offsets [${begin},${end}] outside the ${dataLength}-byte data section (truncated file?)`,
      )
    }
    if (end - begin !== expectedBytes) {
      fail(
        `tensor '${name}' (${fileDtype} ${JSON.stringify(shape)}) needs ${expectedBytes} bytes but data_offsets span ${end - begin}`,
      )
    }
    spans.push({ name, begin, end })
    const entryView = new DataView(bytes.buffer, bytes.byteOffset + headerEnd + begin, end - begin)
    entries.set(name, {
      fileDtype,
      dtype: tfDtypeOf(fileDtype),
      shape: shape as number[],
      values: decodeValues(name, fileDtype, entryView, count),
    })
  }
  spans.sort((a, b) => a.begin - b.begin)
  for (let i = 1; i < spans.length; i++) {
    const previous = spans[i - 1]!
    const current = spans[i]!
    if (current.begin < previous.end && current.end > current.begin) {
      fail(`tensors '${previous.name}' and '${current.name}' overlap in the data section`)
    }
  }
  return { entries, metadata }
}

/**
 * Decodes a safetensors file into tensors (F16/BF16/F64 → float32, integers → int32, BOOL → bool).
 * The caller owns the returned tensors.
 *
 * @example
 * const weights = decodeSafetensors(readFileSync('model.safetensors'))
 * weights.get('token_emb.emb.weight')?.shape // [64, 32]
 */
export function decodeSafetensors(source: Uint8Array | ArrayBuffer): Map<string, tf.Tensor> {
  const { entries } = parseSafetensors(source)
  const tensors = new Map<string, tf.Tensor>()
  for (const [name, entry] of entries)
    tensors.set(name, tf.tensor(entry.values, [...entry.shape], entry.dtype))
  return tensors
}

/** Reads a safetensors file from a path (Node) or bytes and decodes it into tensors. */
export async function loadSafetensors(
  source: string | Uint8Array | ArrayBuffer,
): Promise<Map<string, tf.Tensor>> {
  return decodeSafetensors(await readBytes(source))
}

/** Bytes from a path (Node only) or from bytes given directly. */
export async function readBytes(source: string | Uint8Array | ArrayBuffer): Promise<Uint8Array> {
  if (typeof source !== 'string') return toBytes(source)
  const { readFile } = await import('node:fs/promises')
  return new Uint8Array(await readFile(source))
}

const FILE_DTYPE_OF: Readonly<Partial<Record<tf.DataType, SafetensorsDtype>>> = {
  float32: 'F32',
  int32: 'I32',
  bool: 'BOOL',
}

/**
 * Encodes tensors as a safetensors file (float32 → F32, int32 → I32, bool → BOOL), in name order,
 * so that Python's `safetensors.torch.load_file` reads it.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, tf.Tensor> | Readonly<Record<string, tf.Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const named = tensors instanceof Map ? [...tensors] : Object.entries(tensors)
  named.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const header: Record<string, unknown> = {}
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata
  const chunks: Uint8Array[] = []
  let offset = 0
  for (const [name, tensor] of named) {
    const fileDtype = FILE_DTYPE_OF[tensor.dtype as tf.DataType]
    if (fileDtype === undefined) fail(`cannot encode tensor '${name}' of dtype ${tensor.dtype}`)
    const values = tensor.dataSync()
    const chunk =
      fileDtype === 'BOOL'
        ? Uint8Array.from(values as Uint8Array)
        : new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength))
    header[name] = {
      dtype: fileDtype,
      shape: tensor.shape,
      data_offsets: [offset, offset + chunk.byteLength],
    }
    chunks.push(chunk)
    offset += chunk.byteLength
  }
  let headerText = JSON.stringify(header)
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  headerText += ' '.repeat((8 - ((8 + new TextEncoder().encode(headerText).byteLength) % 8)) % 8)
  const headerBytes = new TextEncoder().encode(headerText)
  const out = new Uint8Array(8 + headerBytes.byteLength + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true)
  out.set(headerBytes, 8)
  let position = 8 + headerBytes.byteLength
  for (const chunk of chunks) {
    out.set(chunk, position)
    position += chunk.byteLength
  }
  return out
}

/** Writes tensors to a safetensors file at `path` (Node only). */
export async function saveSafetensors(
  path: string,
  tensors: ReadonlyMap<string, tf.Tensor> | Readonly<Record<string, tf.Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  const { writeFile } = await import('node:fs/promises')
  await writeFile(path, encodeSafetensors(tensors, metadata))
}
