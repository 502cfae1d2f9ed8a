import { randomUUID } from 'node:crypto';
import type { EventStore } from '@muster/event-store';
import { missionStreamName, parseCommand } from '@muster/readiness';
import { afterEach, describe, expect, it } from 'vitest';
import { MissionWriter } from './missions/mission-writer.js';
import { startTestService, type TestService } from './testing/harness.js';

/**
 * The service's view of the store, where another writer appends to the defined mission `missionId`
 * just before each of the service's first `times` plain appends to it: with two, a command's two
 * tries conflict, and it is decided under the stream's lock (decision 50).
 */
function contested(missionId: string, times: number) {
  return (inner: EventStore): EventStore => {
    const rival = new MissionWriter({ store: inner });
    let raced = 0;
    return new Proxy(inner, {
      get(target, key) {
        if (key === 'appendToStream') {
          return async (...args: Parameters<EventStore['appendToStream']>) => {
            const stream = missionStreamName(missionId);
            // Once the mission is defined (its first append is the definition).
            if (args[0] === stream && raced < times && (await target.streamRevision(stream)) !== null) {
              raced++;
              await rival.execute(
                parseCommand({
                  type: 'ReportUnitReadiness',
                  commandId: randomUUID(),
                  missionId,
                  occurredAt: '2024-03-01T12:00:00.000Z',
                  unit: 'GSU',
                  officersReady: 10 + raced,
                  status: 'standby',
                }),
                { actor: { agency: 'rival', keyId: 'rival' }, correlationId: 'rival' },
              );
            }
            return target.appendToStream(...args);
          };
        }
        const value = Reflect.get(target, key);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
}

describe('metrics', () => {
  let svc: TestService | null = null;
  afterEach(async () => {
    await svc?.close();
    svc = null;
  });

  it('counts the commands decided under the stream lock, by outcome', async () => {
    svc = await startTestService({ wrapStore: contested('contested', 2) });
    const metrics = async () => (await (svc as TestService).request('GET', '/metrics', { key: null })).body;
    expect(await metrics()).toContain('# TYPE muster_commands_locked_total counter');
    const defined = await svc.request('POST', '/v1/missions', {
      body: { id: 'contested', template: 'mss-haiti' },
    });
    expect(defined.statusCode).toBe(201);
    expect(await metrics()).not.toMatch(/^muster_commands_locked_total\{/m);
    // Its two tries conflict with the rival; the third, under the lock, lands.
    const pledged = await svc.request('POST', '/v1/missions/contested/commands/pledge-logistics', {
      body: { pledgeId: 'p1', pledger: 'canada', capability: 'airlift', quantity: 1, unit: 'aircraft' },
    });
    expect(pledged.statusCode).toBe(201);
    expect(await metrics()).toMatch(/^muster_commands_locked_total\{outcome="appended"\} 1$/m);
  });
});
