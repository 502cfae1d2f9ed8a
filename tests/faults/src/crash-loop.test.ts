import { postgresAvailability } from '@muster/e2e';
import { describe, expect, it } from 'vitest';
import { crashLoop } from './crash-loop.js';

const postgres = postgresAvailability();
if (!postgres.available) process.stderr.write(`[faults] postgres crash loop skipped: ${postgres.reason}\n`);

describe('crash safety under SIGKILL (CI-sized: the script kills 20 times)', () => {
  for (const store of ['sqlite', 'postgres'] as const) {
    it.skipIf(store === 'postgres' && !postgres.available)(
      `${store}: nothing acknowledged is lost or doubled`,
      async () => {
        const report = await crashLoop({ store, kills: 4, rate: 30, minUpMs: 400, maxUpMs: 1500 });
        expect(report.commandsSent).toBeGreaterThan(20);
        expect(report.retried).toBeGreaterThan(0);
        expect(report.lostAcknowledged).toEqual([]);
        expect(report.duplicatedCommands).toEqual([]);
        expect(report.missingCommands).toEqual([]);
        expect(report.duplicateEventIds).toEqual([]);
        expect(report.chain).toEqual({ ok: true });
        expect(report.audit).toMatchObject({ ok: true, mismatches: 0 });
        expect(report.webhooks.planned).toBeGreaterThan(0);
        expect(report.webhooks).toMatchObject({
          pendingAtEnd: 0,
          missing: [],
          outOfOrder: 0,
          changedRepeats: 0,
        });
      },
    );
  }
});
