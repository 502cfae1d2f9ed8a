import { defineConfig, mergeConfig } from 'vitest/config';
import { sharedConfig } from '../../vitest.shared.js';

export default mergeConfig(
  sharedConfig,
  defineConfig({
    test: {
      coverage: {
        provider: 'v8',
        include: ['src/**/*.ts'],
        exclude: ['src/**/*.test.ts', 'src/**/*.bench.ts', 'src/test-support/**'],
        thresholds: { lines: 95 },
        reporter: ['text-summary', 'text'],
      },
    },
  }),
);
