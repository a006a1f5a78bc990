// npm run capacity [-- --steps 500,1000,... --step-seconds 15 --runs 3 --quick --out DIR --no-baselines --only api|db|http]
//
// How much load the stack carries inside the envelope before latency breaks, and how that
// compares with two ceilings measured by the same command in the same invocation:
//
//   api   the real stack (nginx + two APIs + PostgreSQL, docker-compose.yml's limits): a stepped
//         open-model load with the official mix, new connection per request (loadtest/open.ts);
//   http  the same topology and limits with loadtest/fixed-server.js in place of the APIs (a fixed
//         statement-sized body, no database): the ceiling of the HTTP path;
//   db    PostgreSQL alone, given 1.5 CPU, driven by pgbench with the same prepared function calls
//         in the same mix over the unix socket: the ceiling of the database work.
//
// Each run of each target starts a fresh native stack on its own ports (.stack-cap-<target>) and
// stops it afterwards. Targets alternate within a run, so a noisy neighbour spreads over all of
// them instead of hitting one. A step PASSes when p99 <= 10 ms with zero errors and the
// generator's lag is valid (LAG_LIMITS); a step whose lag is invalid is INVALID, neither pass
// nor fail. A run's capacity is the highest offered rate whose step PASSed; a run stops after
// two consecutive steps that missed the latency or error target. The result is the median over
// runs with its min-max spread, written to reports/capacity-<timestamp>/capacity.{json,html}.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDocument, stringify } from 'yaml';
import { readEnvelope, type Envelope } from '../../stack/envelope';
import { StackClient } from '../../stack/client';
import { readUsage, type StackState } from '../../stack/state';
import { renderCapacityReport } from './capacity-report';
import { DEFAULT_REPORTS_DIR, REPO, gitInfo, machineInfo } from '../lib/provenance';
import { componentSteps, currentRss, measuredStep, runStep, type ComponentStep, type MeasuredStep } from '../lib/open-model';
import { OFFICIAL_MIX } from '../lib/official-simulation';
import { LAG_LIMITS, newHistogram } from '../lib/stats';
import { writeIndex } from '../lib/report';

const FIXED_SERVER_JS = path.join(REPO, 'dist', 'loadtest', 'capacity', 'fixed-server.js');
const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';
/** Stack variables a capacity run honours (for experiments) and records in its summary. */
export const CONFIG_ENV = ['CREBITOS_COMPOSE', 'POOL_SIZE', 'PG_SETTINGS'] as const;
const composeFile = (): string => path.resolve(process.env.CREBITOS_COMPOSE || path.join(REPO, 'docker-compose.yml'));

/** The issue's capacity criterion: p99 at most this, with zero errors. */
export const TARGET_P99_MS = 10;
/** The database baseline gets the whole envelope's CPU. */
export const DB_BASELINE_CPUS = 1.5;

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

export type TargetName = 'api' | 'http' | 'db';
export const TARGETS: readonly TargetName[] = ['api', 'http', 'db'];

export interface CapacityOptions {
  steps: number[];
  stepSeconds: number;
  runs: number;
  quick: boolean;
  out: string;
  targets: TargetName[];
  /** rates of pgbench's rate-limited (-R) steps after its full-speed step; 'auto': fractions of the full speed */
  dbRates: number[] | 'auto';
  dbClients: number;
  /** idle time between steps, so queues drain and the next step starts from rest */
  pauseSeconds: number;
  timeoutMs: number;
  seed: number;
  /** HTTP ports are portBase + 0..2 and PostgreSQL's portBase + 30000 + 0..2 */
  portBase: number;
  /** unmeasured load at soakRate before the first step of each load run (0: none, a fresh stack) */
  soakSeconds: number;
  soakRate: number;
}

/** Brackets the knee of the real stack (~1,500-2,500 req/s here) and of the HTTP-only baseline (~3,000-5,000). */
export const DEFAULT_STEPS = [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000];
/**
 * pgbench -R steps as fractions of the full speed just measured: a fixed list is either too low to
 * find the knee or, when the machine is busy, entirely above it.
 */
export const DB_RATE_FRACTIONS = [0.25, 0.5, 0.7, 0.85, 1];
const QUICK_STEPS = [300, 600, 1200];
const QUICK_DB_RATE_FRACTIONS = [0.5];
const DEFAULT_PORT_BASE = 31100;
const DEFAULT_SOAK_RATE = 2000;

