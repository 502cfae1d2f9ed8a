import { describe, expect, it } from 'vitest';
import { DOMAIN_ERRORS, DomainError, isDomainError } from './errors.js';
import type { MissionEvent } from './events.js';
import { groupDigits } from './format.js';
import { validatedMs } from './instant.js';
import { evolve, fold } from './state.js';
import { defineTestMission, history } from './test-support/spec.js';

describe('DomainError', () => {
  it('carries its code, suggested status, message and details', () => {
    const error = new DomainError('pledge-not-found', { pledgeId: 'p' });
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      name: 'DomainError',
      code: 'pledge-not-found',
      status: 404,
      details: { pledgeId: 'p' },
    });
    expect(error.message).toBe(DOMAIN_ERRORS['pledge-not-found'].message);
    expect(isDomainError(error)).toBe(true);
    expect(isDomainError(error, 'pledge-not-found')).toBe(true);
    expect(isDomainError(error, 'pledge-withdrawn')).toBe(false);
    expect(isDomainError(new Error('x'))).toBe(false);
    expect(new DomainError('invalid-command', {}, 'custom').message).toBe('custom');
  });

  it('suggests 404 for what does not exist, 409 for conflicts with the state, 422 for rule violations', () => {
    for (const [code, { status, message }] of Object.entries(DOMAIN_ERRORS)) {
      expect([404, 409, 422, 500], code).toContain(status);
      expect(message.length).toBeGreaterThan(10);
      if (code.endsWith('-not-found')) {
        expect(status, code).toBe(404);
      }
    }
  });
});

describe('instants', () => {
  it('reads canonical and other valid forms alike', () => {
    for (const instant of [
      '2024-03-01T00:00:00.000Z',
      '2024-02-29T23:59:59.999Z',
      '2024-03-01T03:00:00+03:00',
      '2024-03-01T00:00:00Z',
    ]) {
      expect(validatedMs(instant)).toBe(Date.parse(instant));
    }
  });

  it('evolve accepts any valid instant in an event and rejects one that is not', () => {
    const [defined] = history(defineTestMission()) as [MissionEvent];
    const offset = { ...defined, occurredAt: '2024-03-01T03:00:00+03:00' };
    expect(fold([offset])).toEqual(fold([defined]));
    expect(() => evolve(fold([]), { ...defined, occurredAt: 'not-an-instant' })).toThrow(
      expect.objectContaining({ code: 'invalid-event' }),
    );
  });

  it('groups digits by thousands', () => {
    expect([0, 7, 999, 1000, 12_345, 1_000_000, 200_000_000].map(groupDigits)).toEqual([
      '0',
      '7',
      '999',
      '1,000',
      '12,345',
      '1,000,000',
      '200,000,000',
    ]);
  });
});
