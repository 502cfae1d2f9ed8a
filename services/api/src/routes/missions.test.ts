import { describe, expect, it } from 'vitest';
import { prefersExport } from './missions.js';

describe('prefersExport', () => {
  it('reads Accept by its q-values', () => {
    const cases: Array<[string | string[] | undefined, boolean]> = [
      [undefined, false],
      ['', false],
      ['application/json', false],
      ['*/*', false],
      ['application/x-ndjson', true],
      ['application/x-ndjson, application/json', true],
      ['application/json, application/x-ndjson;q=0.1', false],
      ['application/json;q=0.5, application/x-ndjson', true],
      ['application/x-ndjson;q=0', false],
      ['APPLICATION/X-NDJSON ; Q=0.8, text/plain', true],
      ['application/x-ndjson;q=0.5, */*;q=0.9', false],
      ['application/x-ndjson;q=nonsense', false],
      [['application/json', 'application/x-ndjson'], true],
    ];
    for (const [accept, expected] of cases)
      expect(prefersExport(accept), JSON.stringify(accept)).toBe(expected);
  });
});
