import { existsSync } from 'node:fs'
import { type Browser, chromium } from 'playwright-core'

/** Debian's Chromium (installed by .ci/run when missing); browsers cannot be downloaded here. */
export const CHROMIUM_PATH = process.env.XATTN_CHROMIUM ?? '/usr/bin/chromium'

/**
 * Flags that give headless Chromium WebGPU and WebGL2 on SwiftShader (the CPU rasteriser), with
 * no network chatter.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--use-angle=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
]

/** Launches headless Chromium, or explains how to get it. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `@xattn/browser-tests: no Chromium at ${CHROMIUM_PATH}; install it (apt-get install -y chromium) or set XATTN_CHROMIUM`,
    )
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS })
}