export const USAGE = `usage: npm run capacity -- [options]
  --steps LIST         offered rates in req/s, e.g. 500,1000,1500 or 500..3000/500 (default ${DEFAULT_STEPS.join(',')})
  --step-seconds S     seconds per step (default 15; quick 3)
  --runs N             runs per target; the result is their median (default 3; quick 1)
  --quick              CI-sized: steps ${QUICK_STEPS.join(',')}, 3 s each, one run, short baselines (~45 s)
  --out DIR            reports root (default reports/): writes DIR/capacity-<timestamp>/
  --no-baselines       only the real stack (same as --only api)
  --only api|http|db   one target: the real stack, the HTTP-only baseline or the database-only baseline
  --db-rates LIST|auto pgbench -R steps after its full-speed step; auto: ${DB_RATE_FRACTIONS.join(', ')} x its full speed (quick ${QUICK_DB_RATE_FRACTIONS.join(', ')}); '' for none
  --db-clients N       pgbench clients (default 6: two APIs x POOL_SIZE 3)
  --pause-seconds S    rest between steps (default 2; quick 1)
  --timeout-ms MS      per-request timeout (default 5000)
  --seed N             payload seed (default 1)
  --port-base N        HTTP ports N..N+2, PostgreSQL ports N+30000..N+30002 (default ${DEFAULT_PORT_BASE})
  --soak-seconds S     before the steps, S seconds of unmeasured load on each stack (default 0: a fresh stack)
  --soak-rate R        the soak's rate, official mix (default ${DEFAULT_SOAK_RATE})`;

export class UsageError extends Error {}

/** "500,1000,1500" or ranges "500..3000/500", mixed; sorted ascending, duplicates dropped. */
export function parseSteps(text: string): number[] {
  const out = new Set<number>();
  for (const raw of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const range = /^(\d+(?:\.\d+)?)\.\.(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(raw);
    if (range) {
      const [from, to, by] = range.slice(1).map(Number);
      if (!(by > 0) || to < from) throw new UsageError(`bad step range ${raw}: want FROM..TO/BY with FROM <= TO and BY > 0`);
      for (let v = from; v <= to + 1e-9; v += by) out.add(Number(v.toFixed(6)));
      continue;
    }
    const v = Number(raw);
    if (!/^\d+(?:\.\d+)?$/.test(raw) || !(v > 0)) throw new UsageError(`bad step ${JSON.stringify(raw)}: want a positive rate in req/s`);
    out.add(v);
  }
  if (out.size === 0) throw new UsageError('no steps given');
  return [...out].sort((a, b) => a - b);
}

function positive(name: string, value: string | undefined, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (!(v > 0) || (integer && !Number.isInteger(v))) throw new UsageError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  return v;
}

export function parseCapacityArgs(argv: string[]): CapacityOptions {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        steps: { type: 'string' },
        'step-seconds': { type: 'string' },
        runs: { type: 'string' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
        'no-baselines': { type: 'boolean', default: false },
        only: { type: 'string' },
        'db-rates': { type: 'string' },
        'db-clients': { type: 'string' },
        'pause-seconds': { type: 'string' },
        'timeout-ms': { type: 'string' },
        seed: { type: 'string' },
        'port-base': { type: 'string' },
        'soak-seconds': { type: 'string' },
        'soak-rate': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) throw new UsageError('');
  const quick = values.quick ?? false;
  let targets: TargetName[] = [...TARGETS];
  if (values.only !== undefined) {
    if (!TARGETS.includes(values.only as TargetName)) throw new UsageError(`--only must be one of ${TARGETS.join(', ')}, got ${values.only}`);
    targets = [values.only as TargetName];
  }
  if (values['no-baselines']) {
    if (values.only !== undefined && values.only !== 'api') throw new UsageError('--no-baselines runs only the real stack; it contradicts --only ' + values.only);
    targets = ['api'];
  }
  const seed = values.seed === undefined ? 1 : Number(values.seed);
  if (!Number.isInteger(seed)) throw new UsageError('--seed must be an integer');
  const portBase = positive('--port-base', values['port-base'], DEFAULT_PORT_BASE, true);
  if (portBase + 30002 > 65535 || portBase < 1024) throw new UsageError('--port-base must be between 1024 and 35533');
  return {
    steps: values.steps !== undefined ? parseSteps(values.steps) : quick ? QUICK_STEPS : DEFAULT_STEPS,
    stepSeconds: positive('--step-seconds', values['step-seconds'], quick ? 3 : 15),
    runs: positive('--runs', values.runs, quick ? 1 : 3, true),
    quick,
    out: path.resolve(values.out ?? DEFAULT_REPORTS_DIR),
    targets,
    dbRates: values['db-rates'] === undefined || values['db-rates'] === 'auto' ? 'auto' : values['db-rates'] === '' ? [] : parseSteps(values['db-rates']),
    dbClients: positive('--db-clients', values['db-clients'], 6, true),
    pauseSeconds: values['pause-seconds'] === '0' ? 0 : positive('--pause-seconds', values['pause-seconds'], quick ? 1 : 2),
    timeoutMs: positive('--timeout-ms', values['timeout-ms'], 5000, true),
    seed,
    portBase,
    soakSeconds: values['soak-seconds'] === undefined || values['soak-seconds'] === '0' ? 0 : positive('--soak-seconds', values['soak-seconds'], 0),
    soakRate: positive('--soak-rate', values['soak-rate'], DEFAULT_SOAK_RATE),
  };
}

// ---------------------------------------------------------------------------------------------
// Verdicts (pure)
// ---------------------------------------------------------------------------------------------

export type StepVerdict = 'PASS' | 'FAIL' | 'INVALID';

export interface Judgement {
  verdict: StepVerdict;
  /** p99 <= 10 ms and zero errors, whatever the generator's lag */
  meetsTarget: boolean;
  reasons: string[];
}

/**
 * PASS: p99 within the target, no error, the generator on time. INVALID: the generator fell
 * behind (its lag broke LAG_LIMITS), so arrivals bunched and the latencies are not the stack's
 * alone; such a step neither passes nor fails, but its numbers are still shown.
 */
export function judgeStep(s: { sent: number; errors: number; statuses: Record<string, number>; latencyMs: { p99: number }; lagValid: boolean; lagReasons: string[] }): Judgement {
  const reasons: string[] = [];
  if (s.sent === 0) reasons.push('no request sent');
  if (s.latencyMs.p99 > TARGET_P99_MS) reasons.push(`p99 ${s.latencyMs.p99.toFixed(2)} ms > ${TARGET_P99_MS} ms`);
  if (s.errors > 0) {
    const bad = Object.entries(s.statuses).filter(([k]) => k !== '200' && k !== '422');
    reasons.push(`${s.errors} error(s)${bad.length ? `: ${bad.map(([k, n]) => `${k} x${n}`).join(', ')}` : ''}`);
  }
  const meetsTarget = reasons.length === 0;
  if (!s.lagValid) return { verdict: 'INVALID', meetsTarget, reasons: [...reasons, ...s.lagReasons] };
  return { verdict: meetsTarget ? 'PASS' : 'FAIL', meetsTarget, reasons };
}

/** Two consecutive steps that missed the target (failed, or INVALID with bad numbers): higher rates will not pass. */
export function shouldStop(steps: readonly { meetsTarget: boolean }[]): boolean {
  const n = steps.length;
  return n >= 2 && !steps[n - 1].meetsTarget && !steps[n - 2].meetsTarget;
}

/** The highest offered rate whose step PASSed (0: none did). */
export function capacityOf(steps: readonly { ratePerS: number; verdict: StepVerdict }[]): number {
  return steps.filter((s) => s.verdict === 'PASS').reduce((best, s) => Math.max(best, s.ratePerS), 0);
}

/** Rates below the capacity whose step FAILed: a noisy run shows up here. */
export function failedBelow(steps: readonly { ratePerS: number; verdict: StepVerdict }[]): number[] {
  const cap = capacityOf(steps);
  return steps.filter((s) => s.verdict === 'FAIL' && s.ratePerS < cap).map((s) => s.ratePerS);
}

export interface Spread {
  median: number | null;
  min: number | null;
  max: number | null;
  values: number[];
}

export function spread(values: readonly number[]): Spread {
  const xs = values.filter((v) => Number.isFinite(v));
  if (xs.length === 0) return { median: null, min: null, max: null, values: [] };
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1], values: [...values] };
}

