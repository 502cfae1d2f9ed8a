import { defineConfig } from 'vitest/config';
import { sharedConfig } from '../../vitest.shared.js';

const conditions = ['@muster/source', 'node', 'default'];

export default defineConfig({
  ...sharedConfig,
  // As in event-store-postgres: with the shared list's 'import' condition, pg's require('pg-pool')
  // loads pg-pool's ESM wrapper on Node 20.19 and breaks `class extends Pool`.
  resolve: { ...sharedConfig.resolve, conditions },
  ssr: { ...sharedConfig.ssr, resolve: { ...sharedConfig.ssr?.resolve, conditions } },
});
