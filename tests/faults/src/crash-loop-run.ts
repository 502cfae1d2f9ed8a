import { parseArgs } from 'node:util';
import { crashLoop } from './crash-loop.js';

/** `pnpm --filter @muster/faults crash-loop [--store sqlite|postgres] [--kills 20]`: prints the report. */
const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'sqlite' },
    kills: { type: 'string', default: '20' },
    rate: { type: 'string', default: '40' },
  },
});
const report = await crashLoop({
  store: values.store as 'sqlite' | 'postgres',
  kills: Number(values.kills),
  rate: Number(values.rate),
  minUpMs: 500,
  maxUpMs: 2500,
  log: (message) => process.stderr.write(`[crash-loop] ${message}\n`),
});
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
const intact =
  report.lostAcknowledged.length === 0 &&
  report.duplicatedCommands.length === 0 &&
  report.missingCommands.length === 0 &&
  report.duplicateEventIds.length === 0 &&
  report.chain.ok &&
  report.audit.ok &&
  report.webhooks.missing.length === 0 &&
  report.webhooks.outOfOrder === 0 &&
  report.webhooks.changedRepeats === 0;
process.exit(intact ? 0 : 1);