/** a / b rounded to 3 digits, null when either is missing or b is 0. */
export function fraction(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || !b) return null;
  return Math.round((a / b) * 1000) / 1000;
}

// ---------------------------------------------------------------------------------------------
// pgbench (pure parts)
// ---------------------------------------------------------------------------------------------

export const PGBENCH_SCRIPTS: Record<string, { weight: number; text: string }> = {
  // The calls server.ts prepares (STATEMENTS), with the same four and one parameters: pgbench's
  // -M prepared sends every :variable, including the -D constants, as a bind parameter.
  debit: { weight: OFFICIAL_MIX.debits, text: '\\set id random(1, 5)\n\\set valor random(1, 10000)\nSELECT status, body FROM post_transaction(:id, :valor, :debit, :descricao);\n' },
  credit: { weight: OFFICIAL_MIX.credits, text: '\\set id random(1, 5)\n\\set valor random(1, 10000)\nSELECT status, body FROM post_transaction(:id, :valor, :credit, :descricao);\n' },
  statement: { weight: OFFICIAL_MIX.statements, text: '\\set id random(1, 5)\nSELECT account_statement(:id);\n' },
};
const SCRIPT_NAMES = Object.keys(PGBENCH_SCRIPTS);

export function pgbenchArgs(o: { socketDir: string; pgPort: number; clients: number; seconds: number; rate?: number; scriptDir: string; logPrefix: string }): string[] {
  const args = ['-n', '-M', 'prepared', '-c', String(o.clients), '-j', String(Math.min(2, o.clients)), '-T', String(Math.max(1, Math.round(o.seconds)))];
  args.push('-h', o.socketDir, '-p', String(o.pgPort), '-U', 'postgres');
  args.push('-D', 'debit=d', '-D', 'credit=c', '-D', 'descricao=pgbench123');
  for (const name of SCRIPT_NAMES) args.push('-f', `${path.join(o.scriptDir, `${name}.sql`)}@${PGBENCH_SCRIPTS[name].weight}`);
  if (o.rate !== undefined) args.push('-R', String(o.rate));
  args.push('-l', `--log-prefix=${o.logPrefix}`, 'postgres');
  return args;
}

