import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts', 'src/cpu.ts', 'src/wasm.ts', 'src/webgpu.ts', 'src/webgl.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  treeshake: true,
})
