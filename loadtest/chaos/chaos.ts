// npm run chaos -- <scenario> [--duration S] [--runs N] [--seed N]
//
// Scripted faults against a private native stack (each scenario starts its own on its own
// ports and stops it), each ending with the audit and the reconciliation of every request
// against the ledger. Prints PASS/FAIL with the numbers, appends the verdict to
// reports/chaos/results.jsonl, exits 1 on FAIL and 2 when the scenario could not run.

import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { runHostile, runMutationFuzz, readStack, type FuzzResult, type HostileResult } from '../hostile/hostile';
import { REPO } from '../lib/provenance';
import { durability } from './durability';
import { killApi } from './kill-api';
import { overload } from './overload';
import { pgFault } from './pg-fault';
import { pgFlap } from './pg-flap';
import { ChaosStack, report, type ScenarioOptions, type Verdict } from './scenario-kit';
import { sigterm } from './sigterm';
import { slowloris } from './slowloris';

interface Scenario {
  what: string;
  run: (options: ScenarioOptions) => Promise<Verdict | Verdict[]>;
}

const SCENARIOS: Record<string, Scenario> = {
  'kill-api': {
    what: 'SIGKILL api1 during the official peak load (340 req/s, 30 s): errors seen, restart, rejoin, no POST replayed',
    run: (o) => killApi(o),
  },
  'pg-restart': {
    what: 'fast shutdown of PostgreSQL (SIGINT to the postmaster) during the peak load; the stack restarts it',
    run: (o) => pgFault('restart', o),
  },
  'pg-kill': {
    what: 'SIGKILL of the postmaster during the peak load; the stack restarts it (crash recovery)',
    run: (o) => pgFault('kill', o),
  },
  'pg-flap': {
    what: 'PostgreSQL down 20 times in 2 minutes (SIGINT, SIGQUIT, SIGKILL of the postmaster, seeded irregular intervals) under the peak load, safe profile: same API pids, only 503s, steady within 3 s of each restart, nothing lost',
    run: (o) => pgFlap(o),
  },
  durability: {
    what: 'postgresql.safe.conf vs the contest profile: acknowledged transactions lost after a crash of every PostgreSQL process, and the throughput/p99 cost (alternating, --runs each)',
    run: (o) => durability(o),
  },
  sigterm: {
    what: 'rolling restart during the peak load: SIGTERM api1, wait for its restart, then api2; zero failed requests, clean drains',
    run: (o) => sigterm(o),
  },
  overload: {
    what: '10x the official peak (3,400 req/s) for 30 s between two stretches at the peak: no OOM, nothing lost, fast explicit rejections, time back to normal',
    run: (o) => overload(o),
  },
  slowloris: {
    what: '1,000 idle and slow-drip connections on nginx during the peak load: other clients\' p99 against a clean run just before',
    run: (o) => slowloris(o),
  },
  hostile: {
    what: 'the hostile-request corpus (loadtest/hostile/hostile.ts, delegated)',
    run: async (o) => delegate('runHostile', o),
  },
  fuzz: {
    what: 'mutation fuzzing against the running stack (loadtest/hostile/hostile.ts, delegated)',
    run: async (o) => delegate('runMutationFuzz', o),
  },
};

/** hostile and fuzz (loadtest/hostile/) on a private stack of their own, as every other scenario. */
async function delegate(fn: 'runHostile' | 'runMutationFuzz', options: ScenarioOptions): Promise<Verdict | Verdict[]> {
  const stack = new ChaosStack(fn === 'runHostile' ? 'hostile' : 'fuzz');
  const started = Date.now();
  let result: HostileResult | FuzzResult;
  try {
    await stack.up();
    const args = { seed: options.seed, stack: readStack(stack.home) };
    result = fn === 'runHostile' ? await runHostile(args) : await runMutationFuzz(args);
  } finally {
    stack.down();
  }
  // Its own result shape ({ pass, ... }); keep the scalar and small numbers for the verdict.
  const numbers = Object.fromEntries(Object.entries(result).filter(([k, val]) => k !== 'pass' && (typeof val !== 'object' || JSON.stringify(val).length < 400)));
  const verdict: Verdict = {
    scenario: fn === 'runHostile' ? 'hostile' : 'fuzz',
    pass: result.pass === true,
    reasons: result.pass === true ? [] : ['see the output above'],
    notes: [],
    numbers,
    startedAt: new Date(started).toISOString(),
    durationS: Math.round((Date.now() - started) / 100) / 10,
  };
  report(verdict);
  return verdict;
}

const USAGE = `usage: npm run chaos -- <scenario> [--duration S] [--runs N] [--seed N] [--skip-cost] [--safe] [--flaps N]

scenarios:
${Object.entries(SCENARIOS)
  .map(([name, s]) => `  ${name.padEnd(11)} ${s.what}`)
  .join('\n')}
  all         kill-api, pg-restart, pg-kill, sigterm, durability in turn

options:
  --duration S   load seconds (default: the scenario's; 30 s at the peak)
  --runs N       durability: crash runs per profile and cost runs per profile (default 3)
  --seed N       repeatable payloads (and pg-flap's schedule; without it pg-flap draws one and reports it)
  --flaps N      pg-flap: how many times PostgreSQL goes down (default 20; --duration defaults to 6 s a flap)
  --skip-cost    durability: the crash runs only
  --safe         pg-restart, pg-kill: with postgresql.safe.conf (default: the contest profile)`;

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      options: { duration: { type: 'string' }, runs: { type: 'string' }, flaps: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' }, 'skip-cost': { type: 'boolean' }, safe: { type: 'boolean' } },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const names = positionals[0] === 'all' ? ['kill-api', 'pg-restart', 'pg-kill', 'sigterm', 'durability'] : positionals;
  const unknown = names.filter((n) => !SCENARIOS[n]);
  if (unknown.length) {
    console.error(`unknown scenario(s): ${unknown.join(', ')}\n\n${USAGE}`);
    return 2;
  }
  const options: ScenarioOptions = {
    durationS: values.duration ? Number(values.duration) : undefined,
    runs: values.runs ? Number(values.runs) : undefined,
    seed: values.seed ? Number(values.seed) : undefined,
    skipCost: values['skip-cost'] === true,
    flaps: values.flaps ? Number(values.flaps) : undefined,
    pgSettings: values.safe ? path.join(REPO, 'postgresql.safe.conf') : undefined,
  };
  let failed = false;
  for (const name of names) {
    console.log(`== chaos ${name}: ${SCENARIOS[name].what}`);
    try {
      const result = await SCENARIOS[name].run(options);
      for (const v of Array.isArray(result) ? result : [result]) if (!v.pass) failed = true;
    } catch (err) {
      console.error(`${name} could not run: ${(err as Error).stack}`);
      return 2;
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