export interface PgbenchSummary {
  transactions: number;
  failed: number;
  tps: number;
  latencyAvgMs: number | null;
  lagAvgMs: number | null;
  lagMaxMs: number | null;
}

/** The numbers of pgbench's (PostgreSQL 15) closing report. */
export function parsePgbenchOutput(text: string): PgbenchSummary {
  const num = (re: RegExp): number | null => {
    const m = re.exec(text);
    return m ? Number(m[1]) : null;
  };
  const tps = num(/^tps = ([\d.]+)/m);
  const transactions = num(/^number of transactions actually processed: (\d+)/m);
  if (tps === null || transactions === null) throw new Error(`pgbench printed no result:\n${text.slice(-2000)}`);
  const lag = /^rate limit schedule lag: avg ([\d.]+) \(max ([\d.]+)\) ms/m.exec(text);
  return {
    transactions,
    failed: num(/^number of failed transactions: (\d+)/m) ?? 0,
    tps,
    latencyAvgMs: num(/^latency average = ([\d.]+) ms/m),
    lagAvgMs: lag ? Number(lag[1]) : null,
    lagMaxMs: lag ? Number(lag[2]) : null,
  };
}

export interface PgbenchLatencies {
  count: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  byScript: Record<string, { count: number; p50: number; p99: number }>;
}

/**
 * Percentiles from pgbench's per-transaction logs ("client txn latency_us script epoch us [lag]").
 * Under -R the latency counts from the scheduled start, so it includes the wait for a free
 * client: the open-model latency, like the HTTP steps'.
 */
export function pgbenchLatencies(lines: Iterable<string>): PgbenchLatencies {
  const all = newHistogram(3);
  const per = SCRIPT_NAMES.map(() => newHistogram(3));
  for (const line of lines) {
    const f = line.split(' ');
    if (f.length < 6) continue;
    const us = Number(f[2]);
    const script = Number(f[3]);
    if (!Number.isFinite(us)) continue;
    const v = Math.max(1, Math.round(us));
    all.recordValue(v);
    per[script]?.recordValue(v);
  }
  const ms = (us: number): number => Math.round(us) / 1000;
  const at = (h: typeof all, p: number): number => (h.totalCount ? ms(h.getValueAtPercentile(p)) : 0);
  return {
    count: all.totalCount,
    latencyMs: { p50: at(all, 50), p90: at(all, 90), p99: at(all, 99), max: all.totalCount ? ms(all.maxValue) : 0, mean: all.totalCount ? ms(all.mean) : 0 },
    byScript: Object.fromEntries(SCRIPT_NAMES.map((name, i) => [name, { count: per[i].totalCount, p50: at(per[i], 50), p99: at(per[i], 99) }])),
  };
}

/** -R rates at fractions of a measured full speed, rounded down to hundreds, ascending, distinct. */
export function autoDbRates(fullTps: number, fractions: readonly number[]): number[] {
  const rates = fractions.map((f) => Math.floor((fullTps * f) / 100) * 100).filter((r) => r > 0);
  return [...new Set(rates)].sort((a, b) => a - b);
}

