import type * as tf from '@tensorflow/tfjs-core'
import { ConfigError } from '@xattn/core'

const PKG = '@xattn/transformer'

/**
 * Throws a ConfigError naming `name` if any id in `values` (row-major `[rows, width]`) is outside
 * `[0, numTokens)`; `except` is one extra allowed value (a loss's `ignoreIndex`); `firstRow`
 * offsets the reported row. An out-of-range
 * id would otherwise gather a zero (or another row's) embedding silently.
 */
export function checkTokenIdValues(
  who: string,
  name: string,
  values: ArrayLike<number>,
  width: number,
  numTokens: number,
  { except, firstRow = 0 }: { readonly except?: number; readonly firstRow?: number } = {},
): void {
  for (let i = 0; i < values.length; i++) {
    const id = values[i] as number
    if ((id >= 0 && id < numTokens && Number.isInteger(id)) || id === except) continue
    const row = Math.floor(i / width)
    const col = i - row * width
    throw new ConfigError(
      PKG,
      name,
      `${who}: ${name} must be token ids in [0, ${numTokens}) (numTokens=${numTokens})` +
        `${except === undefined ? '' : ` or ${except} (ignoreIndex)`}, got ${id} at [${firstRow + row}, ${col}]`,
    )
  }
}

/**
 * {@link checkTokenIdValues} on an `int32 [b, n]` tensor. Costs one synchronous read of the ids
 * (b·n integers), the only tensor work before the check.
 */
export function checkTokenIds(
  who: string,
  name: string,
  tokens: tf.Tensor,
  numTokens: number,
  except?: number,
): void {
  checkTokenIdValues(who, name, tokens.dataSync(), tokens.shape[1] ?? 1, numTokens, {
    ...(except === undefined ? {} : { except }),
  })
}
