export type { MemoryKVOptions, MemoryKvShapes } from './memoryKv.js'
export { initMemoryKv, MemoryKV, memoryKvShapes } from './memoryKv.js'
export type {
  KeysValues,
  MemoryTensors,
  PrependedKeysValues,
  PrependOptions,
} from './prependMemoryKv.js'
export { prependMemoryKv } from './prependMemoryKv.js'

/** This package's name, as it appears in error messages. */
export const PACKAGE_NAME = '@xattn/memory-kv'
