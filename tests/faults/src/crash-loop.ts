import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  call,
  createStore,
  parseExport,
  type ServiceProcess,
  type StoreKind,
  startService,
} from '@muster/e2e';
import { ChainVerifier, type RecordedEvent } from '@muster/event-store';

/**
 * The crash loop: a client sends commands with Idempotency-Keys at a steady rate and retries each
 * one (same key, same body) on connection errors, 503 and 409-in-progress until it gets a
 * definitive answer; meanwhile the service is killed with SIGKILL at random moments and restarted.
 * Afterwards every command ever acknowledged must be in the log exactly once, every command sent
 * (all of them were retried to completion) exactly once, the hash chain must verify, and the read
 * models must equal a replay of the log (the audit endpoint).
 */
export interface CrashLoopOptions {
  store: StoreKind;
  kills: number;
  /** Commands started per second. */
  rate: number;
  /** Uptime before each kill is drawn between these (ms). */
  minUpMs: number;
  maxUpMs: number;
  log?: (message: string) => void;
}

export interface CrashLoopReport {
  store: StoreKind;
  kills: number;
  commandsSent: number;
  acknowledgedFirstTime: number;
  retried: number;
  attempts: number;
  eventsInLog: number;
  lostAcknowledged: string[];
  duplicatedCommands: string[];
  missingCommands: string[];
  duplicateEventIds: string[];
  chain: { ok: boolean; detail?: string };
  audit: { ok: boolean; mismatches: number; detail?: unknown };
  /** What a webhook receiver subscribed to the mission saw through the kills. */
  webhooks: {
    planned: number;
    pendingAtEnd: number;
    receivedUnique: number;
    receivedTotal: number;
    /** Planned messages (by webhook-id) the receiver never got. */
    missing: string[];
    /** Times a message arrived whose version was lower than one already received, not a repeat. */
    outOfOrder: number;
    /** Repeats whose body differed from the first receipt under the same webhook-id. */
    changedRepeats: number;
  };
  seconds: number;
}

const MISSION = 'crash-mission';

interface Sent {
  key: string;
  body: Record<string, unknown>;
  path: string;
  attempts: number;
  eventIds: string[] | null;
}

