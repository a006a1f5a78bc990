// npm run coldstart -- [--rounds N] [--seed N]
// npm run coldstart -- --load [--rate R] [--seconds S] [--rounds N] [--seed N] [--warm-control S]
//
// Two checks of a stack that has served nothing yet.
//
// --load: readiness for full load. For each round, a fresh native stack (in the envelope) is hit,
// the moment it reports ready, with R req/s (default 1,500) of the official mix for S seconds
// (default 10), a new connection per request. A stack passes with p99 <= 10 ms, zero errors and
// valid generator lag; the check passes when every round does. Each round prints its first
// seconds one by one and what each component spent and was throttled during the step.
// --warm-control S: the same stack then takes S seconds more of the same load, unmeasured, and
// the same step again. Only the fresh steps decide the exit status. Each round is read as a pair
// (readRound): a fresh step that fails where the warm one passes is a stack that was not ready;
// both failing is a rate this host cannot carry within the rule even warm (a shared, noisy
// machine), which a failed fresh step alone cannot tell apart.
//
// --warmth: how warm an API is the moment it listens. For each round, a fresh stack; then api1
// alone, on its own unix socket (no nginx, no other process's CPU in the reading), serves
// WARMTH_BATCHES batches of WARMTH_BATCH requests one at a time (statements, credits and debits on
// the five accounts, one in seven on a new connection), and its cgroup's CPU is read around each
// batch. The cost falls batch by batch as V8 optimises; the first batch is what the start-up
// warm-up left cold. Compare builds with CREBITOS_API_SCRIPT, alternating. Needs the envelope's
// cgroups (root).
//
// Without --load: what the official test's first second costs. It opens, at t = 0 on a stack that has served
// nothing, with 25 concurrent debits on client 1 (S1), then 25 concurrent credits (S3), each
// on its own new connection. This starts a fresh native stack (in the envelope) and, as soon as
// it reports ready, replays those two bursts ("cold"); then it serves 8 s of the official peak
// mix (340 req/s) and replays them again ("warm"). Each variant gets a stack of its own per
// round, variants alternating:
//   warm-up    the default: each API serves WARM_UP_REQUESTS requests to itself before listening
//   no-warm-up WARM_UP_REQUESTS=0
// Reported per variant: the median over rounds (min–max) of each burst's slowest request, cold
// and warm, and their ratio. The whole official profile's max is in npm run loadtest's report.

import * as fs from 'node:fs';
import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import * as path from 'node:path';
import { StackClient, portOffset } from '../../stack/client';
import { readGroupUsage } from '../../stack/cgroups';
import type { StackState } from '../../stack/state';
import { median, nearestRank } from '../lib/stats';
import { httpExchange, localTarget, socketTarget, type Target } from '../lib/http';
import { measuredStep, runStep, type MeasuredStep } from '../lib/open-model';
import { judgeStep, type Judgement } from '../capacity/capacity-rules';
import { REPO, commitText, gitInfo, machineInfo } from '../lib/provenance';
import { UsageError, numberOption, parseToolArgs, runCli } from '../lib/cli';
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

/** The stack a round has up, stopped by Ctrl-C. */
let running: StackClient | undefined;

/**
 * Runs `fn` on a fresh native stack of its own (home and ports derived from `name`), inside the
 * envelope with the contest's PostgreSQL profile, and takes the stack down afterwards, whatever
 * happened.
 */
async function onFreshStack<T>(name: string, env: Record<string, string>, fn: (stack: StackClient, state: StackState) => Promise<T>): Promise<T> {
  const offset = portOffset(name, 900, 7);
  const stack = (running = new StackClient({ home: path.join(REPO, `.stack-chaos-${name}`), httpPort: 29000 + offset, pgPort: 59000 + offset, env: { ...env, PG_SETTINGS: undefined } }));
  const state = await stack.up();
  try {
    return await fn(stack, state);
  } finally {
    stack.down();
    running = undefined;
  }
}

async function measure(variant: Variant, seed: number): Promise<Measurement> {
  return onFreshStack(`coldstart-${variant.name}`, variant.env, async (stack) => {
    const target = localTarget(stack.httpPort);
    const cold = await bursts(target);
    await runStep({ port: stack.httpPort, ratePerS: OFFICIAL_MIX.debits + OFFICIAL_MIX.credits + OFFICIAL_MIX.statements, durationS: 8, seed });
    const warm = await bursts(target);
    return { variant: variant.name, cold, warm };
  });
}

const fmt = (xs: number[]): string => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;


// ---------------------------------------------------------------------------------------------
// --load: full load on a fresh stack
// ---------------------------------------------------------------------------------------------

