import * as tf from '@tensorflow/tfjs-core'
import { StateDictError } from './errors.js'

/** A state dict: PyTorch-style dotted names to tensors. */
export type StateDict = ReadonlyMap<string, tf.Tensor> | Readonly<Record<string, tf.Tensor>>

export interface LoadStateDictOptions {
  /** Reject missing and unexpected names (default). Mis-shaped entries are always rejected. */
  readonly strict?: boolean
}

export interface LoadStateDictResult {
  readonly missing: readonly string[]
  readonly unexpected: readonly string[]
}

interface BufferSlot {
  tensor: tf.Tensor
  readonly persistent: boolean
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`
}

function listed(label: string, names: readonly string[]): string | null {
  return names.length === 0 ? null : `${label} ${names.length} (${names.join(', ')})`
}

/**
 * Base class of every layer: named parameters (`tf.Variable`), buffers and child modules, with
 * PyTorch-style dotted names so that x-transformers state dicts map one to one.
 *
 * @example
 * class Scale extends Module {
 *   readonly g = this.addParameter('g', tf.ones([4]))
 * }
 * const m = new Scale()
 * [...m.namedParameters()].map(([name]) => name) // ['g']
 */
export abstract class Module {
  private readonly ownParameters = new Map<string, tf.Variable>()
  private readonly ownBuffers = new Map<string, BufferSlot>()
  private readonly ownChildren = new Map<string, Module>()
  private isTraining = true

  /** Registers a trainable parameter; the module takes ownership of `initial`. */
  protected addParameter(name: string, initial: tf.Tensor, trainable = true): tf.Variable {
    this.assertFreeName(name)
    const variable = tf.variable(initial, trainable)
    initial.dispose()
    this.ownParameters.set(name, variable)
    return variable
  }

  /**
   * Registers a buffer: a tensor that is not trained. Persistent buffers are part of the state dict
   * (like rotary `inv_freq` in x-transformers); others are not. The module takes ownership.
   */
  protected addBuffer(
    name: string,
    tensor: tf.Tensor,
    { persistent = true }: { persistent?: boolean } = {},
  ): void {
    this.assertFreeName(name)
    this.ownBuffers.set(name, { tensor: tf.keep(tensor), persistent })
  }

  /** The current value of a buffer registered with {@link addBuffer}. */
  protected buffer(name: string): tf.Tensor {
    const slot = this.ownBuffers.get(name)
    if (slot === undefined) throw new Error(`@xattn/core: module has no buffer '${name}'`)
    return slot.tensor
  }

  /** Registers a child module under `name` (numeric names give `layers.0.…`). */
  protected addModule<M extends Module>(name: string, child: M): M {
    this.assertFreeName(name)
    this.ownChildren.set(name, child)
    return child
  }

  private assertFreeName(name: string): void {
    if (name.length === 0 || name.includes('.')) {
      throw new Error(`@xattn/core: '${name}' is not a valid module member name`)
    }
    if (this.ownParameters.has(name) || this.ownBuffers.has(name) || this.ownChildren.has(name)) {
      throw new Error(`@xattn/core: module member '${name}' is registered twice`)
    }
  }

  /** Whether the module is in training mode (dropout active). */
  get training(): boolean {
    return this.isTraining
  }

  /** Sets training mode on this module and every descendant. Returns `this`. */
  train(mode = true): this {
    this.isTraining = mode
    for (const child of this.ownChildren.values()) child.train(mode)
    return this
  }

  /** Inference mode: `train(false)`. */
  eval(): this {
    return this.train(false)
  }

  /** Child modules with their dotted names, depth first, this module first (name ''). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this]
    for (const [name, child] of this.ownChildren) {
      yield* child.namedModules(prefix === '' ? name : `${prefix}.${name}`)
    }
  }

  /** Every parameter with its dotted PyTorch-style name. */
  *namedParameters(prefix = ''): Generator<[string, tf.Variable]> {
    for (const [path, module] of this.namedModules(prefix)) {
      for (const [name, variable] of module.ownParameters)
        yield [path === '' ? name : `${path}.${name}`, variable]
    }
  }

  /** Every buffer with its dotted name and whether it is persistent. */
  *namedBuffers(prefix = ''): Generator<[string, tf.Tensor, boolean]> {
    for (const [path, module] of this.namedModules(prefix)) {
      for (const [name, slot] of module.ownBuffers) {
        yield [path === '' ? name : `${path}.${name}`, slot.tensor, slot.persistent]
      }
    }
  }

  /** The trainable parameters. */
  parameters(): tf.Variable[] {
    return [...this.namedParameters()].map(([, v]) => v).filter((v) => v.trainable)
  }

  /** Number of scalar parameters. */
  parameterCount(): number {
    return [...this.namedParameters()].reduce((sum, [, v]) => sum + v.size, 0)
  }

  /**
   * Parameters and persistent buffers by dotted name. The tensors are the module's own (not
   * copies): read them, do not dispose them.
   */
  stateDict(): Map<string, tf.Tensor> {
    const entries = new Map<string, tf.Tensor>()
    for (const [name, variable] of this.namedParameters()) entries.set(name, variable)
    for (const [name, tensor, persistent] of this.namedBuffers()) if (persistent) entries.set(name, tensor)
    return entries
  }

  /**
   * Copies a state dict into the module. Every name and shape is checked first; on any problem
   * nothing is changed and one {@link StateDictError} lists all missing, unexpected and
   * mis-shaped entries. With `strict: false`, missing and unexpected names are returned instead.
   */
  loadStateDict(state: StateDict, { strict = true }: LoadStateDictOptions = {}): LoadStateDictResult {
    const incoming = state instanceof Map ? new Map(state) : new Map(Object.entries(state))
    const targets = new Map<
      string,
      { set: (t: tf.Tensor) => void; shape: readonly number[]; dtype: tf.DataType }
    >()
    for (const [path, module] of this.namedModules()) {
      const full = (name: string) => (path === '' ? name : `${path}.${name}`)
      for (const [name, variable] of module.ownParameters) {
        targets.set(full(name), {
          set: (t) => variable.assign(t),
          shape: variable.shape,
          dtype: variable.dtype,
        })
      }
      for (const [name, slot] of module.ownBuffers) {
        if (!slot.persistent) continue
        targets.set(full(name), {
          set: (t) => {
            slot.tensor.dispose()
            slot.tensor = tf.keep(t.clone())
          },
          shape: slot.tensor.shape,
          dtype: slot.tensor.dtype,
        })
      }
    }
    const missing = [...targets.keys()].filter((name) => !incoming.has(name))
    const unexpected = [...incoming.keys()].filter((name) => !targets.has(name))
    const misShaped: string[] = []
    for (const [name, target] of targets) {
      const tensor = incoming.get(name)
      if (tensor === undefined) continue
      const sameShape =
        tensor.shape.length === target.shape.length &&
        tensor.shape.every((size: number, i: number) => size === target.shape[i])
      if (!sameShape) {
        misShaped.push(`${name}: expected ${formatShape(target.shape)}, got ${formatShape(tensor.shape)}`)
      } else if (tensor.dtype !== target.dtype) {
        misShaped.push(`${name}: expected dtype ${target.dtype}, got ${tensor.dtype}`)
      }
    }
    const problems = [
      strict ? listed('missing', missing) : null,
      strict ? listed('unexpected', unexpected) : null,
      listed('mis-shaped', misShaped),
    ].filter((p): p is string => p !== null)
    if (problems.length > 0) {
      throw new StateDictError(
        '@xattn/core',
        `loadStateDict: the state dict does not fit the module: ${problems.join('; ')}`,
        { missing: strict ? missing : [], unexpected: strict ? unexpected : [], misShaped },
      )
    }
    for (const [name, target] of targets) {
      const tensor = incoming.get(name)
      if (tensor !== undefined) target.set(tensor)
    }
    return { missing, unexpected }
  }

  /** Frees every parameter and buffer of this module and its descendants. */
  dispose(): void {
    for (const [, module] of this.namedModules()) {
      for (const variable of module.ownParameters.values()) variable.dispose()
      for (const slot of module.ownBuffers.values()) slot.tensor.dispose()
      module.ownParameters.clear()
      module.ownBuffers.clear()
    }
  }
}
