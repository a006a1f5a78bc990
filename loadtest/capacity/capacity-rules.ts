// npm run capacity's rules, pure: its options, the verdict of a step, the stop rule, a run's
// capacity, the pgbench parts of the database baseline, and the shape of capacity.json. The
// runner (capacity.ts), the report (capacity-report.ts) and npm run bench use them.

import * as path from 'node:path';
import { parseDocument, stringify } from 'yaml';
import type { Envelope } from '../../stack/envelope';
import { OFFICIAL_MIX } from '../lib/official-simulation';
import type { ComponentStep, MeasuredStep } from '../lib/open-model';
import { DEFAULT_REPORTS_DIR, type machineInfo } from '../lib/provenance';
import { newHistogram, type LAG_LIMITS } from '../lib/stats';
import { UsageError, parseToolArgs } from '../lib/cli';

/** Stack variables a capacity run honours (for experiments) and records in its summary. */
export const CONFIG_ENV = ['CREBITOS_COMPOSE', 'POOL_SIZE', 'PG_SETTINGS'] as const;

/** The capacity criterion: p99 at most this, with zero errors. */
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
export const QUICK_DB_RATE_FRACTIONS = [0.5];
export const DEFAULT_PORT_BASE = 31100;
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

export { UsageError };

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
  const values = parseToolArgs({
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