/** One second of the step, by scheduled send time. */
export interface SecondOfLoad {
  second: number;
  requests: number;
  errors: number;
  p99Ms: number;
  maxMs: number;
}

/** Requests bucketed by the second of their scheduled send; p99 by rank over that second. */
export function secondsOfLoad(outcomes: { scheduledS: number; ms: number; error: boolean }[]): SecondOfLoad[] {
  const buckets: { ms: number[]; errors: number }[] = [];
  for (const o of outcomes) {
    const k = Math.max(0, Math.floor(o.scheduledS));
    buckets[k] ??= { ms: [], errors: 0 };
    buckets[k].ms.push(o.ms);
    if (o.error) buckets[k].errors++;
  }
  return [...buckets].map((b, second) => {
    const ms = (b?.ms ?? []).sort((x, y) => x - y);
    return { second, requests: ms.length, errors: b?.errors ?? 0, p99Ms: ms.length ? nearestRank(ms, 0.99) : 0, maxMs: ms.length ? ms[ms.length - 1] : 0 };
  });
}

/** One measured step: its figures, its verdict by capacity's rule, and its seconds one by one. */
export interface StepOfLoad {
  step: MeasuredStep;
  judgement: Judgement;
  seconds: SecondOfLoad[];
  /** when its first request was sent (performance.now()) */
  startedAt: number;
}

export interface FreshLoad {
  fresh: StepOfLoad;
  /** with --warm-control: the same step on the same stack after the unmeasured load */
  warm: StepOfLoad | undefined;
  /** from `up` returning to the fresh step's first send, ms */
  startDelayMs: number;
}

async function stepOfLoad(state: StackState, port: number, rate: number, durationS: number, seed: number): Promise<StepOfLoad> {
  const outcomes: { scheduledS: number; ms: number; error: boolean }[] = [];
  let t0 = 0;
  const step = await measuredStep(state, {
    port,
    ratePerS: rate,
    durationS,
    seed,
    onStart: (t) => (t0 = t),
    // 200 and 422 are answers; anything else (503, a reset, a timeout) is an error here
    onOutcome: (_i, o) => outcomes.push({ scheduledS: (o.scheduledAt - t0) / 1000, ms: o.endAt - o.sentAt, error: o.status !== 200 && o.status !== 422 }),
  });
  return { step, judgement: judgeStep(step), seconds: secondsOfLoad(outcomes), startedAt: t0 };
}

async function freshLoad(rate: number, durationS: number, seed: number, warmControlS: number): Promise<FreshLoad> {
  return onFreshStack('coldstart-load', {}, async (stack, state) => {
    const ready = performance.now();
    const fresh = await stepOfLoad(state, stack.httpPort, rate, durationS, seed);
    let warm: StepOfLoad | undefined;
    if (warmControlS > 0) {
      // Unmeasured: any request sequence will do.
      await runStep({ port: stack.httpPort, ratePerS: rate, durationS: warmControlS, seed: seed + 1 });
      // The same requests as the fresh step; a fresh state, in case a component was restarted.
      warm = await stepOfLoad(stack.refresh(), stack.httpPort, rate, durationS, seed);
    }
    return { fresh, warm, startDelayMs: fresh.startedAt - ready };
  });
}

function printStepOfLoad(label: string, r: StepOfLoad, after: string): void {
  const s = r.step;
  const bad = Object.entries(s.statuses).filter(([k]) => k !== '200' && k !== '422');
  console.log(
    `${label} ${r.judgement.verdict.padEnd(7)} p50 ${s.latencyMs.p50.toFixed(2)} / p99 ${s.latencyMs.p99.toFixed(2)} / max ${s.latencyMs.max.toFixed(1)} ms, ` +
      `${s.errors} error(s)${bad.length ? ` (${bad.map(([k, n]) => `${k} ×${n}`).join(', ')})` : ''}, lag p99 ${s.lagMs.p99.toFixed(1)} ms, generator ${s.generatorCpuUtil.toFixed(2)} cores, ${after}`,
  );
  console.log(`  first seconds (p99 / max ms, errors): ${r.seconds.slice(0, 4).map((x) => `${x.second}s ${x.p99Ms.toFixed(1)} / ${x.maxMs.toFixed(0)}, ${x.errors}`).join(';  ')}`);
  for (const c of s.components) {
    const throttled = c.throttledPeriods === undefined ? '' : `, throttled ${c.throttledPeriods} periods (${((c.throttledSeconds ?? 0) * 1000).toFixed(0)} ms)`;
    console.log(`  ${c.name.padEnd(6)} ${c.cpuUtil.toFixed(3)} cores (limit ${c.cpuLimit ?? '-'}), ${c.cpuMsPerRequest.toFixed(3)} ms/request${throttled}`);
  }
}

