import { describe, expect, it } from 'vitest';
import { diffVerdicts, verdictChanged } from './diff.js';
import type { MissionVerdict } from './evaluate.js';

const verdict = (phases: MissionVerdict['phases'], policyVersion = 1): MissionVerdict => ({
  missionId: 'm',
  at: '2024-03-01T00:00:00.000Z',
  policyVersion,
  phases,
});
const pre = (id: string, met: boolean, missing: string | null = met ? null : `no ${id}`) => ({
  id,
  kind: 'fact' as const,
  title: id.toUpperCase(),
  met,
  evidence: [],
  missing,
});

describe('diffVerdicts', () => {
  it('lists phases whose status changed and preconditions that flipped', () => {
    const before = verdict([
      { phase: 'a', title: 'A', status: 'not-ready', preconditions: [pre('x', false), pre('y', true)] },
      { phase: 'b', title: 'B', status: 'not-ready', preconditions: [pre('z', false, 'no z: 1 of 3')] },
    ]);
    const after = verdict([
      { phase: 'a', title: 'A', status: 'ready', preconditions: [pre('x', true), pre('y', true)] },
      { phase: 'b', title: 'B', status: 'not-ready', preconditions: [pre('z', false, 'no z: 2 of 3')] },
    ]);
    expect(diffVerdicts(before, after)).toEqual({
      phases: [{ phase: 'a', title: 'A', before: 'not-ready', after: 'ready' }],
      preconditions: [
        { phase: 'a', id: 'x', kind: 'fact', title: 'X', before: false, after: true, missing: null },
      ],
    });
    expect(verdictChanged(before, after)).toBe(true);
  });

  it('does not count progress that flips nothing as a change', () => {
    const before = verdict([
      { phase: 'b', title: 'B', status: 'not-ready', preconditions: [pre('z', false, '1 of 3')] },
    ]);
    const after = verdict([
      { phase: 'b', title: 'B', status: 'not-ready', preconditions: [pre('z', false, '2 of 3')] },
    ]);
    expect(diffVerdicts(before, after)).toEqual({ phases: [], preconditions: [] });
    expect(verdictChanged(before, after)).toBe(false);
  });

  it('reports phases and preconditions that appear or vanish with a new policy version', () => {
    const before = verdict([
      { phase: 'a', title: 'A', status: 'not-ready', preconditions: [pre('x', false), pre('gone', true)] },
      { phase: 'old', title: 'Old', status: 'ready', preconditions: [pre('o', true)] },
    ]);
    const after = verdict(
      [
        { phase: 'a', title: 'A', status: 'not-ready', preconditions: [pre('x', false), pre('new', false)] },
        { phase: 'fresh', title: 'Fresh', status: 'ready', preconditions: [] },
      ],
      2,
    );
    expect(diffVerdicts(before, after)).toEqual({
      phases: [
        { phase: 'fresh', title: 'Fresh', before: null, after: 'ready' },
        { phase: 'old', title: 'Old', before: 'ready', after: null },
      ],
      preconditions: [
        { phase: 'a', id: 'new', kind: 'fact', title: 'NEW', before: null, after: false, missing: 'no new' },
        { phase: 'a', id: 'gone', kind: 'fact', title: 'GONE', before: true, after: null, missing: null },
        { phase: 'old', id: 'o', kind: 'fact', title: 'O', before: true, after: null, missing: null },
      ],
    });
  });

  it('handles the empty verdict before a mission is defined', () => {
    const empty = { ...verdict([]), policyVersion: null };
    const first = verdict([{ phase: 'a', title: 'A', status: 'blocked', preconditions: [pre('x', false)] }]);
    expect(diffVerdicts(empty, first).phases).toEqual([
      { phase: 'a', title: 'A', before: null, after: 'blocked' },
    ]);
    expect(verdictChanged(empty, empty)).toBe(false);
  });
});
