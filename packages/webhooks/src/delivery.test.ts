import { describe, expect, it } from 'vitest';
import { messageId } from './context.js';
import { backends } from './test-support/databases.js';
import { change, produce } from './test-support/feed.js';
import { drain, harness, settle } from './test-support/harness.js';
import { type Capture, verifyCapture } from './test-support/receiver.js';

const countRows = async (
  sql: { query: (q: string) => Promise<Array<Record<string, unknown>>> },
  table: string,
) => Number((await sql.query(`SELECT COUNT(*) AS n FROM ${table}`))[0]?.n);

/** Versions in receipt order, per mission, of successful receipts only. */
function versionsByMission(captures: Capture[], ok: (c: Capture) => boolean = () => true) {
  const byMission = new Map<string, number[]>();
  for (const c of captures) {
    if (!ok(c)) continue;
    const mission = String(c.json.data.missionId);
    byMission.set(mission, [...(byMission.get(mission) ?? []), Number(c.json.data.version)]);
  }
  return byMission;
}

for (const backend of backends) {
  describe.skipIf(backend.skip)(
    `planning and delivery on ${backend.name}${backend.skip ? ` (skipped: ${backend.skip})` : ''}`,
    () => {
      const h = harness(backend);

      it('delivers a readiness change as a signed Standard Webhooks message with the agreed payload', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url, missions: ['mss-haiti'] });
        const [written] = await produce(sql, [change('mss-haiti', { causeEventId: 'evt-council' })]);
        if (!written) throw new Error('nothing written');
        await drain(service);

        expect(receiver.captures).toHaveLength(1);
        const capture = receiver.captures[0] as Capture;
        expect(capture.headers['content-type']).toBe('application/json');
        expect(capture.headers['webhook-id']).toBe(messageId(sub.id, written.changeId));
        expect(capture.headers['webhook-event-type']).toBe('readiness.changed');
        expect(capture.headers['webhook-attempt']).toBe('1');
        expect(String(capture.headers['webhook-signature'])).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
        const body = verifyCapture(sub.secret, capture);
        expect(body).toEqual({
          type: 'readiness.changed',
          timestamp: new Date(written.occurredAt).toISOString(),
          data: {
            ...written.payload,
            missionId: 'mss-haiti',
            subject: 'main-deployment',
            version: 1,
            change: { id: written.changeId, seq: written.seq },
            cause: {
              eventId: 'evt-council',
              revision: written.causeRevision,
              hash: written.causeHash,
              position: written.causePosition,
              occurredAt: new Date(written.occurredAt).toISOString(),
              recordedAt: new Date(written.recordedAt).toISOString(),
            },
            links: { readiness: 'https://muster.example.org/v1/missions/mss-haiti/readiness' },
          },
        });
        const [delivery] = (await service.listDeliveries('kenya', sub.id)).items;
        expect(delivery).toMatchObject({
          status: 'delivered',
          attempts: 1,
          version: 1,
          missionId: 'mss-haiti',
        });
      });

      it('plans by mission and event type, numbers versions per (subscription, mission), and ignores changes older than the subscription', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        await produce(sql, [change('mss-haiti')]);
        const haiti = await service.createSubscription('kenya', {
          url: receiver.url,
          missions: ['mss-haiti'],
        });
        const pledges = await service.createSubscription('canada', {
          url: receiver.url,
          eventTypes: ['pledge.changed'],
        });
        const everything = await service.createSubscription('jamaica', { url: receiver.url, missions: '*' });
        await produce(sql, [
          change('mss-haiti'),
          change('other-mission'),
          change('mss-haiti', { kind: 'pledge.changed' }),
          change('mss-haiti'),
          change('other-mission', { kind: 'precondition.changed' }),
        ]);
        const planned = await service.planner.catchUp();
        expect(planned).toMatchObject({ changes: 6, planned: 3 + 1 + 5 });
        await service.dispatcher.runOnce();
        const bySub = (secret: string) =>
          receiver.captures
            .filter((c) => {
              try {
                verifyCapture(secret, c);
                return true;
              } catch {
                return false;
              }
            })
            .map((c) => `${c.json.data.missionId}:${c.json.type}:${c.json.data.version}`)
            .sort();
        expect(bySub(haiti.secret)).toEqual([
          'mss-haiti:pledge.changed:2',
          'mss-haiti:readiness.changed:1',
          'mss-haiti:readiness.changed:3',
        ]);
        expect(bySub(pledges.secret)).toEqual(['mss-haiti:pledge.changed:1']);
        expect(bySub(everything.secret)).toEqual([
          'mss-haiti:pledge.changed:2',
          'mss-haiti:readiness.changed:1',
          'mss-haiti:readiness.changed:3',
          'other-mission:precondition.changed:2',
          'other-mission:readiness.changed:1',
        ]);
      });

      it('with no subscription, passes over the feed without planning; a subscription made then gets only what follows', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        await produce(sql, [
          change('mss-haiti'),
          change('mss-haiti', { kind: 'pledge.changed' }),
          change('x-m'),
        ]);
        expect(await service.planner.catchUp()).toMatchObject({ changes: 3, planned: 0, checkpoint: 3 });
        const [checkpoint] = await sql.query('SELECT last_seq FROM webhook_planner');
        expect(Number(checkpoint?.last_seq)).toBe(3);
        expect(await service.planner.catchUp()).toMatchObject({ changes: 0, planned: 0, checkpoint: 3 });
        expect(await countRows(sql, 'webhook_messages')).toBe(0);

        const sub = await service.createSubscription('kenya', { url: receiver.url, missions: '*' });
        const [later] = await produce(sql, [change('mss-haiti')]);
        expect(await service.planner.catchUp()).toMatchObject({ changes: 1, planned: 1, checkpoint: 4 });
        await service.dispatcher.runOnce();
        expect(
          receiver.captures.map(
            (c) => (verifyCapture(sub.secret, c) as { data: { change: unknown } }).data.change,
          ),
        ).toEqual([{ id: later?.changeId, seq: 4 }]);
      });

      it('plans nothing twice: a replayed feed, a reset checkpoint and racing planners reuse the message ids', async () => {
        const { sql, openAnother } = await h.db();
        const clock = h.clock();
        const service = await h.service(sql, { clock, dispatch: false });
        // On PostgreSQL a second pool; on SQLite the same connection (two connections in one
        // process would wait on each other synchronously; one process per file is the rule there).
        const other = await h.service(backend.name === 'postgres' ? await openAnother() : sql, {
          clock,
          dispatch: false,
        });
        await service.createSubscription('kenya', { url: 'https://hooks.example.org/a' });
        await service.createSubscription('canada', { url: 'https://hooks.example.org/b', missions: ['m1'] });
        await produce(
          sql,
          Array.from({ length: 120 }, (_, i) => change(i % 3 === 0 ? 'm1' : 'm2')),
        );
        // Two planners at once (on PostgreSQL two pools; on SQLite two connections to one file).
        await Promise.all([service.planner.catchUp(), other.planner.catchUp()]);
        const messages = await countRows(sql, 'webhook_messages');
        expect(messages).toBe(120 + 40);
        expect(await countRows(sql, 'webhook_deliveries')).toBe(messages);
        // Start over from the beginning of the feed: the same ids, so nothing new.
        await sql.execute('UPDATE webhook_planner SET last_seq = 0');
        const again = await service.planner.catchUp();
        expect(again.changes).toBe(120);
        expect(again.planned).toBe(0);
        expect(await countRows(sql, 'webhook_messages')).toBe(messages);
        // Versions are 1..n per (subscription, mission) with no gap and no repeat.
        const rows = await sql.query<{ subscription_id: string; mission_id: string; version: number }>(
          'SELECT subscription_id, mission_id, version FROM webhook_messages ORDER BY subscription_id, mission_id, change_seq',
        );
        const groups = new Map<string, number[]>();
        for (const r of rows) {
          const k = `${r.subscription_id}/${r.mission_id}`;
          groups.set(k, [...(groups.get(k) ?? []), Number(r.version)]);
        }
        for (const versions of groups.values()) {
          expect(versions).toEqual(Array.from({ length: versions.length }, (_, i) => i + 1));
        }
      });

      it('a receiver that fails for a while gets everything afterwards, in order per mission, with the same webhook-id on retries', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        let down = true;
        receiver.respond = () => (down ? { status: 503, body: 'maintenance' } : { status: 204 });
        await produce(sql, [change('m1'), change('m2'), change('m1'), change('m1'), change('m2')]);
        // Down for the first attempts, through 5 s, 5 min and 30 min of the schedule.
        await settle(service, sql, clock, { until: () => receiver.captures.length >= 8 });
        const failedIds = receiver.captures.map((c) => c.id);
        down = false;
        await produce(sql, [change('m2'), change('m1')]);
        await settle(service, sql, clock);

        for (const c of receiver.captures) verifyCapture(sub.secret, c);
        const delivered = (await service.listDeliveries('kenya', sub.id, { status: 'delivered' })).items;
        expect(delivered).toHaveLength(7);
        // While failing, only the head of each mission's queue was tried: its id repeats.
        expect(new Set(failedIds).size).toBe(2);
        const ok = receiver.captures.filter((c) => !failedIds.includes(c.id) || c.index >= 8);
        const versions = versionsByMission(ok);
        expect(versions.get('m1')).toEqual([1, 2, 3, 4]);
        expect(versions.get('m2')).toEqual([1, 2, 3]);
        // Every receipt of one message carries the same id and body; attempts count up.
        const byId = new Map<string, Capture[]>();
        for (const c of receiver.captures) byId.set(c.id, [...(byId.get(c.id) ?? []), c]);
        for (const receipts of byId.values()) {
          expect(new Set(receipts.map((r) => r.rawBody)).size).toBe(1);
          expect(receipts.map((r) => Number(r.headers['webhook-attempt']))).toEqual(
            receipts.map((_, i) => i + 1),
          );
        }
        const head = receiver.captures[0] as Capture;
        const attempts = await service.listAttempts(
          'kenya',
          delivered.find((d) => d.messageId === head.id)?.id as string,
        );
        expect(attempts.map((a) => a.outcome)).toEqual([
          ...attempts.slice(0, -1).map(() => 'failed'),
          'succeeded',
        ]);
        expect(attempts[0]).toMatchObject({
          statusCode: 503,
          errorClass: 'http',
          responseBody: 'maintenance',
        });
        // Retries followed the schedule (no jitter in tests): 5 s, then 5 min, then 30 min.
        const starts = attempts.map((a) => Date.parse(a.startedAt));
        expect(starts[1]! - starts[0]!).toBe(5_000);
        expect(starts[2]! - starts[1]!).toBe(300_000);
        expect(starts[3]! - starts[2]!).toBe(1_800_000);
      });

      it('honours Retry-After within [base, 2×base] and waits at least 60 s after a 429', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        receiver.respond = (c) =>
          c.json.data.missionId === 'm1'
            ? { status: 503, headers: { 'retry-after': '86400' } }
            : c.json.data.missionId === 'm2'
              ? { status: 429 }
              : { status: 503, headers: { 'retry-after': new Date(clock.now() + 8_000).toUTCString() } };
        await produce(sql, [change('m1'), change('m2'), change('m3')]);
        const start = clock.now();
        await drain(service);
        const next = Object.fromEntries(
          (await service.listDeliveries('kenya', sub.id)).items.map((d) => [
            d.missionId,
            Date.parse(d.nextAttemptAt as string) - start,
          ]),
        );
        expect(next).toEqual({ m1: 10_000, m2: 60_000, m3: 8_000 });
      });

      it('treats a redirect as a failure and does not follow it', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const elsewhere = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        receiver.respond = () => ({ status: 307, headers: { location: elsewhere.url } });
        await produce(sql, [change('m1')]);
        await drain(service);
        expect(receiver.captures).toHaveLength(1);
        expect(elsewhere.captures).toHaveLength(0);
        const [delivery] = (await service.listDeliveries('kenya', sub.id)).items;
        expect(delivery).toMatchObject({ status: 'pending', lastStatusCode: 307, lastErrorClass: 'http' });
        const [attempt] = await service.listAttempts('kenya', delivery?.id as string);
        expect(attempt?.errorMessage).toMatch(/redirect/);
      });

      it('disables the subscription on 410 Gone, keeps the backlog, and resumes in order when re-enabled', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        receiver.respond = () => ({ status: 410 });
        await produce(sql, [change('m1'), change('m1')]);
        await settle(service, sql, clock);
        expect(receiver.captures).toHaveLength(1);
        expect(await service.getSubscription('kenya', sub.id)).toMatchObject({
          status: 'disabled',
          disabledReason: 'gone',
        });
        const events = (await service.listOperationalEvents('kenya')).items;
        expect(events).toEqual([
          expect.objectContaining({
            type: 'endpoint.disabled',
            subscriptionId: sub.id,
            data: expect.objectContaining({ reason: 'gone' }),
          }),
        ]);
        // Changes keep being planned while disabled, and wait.
        await produce(sql, [change('m1')]);
        clock.advance(3600_000);
        await settle(service, sql, clock);
        expect(receiver.captures).toHaveLength(1);
        receiver.respond = () => ({ status: 200 });
        await service.updateSubscription('kenya', sub.id, { enabled: true });
        await settle(service, sql, clock);
        expect(versionsByMission(receiver.captures.slice(1)).get('m1')).toEqual([1, 2, 3]);
      });

      it('still disables an endpoint that answers test messages but fails every real delivery', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        receiver.respond = (capture) => ({ status: capture.json.type === 'webhook.test' ? 200 : 500 });
        const firstAttempt = clock.now();
        await produce(sql, [change('m1')]);
        let tests = 0;
        const disabled = async () =>
          (await service.getSubscription('kenya', sub.id)).status === 'disabled' ||
          clock.now() - firstAttempt > 8 * 24 * 3600_000;
        while (!(await disabled())) {
          await service.sendTest('kenya', sub.id);
          tests++;
          if (tests % 8 === 0) await produce(sql, [change('m1')]);
          await drain(service);
          clock.advance(3 * 3600_000);
        }
        expect(tests).toBeGreaterThan(10);
        expect(receiver.captures.filter((c) => c.json.type === 'webhook.test').length).toBe(tests);
        const after = await service.getSubscription('kenya', sub.id);
        expect(after).toMatchObject({ status: 'disabled', disabledReason: 'failing' });
        expect(Date.parse(after.disabledAt as string) - firstAttempt).toBeLessThan(6 * 24 * 3600_000);
      });

      it('disables a subscription after 5 days of nothing but failures, saying so, after exhausting the schedule', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        receiver.respond = () => ({ status: 500 });
        const firstAttempt = clock.now();
        await produce(sql, [change('m1'), change('m1'), change('m1')]);
        await settle(service, sql, clock, { maxSteps: 100 });
        const after = await service.getSubscription('kenya', sub.id);
        expect(after).toMatchObject({ status: 'disabled', disabledReason: 'failing' });
        const disabledAt = Date.parse(after.disabledAt as string);
        expect(disabledAt - firstAttempt).toBeGreaterThanOrEqual(5 * 24 * 3600_000);
        expect(disabledAt - firstAttempt).toBeLessThan(6 * 24 * 3600_000);
        const events = (await service.listOperationalEvents('kenya', { subscriptionId: sub.id })).items;
        expect(events.map((e) => e.type)).toEqual(['message.attempt.exhausted', 'endpoint.disabled']);
        expect(events[0]?.data).toMatchObject({ attempts: 10, lastStatusCode: 500 });
        // The first message went through all 10 attempts, the second was still trying.
        const deliveries = (await service.listDeliveries('kenya', sub.id)).items.reverse();
        expect(deliveries.map((d) => [d.version, d.status, d.attempts])).toEqual([
          [1, 'failed', 10],
          [2, 'pending', expect.any(Number)],
          [3, 'pending', 0],
        ]);
      });

      it('gives up after the schedule, is not rescheduled after a failed manual resend, and reports the recovery', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock, retryScheduleMs: [1_000, 2_000] });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        receiver.respond = () => ({ status: 500 });
        await produce(sql, [change('m1')]);
        await settle(service, sql, clock);
        const [failed] = (await service.listDeliveries('kenya', sub.id)).items;
        expect(failed).toMatchObject({ status: 'failed', attempts: 3, nextAttemptAt: null });

        const manual = await service.replayDelivery('kenya', failed?.id as string);
        expect(manual).toMatchObject({ trigger: 'manual', status: 'pending', messageId: failed?.messageId });
        await settle(service, sql, clock);
        expect(await service.getDelivery('kenya', manual.id)).toMatchObject({
          status: 'failed',
          attempts: 1,
        });

        receiver.respond = () => ({ status: 200 });
        const again = await service.replayDelivery('kenya', manual.id);
        await settle(service, sql, clock);
        expect(await service.getDelivery('kenya', again.id)).toMatchObject({
          status: 'delivered',
          attempts: 1,
        });
        expect(new Set(receiver.captures.map((c) => c.id))).toEqual(new Set([failed?.messageId]));
        const types = (await service.listOperationalEvents('kenya')).items.map((e) => e.type);
        expect(types).toEqual(['message.attempt.exhausted', 'message.attempt.recovered']);
      });

      it('rejects a payload over 64 KiB at planning, says so, spends its version, and delivers the rest', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        const huge = change('m1', { payload: { phase: 'main-deployment', unmet: ['x'.repeat(70_000)] } });
        await produce(sql, [huge, change('m1')]);
        const planned = await service.planner.catchUp();
        expect(planned).toMatchObject({ changes: 2, planned: 1, rejected: 1 });
        await service.dispatcher.runOnce();
        expect(receiver.captures.map((c) => c.json.data.version)).toEqual([2]);
        const [event] = (await service.listOperationalEvents('kenya')).items;
        expect(event).toMatchObject({
          type: 'message.rejected',
          subscriptionId: sub.id,
          data: { reason: 'payload-too-large', changeId: huge.changeId, version: 1, limit: 65_536 },
        });
        expect(Number(event?.data.bytes)).toBeGreaterThan(65_536);
        // Planning it again (a reset checkpoint) does not spend another version.
        await sql.execute('UPDATE webhook_planner SET last_seq = 0');
        await service.planner.catchUp();
        await produce(sql, [change('m1')]);
        await drain(service);
        expect(receiver.captures.map((c) => c.json.data.version)).toEqual([2, 3]);
      });

      it('counts changes from before the subscription as notPlanned when a replay covers them', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        await produce(sql, [change('m1'), change('m1'), change('m2')]);
        const sub = await service.createSubscription('kenya', { url: receiver.url, missions: ['m1'] });
        await produce(sql, [change('m1')]);
        await drain(service);
        expect(receiver.captures).toHaveLength(1);
        const replay = await service.replay('kenya', sub.id, { afterChangeSeq: 0 });
        expect(replay).toMatchObject({ replayed: 1, notPlanned: 2 });
      });

      it('replays one delivery, a time range and from a feed or event-store position, with the same webhook-ids', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url, missions: ['m1', 'm2'] });
        const first = await produce(sql, [change('m1'), change('m2'), change('ignored')]);
        await drain(service);
        clock.advance(3600_000);
        const second = await produce(sql, [change('m1'), change('m2')]);
        await drain(service);
        expect(receiver.captures).toHaveLength(4);
        const idOf = (c: { changeId: string }) => messageId(sub.id, c.changeId);

        receiver.captures.length = 0;
        const byTime = await service.replay('kenya', sub.id, {
          since: new Date(clock.now() - 60_000).toISOString(),
        });
        expect(byTime).toEqual({
          replayed: 2,
          alreadyPending: 0,
          notPlanned: 0,
          truncated: false,
          resumeAfter: null,
        });
        await drain(service);
        expect(receiver.captures.map((c) => c.id).sort()).toEqual(second.map(idOf).sort());

        receiver.captures.length = 0;
        const byFeed = await service.replay('kenya', sub.id, { afterChangeSeq: first[1]?.seq });
        expect(byFeed).toMatchObject({ replayed: 2, notPlanned: 0 });
        await drain(service);
        expect(receiver.captures.map((c) => c.id).sort()).toEqual(second.map(idOf).sort());

        receiver.captures.length = 0;
        const byPosition = await service.replay('kenya', sub.id, {
          fromEventPosition: first[1]?.causePosition,
        });
        expect(byPosition).toMatchObject({ replayed: 3 });
        await drain(service);
        expect(receiver.captures.map((c) => c.id).sort()).toEqual(
          [first[1], ...second].map((c) => idOf(c as { changeId: string })).sort(),
        );
        // Resends are tagged manual in the log, and keep their version order per mission.
        const manual = (await service.listDeliveries('kenya', sub.id)).items.filter(
          (d) => d.trigger === 'manual',
        );
        expect(manual).toHaveLength(7);
        expect(versionsByMission(receiver.captures).get('m2')).toEqual([1, 2]);

        receiver.captures.length = 0;
        const onlyFailed = await service.replay('kenya', sub.id, {
          since: '2000-01-01T00:00:00Z',
          onlyFailed: true,
        });
        expect(onlyFailed.replayed).toBe(0);
        const one = (await service.listDeliveries('kenya', sub.id, { limit: 1 })).items[0];
        const resent = await service.replayDelivery('kenya', one?.id as string);
        await drain(service);
        expect(receiver.captures.map((c) => c.id)).toEqual([resent.messageId]);
      });

      it('logs why attempts fail: connect, timeout, DNS, HTTP with the first 4 KiB of the answer', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const gone = await h.receiver(clock);
        const port = gone.port;
        await gone.stop();
        const service = await h.service(sql, { clock, requestTimeoutMs: 300, leaseMs: 5_000 });
        const subs = {
          http: await service.createSubscription('kenya', { url: `${receiver.url}?http` }),
          slow: await service.createSubscription('kenya', { url: `${receiver.url}?slow` }),
          refused: await service.createSubscription('kenya', { url: `http://127.0.0.1:${port}/hooks` }),
          dns: await service.createSubscription('kenya', { url: 'https://vanishing.example.org/hooks' }),
        };
        // The name stops resolving after the subscription was made.
        await sql.execute('UPDATE webhook_subscriptions SET url = $1 WHERE id = $2', [
          'https://vanished.invalid/hooks',
          subs.dns.id,
        ]);
        receiver.respond = (c) =>
          c.path.endsWith('?slow')
            ? { status: 200, delayMs: 1_000 }
            : { status: 500, body: 'e'.repeat(10_000) };
        await produce(sql, [change('m1')]);
        await drain(service);
        const classes: Record<string, unknown> = {};
        for (const [name, sub] of Object.entries(subs)) {
          const [delivery] = (await service.listDeliveries('kenya', sub.id)).items;
          const [attempt] = await service.listAttempts('kenya', delivery?.id as string);
          classes[name] = {
            errorClass: attempt?.errorClass,
            statusCode: attempt?.statusCode,
            bodyLength: attempt?.responseBody?.length ?? null,
          };
          expect(attempt?.latencyMs).toBeGreaterThanOrEqual(0);
        }
        expect(classes).toEqual({
          http: { errorClass: 'http', statusCode: 500, bodyLength: 4096 },
          slow: { errorClass: 'timeout', statusCode: null, bodyLength: null },
          refused: { errorClass: 'connect', statusCode: null, bodyLength: null },
          dns: { errorClass: 'dns', statusCode: null, bodyLength: null },
        });
        // A timeout waits at least 60 s before the next try.
        const [slow] = (await service.listDeliveries('kenya', subs.slow.id)).items;
        expect(Date.parse(slow?.nextAttemptAt as string) - clock.now()).toBeGreaterThanOrEqual(60_000);
      });

      it('lists deliveries newest first, by status, in pages', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        receiver.respond = (c) => ({ status: c.json.data.missionId === 'bad' ? 500 : 200 });
        for (let i = 0; i < 5; i++) {
          await produce(sql, [change(`m${i}`)]);
          clock.advance(1000);
        }
        await produce(sql, [change('bad')]);
        await drain(service);
        const first = await service.listDeliveries('kenya', sub.id, { limit: 4 });
        expect(first.items.map((d) => d.missionId)).toEqual(['bad', 'm4', 'm3', 'm2']);
        const rest = await service.listDeliveries('kenya', sub.id, { limit: 4, after: first.next });
        expect(rest.items.map((d) => d.missionId)).toEqual(['m1', 'm0']);
        expect(rest.next).toBeNull();
        const pending = await service.listDeliveries('kenya', sub.id, { status: 'pending' });
        expect(pending.items.map((d) => d.missionId)).toEqual(['bad']);
      });
    },
  );
}
