import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eventIdFor, MISSION_ID_PATTERN, missionStreamName } from './ids.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('event ids', () => {
  it('are valid version-4 UUIDs, the same for a retried command', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.nat({ max: 100 }), (commandId, index) => {
        const id = eventIdFor('mss-haiti', commandId, index);
        expect(id).toMatch(UUID_V4);
        expect(eventIdFor('mss-haiti', commandId, index)).toBe(id);
      }),
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
