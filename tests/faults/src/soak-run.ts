import { parseArgs } from 'node:util';
import { soak } from './soak.js';

/** `pnpm --filter @muster/faults soak [--minutes 10] [--rate N] [--missions 40] [--lifetime 300]`: prints the figures as JSON. */
const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string' },
    missions: { type: 'string', default: '40' },
    /** Commands per mission before another takes its slot. */
    lifetime: { type: 'string', default: '300' },
  },
});
const report = await soak({
  seconds: Math.round(Number(values.minutes) * 60),
  ...(values.rate ? { rate: Number(values.rate) } : {}),
  missions: Number(values.missions),
  missionLifetime: Number(values.lifetime),
  probeSeconds: 10,
  log: (message) => process.stderr.write(`[soak] ${message}\n`),
});
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
const steady =
  report.errors === 0 &&
  report.memory.growthPercent < 10 &&
  report.latency.lateP99Ms <= Math.max(2 * report.latency.earlyP99Ms, 50) &&
  report.deliveries > 0;
process.exit(steady ? 0 : 1);
