import { defineConfig } from 'vite'

// Workspace packages resolve to their TypeScript sources (the `@xattn/source` condition), so the
// page needs no prior build of the packages.
export default defineConfig({
  resolve: { conditions: ['@xattn/source', 'browser', 'module', 'import', 'default'] },
  build: { outDir: 'dist', target: 'es2022', chunkSizeWarningLimit: 100_000, reportCompressedSize: false },
})
