import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { launchChromium } from '@xattn/browser-tests/chromium'
import { buildPage, type StaticServer, serveStatic } from '@xattn/browser-tests/pageServer'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const appRoot = join(import.meta.dirname, '..')
const repoRoot = join(appRoot, '..', '..')
// Screenshots are test artifacts (the folder is git-ignored).
const artifacts = join(appRoot, 'artifacts')
const fixture = join(repoRoot, 'fixtures', 'x-transformers', 'num_mem_kv_kv_heads2')

let server: StaticServer
let browser: Browser
let page: Page

async function waitForStatus(pattern: RegExp, timeout = 200_000): Promise<string> {
  await page.waitForFunction(
    (source) => new RegExp(source).test(document.getElementById('status')?.textContent ?? ''),
    pattern.source,
    { timeout },
  )
  return (await page.textContent('#status')) ?? ''
}

async function canvasInk(selector: string): Promise<number> {
  // Fraction of pixels that are not white: a drawn heatmap colours most of its cells.
  return page.evaluate((sel) => {
    const canvas = document.querySelector(sel) as HTMLCanvasElement
    const ctx = canvas.getContext('2d') as CanvasRenderingContext2D
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height)
    let ink = 0
    for (let i = 0; i < data.length; i += 4) if ((data[i] ?? 255) < 250 || (data[i + 2] ?? 255) < 250) ink++
    return ink / (data.length / 4)
  }, selector)
}

beforeAll(async () => {
  const dir = await buildPage(appRoot, join(appRoot, 'dist', 'test-page'))
  server = await serveStatic(dir)
  browser = await launchChromium()
  page = await browser.newPage({ viewport: { width: 1120, height: 900 } })
  page.on('pageerror', (error) => console.error('[page]', error))
  await page.goto(server.url)
  await waitForStatus(/^ready$/, 60_000)
})

afterAll(async () => {
  await browser?.close()
  await server?.close()
})

describe('playground in headless Chromium (wasm backend)', () => {
  it('trains a memory-KV GQA flash decoder: the loss curve goes down', async () => {
    await page.selectOption('#backend', 'wasm')
    await page.click('#build')
    await waitForStatus(/^model built on wasm$/)
    expect(await page.textContent('#model')).toContain('4 memory KV')
    await page.fill('#steps', '60')
    await page.fill('#batch', '16')
    await page.click('#train')
    await waitForStatus(/^trained to step 60$/)
    const losses = await page.evaluate(() =>
      (window as unknown as { xattnPlayground: { losses(): number[] } }).xattnPlayground.losses(),
    )
    expect(losses).toHaveLength(60)
    const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length
    // Uniform guessing over 96 characters costs ln 96 ≈ 4.56; learning the letter frequencies
    // alone brings it near 3, so a drop of 1 shows training works.
    expect(mean(losses.slice(0, 5))).toBeGreaterThan(mean(losses.slice(-5)) + 1)
    expect(await page.textContent('#stats')).toMatch(/tokens\/s/)
  })

  it('generates with the KV cache and draws the attention map with the memory slots', async () => {
    await page.fill('#prompt', 'the model ')
    await page.fill('#count', '20')
    await page.click('#generate')
    await waitForStatus(/^generated$/)
    const output = (await page.textContent('#output')) ?? ''
    const generated = /\[(.*)\]/.exec(output)?.[1] ?? ''
    expect(generated).toHaveLength(20)
    const rows = Number(await page.getAttribute('#heatmap', 'data-rows'))
    const cols = Number(await page.getAttribute('#heatmap', 'data-cols'))
    expect(rows).toBe(30)
    expect(Number(await page.getAttribute('#heatmap', 'data-mem-slots'))).toBe(4)
    expect(cols).toBe(rows + 4)
    expect(await canvasInk('#heatmap')).toBeGreaterThan(0.2)
    mkdirSync(artifacts, { recursive: true })
    await page.screenshot({ path: join(artifacts, 'playground.png'), fullPage: true })
  })

  it('loads an x-transformers checkpoint dropped on the page and maps its attention', async () => {
    await page.setInputFiles('#files', [join(fixture, 'case.json'), join(fixture, 'model.safetensors')])
    await waitForStatus(/^loaded model\.safetensors$/)
    expect(await page.textContent('#model')).toContain(
      'x-transformers checkpoint: 2 layers, 4 heads, 2 memory KV',
    )
    await page.fill('#prompt', '1 2 3 4 5')
    await page.fill('#count', '6')
    await page.click('#generate')
    await waitForStatus(/^generated$/)
    expect(Number(await page.getAttribute('#heatmap', 'data-mem-slots'))).toBe(2)
    await page.selectOption('#layer', '1')
    await page.selectOption('#head', '3')
    await page.click('#show')
    await waitForStatus(/^drawn$/)
    expect(await canvasInk('#heatmap')).toBeGreaterThan(0.2)
    await page.screenshot({ path: join(artifacts, 'playground-checkpoint.png'), fullPage: true })
  })

  it('accepts a checkpoint dragged and dropped onto the drop zone', async () => {
    const dir = join(repoRoot, 'fixtures', 'x-transformers', 'decoder_base')
    const files = ['case.json', 'model.safetensors'].map((name) => ({
      name,
      base64: readFileSync(join(dir, name)).toString('base64'),
    }))
    await page.evaluate((payload) => {
      const transfer = new DataTransfer()
      for (const file of payload) {
        const bytes = Uint8Array.from(atob(file.base64), (c) => c.charCodeAt(0))
        transfer.items.add(new File([bytes], file.name))
      }
      const zone = document.getElementById('drop') as HTMLElement
      zone.dispatchEvent(
        new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }),
      )
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }))
    }, files)
    await waitForStatus(/^loaded model\.safetensors$/)
    // decoder_base has no memory KV: the description changes from the previous checkpoint's.
    expect(await page.textContent('#model')).toContain(
      'x-transformers checkpoint: 2 layers, 4 heads, 0 memory KV',
    )
  })
})
