import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eventIdFor, MISSION_ID_PATTERN, missionStreamName } from './ids.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A version-7 UUID for the instant `ms`, written here so that the test does not share the code it checks. */
function uuidv7(ms: number): string {
  const time = ms.toString(16).padStart(12, '0');
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${randomUUID().slice(15)}`;
}

describe('event ids', () => {
  it('are valid version-4 UUIDs, the same for a retried command', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.nat({ max: 100 }), (commandId, index) => {
        fc.pre(!UUID_V7.test(commandId));
        const id = eventIdFor('mss-haiti', commandId, index);
        expect(id).toMatch(UUID_V4);
        expect(eventIdFor('mss-haiti', commandId, index)).toBe(id);
      }),
    );
  });

  it('keep the time of a version-7 command id: version-8 UUIDs, the same for a retried command', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.nat({ max: 100 }), (ms, index) => {
        const commandId = uuidv7(ms);
        const id = eventIdFor('mss-haiti', commandId, index);
        expect(id).toMatch(UUID_V8);
        expect(id.slice(0, 13)).toBe(commandId.slice(0, 13));
        expect(eventIdFor('mss-haiti', commandId, index)).toBe(id);
        expect(eventIdFor('mss-haiti', commandId.toUpperCase(), index)).not.toBe(id);
      }),
    );
  });

  it('grow with the time of version-7 command ids, whatever the rest of them', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 48 - 2 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.nat({ max: 5 }),
        fc.nat({ max: 5 }),
        (ms, later, i, j) => {
          const first = eventIdFor('mss-haiti', uuidv7(ms), i);
          const second = eventIdFor('other', uuidv7(Math.min(ms + later, 2 ** 48 - 1)), j);
          expect(first < second).toBe(true);
        },
      ),
    );
  });

  it('differ by index, command and mission', () => {
    const ids = new Set([
      eventIdFor('mss-haiti', 'c1', 0),
      eventIdFor('mss-haiti', 'c1', 1),
      eventIdFor('mss-haiti', 'c2', 0),
      eventIdFor('other', 'c1', 0),
    ]);
    expect(ids.size).toBe(4);
  });
});

describe('mission ids and streams', () => {
  it('names the stream of a mission', () => {
    expect(missionStreamName('mss-haiti')).toBe('mission-mss-haiti');
  });

  it('accepts lower-case slugs of 3 to 64 characters only', () => {
    for (const ok of ['mss-haiti', 'abc', 'a1b', 'a'.repeat(64)]) {
      expect(MISSION_ID_PATTERN.test(ok), ok).toBe(true);
    }
    for (const bad of ['ab', 'a'.repeat(65), 'MSS', '-abc', 'abc-', 'a_b', 'a b', 'é-ab']) {
      expect(MISSION_ID_PATTERN.test(bad), bad).toBe(false);
    }
  });
});
