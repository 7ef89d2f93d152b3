import type * as tf from '@tensorflow/tfjs-core'
import { ShapeContractError } from './errors.js'
import type { DimNamesOf, IsOptionalPattern, RankOf } from './patternTypes.js'

/** One tensor of a contract: a pattern string, or a pattern with a dtype requirement. */
export type TensorSpec =
  | string
  | { readonly pattern: string; readonly dtype?: tf.DataType | readonly tf.DataType[] }

type PatternOfSpec<E> = E extends string ? E : E extends { pattern: infer P extends string } ? P : never

/** A rule on a bound dimension, such as `divisibleBy('kvh')`. */
export interface DimConstraint {
  readonly describe: string
  test(value: number, bindings: Readonly<Record<string, number>>): boolean
}

type SpecMap = Readonly<Record<string, TensorSpec>>

type RequiredKeys<S extends SpecMap> = {
  [K in keyof S]: IsOptionalPattern<PatternOfSpec<S[K]>> extends true ? never : K
}[keyof S]
type OptionalKeys<S extends SpecMap> = Exclude<keyof S, RequiredKeys<S>>

/** What `check` accepts: a tensor (or, for optional entries, nothing) per contract entry. */
export type ContractInputs<S extends SpecMap> = { [K in RequiredKeys<S>]: tf.Tensor } & {
  [K in OptionalKeys<S>]?: tf.Tensor | null | undefined
}

// A tensor of statically unknown rank passes; a known rank must equal the pattern's rank.
type RankCheck<T, R extends tf.Rank> =
  T extends tf.Tensor<infer TR>
    ? [tf.Rank] extends [TR]
      ? unknown
      : [TR] extends [R]
        ? unknown
        : tf.Tensor<R>
    : unknown

type RanksMatch<S extends SpecMap, I> = {
  [K in keyof I & keyof S]: RankCheck<I[K], RankOf<PatternOfSpec<S[K]>>>
}

type DimsOf<S extends SpecMap, K extends keyof S> = K extends keyof S
  ? DimNamesOf<PatternOfSpec<S[K]>>
  : never

/** The sizes `check` returns: every dimension of a required tensor is bound. */
export type ContractBindings<S extends SpecMap> = { readonly [D in DimsOf<S, RequiredKeys<S>>]: number } & {
  readonly [D in Exclude<DimsOf<S, OptionalKeys<S>>, DimsOf<S, RequiredKeys<S>>>]?: number
}

export interface CheckOptions {
  /** Sizes known before the check, e.g. `{ kvh: 1 }` from a head layout. */
  readonly given?: Readonly<Record<string, number>>
  /** Where `given` comes from, quoted in errors: `'the head layout'`. */
  readonly givenBy?: string
}

export interface ContractOptions {
  /** Allow size-0 axes (empty sequences). Off by default: an empty axis is almost always a bug. */
  readonly allowEmpty?: boolean
}

/** A named set of tensor shapes checked together. Create with {@link defineContract}. */
export interface ShapeContract<S extends SpecMap> {
  readonly name: string
  readonly spec: S
  /**
   * Binds every symbolic dimension across the given tensors, checks fixed sizes, dtypes and
   * constraints, and returns the bound sizes. Throws {@link ShapeContractError} on the first
   * violation, before any tensor work.
   */
  check<I extends ContractInputs<S>>(
    inputs: I & RanksMatch<S, I>,
    options?: CheckOptions,
  ): ContractBindings<S>
}

type Axis =
  | { readonly kind: 'fixed'; readonly size: number }
  | { readonly kind: 'dim'; readonly name: string; readonly broadcast: boolean }
  | { readonly kind: 'group'; readonly factors: readonly (string | number)[] }

