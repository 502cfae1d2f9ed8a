import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The service's Prometheus metrics, on a registry of its own (tests build many apps). */
export class Metrics {
  readonly registry = new Registry();
  readonly requestDuration = new Histogram({
    name: 'muster_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly commands = new Counter({
    name: 'muster_commands_total',
    help: 'Commands by name and outcome (accepted, replayed, refused, failed)',
    labelNames: ['command', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly lockedCommands = new Counter({
    name: 'muster_commands_locked_total',
    help: "Commands decided under the mission stream's lock after two conflicted tries, by outcome (appended, replayed, unchanged, refused, failed)",
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly appendDuration = new Histogram({
    name: 'muster_store_append_duration_seconds',
    help: 'Event store append latency (group commit included)',
    labelNames: ['outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly projectionLag = new Gauge({
    name: 'muster_projection_lag_events',
    help: 'Events between a projection checkpoint and the head of the log',
    labelNames: ['projection'] as const,
    registers: [this.registry],
  });
  readonly projectionCaughtUp = new Gauge({
    name: 'muster_projection_caught_up',
    help: '1 once the projection has processed the log up to its head in this process',
    labelNames: ['projection'] as const,
    registers: [this.registry],
  });
  readonly storeWritable = new Gauge({
    name: 'muster_store_writable',
    help: '0 after an append failed for lack of space (store-full), 1 after an append succeeded',
    registers: [this.registry],
  });
  readonly storeUp = new Gauge({
    name: 'muster_store_up',
    help: '1 when the event store answered the last probe (each scrape and each readiness check)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'muster_' });
    this.storeWritable.set(1);
  }

  /** Times every request by its route pattern (never the raw URL: ids would explode the labels). */
  instrument(app: FastifyInstance): void {
    // Callback hooks: an async one costs every request a promise and a turn of the microtask queue.
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched';
      this.requestDuration.observe(
        { method: request.method, route, status: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
      done();
    });
  }
}
