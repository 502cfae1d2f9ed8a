import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources in tests (the `@muster/source`
// export condition), so unit tests never depend on a stale build.
export const sharedConfig = defineConfig({
  resolve: { conditions: ['@muster/source', 'import', 'node', 'default'] },
  ssr: { resolve: { conditions: ['@muster/source', 'import', 'node', 'default'] } },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
