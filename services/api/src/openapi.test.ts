import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from './testing/harness.js';

describe('the OpenAPI document', () => {
  let svc: TestService;
  let document: { openapi: string; paths: Record<string, Record<string, unknown>> };

  beforeAll(async () => {
    svc = await startTestService();
    const res = await svc.request('GET', '/openapi.json', { key: null });
    expect(res.statusCode).toBe(200);
    document = res.json();
  });
  afterAll(() => svc.close());

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(document.openapi).toBe('3.1.0');
    const result = await new Validator().validate(document as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('describes every route the service answers', () => {
    const documented = new Set(
      Object.entries(document.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((method) => `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`),
      ),
    );
    const served = svc.app.routeTable.filter((route) => !/ \/docs/.test(route));
    expect(served.length).toBeGreaterThan(30);
    expect(served.filter((route) => !documented.has(route))).toEqual([]);
    for (const command of [
      'pledge-logistics',
      'pledge-funding',
      'approve-council',
      'report-unit-readiness',
    ]) {
      expect(document.paths[`/v1/missions/{missionId}/commands/${command}`]?.post).toBeDefined();
    }
  });

  it('documents the answers every route of a kind can give, and the export beside the events page', () => {
    type Operation = { security?: unknown[]; requestBody?: unknown; responses: Record<string, unknown> };
    for (const [path, operations] of Object.entries(
      document.paths as Record<string, Record<string, Operation>>,
    )) {
      for (const [method, operation] of Object.entries(operations)) {
        const statuses = Object.keys(operation.responses);
        const label = `${method.toUpperCase()} ${path}`;
        if (!Array.isArray(operation.security) || operation.security.length > 0) {
          expect({ label, statuses }).toEqual({ label, statuses: expect.arrayContaining(['401', '429']) });
        }
        if (operation.requestBody) {
          expect({ label, statuses }).toEqual({
            label,
            statuses: expect.arrayContaining(['400', '413', '415']),
          });
        }
      }
    }
    const events = (document.paths as Record<string, Record<string, Operation>>)[
      '/v1/missions/{missionId}/events'
    ];
    const ok = events?.get?.responses['200'] as { content: Record<string, unknown> };
    expect(Object.keys(ok.content).sort()).toEqual(['application/json', 'application/x-ndjson']);
  });

  it('serves an interactive page at /docs with security headers', async () => {
    const page = await svc.request('GET', '/docs/', { key: null });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.headers['content-security-policy']).toBeDefined();
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['x-frame-options']).toBe('DENY');
  });
});
