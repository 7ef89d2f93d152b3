import { FLASH_WASM_BASE64 } from './flashWasmBinary.js'

/** The raw exports of the AssemblyScript module (pointers are byte offsets into `memory`). */
export interface FlashExports {
  readonly memory: WebAssembly.Memory
  blockRows(): number
  blockCols(): number
  heapBase(): number
  forward(...args: number[]): void
  backward(...args: number[]): void
}

const PAGE_BYTES = 65536
let cached: FlashExports | null = null

function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/**
 * The flash WebAssembly instance, compiled on first use and shared by every backend's kernel
 * (it runs on plain typed arrays, so the cpu backend gets SIMD too). Its memory only grows, so
 * scratch pages faulted in once are reused by later calls of the same or smaller size.
 */
export function flashModule(): FlashExports {
  if (cached === null) {
    let module: WebAssembly.Module
    try {
      module = new WebAssembly.Module(decodeBase64(FLASH_WASM_BASE64))
    } catch (error) {
      throw new Error(`@xattn/flash needs WebAssembly with SIMD (Node >= 16.4): ${(error as Error).message}`)
    }
    cached = new WebAssembly.Instance(module, {}).exports as unknown as FlashExports
  }
  return cached
}

/** Grows the module's memory to at least `bytes`; returns the (possibly new) heap view. */
export function reserveBytes(flash: FlashExports, bytes: number): Float32Array {
  const have = flash.memory.buffer.byteLength
  if (bytes > have) flash.memory.grow(Math.ceil((bytes - have) / PAGE_BYTES))
  return new Float32Array(flash.memory.buffer)
}

/** Current size of the module's memory in bytes (for heap-growth tests). */
export function flashHeapBytes(): number {
  return cached === null ? 0 : cached.memory.buffer.byteLength
}
