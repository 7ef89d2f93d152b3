import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  treeshake: true,
  // tfjs-core's gradient registrations ship only as extensionless ESM: bundle them (see
  // src/registerGradients.ts). Everything else of tfjs-core stays an external peer.
  noExternal: [/^@tensorflow\/tfjs-core\/dist\//],
})