/** docker-compose.yml with the database's CPU limit raised (the other services keep theirs). */
export function composeWithDbCpus(composeText: string, cpus: number): string {
  const doc = parseDocument(composeText, { merge: true });
  const js = doc.toJS() as { services: Record<string, { deploy?: { resources?: { limits?: { cpus?: unknown } } } }> };
  const limits = js.services?.db?.deploy?.resources?.limits;
  if (!limits) throw new Error('the compose file has no services.db.deploy.resources.limits');
  limits.cpus = String(cpus);
  return `# Generated by npm run capacity for the database-only baseline: db gets ${cpus} CPU.\n${stringify(js)}`;
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

export interface JudgedStep extends MeasuredStep, Judgement {}

export interface LoadRun {
  run: number;
  capacity: number;
  failedBelow: number[];
  steps: JudgedStep[];
  /** why the run ended before its last step, if it did */
  stopped?: string;
  /** VmRSS of each API right after start-up, before any load */
  idleRssBytes: Record<string, number | undefined>;
  error?: string;
}

export interface LoadTarget {
  name: 'api' | 'http';
  title: string;
  runs: LoadRun[];
  capacity: Spread;
}

export interface PgbenchStep extends PgbenchLatencies {
  /** -R rate; null at full speed */
  rate: number | null;
  clients: number;
  seconds: number;
  tps: number;
  transactions: number;
  failed: number;
  lagMs: { mean: number; max: number } | null;
  /** the database's cgroup during the step */
  db?: ComponentStep;
  /** for rate-limited steps: p99 within the target, nothing failed, the rate achieved */
  verdict?: StepVerdict;
  meetsTarget?: boolean;
  reasons?: string[];
}

export interface DbRun {
  run: number;
  full?: PgbenchStep;
  rated: PgbenchStep[];
  /** highest -R rate that passed (0: none) */
  capacity: number;
  error?: string;
}

export interface DbTarget {
  name: 'db';
  title: string;
  runs: DbRun[];
  fullSpeedTps: Spread;
  capacity: Spread;
}

export interface CapacitySummary {
  version: 1;
  kind: 'capacity';
  id: string;
  startedAt: string;
  finishedAt: string;
  git: { commit: string; dirty: boolean };
  machine: ReturnType<typeof machineInfo>;
  options: Omit<CapacityOptions, 'out'>;
  envelope: Envelope;
  /** CONFIG_ENV variables that were set (empty: the repository's configuration) */
  environment: Record<string, string>;
  criteria: { p99Ms: number; errors: 0; lag: typeof LAG_LIMITS };
  api?: LoadTarget;
  http?: LoadTarget;
  db?: DbTarget;
  fractions: { ofHttp: number | null; ofDbFullSpeed: number | null; ofDbCapacity: number | null };
}

// ---------------------------------------------------------------------------------------------
// Stacks
// ---------------------------------------------------------------------------------------------

/** A native stack of one target, on its own home and ports, always inside the envelope. */
class CapacityStack extends StackClient {
  constructor(target: TargetName, portBase: number, extraEnv: Record<string, string>) {
    const index = TARGETS.indexOf(target);
    // The stack's own tuning variables (bench's CONFIG_ENV) pass through; these would take it out of the envelope.
    const cleared = Object.fromEntries(['CREBITOS_NO_LIMITS', 'SOCKET_DIR', 'CREBITOS_API_SCRIPT'].map((k) => [k, undefined]));
    super({
      home: path.join(REPO, `.stack-cap-${target}${portBase === DEFAULT_PORT_BASE ? '' : `-${portBase}`}`),
      httpPort: portBase + index,
      pgPort: portBase + 30000 + index,
      env: { ...cleared, ...extraEnv },
    });
  }

  override async up(): Promise<StackState> {
    const state = await super.up();
    if (!state.cgroups) throw new Error(`the stack runs without limits (no cgroups); capacity inside the envelope cannot be measured:\n${this.upOutput}`);
    return state;
  }
}

let current: CapacityStack | undefined;

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);
const pct = (x: number): string => x.toFixed(2).replace(/^0\./, '.');

function stepLine(prefix: string, s: JudgedStep): string {
  const cpu = s.components.map((c) => `${c.name} ${pct(c.cpuUtil)}`).join(' ');
  const api = s.components.filter((c) => c.name.startsWith('api') && c.rssBytes).map((c) => `${Math.round(c.rssBytes! / 2 ** 20)}`).join('/');
  const head = `${prefix} ${String(s.ratePerS).padStart(6)}/s`;
  return `${head}  p50 ${f2(s.latencyMs.p50)} p99 ${f2(s.latencyMs.p99)} max ${f1(s.latencyMs.max)} ms  err ${s.errors}  lag p99 ${f1(s.lagMs.p99)} max ${f1(s.lagMs.max)}  cpu ${cpu} gen ${pct(s.generatorCpuUtil)}${api ? `  api RSS ${api} MB` : ''}  ${s.verdict}${s.verdict === 'PASS' ? '' : ` (${s.reasons.join('; ')})`}`;
}

