import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { buildPage, serveStatic } from '../src/pageServer.js'

declare module 'vitest' {
  export interface ProvidedContext {
    pageUrl: string
  }
}

// Built once per run and served to every test file; the tests open it in headless Chromium.
export default async function setup(project: TestProject) {
  const root = join(import.meta.dirname, '..')
  const dir = await buildPage(join(root, 'src', 'page'), join(root, 'dist', 'page'))
  const server = await serveStatic(dir, {
    '/fixtures/': join(root, '..', '..', 'fixtures', 'x-transformers'),
  })
  project.provide('pageUrl', server.url)
  return () => server.close()
}