interface ParsedSpec {
  readonly tensor: string
  readonly pattern: string
  readonly optional: boolean
  readonly axes: readonly Axis[]
  readonly dtypes: readonly tf.DataType[] | null
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/
const INTEGER = /^[0-9]+$/

function parseAxisToken(token: string, where: string): Axis {
  if (INTEGER.test(token)) return { kind: 'fixed', size: Number(token) }
  if (token.endsWith('|1') && IDENTIFIER.test(token.slice(0, -2))) {
    return { kind: 'dim', name: token.slice(0, -2), broadcast: true }
  }
  if (IDENTIFIER.test(token)) return { kind: 'dim', name: token, broadcast: false }
  throw new Error(`${where}: cannot read axis '${token}'`)
}

function parsePattern(pattern: string, where: string): { axes: Axis[]; optional: boolean } {
  const trimmed = pattern.trim()
  const optional = trimmed.endsWith('?')
  const body = optional ? trimmed.slice(0, -1) : trimmed
  const axes: Axis[] = []
  // Groups like '(h d)' are one axis whose size is the product of their factors.
  const tokens = body.match(/\([^)]*\)|[^\s()]+/g) ?? []
  for (const token of tokens) {
    if (token.startsWith('(')) {
      const factors = token
        .slice(1, -1)
        .trim()
        .split(/\s+/)
        .filter((f) => f.length > 0)
        .map((f) => (INTEGER.test(f) ? Number(f) : f))
      for (const factor of factors) {
        if (typeof factor === 'string' && !IDENTIFIER.test(factor)) {
          throw new Error(`${where}: cannot read group factor '${factor}'`)
        }
      }
      axes.push({ kind: 'group', factors })
    } else {
      axes.push(parseAxisToken(token, where))
    }
  }
  return { axes, optional }
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`
}

function isTensorLike(value: unknown): value is tf.Tensor {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { shape?: unknown }).shape) &&
    typeof (value as { dtype?: unknown }).dtype === 'string'
  )
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value
}

/**
 * Defines a shape contract: tensors named by dimension patterns, checked together.
 *
 * Pattern syntax: space-separated axes; a name binds a size (`n`), a number fixes it (`3`),
 * `b|1` accepts the bound `b` or 1 (broadcast), `(h d)` is one axis of size h·d; a trailing
 * `?` marks the tensor optional. Constraints apply to bound sizes.
 *
 * @example
 * const Attend = defineContract('@xattn/flash attend',
 *   { q: 'b h n d', k: 'b kvh m d', v: 'b kvh m dv', keyMask: 'b m?' },
 *   { h: divisibleBy('kvh') })
 * const { b, h, kvh, n, m } = Attend.check({ q, k, v, keyMask })
 */
export function defineContract<const S extends SpecMap>(
  name: string,
  spec: S,
  constraints: Readonly<Record<string, DimConstraint | readonly DimConstraint[]>> = {},
  options: ContractOptions = {},
): ShapeContract<S> {
  const parsed: ParsedSpec[] = Object.entries(spec).map(([tensor, entry]) => {
    const pattern = typeof entry === 'string' ? entry : entry.pattern
    const dtype = typeof entry === 'string' ? undefined : entry.dtype
    const { axes, optional } = parsePattern(pattern, `${name} ${tensor}`)
    const dtypes = dtype === undefined ? null : typeof dtype === 'string' ? [dtype] : [...dtype]
    return { tensor, pattern: pattern.trim().replace(/\?$/, ''), optional, axes, dtypes }
  })
  const constraintList = Object.entries(constraints).map(
    ([dim, c]) => [dim, Array.isArray(c) ? (c as readonly DimConstraint[]) : [c as DimConstraint]] as const,
  )

  function check(inputs: Record<string, unknown>, checkOptions: CheckOptions = {}): Record<string, number> {
    const bindings: Record<string, number> = {}
    const boundBy: Record<string, string> = {}
    for (const [dim, size] of Object.entries(checkOptions.given ?? {})) {
      bindings[dim] = size
      boundBy[dim] = checkOptions.givenBy ?? 'given'
    }
    const soFar = () => {
      const entries = Object.entries(bindings)
      return entries.length === 0
        ? 'no bindings yet'
        : `bindings so far: ${entries.map(([k, v]) => `${k}=${v}`).join(', ')}`
    }
    const fail = (tensor: string, detail: string): never => {
      throw new ShapeContractError(name, tensor, `${detail} (${soFar()})`)
    }
    const deferredGroups: { spec: ParsedSpec; axis: number; shape: readonly number[] }[] = []

    for (const key of Object.keys(inputs)) {
      if (!parsed.some((p) => p.tensor === key) && inputs[key] !== undefined) {
        fail(key, `${key} is not part of this contract (expected ${parsed.map((p) => p.tensor).join(', ')})`)
      }
    }

    for (const entry of parsed) {
      const value = inputs[entry.tensor]
      if (value === undefined || value === null) {
        if (!entry.optional)
          fail(entry.tensor, `${entry.tensor} is required ('${entry.pattern}') but was not given`)
        continue
      }
      if (!isTensorLike(value)) {
        fail(
          entry.tensor,
          `${entry.tensor} must be a tf.Tensor matching '${entry.pattern}', got ${describeValue(value)}`,
        )
      }
      const tensor = value as tf.Tensor
      if ((tensor as { isDisposed?: boolean }).isDisposed === true) {
        fail(entry.tensor, `${entry.tensor} has been disposed`)
      }
      const shape = tensor.shape
      const expected = `${entry.tensor} has shape ${formatShape(shape)} but the contract is '${entry.pattern}'`
      if (entry.dtypes !== null && !entry.dtypes.includes(tensor.dtype)) {
        fail(
          entry.tensor,
          `${entry.tensor} has dtype ${tensor.dtype} but the contract requires ${entry.dtypes.join(' or ')}`,
        )
      }
      if (shape.length !== entry.axes.length) {
        fail(entry.tensor, `${expected} (rank ${entry.axes.length}), got rank ${shape.length}`)
      }
      entry.axes.forEach((axis, i) => {
        const actual = shape[i] as number
        if (actual === 0 && options.allowEmpty !== true) {
          fail(entry.tensor, `${expected}: axis ${i} is empty (size 0)`)
        }
        if (axis.kind === 'fixed') {
          if (actual !== axis.size)
            fail(entry.tensor, `${expected}, axis ${i} must be ${axis.size}, got ${actual}`)
        } else if (axis.kind === 'dim') {
          const bound = bindings[axis.name]
          if (axis.broadcast && actual === 1) return
          if (bound === undefined) {
            bindings[axis.name] = actual
            boundBy[axis.name] = entry.tensor
          } else if (bound !== actual) {
            const source = boundBy[axis.name] === entry.tensor ? '' : ` (from ${boundBy[axis.name]})`
            const accepted = axis.broadcast ? ` or 1` : ''
            fail(
              entry.tensor,
              `${expected} with ${axis.name}=${bound}${accepted}${source}, got ${axis.name}=${actual}`,
            )
          }
        } else {
          deferredGroups.push({ spec: entry, axis: i, shape })
        }
      })
    }

    // Groups run last so that their factors can come from any tensor of the contract.
    for (const { spec: entry, axis, shape } of deferredGroups) {
      const group = entry.axes[axis] as Extract<Axis, { kind: 'group' }>
      const actual = shape[axis] as number
      let known = 1
      const unknown: string[] = []
      for (const factor of group.factors) {
        if (typeof factor === 'number') known *= factor
        else if (bindings[factor] !== undefined) known *= bindings[factor] as number
        else unknown.push(factor)
      }
      const groupText = `(${group.factors.join(' ')})`
      const expected = `${entry.tensor} has shape ${formatShape(shape)} but the contract is '${entry.pattern}'`
      if (unknown.length === 0) {
        if (known !== actual)
          fail(entry.tensor, `${expected}, axis ${axis} must be ${groupText}=${known}, got ${actual}`)
      } else if (unknown.length === 1) {
        if (actual % known !== 0) {
          fail(entry.tensor, `${expected}, axis ${axis} (${actual}) is not a multiple of ${known}`)
        }
        bindings[unknown[0] as string] = actual / known
        boundBy[unknown[0] as string] = entry.tensor
      } else {
        fail(entry.tensor, `${expected}: cannot infer ${unknown.join(' and ')} from one axis`)
      }
    }

    for (const [dim, list] of constraintList) {
      const value = bindings[dim]
      if (value === undefined) continue
      for (const constraint of list) {
        if (!constraint.test(value, bindings)) {
          fail(boundBy[dim] ?? dim, `${dim}=${value} must be ${constraint.describe}`)
        }
      }
    }
    return bindings
  }

  return {
    name,
    spec,
    check: check as ShapeContract<S>['check'],
  }
}

/** The dimension must be a multiple of another bound dimension: `{ h: divisibleBy('kvh') }`. */
export function divisibleBy(dim: string): DimConstraint {
  return {
    describe: `divisible by ${dim}`,
    test: (value, bindings) => {
      const divisor = bindings[dim]
      return divisor === undefined || value % divisor === 0
    },
  }
}

/** The dimension must be at most a bound dimension or a number: `{ n: atMost('maxLen') }`. */
export function atMost(limit: string | number): DimConstraint {
  return {
    describe: `at most ${limit}`,
    test: (value, bindings) => {
      const bound = typeof limit === 'number' ? limit : bindings[limit]
      return bound === undefined || value <= bound
    },
  }
}