export async function crashLoop(options: CrashLoopOptions): Promise<CrashLoopReport> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const store = await createStore(options.store);
  // A receiver that records every delivery: webhook-id, version and body.
  const receipts: Array<{ id: string; version: number; body: string }> = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const version = Number((JSON.parse(body) as { data?: { version?: unknown } }).data?.version);
      receipts.push({ id: String(req.headers['webhook-id']), version, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const env = {
    MUSTER_RATE_LIMIT_PER_MINUTE: '0',
    MUSTER_WEBHOOK_ALLOW_HTTP: '1',
    MUSTER_WEBHOOK_ALLOW_CIDRS: '127.0.0.0/8',
  };
  let service: ServiceProcess = await startService(store, env);
  try {
    const defined = await call(service, 'POST', '/v1/missions', {
      body: { id: MISSION, template: 'mss-haiti' },
      headers: { 'idempotency-key': 'define-crash-mission' },
    });
    if (defined.status !== 201) throw new Error(`define: ${defined.status} ${defined.body}`);
    const subscribed = await call(service, 'POST', '/v1/webhooks', {
      body: {
        url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
        missions: [MISSION],
        eventTypes: ['readiness.changed', 'precondition.changed', 'pledge.changed'],
      },
    });
    if (subscribed.status !== 201) throw new Error(`subscribe: ${subscribed.status} ${subscribed.body}`);
    const subscriptionId = subscribed.json().id as string;

    const sent: Sent[] = [];
    let sending = true;
    let restarting: Promise<void> | null = null;
    const inflight = new Set<Promise<void>>();
    // Requests on the wire, so that every kill lands while one is outstanding: a kill in a quiet
    // moment proves nothing about lost acknowledgements.
    let onWire = 0;
    let wireWaiters: Array<() => void> = [];

    const send = async (command: Sent): Promise<void> => {
      for (;;) {
        command.attempts++;
        if (restarting) await restarting;
        let status = 0;
        let body = '';
        onWire++;
        for (const wake of wireWaiters) wake();
        wireWaiters = [];
        try {
          const res = await call(service, 'POST', command.path, {
            body: command.body,
            headers: { 'idempotency-key': command.key },
          });
          status = res.status;
          body = res.body;
        } catch {
          status = 0;
        } finally {
          onWire--;
        }
        if (status === 201) {
          command.eventIds = (JSON.parse(body) as { events: Array<{ id: string }> }).events.map((e) => e.id);
          return;
        }
        if (status === 0 || status === 503 || status === 409) {
          await sleep(50 + Math.random() * 200);
          continue;
        }
        throw new Error(`command ${command.key}: unexpected ${status} ${body}`);
      }
    };

    const producer = (async () => {
      const units = ['RDU', 'ASTU', 'GSU', 'BPU'];
      for (let i = 0; sending; i++) {
        const pledge = i % 3 === 0;
        const command: Sent = {
          key: `crash-${i}`,
          path: `/v1/missions/${MISSION}/commands/${pledge ? 'pledge-logistics' : 'report-unit-readiness'}`,
          body: pledge
            ? {
                pledgeId: `crash-pledge-${i}`,
                pledger: 'united-states',
                capability: 'transport',
                quantity: 1,
                unit: 'vehicles',
              }
            : { unit: units[i % 4], officersReady: 100 + (i % 500), status: 'standby' },
          attempts: 0,
          eventIds: null,
        };
        sent.push(command);
        const task = send(command).finally(() => inflight.delete(task));
        inflight.add(task);
        await sleep(1000 / options.rate);
      }
    })();

    for (let kill = 1; kill <= options.kills; kill++) {
      await sleep(options.minUpMs + Math.random() * (options.maxUpMs - options.minUpMs));
      if (onWire === 0) {
        await Promise.race([new Promise<void>((resolve) => wireWaiters.push(resolve)), sleep(2000)]);
      }
      let restarted: () => void = () => {};
      restarting = new Promise((resolve) => {
        restarted = resolve;
      });
      service.child.kill('SIGKILL');
      await service.exited;
      log(`kill ${kill}/${options.kills}: ${sent.length} commands sent so far`);
      service = await startService(store, env);
      restarting = null;
      restarted();
    }
    sending = false;
    await producer;
    await Promise.all([...inflight]);

    // What the log holds.
    const exported = await call(service, 'GET', `/v1/missions/${MISSION}/events`, {
      headers: { accept: 'application/x-ndjson' },
    });
    const events = parseExport<RecordedEvent>(exported.body);
    const verifier = new ChainVerifier();
    let chain: CrashLoopReport['chain'] = { ok: true };
    for (const event of events) {
      const broken = verifier.push(event);
      if (broken) {
        chain = { ok: false, detail: `${broken.reason} at revision ${broken.brokenAt.revision}` };
        break;
      }
    }
    const idCounts = new Map<string, number>();
    const commandCounts = new Map<string, number>();
    for (const event of events) {
      idCounts.set(event.id, (idCounts.get(event.id) ?? 0) + 1);
      const commandId = String(event.metadata.commandId ?? '');
      commandCounts.set(commandId, (commandCounts.get(commandId) ?? 0) + 1);
    }
    const byKey = new Map(sent.map((c) => [c.key, c]));
    const commandIdOf = new Map<string, string>();
    for (const event of events) {
      const key = sent.find((c) => c.eventIds?.includes(event.id))?.key;
      if (key) commandIdOf.set(key, String(event.metadata.commandId));
    }
    const lostAcknowledged = sent
      .filter((c) => c.eventIds?.some((id) => !idCounts.has(id)))
      .map((c) => c.key);
    const duplicateEventIds = [...idCounts].filter(([, n]) => n > 1).map(([id]) => id);
    const duplicatedCommands = [...commandIdOf]
      .filter(([, commandId]) => (commandCounts.get(commandId) ?? 0) > 1)
      .map(([key]) => key);
    const missingCommands = [...byKey.keys()].filter((key) => !commandIdOf.has(key));

    // Every planned delivery must arrive at least once, repeats only under the same webhook-id with
    // the same body, in version order.
    const listDeliveries = async () => {
      const all: Array<{ messageId: string; status: string }> = [];
      let after: string | null = null;
      do {
        const page = await call(
          service,
          'GET',
          `/v1/webhooks/${subscriptionId}/deliveries?limit=200${after ? `&after=${encodeURIComponent(after)}` : ''}`,
        );
        const body = page.json() as {
          items: Array<{ messageId: string; status: string }>;
          next: string | null;
        };
        all.push(...body.items);
        after = body.next;
      } while (after);
      return all;
    };
    let deliveries = await listDeliveries();
    for (let i = 0; i < 120 && deliveries.some((d) => d.status === 'pending'); i++) {
      await sleep(500);
      deliveries = await listDeliveries();
    }
    const firstBody = new Map<string, string>();
    let outOfOrder = 0;
    let changedRepeats = 0;
    let highest = 0;
    for (const receipt of receipts) {
      const seen = firstBody.get(receipt.id);
      if (seen !== undefined) {
        if (seen !== receipt.body) changedRepeats++;
        continue;
      }
      firstBody.set(receipt.id, receipt.body);
      if (receipt.version < highest) outOfOrder++;
      highest = Math.max(highest, receipt.version);
    }
    const planned = new Set(deliveries.map((d) => d.messageId));

    const audit = await call(service, 'GET', `/v1/missions/${MISSION}/audit`);
    const auditBody =
      audit.status === 200 ? (audit.json() as { mismatches?: unknown[]; chain?: { ok?: boolean } }) : null;
    const report: CrashLoopReport = {
      store: options.store,
      kills: options.kills,
      commandsSent: sent.length,
      acknowledgedFirstTime: sent.filter((c) => c.attempts === 1).length,
      retried: sent.filter((c) => c.attempts > 1).length,
      attempts: sent.reduce((n, c) => n + c.attempts, 0),
      eventsInLog: events.length,
      lostAcknowledged,
      duplicatedCommands,
      missingCommands,
      duplicateEventIds,
      chain,
      audit: {
        ok: audit.status === 200 && (auditBody?.mismatches?.length ?? 1) === 0,
        mismatches: auditBody?.mismatches?.length ?? -1,
        ...(audit.status === 200 && (auditBody?.mismatches?.length ?? 0) === 0
          ? {}
          : { detail: audit.status === 200 ? auditBody?.mismatches?.slice(0, 3) : audit.body.slice(0, 300) }),
      },
      webhooks: {
        planned: planned.size,
        pendingAtEnd: deliveries.filter((d) => d.status === 'pending').length,
        receivedUnique: firstBody.size,
        receivedTotal: receipts.length,
        missing: [...planned].filter((id) => !firstBody.has(id)),
        outOfOrder,
        changedRepeats,
      },
      seconds: Math.round((performance.now() - started) / 100) / 10,
    };
    return report;
  } finally {
    await service.stop('SIGKILL').catch(() => {});
    await new Promise((resolve) => receiver.close(resolve));
    await store.dispose();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
