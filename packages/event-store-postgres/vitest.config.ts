import { defineConfig } from 'vitest/config';
import { sharedConfig } from '../../vitest.shared.js';

const conditions = ['@muster/source', 'node', 'default'];

export default defineConfig({
  ...sharedConfig,
  // Vitest hands ssr.resolve.conditions to Node as --conditions flags. The shared list has
  // 'import', which makes pg's require('pg-pool') load pg-pool's ESM wrapper (require(esm) on
  // Node 20.19) and breaks `class extends Pool`; without it, Node resolves pg as usual.
  resolve: { ...sharedConfig.resolve, conditions },
  ssr: { ...sharedConfig.ssr, resolve: { ...sharedConfig.ssr?.resolve, conditions } },
  test: {
    ...sharedConfig.test,
    // The files share one PostgreSQL cluster, and the xmin horizon that orders subscriptions is
    // cluster-wide: a test that holds a transaction open on purpose would hold back the others.
    fileParallelism: false,
  },
});
