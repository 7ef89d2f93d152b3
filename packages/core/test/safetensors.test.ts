import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import { describe, expect, it } from 'vitest'
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  parseSafetensors,
  SafetensorsError,
} from '../src/index.js'

const fixture = (caseName: string, file: string) =>
  fileURLToPath(new URL(`../../../fixtures/x-transformers/${caseName}/${file}`, import.meta.url))

/** Builds a file by hand from a header object and a data section, independent of the encoder. */
function handMade(header: unknown, data: Uint8Array, headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}

function float32Bytes(values: number[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 4)
  const view = new DataView(bytes.buffer)
  values.forEach((v, i) => {
    view.setFloat32(i * 4, v, true)
  })
  return bytes
}

describe('safetensors reading', () => {
  it('reads the fixture files written by Python (F32 weights, I32 tokens, U8 masks)', async () => {
    const model = await loadSafetensors(fixture('decoder_base', 'model.safetensors'))
    const emb = model.get('token_emb.emb.weight')!
    expect(emb.shape).toEqual([64, 32])
    expect(emb.dtype).toBe('float32')
    // x-transformers' TokenEmbedding uses kaiming-normal init: std sqrt(2 / 32) = 0.25 (+ small noise).
    const values = Array.from(emb.dataSync())
    const std = Math.sqrt(values.reduce((s, x) => s + x * x, 0) / values.length)
    expect(std).toBeGreaterThan(0.2)
    expect(std).toBeLessThan(0.3)
    tf.dispose([...model.values()])

    const inputs = parseSafetensors(readFileSync(fixture('encoder_mask', 'inputs.safetensors')))
    const tokens = inputs.entries.get('tokens')!
    expect(tokens.fileDtype).toBe('I32')
    expect(tokens.shape).toEqual([2, 16])
    expect(Math.max(...tokens.values)).toBeLessThan(64)
    const mask = inputs.entries.get('mask')!
    expect(mask.fileDtype).toBe('U8')
    expect([...new Set(mask.values)].sort()).toEqual([0, 1])
  })

  it('decodes F16, BF16, F64, I64, I8, BOOL by hand-made files', () => {
    const data = new Uint8Array(2 + 2 + 8 + 8 + 1 + 2)
    const view = new DataView(data.buffer)
    view.setUint16(0, 0x3c00, true) // F16 1.0
    view.setUint16(2, 0xc000, true) // BF16 -2.0
    view.setFloat64(4, 0.25, true)
    view.setBigInt64(12, -7n, true)
    view.setInt8(20, -3)
    view.setUint8(21, 0)
    view.setUint8(22, 2) // any non-zero byte is true
    const file = handMade(
      {
        h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] },
        bf: { dtype: 'BF16', shape: [1], data_offsets: [2, 4] },
        d: { dtype: 'F64', shape: [1], data_offsets: [4, 12] },
        l: { dtype: 'I64', shape: [1], data_offsets: [12, 20] },
        i8: { dtype: 'I8', shape: [1], data_offsets: [20, 21] },
        flags: { dtype: 'BOOL', shape: [2], data_offsets: [21, 23] },
        __metadata__: { format: 'pt' },
      },
      data,
    )
    const parsed = parseSafetensors(file)
    expect(parsed.metadata).toEqual({ format: 'pt' })
    const values = Object.fromEntries(
      [...parsed.entries].map(([k, e]) => [k, [e.dtype, Array.from(e.values)]]),
    )
    expect(values).toEqual({
      h: ['float32', [1]],
      bf: ['float32', [-2]],
      d: ['float32', [0.25]],
      l: ['int32', [-7]],
      i8: ['int32', [-3]],
      flags: ['bool', [0, 1]],
    })
  })

  it('round-trips through the encoder with 8-byte aligned data', () => {
    const tensors = new Map<string, tf.Tensor>([
      [
        'b.weight',
        tf.tensor2d([
          [1.5, -2],
          [3, 4],
        ]),
      ],
      ['a.tokens', tf.tensor1d([1, 2, 3], 'int32')],
      ['c.mask', tf.tensor1d([true, false], 'bool')],
    ])
    const bytes = encodeSafetensors(tensors, { source: 'xattn' })
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true))
    expect((8 + headerLength) % 8).toBe(0)
    const decoded = decodeSafetensors(bytes)
    expect([...decoded.keys()]).toEqual(['a.tokens', 'b.weight', 'c.mask'])
    for (const [name, t] of tensors) {
      expect(decoded.get(name)!.dtype).toBe(t.dtype)
      expect(Array.from(decoded.get(name)!.dataSync())).toEqual(Array.from(t.dataSync()))
    }
    tf.dispose([...tensors.values(), ...decoded.values()])
  })
})

describe('safetensors validation', () => {
  const good = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }
  const cases: [string, Uint8Array, string][] = [
    ['too short', new Uint8Array(5), 'safetensors: file is 5 bytes, too short for the 8-byte header length'],
    [
      'header length past the end',
      handMade(good, float32Bytes([1, 2]), 1000),
      'safetensors: header length 1000 exceeds the 62 bytes after it (truncated file?)',
    ],
    [
      'invalid JSON',
      handMade('x', new Uint8Array(0)).map((b, i) => (i === 8 ? 0x7b : b)),
      'header is not valid UTF-8 JSON',
    ],
    ['non-object header', handMade([1, 2], new Uint8Array(0)), 'safetensors: header must be a JSON object'],
    [
      'unknown dtype',
      handMade({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, float32Bytes([1, 2])),
      'safetensors: tensor \'w\' has unsupported dtype "Q4"',
    ],
    [
      'negative shape',
      handMade({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, float32Bytes([1, 2])),
      "safetensors: tensor 'w' has an invalid shape [-2]",
    ],
    [
      'truncated data',
      handMade(good, float32Bytes([1])),
      "safetensors: tensor 'w' has data_offsets [0,8] outside the 4-byte data section (truncated file?)",
    ],
    [
      'size mismatch',
      handMade({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, float32Bytes([1, 2])),
      "safetensors: tensor 'w' (F32 [3]) needs 12 bytes but data_offsets span 8",
    ],
    [
      'overlapping tensors',
      handMade(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        },
        float32Bytes([1, 2]),
      ),
      "safetensors: tensors 'a' and 'b' overlap in the data section",
    ],
    [
      'I64 outside int32',
      (() => {
        const data = new Uint8Array(8)
        new DataView(data.buffer).setBigInt64(0, 2n ** 40n, true)
        return handMade({ l: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, data)
      })(),
      "safetensors: tensor 'l' (I64) holds 1099511627776 at index 0, outside the int32 range",
    ],
  ]
  for (const [title, bytes, message] of cases) {
    it(`rejects ${title} with a clear error`, () => {
      expect(() => parseSafetensors(bytes)).toThrow(SafetensorsError)
      expect(() => parseSafetensors(bytes)).toThrow(message)
    })
  }

  it('rejects every truncation of a real fixture file', () => {
    const bytes = readFileSync(fixture('decoder_base', 'inputs.safetensors'))
    for (const cut of [0, 7, 8, 20, bytes.length - 1]) {
      expect(() => parseSafetensors(bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(SafetensorsError)
    }
  })
})