/** What a round of --warm-control says: its fresh step's verdict read against its warm one's. */
export function readRound(fresh: Judgement['verdict'], warm: Judgement['verdict']): 'ready' | 'not ready' | 'the rate fails warm too' | 'inconclusive' {
  if (fresh === 'PASS') return 'ready';
  if (fresh === 'INVALID' || warm === 'INVALID') return 'inconclusive';
  return warm === 'PASS' ? 'not ready' : 'the rate fails warm too';
}

async function mainLoad(rate: number, durationS: number, rounds: number, seed: number, warmControlS: number): Promise<number> {
  const control = warmControlS > 0 ? `; warm control: the same step again after ${warmControlS} s more of it` : '';
  console.log(`fresh stacks hit at once with ${rate} req/s for ${durationS} s; pass: p99 <= 10 ms, 0 errors, valid lag${control} (host: ${machineInfo().model}; commit ${commitText(gitInfo())})`);
  const results: FreshLoad[] = [];
  /** How many rounds had each reading (with --warm-control) */
  const readings = new Map<string, number>();
  for (let r = 1; r <= rounds; r++) {
    const result = await freshLoad(rate, durationS, seed * 100 + r, warmControlS);
    results.push(result);
    printStepOfLoad(`[stack ${r}/${rounds}] fresh`, result.fresh, `started ${result.startDelayMs.toFixed(0)} ms after ready`);
    if (result.warm) {
      printStepOfLoad(`[stack ${r}/${rounds}] warm `, result.warm, `started ${((result.warm.startedAt - result.fresh.startedAt) / 1000).toFixed(0)} s after the fresh step's start`);
      const reading = readRound(result.fresh.judgement.verdict, result.warm.judgement.verdict);
      readings.set(reading, (readings.get(reading) ?? 0) + 1);
      console.log(`  reading: ${reading}`);
    }
  }
  const tally = (steps: StepOfLoad[]): { passed: number; invalid: number; text: string } => {
    const passed = steps.filter((x) => x.judgement.verdict === 'PASS').length;
    const invalid = steps.filter((x) => x.judgement.verdict === 'INVALID').length;
    return { passed, invalid, text: `${passed}/${steps.length} passed${invalid ? ` (${invalid} INVALID: the generator fell behind)` : ''}; p99 median ${fmt(steps.map((x) => x.step.latencyMs.p99))} ms` };
  };
  const fresh = tally(results.map((x) => x.fresh));
  console.log(`\nfresh stacks: ${fresh.text}`);
  const warm = results.flatMap((x) => (x.warm ? [x.warm] : []));
  if (warm.length) {
    console.log(`the same stacks warm: ${tally(warm).text}`);
    console.log(`rounds read fresh against warm: ${[...readings].map(([reading, n]) => `${reading} ×${n}`).join(', ')}`);
    if (readings.has('the rate fails warm too')) console.log(`  in those, ${rate} req/s is past what this host carried within the rule even warm: they say nothing about readiness`);
  }
  return fresh.passed === rounds ? 0 : fresh.invalid + fresh.passed === rounds ? 3 : 1;
}

// ---------------------------------------------------------------------------------------------
// --warmth: the API's CPU per request in its first requests
// ---------------------------------------------------------------------------------------------

const WARMTH_BATCH = 1000;
const WARMTH_BATCHES = 3;

/** The i-th request of --warmth: statements, credits and debits on the five accounts, in turn. */
function warmthRequest(i: number): Pick<RequestSpec, 'method' | 'path' | 'body'> {
  const id = 1 + (i % 5);
  if (i % 2 === 0) return { method: 'GET', path: `/clientes/${id}/extrato` };
  return { method: 'POST', path: `/clientes/${id}/transacoes`, body: JSON.stringify({ valor: 1 + (i % 1000), tipo: i % 4 === 1 ? 'c' : 'd', descricao: 'warmth' }) };
}

const exchange = (target: Target, spec: Pick<RequestSpec, 'method' | 'path' | 'body'>, agent: http.Agent | false): Promise<number> =>
  new Promise((resolve) => httpExchange(target, spec, agent, (r) => resolve(r.error ? 0 : r.status), 5000));

