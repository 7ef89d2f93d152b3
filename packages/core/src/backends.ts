import * as tf from '@tensorflow/tfjs-core'
import { ConfigError } from './errors.js'

/** The backends xattn ships kernels for; any other registered tfjs backend name also works. */
export type BackendName = 'cpu' | 'wasm' | 'webgl' | 'webgpu'

export interface BackendInfo {
  /** The backend now active. */
  readonly name: string
  /** Whether the wasm backend runs with WebAssembly SIMD (wasm only). */
  readonly simd?: boolean
  /** Threads of the wasm backend (wasm only); 1 in Node. */
  readonly threads?: number
}

export interface UseBackendOptions {
  /** Where the browser finds the tfjs-backend-wasm binaries (`setWasmPaths`); not needed in Node. */
  readonly wasmPaths?: string
}

async function importBackend(name: string, options: UseBackendOptions): Promise<void> {
  switch (name) {
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu')
      return
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm')
      if (options.wasmPaths !== undefined) wasm.setWasmPaths(options.wasmPaths)
      return
    }
    case 'webgl':
    case 'webgpu': {
      // Optional peers: only loaded (and only needed) when asked for.
      const specifier = `@tensorflow/tfjs-backend-${name}`
      await import(/* @vite-ignore */ specifier)
      return
    }
    default:
      return
  }
}

/**
 * Loads, initialises and activates a TensorFlow.js backend, in Node or the browser, and reports
 * what it got. The wasm backend works in Node with no extra setup.
 *
 * @example
 * const info = await useBackend('wasm') // { name: 'wasm', simd: true, threads: 1 }
 */
export async function useBackend(
  name: BackendName | (string & {}),
  options: UseBackendOptions = {},
): Promise<BackendInfo> {
  try {
    await importBackend(name, options)
  } catch (error) {
    throw new ConfigError(
      '@xattn/core',
      'backend',
      `useBackend: cannot load backend '${name}' (install @tensorflow/tfjs-backend-${name}): ${(error as Error).message}`,
    )
  }
  if (tf.findBackendFactory(name) === null) {
    throw new ConfigError(
      '@xattn/core',
      'backend',
      `useBackend: no TensorFlow.js backend named '${name}' is registered (known: ${Object.keys(tf.engine().registryFactory).join(', ')})`,
    )
  }
  const ok = await tf.setBackend(name)
  if (!ok)
    throw new ConfigError('@xattn/core', 'backend', `useBackend: backend '${name}' failed to initialise`)
  await tf.ready()
  if (name !== 'wasm') return { name: tf.getBackend() }
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean
  const multiThread = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) as boolean
  return { name: tf.getBackend(), simd, threads: multiThread ? navigatorThreads() : 1 }
}

function navigatorThreads(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
  return nav?.hardwareConcurrency ?? 1
}
