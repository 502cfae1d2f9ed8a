import type { MissionCommand } from '@muster/readiness';
import { afterEach, describe, expect, it } from 'vitest';
import { isProjectionError } from '../errors.js';
import { startProjections } from '../runner.js';
import { ManualClock, MissionDriver, openSqliteFixture } from '../test-support/harness.js';
import { createReadinessProjection } from './projection.js';
import { createReadinessQueries } from './queries.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const missionId = 'pos-edge';
const command = (type: string, occurredAt: string, payload: Record<string, unknown>, n: number) =>
  ({ type, commandId: `c-${n}`, missionId, occurredAt, ...payload }) as unknown as MissionCommand;

describe('at-position answers', () => {
  it('refuses a position the log has not reached, which would otherwise answer one way now and another later', async () => {
    const clock = new ManualClock(Date.parse('2024-03-01T00:00:00Z'));
    const fx = await openSqliteFixture('at-position', clock);
    cleanups.push(fx.close);
    const driver = new MissionDriver(fx.store);
    const policy = {
      phases: [{ id: 'p', title: 'P', preconditions: [{ kind: 'mandate', id: 'm', title: 'Mandate' }] }],
    };
    await driver.run(
      command(
        'DefineMission',
        '2024-03-01T00:00:00Z',
        { name: 'Edge', leadNation: 'kenya', baseCurrency: 'USD', policy },
        1,
      ),
    );
    await driver.run(
      command(
        'RecordMandate',
        '2024-03-01T00:00:00Z',
        {
          mandateId: 'short',
          issuingBody: 'UNSC',
          reference: 'R1',
          validFrom: '2024-03-01T00:00:00Z',
          validUntil: '2024-03-01T01:00:00Z',
        },
        2,
      ),
    );
    const runner = await startProjections({
      store: fx.store,
      sql: fx.sql,
      projections: [createReadinessProjection({ store: fx.store })],
      clock: clock.now,
    });
    cleanups.push(() => runner.close());
    const head = (await fx.store.headPosition()) as string;
    await runner.waitForPosition(head, 10_000);
    const queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
    const next = fx.store.canonicalPosition(String(BigInt(head) + 1n));

    // The log's own positions answer as before.
    expect((await queries.verdictAtPosition(missionId, head))?.phases[0]?.status).toBe('ready');

    const early = await queries.verdictAtPosition(missionId, next).then(
      (answer) => ({ answer }),
      (error: unknown) => ({ error }),
    );
    // Once the log reaches that position (after the mandate expired), it says something else: an
    // answer given before then would have been contradicted.
    clock.set(Date.parse('2024-03-01T02:00:00Z'));
    await fx.store.appendToStream('noise-1', [{ type: 'Noise', data: {} }]);
    const reached = await queries.verdictAtPosition(missionId, next);
    expect(reached?.phases[0]?.status).toBe('not-ready');
    expect('error' in early && isProjectionError(early.error) && early.error.code).toBe('invalid-position');
  });
});