async function measureLoadTarget(target: 'api' | 'http', run: number, o: CapacityOptions, log: (line: string) => void): Promise<LoadRun> {
  const env: Record<string, string> = target === 'http' ? { CREBITOS_API_SCRIPT: FIXED_SERVER_JS } : {};
  const stack = new CapacityStack(target, o.portBase, env);
  current = stack;
  const prefix = `[${target} ${run}/${o.runs}]`;
  const result: LoadRun = { run, capacity: 0, failedBelow: [], steps: [], idleRssBytes: {} };
  try {
    const state = await stack.up();
    for (const name of ['api1', 'api2']) result.idleRssBytes[name] = currentRss(state.components.find((c) => c.name === name)?.pid);
    if (o.soakSeconds > 0) {
      const soak = await runStep({ port: stack.httpPort, ratePerS: o.soakRate, durationS: o.soakSeconds, seed: o.seed * 1000 + run * 100 + 99, timeoutMs: o.timeoutMs });
      log(`${prefix} soak ${o.soakRate}/s for ${o.soakSeconds} s (not judged): p99 ${soak.latencyMs.p99.toFixed(2)} ms, ${soak.errors} errors`);
      await sleep(o.pauseSeconds * 1000);
    }
    for (let i = 0; i < o.steps.length; i++) {
      const m = await measuredStep(state, { port: stack.httpPort, ratePerS: o.steps[i], durationS: o.stepSeconds, seed: o.seed * 1000 + run * 100 + i, timeoutMs: o.timeoutMs });
      const step: JudgedStep = { ...m, ...judgeStep(m) };
      result.steps.push(step);
      log(stepLine(prefix, step));
      if (shouldStop(result.steps)) {
        if (i < o.steps.length - 1) result.stopped = `two consecutive steps missed the target (${result.steps.slice(-2).map((s) => s.ratePerS).join(', ')} req/s)`;
        break;
      }
      if (i < o.steps.length - 1) await sleep(o.pauseSeconds * 1000);
    }
    if (!result.stopped && result.steps.every((s) => s.verdict === 'PASS')) result.stopped = 'every step passed: the capacity is at least the highest step (add higher --steps)';
  } catch (err) {
    result.error = (err as Error).message;
    log(`${prefix} ERROR: ${result.error}`);
  } finally {
    stack.downIfStarted();
    current = undefined;
  }
  result.capacity = capacityOf(result.steps);
  result.failedBelow = failedBelow(result.steps);
  log(`${prefix} capacity ${result.capacity} req/s${result.failedBelow.length ? ` (failed below it: ${result.failedBelow.join(', ')})` : ''}${result.stopped ? `; ${result.stopped}` : ''}`);
  return result;
}

function judgePgbench(s: PgbenchStep): Judgement {
  const reasons: string[] = [];
  if (s.latencyMs.p99 > TARGET_P99_MS) reasons.push(`p99 ${s.latencyMs.p99.toFixed(2)} ms > ${TARGET_P99_MS} ms`);
  if (s.failed > 0) reasons.push(`${s.failed} failed transaction(s)`);
  // pgbench's schedule keeps running when the server falls behind; what was not done in time was not carried.
  if (s.rate !== null && s.tps < s.rate * 0.97) reasons.push(`achieved ${Math.round(s.tps)} tps < 97% of ${s.rate}`);
  return { verdict: reasons.length ? 'FAIL' : 'PASS', meetsTarget: reasons.length === 0, reasons };
}

