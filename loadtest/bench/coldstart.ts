// npm run coldstart -- [--rounds N] [--seed N]
//
// What the official test's first second costs. It opens, at t = 0 on a stack that has served
// nothing, with 25 concurrent debits on client 1 (S1), then 25 concurrent credits (S3), each
// on its own new connection. This starts a fresh native stack (in the envelope) and, as soon as
// it reports ready, replays those two bursts ("cold"); then it serves 8 s of the official peak
// mix (340 req/s) and replays them again ("warm"). Each variant gets a stack of its own per
// round, variants alternating:
//   warm-up    the default: each API serves WARM_UP_REQUESTS requests to itself before listening
//   no-warm-up WARM_UP_REQUESTS=0
// Reported per variant: the median over rounds (min–max) of each burst's slowest request, cold
// and warm, and their ratio. The whole official profile's max is in npm run loadtest's report.

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import * as path from 'node:path';
import { StackClient, portOffset } from '../../stack/client';
import { median } from '../lib/stats';
import { httpExchange, type Target } from '../lib/http';
import { runStep } from '../lib/open-model';
import { REPO } from '../lib/provenance';
import { OFFICIAL_MIX, concurrentTransaction, type RequestSpec } from '../lib/official-simulation';

const BURST = 25;

interface Variant {
  name: string;
  env: Record<string, string>;
}

const VARIANTS: Variant[] = [
  { name: 'warm-up', env: {} },
  { name: 'no-warm-up', env: { WARM_UP_REQUESTS: '0' } },
];

interface Burst {
  /** slowest request of the burst, ms */
  maxMs: number;
  /** statuses other than 200 */
  failed: number;
}

/** Sends `BURST` copies of the request at once, each on a new connection, as S1/S3 do. */
function burst(target: Target, spec: RequestSpec): Promise<Burst> {
  return new Promise((resolve) => {
    let pending = BURST;
    let maxMs = 0;
    let failed = 0;
    for (let i = 0; i < BURST; i++) {
      const t0 = performance.now();
      httpExchange(target, spec, false, (r) => {
        maxMs = Math.max(maxMs, performance.now() - t0);
        if (r.status !== 200) failed++;
        if (--pending === 0) resolve({ maxMs, failed });
      });
    }
  });
}

async function bursts(target: Target): Promise<{ debits: Burst; credits: Burst }> {
  const debits = await burst(target, concurrentTransaction('d'));
  const credits = await burst(target, concurrentTransaction('c'));
  return { debits, credits };
}

export interface Measurement {
  variant: string;
  cold: { debits: Burst; credits: Burst };
  warm: { debits: Burst; credits: Burst };
}

async function measure(variant: Variant, seed: number): Promise<Measurement> {
  const name = `coldstart-${variant.name}`;
  const offset = portOffset(name, 900, 7);
  const stack = new StackClient({ home: path.join(REPO, `.stack-chaos-${name}`), httpPort: 29000 + offset, pgPort: 59000 + offset, env: { ...variant.env, PG_SETTINGS: undefined } });
  await stack.up();
  try {
    const target: Target = { baseUrl: `http://127.0.0.1:${stack.httpPort}`, address: '127.0.0.1', family: 4, port: stack.httpPort, hostHeader: `localhost:${stack.httpPort}`, basePath: '' };
    const cold = await bursts(target);
    await runStep({ port: stack.httpPort, ratePerS: OFFICIAL_MIX.debits + OFFICIAL_MIX.credits + OFFICIAL_MIX.statements, durationS: 8, seed });
    const warm = await bursts(target);
    return { variant: variant.name, cold, warm };
  } finally {
    stack.down();
  }
}

const fmt = (xs: number[]): string => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, seed: { type: 'string', default: '1' } } });
  const rounds = Number(values.rounds);
  const seed = Number(values.seed);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const results: Measurement[] = [];
  for (let r = 1; r <= rounds; r++) {
    for (const v of VARIANTS) {
      const m = await measure(v, seed);
      results.push(m);
      const line = (b: { debits: Burst; credits: Burst }): string => `S1 ${b.debits.maxMs.toFixed(1)} ms, S3 ${b.credits.maxMs.toFixed(1)} ms`;
      console.log(`[round ${r}/${rounds}] ${v.name.padEnd(10)} cold: ${line(m.cold)}   warm: ${line(m.warm)}   failed ${m.cold.debits.failed + m.cold.credits.failed + m.warm.debits.failed + m.warm.credits.failed}`);
    }
  }
  console.log('\nslowest request of each burst of 25, ms: median over rounds (min–max)');
  for (const v of VARIANTS) {
    const mine = results.filter((m) => m.variant === v.name);
    const coldS1 = mine.map((m) => m.cold.debits.maxMs);
    const warmS1 = mine.map((m) => m.warm.debits.maxMs);
    const coldS3 = mine.map((m) => m.cold.credits.maxMs);
    const warmS3 = mine.map((m) => m.warm.credits.maxMs);
    console.log(`  ${v.name.padEnd(10)} S1 cold ${fmt(coldS1)}  warm ${fmt(warmS1)}  cold/warm ×${(median(coldS1) / median(warmS1)).toFixed(2)}   S3 cold ${fmt(coldS3)}  warm ${fmt(warmS3)}`);
  }
  const failed = results.reduce((n, m) => n + m.cold.debits.failed + m.cold.credits.failed + m.warm.debits.failed + m.warm.credits.failed, 0);
  if (failed > 0) {
    console.log(`FAIL: ${failed} burst requests did not get 200`);
    process.exitCode = 1;
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(err.message);
    process.exit(2);
  });
}
