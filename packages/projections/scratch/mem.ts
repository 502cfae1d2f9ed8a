import { evolve, fromStoredEvent, initialState, type MissionState } from '@muster/readiness';
import { syntheticMissionEventData } from '../src/testing/index.js';

const states: MissionState[] = [];
global.gc?.();
const before = process.memoryUsage().heapUsed;
for (let m = 0; m < 5; m++) {
  let s = initialState();
  for (const e of syntheticMissionEventData({
    missionId: `m${m}`,
    events: 20000,
    seed: m,
    profile: 'steady',
  })) {
    s = evolve(s, fromStoredEvent({ ...e, id: e.id!, metadata: e.metadata ?? null }));
  }
  states.push(s);
}
global.gc?.();
const after = process.memoryUsage().heapUsed;
process.stderr.write(
  `heap per event ${((after - before) / 100000).toFixed(0)} bytes; json per event ${(JSON.stringify(states[0]).length / 20000).toFixed(0)}\n`,
);
