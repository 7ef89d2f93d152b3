/** Base class of every error thrown by xattn packages; `package` names the package that threw. */
export class XattnError extends Error {
  readonly package: string

  /** `message` is prefixed with the package name unless it already starts with it. */
  constructor(pkg: string, message: string) {
    super(message.startsWith(pkg) ? message : `${pkg}: ${message}`)
    this.name = new.target.name
    this.package = pkg
  }
}

/**
 * A tensor does not match a shape contract. Thrown at a package boundary before any tensor work.
 * The message names the contract, the tensor, the expected pattern, the bindings so far and the
 * actual shape.
 */
export class ShapeContractError extends XattnError {
  readonly contract: string
  readonly tensor: string

  constructor(contract: string, tensor: string, detail: string) {
    super(packageOf(contract), `${contract}: ${detail}`)
    this.contract = contract
    this.tensor = tensor
  }
}

/** An option is invalid, unknown, or part of an unsupported combination. Names the option. */
export class ConfigError extends XattnError {
  readonly option: string

  constructor(pkg: string, option: string, message: string) {
    super(pkg, message)
    this.option = option
  }
}

/** A state dict does not fit a module: lists every missing, unexpected and mis-shaped entry. */
export class StateDictError extends XattnError {
  readonly missing: readonly string[]
  readonly unexpected: readonly string[]
  readonly misShaped: readonly string[]

  constructor(
    pkg: string,
    message: string,
    details: { missing: string[]; unexpected: string[]; misShaped: string[] },
  ) {
    super(pkg, message)
    this.missing = details.missing
    this.unexpected = details.unexpected
    this.misShaped = details.misShaped
  }
}

/** A safetensors file is malformed: truncated, corrupted header, unknown dtype, bad offsets. */
export class SafetensorsError extends XattnError {}

/** `'@xattn/flash attend'` → `'@xattn/flash'`; a contract name starts with its package. */
function packageOf(contract: string): string {
  const firstWord = contract.split(' ')[0] ?? contract
  return firstWord.startsWith('@') ? firstWord : '@xattn/core'
}
