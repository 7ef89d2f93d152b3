import { createReadStream, existsSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { dirname, extname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'

const appRoot = join(dirname(fileURLToPath(import.meta.url)), '..')

const MIME: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
}

/** Where the tfjs-backend-wasm binaries live, served at `/tfjs-wasm/`. */
export function tfjsWasmDir(): string {
  const require = createRequire(join(appRoot, 'package.json'))
  return dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))
}

/**
 * Builds a Vite page (workspace packages from source through the `@xattn/source` condition) into
 * `outDir`. Returns the output folder.
 */
export async function buildPage(pageRoot: string, outDir: string): Promise<string> {
  await build({
    root: pageRoot,
    logLevel: 'warn',
    configFile: false,
    resolve: { conditions: ['@xattn/source', 'module', 'browser', 'import', 'default'] },
    build: { outDir, emptyOutDir: true, minify: false, sourcemap: false, chunkSizeWarningLimit: 100_000 },
  })
  return outDir
}

export interface StaticServer {
  readonly url: string
  close(): Promise<void>
}

/**
 * Serves a built page on 127.0.0.1 (a free port), plus the tfjs wasm binaries at `/tfjs-wasm/`
 * and any extra folders (`{ '/fixtures/': '/abs/path' }`).
 */
export async function serveStatic(
  dir: string,
  mounts: Readonly<Record<string, string>> = {},
): Promise<StaticServer> {
  const allMounts = Object.entries({ '/tfjs-wasm/': tfjsWasmDir(), ...mounts })
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    const mount = allMounts.find(([prefix]) => path.startsWith(prefix))
    // normalize() on a rooted path cannot climb above the served folder.
    const file =
      mount === undefined
        ? join(dir, normalize(path === '/' ? '/index.html' : path))
        : join(mount[1], normalize(`/${path.slice(mount[0].length)}`))
    if (!existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found')
      return
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' })
    createReadStream(file).pipe(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
