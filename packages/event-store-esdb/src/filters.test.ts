import { EVENT_TYPE, STREAM_NAME } from '@eventstore/db-client';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { acceptsEvent, planServerFilter, toEsdbFilter } from './filters.js';

const callbacks = { checkpointIntervalMultiplier: 10, checkpointReached: () => {} };

describe('server-side filter', () => {
  it('excludes system events when the caller filters nothing', () => {
    expect(planServerFilter(undefined)).toEqual({ on: 'exclude-system-events' });
    expect(planServerFilter({ streamPrefixes: [], eventTypes: [] })).toEqual({ on: 'exclude-system-events' });
    const filter = toEsdbFilter(planServerFilter(undefined), callbacks);
    expect(filter).toMatchObject({ filterOn: EVENT_TYPE, regex: '^[^$].*', checkpointInterval: 10 });
    expect(filter.checkpointReached).toBe(callbacks.checkpointReached);
  });

  it('sends stream prefixes when there are any (types are then checked here)', () => {
    const plan = planServerFilter({ streamPrefixes: ['mission-', 'mission-'], eventTypes: ['A'] });
    expect(plan).toEqual({ on: 'stream-name', prefixes: ['mission-'] });
    expect(toEsdbFilter(plan, callbacks)).toMatchObject({ filterOn: STREAM_NAME, prefixes: ['mission-'] });
  });

  it('sends exact types and type prefixes together as type prefixes', () => {
    const plan = planServerFilter({ eventTypes: ['Alpha', 'Gamma'], eventTypePrefixes: ['Alpha', 'Pledge'] });
    expect(plan).toEqual({ on: 'event-type', prefixes: ['Alpha', 'Gamma', 'Pledge'] });
    expect(toEsdbFilter(plan, callbacks)).toMatchObject({
      filterOn: EVENT_TYPE,
      prefixes: ['Alpha', 'Gamma', 'Pledge'],
      checkpointInterval: 10,
    });
  });
});

describe('client-side pass', () => {
  it('applies the whole filter: exact types stay exact, conditions combine with AND', () => {
    const filter = { streamPrefixes: ['m-'], eventTypes: ['Alpha'], eventTypePrefixes: ['Pledge'] };
    expect(acceptsEvent(filter, 'm-1', 'Alpha')).toBe(true);
    expect(acceptsEvent(filter, 'm-1', 'AlphaTwo')).toBe(false);
    expect(acceptsEvent(filter, 'm-1', 'PledgeMade')).toBe(true);
    expect(acceptsEvent(filter, 'x-1', 'Alpha')).toBe(false);
  });

  it('never lets a system event through, whatever the filter', () => {
    const name = fc.string({ maxLength: 12 });
    fc.assert(
      fc.property(
        name,
        name,
        fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }),
        (stream, type, prefixes) => {
          const filter = { streamPrefixes: prefixes, eventTypePrefixes: prefixes };
          expect(acceptsEvent(filter, `$${stream}`, type)).toBe(false);
          expect(acceptsEvent(filter, stream, `$${type}`)).toBe(false);
          expect(acceptsEvent(undefined, `$${stream}`, type)).toBe(false);
        },
      ),
    );
    expect(acceptsEvent({ streamPrefixes: [''] }, '$$m-1', '$metadata')).toBe(false);
    expect(acceptsEvent({ eventTypePrefixes: [''] }, '$muster-eventid-x', '$muster.event-id-claimed')).toBe(
      false,
    );
  });
});