async function runPgbench(state: StackState, o: CapacityOptions, rate: number | undefined, workDir: string): Promise<PgbenchStep> {
  const logPrefix = path.join(workDir, `log-${rate ?? 'full'}`);
  const args = pgbenchArgs({ socketDir: state.socketDir, pgPort: state.pgPort, clients: o.dbClients, seconds: o.stepSeconds, rate, scriptDir: workDir, logPrefix });
  const before = readUsage(state);
  const t0 = performance.now();
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(PGBENCH, args, { cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench exited with ${code}:\n${out.slice(-2000)}`))));
  });
  const seconds = (performance.now() - t0) / 1000;
  const after = readUsage(state);
  const summary = parsePgbenchOutput(output);
  const logs = fs.readdirSync(workDir).filter((n) => n.startsWith(path.basename(logPrefix) + '.'));
  const lines = logs.flatMap((n) => fs.readFileSync(path.join(workDir, n), 'utf8').split('\n'));
  for (const n of logs) fs.rmSync(path.join(workDir, n));
  const lat = pgbenchLatencies(lines);
  const db = before && after ? componentSteps(before, after, seconds, summary.transactions).find((c) => c.name === 'db') : undefined;
  const step: PgbenchStep = {
    ...lat,
    rate: rate ?? null,
    clients: o.dbClients,
    seconds: o.stepSeconds,
    tps: Math.round(summary.tps * 10) / 10,
    transactions: summary.transactions,
    failed: summary.failed,
    lagMs: summary.lagAvgMs === null ? null : { mean: summary.lagAvgMs, max: summary.lagMaxMs ?? 0 },
    db,
  };
  if (rate !== undefined) Object.assign(step, judgePgbench(step));
  return step;
}

function pgbenchLine(prefix: string, s: PgbenchStep): string {
  const head = s.rate === null ? `${prefix}   full speed` : `${prefix} ${String(s.rate).padStart(6)}/s  `;
  const db = s.db ? `  db cpu ${pct(s.db.cpuUtil)} (${s.db.cpuMsPerRequest.toFixed(3)} ms/tx)` : '';
  const verdict = s.verdict ? `  ${s.verdict}${s.verdict === 'PASS' ? '' : ` (${s.reasons!.join('; ')})`}` : '';
  return `${head}  ${Math.round(s.tps)} tps  p50 ${f2(s.latencyMs.p50)} p99 ${f2(s.latencyMs.p99)} max ${f1(s.latencyMs.max)} ms  failed ${s.failed}${db}${verdict}`;
}

async function measureDbTarget(run: number, o: CapacityOptions, log: (line: string) => void): Promise<DbRun> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crebitos-cap-db-'));
  const compose = path.join(workDir, 'docker-compose.db-1.5.yml');
  fs.writeFileSync(compose, composeWithDbCpus(fs.readFileSync(composeFile(), 'utf8'), DB_BASELINE_CPUS));
  for (const [name, s] of Object.entries(PGBENCH_SCRIPTS)) fs.writeFileSync(path.join(workDir, `${name}.sql`), s.text);
  // The APIs and nginx start too (the stack always runs the whole topology) but stay idle.
  const stack = new CapacityStack('db', o.portBase, { CREBITOS_COMPOSE: compose });
  current = stack;
  const prefix = `[db ${run}/${o.runs}]`;
  const result: DbRun = { run, rated: [], capacity: 0 };
  try {
    if (!fs.existsSync(PGBENCH)) throw new Error(`${PGBENCH} is missing (apt-get install -y postgresql-15)`);
    const state = await stack.up();
    result.full = await runPgbench(state, o, undefined, workDir);
    log(pgbenchLine(prefix, result.full));
    const rates = o.dbRates === 'auto' ? autoDbRates(result.full.tps, o.quick ? QUICK_DB_RATE_FRACTIONS : DB_RATE_FRACTIONS) : o.dbRates;
    for (const rate of rates) {
      await sleep(o.pauseSeconds * 1000);
      const step = await runPgbench(state, o, rate, workDir);
      result.rated.push(step);
      log(pgbenchLine(prefix, step));
      if (shouldStop(result.rated.map((s) => ({ meetsTarget: s.meetsTarget ?? false })))) break;
    }
  } catch (err) {
    result.error = (err as Error).message;
    log(`${prefix} ERROR: ${result.error}`);
  } finally {
    stack.downIfStarted();
    current = undefined;
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  result.capacity = capacityOf(result.rated.map((s) => ({ ratePerS: s.rate ?? 0, verdict: s.verdict ?? 'FAIL' })));
  log(`${prefix} full speed ${result.full ? Math.round(result.full.tps) : '-'} tps${result.rated.length ? `; at p99 <= ${TARGET_P99_MS} ms: ${result.capacity} tps` : ''}`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

const TITLES: Record<TargetName, string> = {
  api: 'Crébitos (nginx + 2 APIs + PostgreSQL, docker-compose.yml limits)',
  http: 'HTTP only (nginx + 2 node:http fixed-body servers, same limits)',
  db: `Database only (pgbench, PostgreSQL at ${DB_BASELINE_CPUS} CPU)`,
};

const fmtSpread = (s: Spread, unit: string): string =>
  s.median === null ? 'not measured' : `${Math.round(s.median).toLocaleString('en-US')} ${unit}  [${Math.round(s.min!).toLocaleString('en-US')}–${Math.round(s.max!).toLocaleString('en-US')}]  runs: ${s.values.map((v) => Math.round(v)).join(', ')}`;

export function formatCapacitySummary(s: CapacitySummary): string {
  const lines = [`capacity = highest offered rate with p99 <= ${TARGET_P99_MS} ms, zero errors and valid generator lag; median of ${s.options.runs} run(s) [min–max]`];
  if (s.api) lines.push(`  ours (api):        ${fmtSpread(s.api.capacity, 'req/s')}`);
  if (s.http) lines.push(`  HTTP only:         ${fmtSpread(s.http.capacity, 'req/s')}`);
  if (s.db) {
    lines.push(`  DB only, full:     ${fmtSpread(s.db.fullSpeedTps, 'tps')}`);
    if (s.db.capacity.median !== null) lines.push(`  DB only, p99<=${TARGET_P99_MS}:  ${fmtSpread(s.db.capacity, 'tps')}`);
  }
  // A fraction needs both sides. When the baseline was measured but passed no step (on a busy
  // machine the generator's lag alone can invalidate every step), say so rather than go silent.
  const fr = (label: string, v: number | null, baseline: Spread | undefined): void => {
    if (v !== null) lines.push(`  ${label}${v.toFixed(3)}`);
    else if (s.api && baseline?.median === 0) lines.push(`  ${label}n/a (the baseline passed no step)`);
  };
  fr('ours / HTTP only:             ', s.fractions.ofHttp, s.http?.capacity);
  fr('ours / DB only (full speed):  ', s.fractions.ofDbFullSpeed, s.db?.fullSpeedTps);
  fr(`ours / DB only (p99<=${TARGET_P99_MS} ms):  `, s.fractions.ofDbCapacity, s.db?.capacity);
  return lines.join('\n');
}

function loadTarget(name: 'api' | 'http', runs: LoadRun[]): LoadTarget {
  return { name, title: TITLES[name], runs, capacity: spread(runs.filter((r) => !r.error).map((r) => r.capacity)) };
}

export async function runCapacity(o: CapacityOptions, log: (line: string) => void = console.log): Promise<{ summary: CapacitySummary; dir: string }> {
  const startedAt = new Date();
  const runs: Record<TargetName, (LoadRun | DbRun)[]> = { api: [], http: [], db: [] };
  const set = CONFIG_ENV.filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]}`);
  const load = o.targets.some((t) => t !== 'db') ? `; steps ${o.steps.join(', ')} req/s, official mix, new connection per request` : '';
  const pgbench = o.targets.includes('db') ? `; pgbench -R ${o.dbRates === 'auto' ? 'at fractions of its full speed' : o.dbRates.join(', ') || 'none'}` : '';
  log(`[capacity] targets ${o.targets.join(', ')}; ${o.runs} run(s) of ${o.stepSeconds} s steps${load}${pgbench}${set.length ? `; ${set.join(' ')}` : ''}`);
  for (let run = 1; run <= o.runs; run++) {
    for (const target of o.targets) {
      if (target === 'db') runs.db.push(await measureDbTarget(run, o, log));
      else runs[target].push(await measureLoadTarget(target, run, o, log));
    }
  }
  const api = o.targets.includes('api') ? loadTarget('api', runs.api as LoadRun[]) : undefined;
  const http = o.targets.includes('http') ? loadTarget('http', runs.http as LoadRun[]) : undefined;
  let db: DbTarget | undefined;
  if (o.targets.includes('db')) {
    const dbRuns = runs.db as DbRun[];
    const ok = dbRuns.filter((r) => !r.error);
    db = { name: 'db', title: TITLES.db, runs: dbRuns, fullSpeedTps: spread(ok.filter((r) => r.full).map((r) => r.full!.tps)), capacity: spread(ok.filter((r) => r.rated.length).map((r) => r.capacity)) };
  }
  const id = `capacity-${startedAt.toISOString().replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z')}`;
  const { out, ...options } = o;
  const summary: CapacitySummary = {
    version: 1,
    kind: 'capacity',
    id,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    git: gitInfo(),
    machine: machineInfo(),
    options,
    envelope: readEnvelope(composeFile()),
    environment: Object.fromEntries(CONFIG_ENV.filter((k) => process.env[k]).map((k) => [k, process.env[k]!])),
    criteria: { p99Ms: TARGET_P99_MS, errors: 0, lag: LAG_LIMITS },
    api,
    http,
    db,
    fractions: {
      ofHttp: fraction(api?.capacity.median, http?.capacity.median),
      ofDbFullSpeed: fraction(api?.capacity.median, db?.fullSpeedTps.median),
      ofDbCapacity: fraction(api?.capacity.median, db?.capacity.median),
    },
  };
  let dir = path.join(out, id);
  for (let n = 2; fs.existsSync(dir); n++) dir = path.join(out, `${id}-${n}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'capacity.json'), `${JSON.stringify(summary, null, 1)}\n`);
  fs.writeFileSync(path.join(dir, 'capacity.html'), renderCapacityReport(summary));
  writeIndex(out);
  return { summary, dir };
}

if (require.main === module) {
  let options: CapacityOptions;
  try {
    options = parseCapacityArgs(process.argv.slice(2));
  } catch (err) {
    const message = (err as Error).message;
    if (message) console.error(message);
    console.error(USAGE);
    process.exit(err instanceof UsageError && !message ? 0 : 2);
  }
  // Ctrl-C: stop the stack being measured, not only this process.
  const onSignal = (signal: string): void => {
    console.error(`[capacity] ${signal}: stopping the stack`);
    current?.downIfStarted();
    process.exit(130);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  runCapacity(options)
    .then(({ summary, dir }) => {
      console.log('');
      console.log(formatCapacitySummary(summary));
      console.log(`report: ${path.relative(process.cwd(), path.join(dir, 'capacity.html')) || dir}`);
      const failed = [summary.api, summary.http].some((t) => t?.runs.some((r) => r.error)) || summary.db?.runs.some((r) => r.error);
      process.exit(failed ? 1 : 0);
    })
    .catch((err: Error) => {
      console.error(`[capacity] ${err.stack ?? err.message}`);
      current?.downIfStarted();
      process.exit(2);
    });
}
