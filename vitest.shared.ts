import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources in tests (the `@muster/source`
// export condition), so unit tests never depend on a stale build. Vitest hands these conditions
// to Node too: 'import' must not be among them, or CommonJS packages such as pg load the ESM
// wrappers of their own dependencies through require() and break.
const conditions = ['@muster/source', 'node', 'default'];

export const sharedConfig = defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