/** api1's CPU per request, in µs, over each batch of its first requests on a fresh stack. */
async function warmthRound(): Promise<{ usPerRequest: number[]; warmUpLine: string }> {
  return onFreshStack('coldstart-warmth', {}, async (stack, state) => {
    const group = state.cgroups?.api1;
    if (!group) throw new Error('--warmth needs the stack inside its envelope (cgroups): run as root, without CREBITOS_NO_LIMITS');
    const socketPath = stack.apiSocket('api1');
    if (!fs.existsSync(socketPath)) throw new Error(`--warmth talks to api1's unix socket, and ${socketPath} does not exist (CREBITOS_TRANSPORT puts the APIs on TCP?)`);
    const target = socketTarget(socketPath);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const usPerRequest: number[] = [];
    try {
      let n = 0;
      for (let b = 0; b < WARMTH_BATCHES; b++) {
        const before = readGroupUsage('api1', group).cpuSeconds;
        for (let i = 0; i < WARMTH_BATCH; i++, n++) {
          // One in seven on a new connection: seven is prime to the cycles of kinds (2, 4) and accounts (5).
          const status = await exchange(target, warmthRequest(n), n % 7 === 6 ? false : agent);
          if (status !== 200 && status !== 422) throw new Error(`request ${n} to api1 answered ${status || 'nothing'}`);
        }
        usPerRequest.push(Math.round(((readGroupUsage('api1', group).cpuSeconds - before) * 1e6) / WARMTH_BATCH));
      }
    } finally {
      agent.destroy();
    }
    // Component logs are appended to across runs: this run's line is the last one.
    const warmUpLine = [...stack.componentLog('api1').matchAll(/warmed up with \d+ requests in \d+ ms/g)].pop()?.[0] ?? 'no warm-up logged';
    return { usPerRequest, warmUpLine };
  });
}

async function mainWarmth(rounds: number): Promise<number> {
  console.log(`api1's CPU per request over its first ${WARMTH_BATCHES} x ${WARMTH_BATCH} requests on a fresh stack, one at a time on its unix socket (host: ${machineInfo().model}; API script: ${process.env.CREBITOS_API_SCRIPT ?? 'dist/server.js'})`);
  const rows: number[][] = [];
  for (let r = 1; r <= rounds; r++) {
    const { usPerRequest, warmUpLine } = await warmthRound();
    rows.push(usPerRequest);
    console.log(`[stack ${r}/${rounds}] µs per request, batch by batch: ${usPerRequest.join(' / ')}  (${warmUpLine})`);
  }
  const first = rows.map((x) => x[0]);
  const coldness = rows.map((x) => x[0] / x[x.length - 1]);
  console.log(`\nfirst batch: ${fmt(first)} µs per request; first over last: ×${fmt(coldness)}`);
  return 0;
}

interface ColdstartOptions {
  load: boolean;
  warmth: boolean;
  rate: number;
  seconds: number;
  rounds: number;
  seed: number;
  warmControlS: number;
}

const USAGE = `usage: npm run coldstart -- [--rounds N] [--seed N]
       npm run coldstart -- --warmth [--rounds N]
       npm run coldstart -- --load [--rate R] [--seconds S] [--rounds N] [--seed N] [--warm-control S]
  --warm-control S  after each fresh step, S seconds more load, then the same step on the now warm stack (default 0: none)`;

function parseColdstartArgs(argv: string[]): ColdstartOptions {
  const { values } = parseToolArgs({
    args: argv,
    options: { rounds: { type: 'string' }, seed: { type: 'string' }, load: { type: 'boolean', default: false }, warmth: { type: 'boolean', default: false }, rate: { type: 'string' }, seconds: { type: 'string' }, 'warm-control': { type: 'string' }, help: { type: 'boolean', default: false } },
  });
  if (values.help) throw new UsageError('');
  if (values['warm-control'] !== undefined && !values.load) throw new UsageError('--warm-control goes with --load');
  if (values.warmth && (values.load || values.rate !== undefined || values.seconds !== undefined || values.seed !== undefined)) throw new UsageError('--warmth takes only --rounds');
  return {
    load: values.load ?? false,
    warmth: values.warmth ?? false,
    rate: numberOption('rate', values.rate, 1500, 1, false),
    seconds: numberOption('seconds', values.seconds, 10, 1, false),
    rounds: numberOption('rounds', values.rounds, values.load ? 5 : 3, 1, true),
    seed: numberOption('seed', values.seed, 1, 0, true),
    warmControlS: numberOption('warm-control', values['warm-control'], 0, 0, false),
  };
}

async function main({ load, warmth, rate, seconds, rounds, seed, warmControlS }: ColdstartOptions): Promise<number> {
  if (load) return mainLoad(rate, seconds, rounds, seed, warmControlS);
  if (warmth) return mainWarmth(rounds);
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
  if (failed > 0) console.log(`FAIL: ${failed} burst requests did not get 200`);
  return failed > 0 ? 1 : 0;
}

if (require.main === module) runCli({ name: 'npm run coldstart', usage: USAGE, parse: parseColdstartArgs, run: main, cleanup: () => running?.down() });
