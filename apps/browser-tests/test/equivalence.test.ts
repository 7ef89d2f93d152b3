import { attendReference } from '@xattn/core'
import { flashAttention } from '@xattn/flash'
import { expectClose } from '@xattn/test-utils'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { AttendCase, AttendResult } from '../src/attendCase.js'
import { runAttendCase } from '../src/attendCase.js'
import { dropoutCases, equivalenceCases } from '../src/cases.js'
import { launchChromium } from '../src/chromium.js'

const BROWSER_BACKENDS = ['webgpu', 'webgl', 'wasm'] as const
/** Backends with a flash kernel registered by the page. */
const FLASH_BACKENDS: readonly string[] = ['webgpu', 'webgl', 'wasm']
const cases = equivalenceCases()
const dropCases = dropoutCases()

// Expected values: @xattn/core's reference attention on tfjs's cpu backend in Node.
const expected = new Map<string, AttendResult>()

let browser: Browser
let page: Page

async function runInPage(backend: string, impl: string, spec: AttendCase): Promise<AttendResult> {
  return page.evaluate(
    async ([b, i, s]) => {
      const h = (window as unknown as { xattnHarness: import('../src/page/main.js').XattnHarness })
        .xattnHarness
      await h.use(b)
      return h.run(i, s)
    },
    [backend, impl, spec] as const,
  )
}

// float32 on GPUs: WebGL packs and reorders sums, SwiftShader's exp/log differ in the last bits,
// so a sum of ~150 products of O(1) values agrees to ~1e-5 relative; 2e-4 leaves room without
// hiding a wrong mask or head mapping (those give errors of order 1e-1).
const TOL = { atol: 2e-4, rtol: 2e-4 }

function compare(actual: AttendResult, want: AttendResult, label: string) {
  expectClose(actual.out, want.out, { ...TOL, label: `${label} out` })
  for (const key of ['dq', 'dk', 'dv', 'dBias'] as const) {
    const w = want[key]
    if (w === undefined) continue
    const a = actual[key]
    expect(a, `${label} ${key}`).toBeDefined()
    expectClose(a ?? [], w, { ...TOL, label: `${label} ${key}` })
  }
  expect(actual.leaked, `${label} leaked tensors`).toBe(0)
  expect(actual.leakedData, `${label} leaked backend buffers`).toBe(0)
}

beforeAll(async () => {
  for (const spec of cases) expected.set(spec.name, await runAttendCase(attendReference, spec))
  // With dropout the oracle is the cpu flash kernel (the reference draws its mask differently).
  for (const spec of dropCases) expected.set(spec.name, await runAttendCase(flashAttention, spec))
  browser = await launchChromium()
  page = await browser.newPage()
  page.on('pageerror', (error) => console.error('[page]', error))
  await page.goto(inject('pageUrl'))
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready')
})

afterAll(async () => {
  await browser?.close()
})

describe.each(BROWSER_BACKENDS)('in Chromium on %s', (backend) => {
  it('the backend starts', async () => {
    const name = await page.evaluate(async (b) => {
      const h = (window as unknown as { xattnHarness: import('../src/page/main.js').XattnHarness })
        .xattnHarness
      return h.use(b)
    }, backend)
    expect(name).toBe(backend)
  })

  it.each(cases.map((c) => [c.name, c] as const))('reference: %s', async (name, spec) => {
    compare(
      await runInPage(backend, 'reference', spec),
      expected.get(name) as AttendResult,
      `${backend} reference ${name}`,
    )
  })

  // A flash kernel must exist on every browser backend; the list only grows as kernels land.
  if (FLASH_BACKENDS.includes(backend)) {
    it.each([...cases, ...dropCases].map((c) => [c.name, c] as const))('flash: %s', async (name, spec) => {
      compare(
        await runInPage(backend, 'flash', spec),
        expected.get(name) as AttendResult,
        `${backend} flash ${name}`,
      )
    })
  }
})
