import { packPackage, publicPackages } from './packing.js'

/**
 * Packs every public package once, before the test workers start (they share the tarballs):
 * only here are stale tarballs pruned, so no worker deletes one that another is using.
 */
export default function setup(): void {
  for (const pkg of publicPackages()) packPackage(pkg, { prune: true })
}
