import { type RecordedEvent, verifyStream } from '@muster/event-store';
import { missionStreamName } from '@muster/readiness';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ApiResponse,
  call,
  createStore,
  parseExport,
  postgresAvailability,
  type ServiceProcess,
  type StoreHandle,
  startService,
} from './harness.js';

/**
 * Issue 5, item 4: two service processes on one PostgreSQL database, taking commands for the same
 * mission at the same time. The store is the only thing they share; the expected revision, enforced
 * by the database, must keep them from losing or doubling anything, and both must end up answering
 * the same.
 */
const postgres = postgresAvailability();
const suite = postgres.available ? describe : describe.skip;
if (!postgres.available) process.stderr.write(`[e2e] replicas suite skipped: ${postgres.reason}\n`);

const MISSION = 'twin-replicas';
const DONORS = ['united-states', 'canada', 'chile', 'jamaica'];

type Replica = 'a' | 'b';

interface Sent {
  mission: string;
  label: string;
  replica: Replica;
  response: ApiResponse;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

suite('two service processes on one PostgreSQL database', () => {
  let store: StoreHandle;
  let a: ServiceProcess;
  let b: ServiceProcess;
  const sent: Sent[] = [];
  let retries = 0;
  const ifMatchRaces: Array<{ revision: number; reported: number }> = [];
  const service = (replica: Replica) => (replica === 'a' ? a : b);

  /**
   * Sends a command; a 503 (store unavailable) or a 409 `conflict` (the mission kept changing under
   * it: the other replica won every race) is retried with the same command id, as a client should.
   */
  const command = async (
    replica: Replica,
    mission: string,
    name: string,
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse> => {
    for (let attempt = 0; ; attempt++) {
      const response = await call(service(replica), 'POST', `/v1/missions/${mission}/commands/${name}`, {
        body,
        headers,
      });
      const retryable =
        response.status === 503 || (response.status === 409 && response.json().code === 'conflict');
      if (!retryable || attempt >= 20) {
        sent.push({ mission, label: `${name} ${JSON.stringify(body)}`, replica, response });
        return response;
      }
      retries++;
      await sleep(20 + Math.random() * 50);
    }
  };

  const exportLog = async (replica: Replica, mission: string) => {
    const res = await call(service(replica), 'GET', `/v1/missions/${mission}/events`, {
      headers: { accept: 'application/x-ndjson' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const events = parseExport<RecordedEvent>(res.body);
    return { text: res.body, events };
  };

  const define = async (mission: string) => {
    const defined = await call(a, 'POST', '/v1/missions', {
      body: { id: mission, template: 'mss-haiti', commandId: `${mission}-define` },
    });
    expect(defined.status).toBe(201);
    sent.push({ mission, label: 'define', replica: 'a', response: defined });
  };

  beforeAll(async () => {
    store = await createStore('postgres');
    // Started together: both migrate the fresh database at once.
    const unlimited = { MUSTER_RATE_LIMIT_PER_MINUTE: '0' };
    [a, b] = await Promise.all([startService(store, unlimited), startService(store, unlimited)]);
  });
  afterAll(async () => {
    const codes = await Promise.all([a?.stop(), b?.stop()]);
    await store?.dispose();
    expect(codes).toEqual([0, 0]);
  });

  it('take commands for one mission at once: nothing lost, nothing doubled, one chain, the same answers', async () => {
    await define(MISSION);

    // 200 pledges with distinct ids, every other one through each replica, all in flight at once.
    const pledges = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        command(i % 2 === 0 ? 'a' : 'b', MISSION, 'pledge-logistics', {
          commandId: `pledge-${i}`,
          pledgeId: `twin-${i}`,
          pledger: DONORS[i % DONORS.length],
          capability: 'airlift',
          quantity: 1 + (i % 3),
          unit: 'aircraft',
        }),
      ),
    );
    // Never a server error. Refusals are the subject of the next test: here, that none hides a write.
    for (const r of pledges) {
      expect([201, 409]).toContain(r.status);
      if (r.status !== 201) expect(r.headers.get('content-type')).toContain('application/problem+json');
    }

    // The same pledge id through both replicas at once, under different command ids: one wins.
    const contested = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        Promise.all(
          (['a', 'b'] as const).map((replica) =>
            command(replica, MISSION, 'pledge-logistics', {
              commandId: `contested-${i}-${replica}`,
              pledgeId: `contested-${i}`,
              pledger: 'canada',
              capability: 'medical',
              quantity: 1,
              unit: 'teams',
            }),
          ),
        ),
      ),
    );
    for (const pair of contested) {
      expect(pair.map((r) => r.status).sort()).toEqual([201, 409]);
      expect(pair.find((r) => r.status === 409)?.json().code).toBe('pledge-already-exists');
    }

    // Confirming the same (recorded) pledge through both at once: one confirms, the other is told.
    const recorded = pledges.flatMap((r, i) => (r.status === 201 ? [i] : [])).slice(0, 20);
    const confirmations = await Promise.all(
      recorded.map((i) =>
        Promise.all(
          (['a', 'b'] as const).map((replica) =>
            command(replica, MISSION, 'confirm-pledge', {
              commandId: `confirm-${i}-${replica}`,
              pledgeId: `twin-${i}`,
            }),
          ),
        ),
      ),
    );
    for (const pair of confirmations) {
      expect(pair.map((r) => r.status).sort()).toEqual([201, 409]);
      expect(pair.find((r) => r.status === 409)?.json().code).toBe('pledge-already-confirmed');
    }

    // If-Match on the revision both replicas read: exactly one write wins, the other gets 412.
    for (let round = 0; round < 10; round++) {
      const revision = (await call(a, 'GET', `/v1/missions/${MISSION}`)).json().revision as number;
      const pair = await Promise.all(
        (['a', 'b'] as const).map((replica) =>
          command(
            replica,
            MISSION,
            'report-unit-readiness',
            {
              commandId: `ready-${round}-${replica}`,
              unit: 'GSU',
              officersReady: 100 * (round + 1),
              status: 'standby',
            },
            { 'if-match': `"${revision}"` },
          ),
        ),
      );
      expect(pair.map((r) => r.status).sort()).toEqual([201, 412]);
      const stale = pair.find((r) => r.status === 412) as ApiResponse;
      expect(stale.json().code).toBe('precondition-failed');
      // Strictly revision + 1; see the next test for why it can be reported stale today.
      ifMatchRaces.push({ revision, reported: stale.json().currentRevision });
      expect([revision, revision + 1]).toContain(stale.json().currentRevision);
    }

    // Both replicas export the same log, byte for byte.
    const fromA = await exportLog('a', MISSION);
    const fromB = await exportLog('b', MISSION);
    expect(fromB.text).toBe(fromA.text);
    const log = fromA.events;

    // One chain, contiguous revisions, no event twice.
    expect(log.map((e) => e.revision)).toEqual(log.map((_, i) => i));
    expect(await verifyStream(log)).toMatchObject({ ok: true, count: log.length });
    expect(new Set(log.map((e) => e.id)).size).toBe(log.length);

    // Every acknowledged event is in the log exactly once, where its 201 said, and the log holds
    // nothing that was not acknowledged.
    const acknowledged = sent
      .filter((s) => s.mission === MISSION && s.response.status === 201)
      .flatMap((s) => s.response.json().events as Array<{ id: string; revision: number; position: string }>);
    expect(new Set(acknowledged.map((e) => e.id)).size).toBe(acknowledged.length);
    expect(acknowledged.map((e) => e.id).sort()).toEqual(log.map((e) => e.id).sort());
    const byId = new Map(log.map((e) => [e.id, e]));
    for (const e of acknowledged)
      expect(byId.get(e.id)).toMatchObject({ revision: e.revision, position: e.position });
    // A refused pledge left nothing behind.
    const pledged = new Set(
      log.filter((e) => e.type === 'LogisticsPledged').map((e) => (e.data as { pledgeId: string }).pledgeId),
    );
    pledges.forEach((r, i) => {
      expect({ pledge: i, recorded: pledged.has(`twin-${i}`) }).toEqual({
        pledge: i,
        recorded: r.status === 201,
      });
    });
    expect(pledged.size).toBe(pledges.filter((r) => r.status === 201).length + 20);

    // Once quiet, both answer the same.
    const read = async (replica: Replica) => {
      const s = service(replica);
      const mission = await call(s, 'GET', `/v1/missions/${MISSION}`);
      const now = await call(s, 'GET', `/v1/missions/${MISSION}/readiness`);
      const asOf = await call(s, 'GET', `/v1/missions/${MISSION}/readiness?asOf=2030-01-01T00:00:00Z`);
      for (const r of [mission, now, asOf]) expect(r.status).toBe(200);
      const { at: _evaluatedAt, ...verdict } = now.json();
      return {
        mission: mission.json(),
        etag: mission.headers.get('etag'),
        readiness: verdict,
        readinessEtag: now.headers.get('etag'),
        asOf: asOf.json(),
      };
    };
    const [answerA, answerB] = await Promise.all([read('a'), read('b')]);
    expect(answerB).toEqual(answerA);
    expect(answerA.mission.revision).toBe(log.length - 1);
    expect(answerA.readiness.revision).toBe(log.length - 1);
    expect(answerA.etag).toBe(`"${log.length - 1}"`);
    process.stderr.write(
      `[e2e] replicas: ${sent.length} commands, ${log.length} events, ${retries} retries after 409 conflict or 503, ` +
        `${pledges.filter((r) => r.status !== 201).length} of 200 distinct pledges refused\n`,
    );
  });

  /**
   * Replica B's append and replica A's two pipelined commands (pledge y, then confirm y, decided on
   * the state that includes the pledge) queue behind the mission stream's lock; B commits first.
   * A's pledge then fails its expected revision and must be decided again on a fresh state; A's
   * confirmation must not land on B's event, which holds the revision it expected.
   *
   * Both faults showed before services/api 838e150 (see docs/event-store-postgres.md, "Pipelined
   * writers"): the pledge's retry ran on the stale cached state and answered 409
   * `pledge-already-exists` for a pledge not in the log, and the confirmation was written before the
   * pledge, until the store was opened with `chainPipelinedAppends`.
   */
  it('answer truthfully under contention: a refusal means the log says so, and no command lands on a state it was not decided on', async () => {
    const mission = 'twin-truth';
    await define(mission);
    const holder = new pg.Client({ connectionString: store.env.DATABASE_URL });
    await holder.connect();
    const waiters = async () =>
      Number(
        (
          await holder.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
          )
        ).rows[0].n,
      );
    const until = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while ((await waiters()) < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} appends waiting on the mission lock`);
        await sleep(10);
      }
    };
    let pledge: Promise<ApiResponse>;
    let confirm: Promise<ApiResponse>;
    let other: Promise<ApiResponse>;
    try {
      // Hold the mission stream's append lock (the adapter's own key) so that both replicas queue.
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7150735))', [
        missionStreamName(mission),
      ]);
      other = command('b', mission, 'report-unit-readiness', {
        commandId: 'truth-b',
        unit: 'RDU',
        officersReady: 50,
        status: 'standby',
      });
      await until(1);
      pledge = command('a', mission, 'pledge-logistics', {
        commandId: 'truth-pledge',
        pledgeId: 'y',
        pledger: 'canada',
        capability: 'airlift',
        quantity: 1,
        unit: 'aircraft',
      });
      await until(2);
      confirm = command('a', mission, 'confirm-pledge', { commandId: 'truth-confirm', pledgeId: 'y' });
      // The confirmation is decided on A's tentative state (with the pledge) and queued behind it.
      await sleep(300);
    } finally {
      await holder.query('COMMIT').catch(() => {});
      await holder.end();
    }
    const [o, p, c] = await Promise.all([other, pledge, confirm]);
    expect(o.status).toBe(201);
    const log = (await exportLog('a', mission)).events;
    const has = (type: string) =>
      log.some((e) => e.type === type && (e.data as { pledgeId?: string }).pledgeId === 'y');
    // A refusal is true: "already exists" only when the pledge is in the log.
    if (p.status === 409)
      expect({ refused: p.json().code, recorded: has('LogisticsPledged') }).toEqual({
        refused: 'pledge-already-exists',
        recorded: true,
      });
    // Whatever happened to the confirmation, it never precedes its pledge.
    const pledgedAt = log.findIndex((e) => e.type === 'LogisticsPledged');
    const confirmedAt = log.findIndex((e) => e.type === 'PledgeConfirmed');
    if (confirmedAt !== -1) expect(pledgedAt).toBeGreaterThan(-1);
    if (confirmedAt !== -1) expect(confirmedAt).toBeGreaterThan(pledgedAt);
    expect({ pledge: p.status, confirm: c.status }).toEqual({ pledge: 201, confirm: 201 });
    // And a 412 names the revision the mission is really at (checked on the races of the first test).
    for (const race of ifMatchRaces) expect(race.reported).toBe(race.revision + 1);
  });

  it('answer "readiness now" with every write acknowledged before, even while busy writing the mission', async () => {
    const mission = 'busy-now';
    await define(mission);
    let stop = false;
    let n = 0;
    const busy = Array.from({ length: 6 }, async () => {
      while (!stop) {
        const i = n++;
        await call(a, 'POST', `/v1/missions/${mission}/commands/report-unit-readiness`, {
          body: { unit: 'GSU', officersReady: i, status: 'standby' },
        });
      }
    });
    const behind: Array<{ acknowledged: number; answered: number }> = [];
    try {
      for (let i = 0; i < 30; i++) {
        const written = await call(b, 'POST', `/v1/missions/${mission}/commands/report-unit-readiness`, {
          body: { unit: 'BPU', officersReady: i, status: 'standby' },
        });
        if (written.status !== 201) continue;
        const acknowledged = written.json().revision as number;
        const answered = (await call(a, 'GET', `/v1/missions/${mission}/readiness`)).json()
          .revision as number;
        if (answered < acknowledged) behind.push({ acknowledged, answered });
      }
    } finally {
      stop = true;
      await Promise.all(busy);
    }
    expect(behind).toEqual([]);
  });

  /**
   * Write starvation (docs/reliability.md): a review had 3 of 40 commands sent through a quiet
   * replica answered 409 `conflict` while the other replica wrote the same mission without pause.
   * The writer now decides a command under the stream's lock once two tries have conflicted.
   */
  it('let a quiet replica write a mission the other writes without pause: no command is starved into a 409', async () => {
    const mission = 'starved';
    await define(mission);
    let stop = false;
    let n = 0;
    const busyAnswers: Record<string, number> = {};
    const busy = Array.from({ length: 6 }, async () => {
      while (!stop) {
        const i = n++;
        const r = await call(a, 'POST', `/v1/missions/${mission}/commands/report-unit-readiness`, {
          body: { unit: 'GSU', officersReady: i, status: 'standby' },
        });
        const key = r.status === 201 ? '201' : `${r.status} ${r.json().code}`;
        busyAnswers[key] = (busyAnswers[key] ?? 0) + 1;
      }
    });
    const quiet: Array<{ i: number; status: number; code: string | null }> = [];
    try {
      for (let i = 0; i < 40; i++) {
        const r = await call(b, 'POST', `/v1/missions/${mission}/commands/pledge-logistics`, {
          body: {
            pledgeId: `quiet-${i}`,
            pledger: 'canada',
            capability: 'airlift',
            quantity: 1,
            unit: 'aircraft',
          },
        });
        quiet.push({ i, status: r.status, code: r.status === 201 ? null : r.json().code });
      }
    } finally {
      stop = true;
      await Promise.all(busy);
    }
    process.stderr.write(
      `[e2e] replicas: 40 commands through the quiet replica beside ${n} through the busy one (${JSON.stringify(busyAnswers)})\n`,
    );
    expect(quiet.filter((q) => q.status !== 201)).toEqual([]);
    expect(Object.keys(busyAnswers)).toEqual(['201']);
    const log = (await exportLog('b', mission)).events;
    const pledged = log
      .filter((e) => e.type === 'LogisticsPledged')
      .map((e) => (e.data as { pledgeId: string }).pledgeId);
    expect(pledged).toEqual(Array.from({ length: 40 }, (_, i) => `quiet-${i}`));
    expect(await verifyStream(log)).toMatchObject({ ok: true, count: log.length });
  });

  it('let a client read its write on the other replica by naming the position the write answered', async () => {
    for (let i = 0; i < 10; i++) {
      const mission = `ryw-${i}`;
      const defined = await call(a, 'POST', '/v1/missions', {
        body: { id: mission, template: 'mss-haiti', commandId: `${mission}-define` },
      });
      expect(defined.status).toBe(201);
      const headers = { 'muster-min-position': defined.json().position as string };
      const history = await call(b, 'GET', `/v1/missions/${mission}/readiness/history`, { headers });
      expect({ mission, status: history.status }).toEqual({ mission, status: 200 });
      expect(history.json().entries.length).toBeGreaterThan(0);
      const listed = await call(b, 'GET', '/v1/missions?limit=1000', { headers });
      expect(listed.json().missions.map((m: { missionId: string }) => m.missionId)).toContain(mission);
    }
    const bad = await call(b, 'GET', '/v1/missions', { headers: { 'muster-min-position': 'abc' } });
    expect(bad.status).toBe(400);
  });

  it('decide a refusal on the log, not on a cache the other replica has moved past', async () => {
    const mission = 'stale-cache';
    // B caches the mission before it exists, then A defines it: B must not keep answering 404.
    const early = await call(b, 'POST', `/v1/missions/${mission}/commands/pledge-logistics`, {
      body: { pledgeId: 'early', pledger: 'canada', capability: 'airlift', quantity: 1, unit: 'aircraft' },
    });
    expect(early.status).toBe(404);
    await define(mission);
    const pledge = (replica: Replica, pledgeId: string) =>
      call(service(replica), 'POST', `/v1/missions/${mission}/commands/pledge-logistics`, {
        body: { pledgeId, pledger: 'canada', capability: 'airlift', quantity: 1, unit: 'aircraft' },
      });
    expect((await pledge('b', 'p0')).status).toBe(201);
    // A pledges p1; B, whose cache ends at p0, confirms p1 at once, keyed.
    expect((await pledge('a', 'p1')).status).toBe(201);
    const keyed = { 'idempotency-key': 'confirm-p1-on-b' };
    const confirm = await call(b, 'POST', `/v1/missions/${mission}/commands/confirm-pledge`, {
      body: { pledgeId: 'p1' },
      headers: keyed,
    });
    expect({ status: confirm.status, code: confirm.status === 201 ? null : confirm.json().code }).toEqual({
      status: 201,
      code: null,
    });
    // The key remembers the success, on either replica.
    const again = await call(a, 'POST', `/v1/missions/${mission}/commands/confirm-pledge`, {
      body: { pledgeId: 'p1' },
      headers: keyed,
    });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    // If-Match with the revision A just reached, sent to B whose cache is behind: a match, not a 412.
    const head = (await pledge('a', 'p2')).json().revision as number;
    const matched = await call(b, 'POST', `/v1/missions/${mission}/commands/pledge-logistics`, {
      body: { pledgeId: 'p3', pledger: 'canada', capability: 'airlift', quantity: 1, unit: 'aircraft' },
      headers: { 'if-match': `"${head}"` },
    });
    expect(matched.status).toBe(201);
    const log = (await exportLog('a', mission)).events;
    expect(log.filter((e) => e.type === 'PledgeConfirmed')).toHaveLength(1);
  });
});

suite('two replicas starting the demo at once on a fresh PostgreSQL database', () => {
  it('both start: the one that loses the race to register an agency or define the mission goes on', async () => {
    const fresh = await createStore('postgres');
    try {
      const demo = { MUSTER_DEMO: '1' };
      const started = await Promise.allSettled([startService(fresh, demo), startService(fresh, demo)]);
      const failures = started
        .filter((s) => s.status === 'rejected')
        .map((s) => String(s.reason).slice(0, 2000));
      expect(failures).toEqual([]);
      const [first, second] = started.map((s) => (s as PromiseFulfilledResult<ServiceProcess>).value);
      // Defined once, by whichever won; the read model of either replica shows it once projected.
      let ids: string[] = [];
      for (let i = 0; i < 100 && ids.length === 0; i++) {
        const missions = await call(first as ServiceProcess, 'GET', '/v1/missions');
        ids = missions.json().missions.map((m: { missionId: string }) => m.missionId);
        if (ids.length === 0) await sleep(100);
      }
      expect(ids).toEqual(['mss-haiti']);
      expect(await Promise.all([first?.stop(), second?.stop()])).toEqual([0, 0]);
    } finally {
      await fresh.dispose();
    }
  });
});
