import * as tf from '@tensorflow/tfjs-core'
import type { Module } from '@xattn/core'

/** One bad call to a public entry point and the error it must raise. */
export interface BadInputRow {
  /** The entry point, e.g. `'@xattn/core attendReference'`. */
  readonly entry: string
  /** What is wrong with the call, e.g. `'q of rank 3'`. */
  readonly problem: string
  /** Makes the call (sync or async). Inputs come from fixtures made beforehand. */
  readonly call: () => unknown
  /** The error class the call must throw (matched by `name`, so dist and source copies agree). */
  readonly error: string
  /** Fragments the message must contain: the name of the tensor/option and what was wrong. */
  readonly mentions: readonly (string | RegExp)[]
  /** A model whose parameters must be unchanged by the failed call. */
  readonly model?: () => Module
}

/**
 * The outcome of one row: null when it behaved, otherwise what went wrong. `fixtureCount` counts
 * the test's own fixture tensors, which a row may create lazily (they are not leaks).
 */
export async function checkRow(
  row: BadInputRow,
  fixtureCount: () => number = () => 0,
): Promise<string | null> {
  const model = row.model?.()
  const before = model === undefined ? null : snapshot(model)
  const tensorsBefore = tf.memory().numTensors - fixtureCount()
  let thrown: unknown = null
  try {
    const result = row.call()
    if (result instanceof Promise) await result
  } catch (error) {
    thrown = error
  }
  const leaked = tf.memory().numTensors - fixtureCount() - tensorsBefore
  const problems: string[] = []
  if (thrown === null) problems.push('did not throw')
  else if (!(thrown instanceof Error)) problems.push(`threw a non-Error ${String(thrown)}`)
  else {
    if (thrown.name !== row.error)
      problems.push(`threw ${thrown.name} (${thrown.message}), expected ${row.error}`)
    for (const fragment of row.mentions) {
      const found =
        typeof fragment === 'string' ? thrown.message.includes(fragment) : fragment.test(thrown.message)
      if (!found) problems.push(`message does not mention ${String(fragment)}: ${thrown.message}`)
    }
  }
  if (leaked !== 0) problems.push(`left ${leaked} tensor(s) behind`)
  if (model !== undefined && before !== null) {
    const after = snapshot(model)
    for (const [name, values] of before) {
      const now = after.get(name)
      if (now === undefined || now.length !== values.length || now.some((x, i) => !Object.is(x, values[i]))) {
        problems.push(`parameter ${name} changed`)
      }
    }
  }
  return problems.length === 0 ? null : problems.join('; ')
}

function snapshot(model: Module): Map<string, number[]> {
  const values = new Map<string, number[]>()
  for (const [name, tensor] of model.stateDict()) values.set(name, Array.from(tensor.dataSync()))
  return values
}
