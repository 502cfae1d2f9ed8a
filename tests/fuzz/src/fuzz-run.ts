import fc from 'fast-check';
import { check, emptyTally, hostileRequests, startTarget } from './hostile.js';

/** `pnpm --filter @muster/fuzz fuzz [runs]`: the long run; prints the tally as JSON. */
const runs = Number(process.argv[2] ?? 100_000);
const target = await startTarget();
const tally = emptyTally();
const started = performance.now();
const samples = fc.sample(hostileRequests(target), {
  numRuns: runs,
  seed: Number(process.env.MUSTER_FUZZ_SEED ?? 42),
});
for (const [i, request] of samples.entries()) {
  await check(target, request, tally);
  if ((i + 1) % 10_000 === 0) process.stderr.write(`[fuzz] ${i + 1}/${runs}\n`);
}
const live = (await target.app.inject({ method: 'GET', url: '/health/live' })).statusCode === 200;
await target.close();
process.stdout.write(
  `${JSON.stringify(
    {
      requests: tally.requests,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      byStatus: tally.byStatus,
      byCode: tally.byCode,
      violations: tally.violations.length,
      firstViolations: tally.violations.slice(0, 5),
      stillAnswering: live,
    },
    null,
    2,
  )}\n`,
);
process.exit(tally.violations.length === 0 && live ? 0 : 1);
