import type * as tf from '@tensorflow/tfjs-core'
import type { AttendInputs, AttendOptions } from './attendContract.js'
import { attendReference } from './attendReference.js'
import { ConfigError } from './errors.js'

/** An attention implementation: the contract and numbers of {@link attendReference}. */
export type AttentionImpl = (inputs: AttendInputs, options?: AttendOptions) => tf.Tensor4D

const INSTALL_HINTS: Readonly<Record<string, string>> = {
  flash: "install @xattn/flash and import it once (import '@xattn/flash')",
}

// One registry per process even if two copies of @xattn/core are loaded (source and dist in a
// monorepo, or two versions in node_modules), so `import '@xattn/flash'` is always seen.
const REGISTRY_KEY = Symbol.for('@xattn/core/attention-registry')
type RegistryHolder = { [REGISTRY_KEY]?: Map<string, AttentionImpl> }

function registry(): Map<string, AttentionImpl> {
  const holder = globalThis as RegistryHolder
  holder[REGISTRY_KEY] ??= new Map<string, AttentionImpl>()
  return holder[REGISTRY_KEY]
}

/**
 * Makes an attention implementation available by name; `'reference'` is always present.
 * Re-registering a name replaces it (a package loaded twice registers twice).
 */
export function registerAttention(name: string, impl: AttentionImpl): void {
  if (name === 'reference') {
    throw new ConfigError(
      '@xattn/core',
      'name',
      "registerAttention: 'reference' is built in and cannot be replaced",
    )
  }
  registry().set(name, impl)
}

/** The registered attention implementation names, 'reference' first. */
export function listAttention(): string[] {
  return ['reference', ...registry().keys()]
}

/**
 * The attention implementation registered under `name`.
 *
 * @throws ConfigError naming what to install when `name` is not registered.
 */
export function getAttention(name: string): AttentionImpl {
  if (name === 'reference') return attendReference
  const impl = registry().get(name)
  if (impl === undefined) {
    const hint = INSTALL_HINTS[name]
    throw new ConfigError(
      '@xattn/core',
      'attention',
      `no attention implementation named '${name}' is registered (registered: ${listAttention().join(', ')})` +
        (hint === undefined ? '' : `; ${hint}`),
    )
  }
  return impl
}
