import { type AttentionImpl, getAttention, registerAttention } from '@xattn/core'
import '@xattn/flash'

let calls = 0
let wrapped = false

/**
 * Counts calls of the registered 'flash' implementation (wrapping it once, numbers unchanged), so
 * the matrix can tell a flash row that really ran the kernel from one that fell back to the
 * reference building blocks.
 */
export function flashCalls(): number {
  if (!wrapped) {
    const flash: AttentionImpl = getAttention('flash')
    registerAttention('flash', (inputs, options) => {
      calls++
      return flash(inputs, options)
    })
    wrapped = true
  }
  return calls
}
