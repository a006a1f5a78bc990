// npm run bench -- <experiment>... | all | --list  [--rates 1000,2000] [--seconds S] [--rounds N]
//
// Each experiment compares configurations of the same stack (loadtest/bench/bench-variants.ts) as
// ratios measured in one invocation. Variants alternate, A B C A B C …, each measurement on a
// fresh native stack inside the envelope, so drift on a shared machine (other load, thermal,
// page cache) spreads over every variant instead of landing on one. A measurement is a short
// unmeasured warm-up, then one open-model step per offered rate with the official mix and a new
// connection per request (loadtest/lib/open-model.ts), with each component's CPU from its cgroup.
//
// Per variant and rate it reports the median and min-max over rounds of p50/p99/max latency,
// errors and CPU ms per request (db, both APIs, nginx, total), and each median's ratio to the
// baseline variant's (the repository's configuration). Steps whose generator lag broke
// LAG_LIMITS are flagged and left out of the medians while any valid step remains. Results go
// to reports/bench/<experiment>-<timestamp>.json and .md (generated configuration files in the
// directory of the same name).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { readConfig } from '../../server';
import { StackClient } from '../../stack/client';
import { alive } from '../../stack/state';
import { DEFAULTS, EXPERIMENTS, describeSplit, findExperiment, proportionalSplit, variantsOf, type Experiment, type Sources, type Split, type Variant } from './bench-variants';
import { fraction, parseSteps, spread, type Spread } from '../capacity/capacity-rules';
import { DEFAULT_REPORTS_DIR, REPO, gitInfo, machineInfo } from '../lib/provenance';
import { measuredStep, runStep, type MeasuredStep } from '../lib/open-model';
import { LAG_LIMITS } from '../lib/stats';
import { UsageError, numberOption, parseToolArgs, runCli } from '../lib/cli';


// ---------------------------------------------------------------------------------------------
// Options and the time plan
// ---------------------------------------------------------------------------------------------

export interface BenchOptions {
  experiments: Experiment[];
  rates: number[];
  /** seconds per rate; undefined: planned per experiment to fit budgetS */
  seconds: number | undefined;
  rounds: number;
  /** unmeasured load before the first step, at half the lowest rate (0: none) */
  warmupS: number;
  /** reports root: writes <out>/bench/ */
  out: string;
  seed: number;
  /** the stack's HTTP port; PostgreSQL's is this + 30000 */
  portBase: number;
  /** given with --port-base: fail if another bench uses it, rather than take the next one */
  portBaseExplicit?: boolean;
  /** target duration of one experiment's default run */
  budgetS: number;
}

const DEFAULT_PORT_BASE = 32200;
export const DEFAULT_BUDGET_S = 240;
/**
 * Start, stop and bookkeeping of one fresh stack: up ~2.5 s and down ~1.7 s on a quiet machine,
 * 6.5-8 s in all on a busy one (first runs of every experiment).
 */
const STACK_OVERHEAD_S = 7;
/** Rest between steps of one measurement, so queues drain. */
const PAUSE_S = 1;
/**
 * Unmeasured load before the first step. Each API warms its own code before it listens
 * (WARM_UP_REQUESTS); this second opens nginx's upstream connections and warms the database.
 */
export const DEFAULT_WARMUP_S = 1;
/** Shortest and longest planned steps: below 3 s a p99 rests on too few requests. */
const STEP_SECONDS = { min: 3, max: 15 };

/**
 * Seconds per step so that variants x rounds fresh-stack measurements fit the budget: two
 * variants get 15 s steps, five get 3 s.
 */
export function planSeconds(variants: number, rounds: number, rates: number, warmupS: number, budgetS = DEFAULT_BUDGET_S): number {
  const perMeasurement = budgetS / (variants * rounds);
  const fixed = STACK_OVERHEAD_S + warmupS + rates * PAUSE_S;
  const seconds = Math.floor((perMeasurement - fixed) / rates);
  return Math.min(STEP_SECONDS.max, Math.max(STEP_SECONDS.min, seconds));
}

/** Expected wall time of an experiment, seconds. */
export function estimateSeconds(variants: number, rounds: number, rates: number, seconds: number, warmupS: number): number {
  return variants * rounds * (STACK_OVERHEAD_S + warmupS + rates * (seconds + PAUSE_S));
}

export const USAGE = `usage: npm run bench -- <experiment>... | all | --list [options]
  --list            the experiments and what each compares
  --rates LIST      offered rates in req/s, e.g. 1000,2000 (default ${DEFAULTS.rates.join(',')})
  --seconds S       seconds per rate (default: planned so one experiment takes about ${DEFAULT_BUDGET_S / 60} min, ${STEP_SECONDS.min}-${STEP_SECONDS.max} s)
  --rounds N        rounds of A B C …, a fresh stack per measurement (default ${DEFAULTS.rounds})
  --warmup S        unmeasured warm-up per measurement at half the lowest rate (default ${DEFAULT_WARMUP_S}; 0: none)
  --out DIR         reports root (default reports/): writes DIR/bench/<experiment>-<timestamp>.{json,md}
  --seed N          payload seed (default 1)
  --port-base N     the stack's HTTP port; PostgreSQL's is N+30000 (default ${DEFAULT_PORT_BASE})`;

export function parseBenchArgs(argv: string[]): BenchOptions | 'list' {
  const { values, positionals } = parseToolArgs({
    args: argv,
    allowPositionals: true,
    options: {
      list: { type: 'boolean', default: false },
      rates: { type: 'string' },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      'port-base': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) throw new UsageError('');
  if (values.list) return 'list';
  if (positionals.length === 0) throw new UsageError('name an experiment (or all); --list shows them');
  const names = positionals.includes('all') ? EXPERIMENTS.map((e) => e.name) : positionals;
  const experiments = names.map((name) => {
    const e = findExperiment(name);
    if (!e) throw new UsageError(`unknown experiment ${JSON.stringify(name)}; known: ${EXPERIMENTS.map((x) => x.name).join(', ')}`);
    return e;
  });
  const number = numberOption;
  let rates: number[];
  try {
    rates = values.rates === undefined ? DEFAULTS.rates : parseSteps(values.rates);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    experiments: [...new Set(experiments)],
    rates,
    seconds: values.seconds === undefined ? undefined : number('seconds', values.seconds, 0, 0.5, false),
    rounds: number('rounds', values.rounds, DEFAULTS.rounds, 1, true),
    warmupS: number('warmup', values.warmup, DEFAULT_WARMUP_S, 0, false),
    out: path.resolve(values.out ?? DEFAULT_REPORTS_DIR),
    seed: number('seed', values.seed, 1, 0, true),
    portBase: number('port-base', values['port-base'], DEFAULT_PORT_BASE, 1024, true),
    portBaseExplicit: values['port-base'] !== undefined,
    budgetS: DEFAULT_BUDGET_S,
  };
}

// ---------------------------------------------------------------------------------------------
// Measurements and their summary (pure)
// ---------------------------------------------------------------------------------------------

/** One step of one measurement: a variant at one rate in one round. */
export interface StepRecord {
  round: number;
  variant: string;
  rate: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  statuses: Record<string, number>;
  achievedPerS: number;
  lagValid: boolean;
  lagReasons: string[];
  lagP99Ms: number;
  generatorCpuUtil: number;
  /** CPU ms per complete response; null when the stack ran without cgroups */
  cpuMsPerRequest: { db: number; api: number; nginx: number; total: number } | null;
  /** CPU-seconds per second of each component during the step */
  cpuUtil: Record<string, number>;
  /**
   * Cores busy on the machine during the step beyond the stack and the generator: other
   * processes sharing it (null where /proc/stat is unreadable). Shown so a noisy step is seen.
   */
  otherCores: number | null;
}

/** A measurement that produced no steps (e.g. the stack failed to start). */
export interface FailedMeasurement {
  round: number;
  variant: string;
  error: string;
}

/** Busy and total CPU time of the whole machine so far, in seconds (USER_HZ is 100 on Linux). */
export function machineCpu(stat: string): { busy: number; total: number } | undefined {
  const line = /^cpu\s+(.+)$/m.exec(stat);
  if (!line) return undefined;
  const ticks = line[1].trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already counted in user).
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = ticks[3] + (ticks[4] ?? 0);
  return { busy: (total - idle) / 100, total: total / 100 };
}

export function readMachineCpu(): { busy: number; total: number } | undefined {
  try {
    return machineCpu(fs.readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

export function stepRecord(round: number, variant: string, m: MeasuredStep, machineBusyCores: number | null = null): StepRecord {
  const cpu = (name: string): number => m.components.find((c) => c.name === name)?.cpuMsPerRequest ?? 0;
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  const cpuMsPerRequest = m.usageMeasured
    ? { db: cpu('db'), api: r3(cpu('api1') + cpu('api2')), nginx: cpu('nginx'), total: r3(m.components.reduce((sum, c) => sum + c.cpuMsPerRequest, 0)) }
    : null;
  return {
    round,
    variant,
    rate: m.ratePerS,
    p50: m.latencyMs.p50,
    p99: m.latencyMs.p99,
    max: m.latencyMs.max,
    errors: m.errors,
    statuses: m.statuses,
    achievedPerS: m.achievedPerS,
    lagValid: m.lagValid,
    lagReasons: m.lagReasons,
    lagP99Ms: m.lagMs.p99,
    generatorCpuUtil: m.generatorCpuUtil,
    cpuMsPerRequest,
    cpuUtil: Object.fromEntries(m.components.map((c) => [c.name, c.cpuUtil])),
    otherCores:
      machineBusyCores === null || !m.usageMeasured
        ? null
        : r3(Math.max(0, machineBusyCores - m.generatorCpuUtil - m.components.reduce((sum, c) => sum + c.cpuUtil, 0))),
  };
}

/** What the tables show, in order. Lower is better for all of them. */
const METRICS = [
  { key: 'p50', label: 'p50 ms', get: (s: StepRecord) => s.p50 },
  { key: 'p99', label: 'p99 ms', get: (s: StepRecord) => s.p99 },
  { key: 'max', label: 'max ms', get: (s: StepRecord) => s.max },
  { key: 'errors', label: 'errors', get: (s: StepRecord) => s.errors },
  { key: 'cpuDb', label: 'CPU db', get: (s: StepRecord) => s.cpuMsPerRequest?.db ?? NaN },
  { key: 'cpuApi', label: 'CPU api', get: (s: StepRecord) => s.cpuMsPerRequest?.api ?? NaN },
  { key: 'cpuNginx', label: 'CPU nginx', get: (s: StepRecord) => s.cpuMsPerRequest?.nginx ?? NaN },
  { key: 'cpuTotal', label: 'CPU total', get: (s: StepRecord) => s.cpuMsPerRequest?.total ?? NaN },
] as const;
export type MetricKey = (typeof METRICS)[number]['key'];

export interface SummaryRow {
  variant: string;
  baseline: boolean;
  rate: number;
  /** steps measured */
  steps: number;
  /** steps whose generator lag was valid; the medians use only these while there is one */
  valid: number;
  /** every step's lag was invalid: the medians use them anyway, flagged */
  allInvalid: boolean;
  values: Record<MetricKey, Spread>;
  /** cores used by other processes on the machine during these steps (see StepRecord) */
  otherCores: Spread;
  /** median / baseline median at the same rate (null: no baseline, or the baseline's is 0) */
  ratio: Record<MetricKey, number | null>;
}

/** Medians over rounds per variant and rate, and their ratios to the baseline's. */
export function summarize(records: StepRecord[], variants: Pick<Variant, 'name' | 'baseline'>[], rates: number[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const rate of rates) {
    for (const v of variants) {
      const all = records.filter((r) => r.variant === v.name && r.rate === rate);
      const valid = all.filter((r) => r.lagValid);
      const used = valid.length > 0 ? valid : all;
      const values = Object.fromEntries(METRICS.map((m) => [m.key, spread(used.map(m.get))])) as Record<MetricKey, Spread>;
      const otherCores = spread(used.map((r) => r.otherCores ?? NaN));
      rows.push({ variant: v.name, baseline: v.baseline, rate, steps: all.length, valid: valid.length, allInvalid: all.length > 0 && valid.length === 0, values, otherCores, ratio: {} as Record<MetricKey, number | null> });
    }
    const base = rows.find((r) => r.rate === rate && r.baseline);
    for (const row of rows.filter((r) => r.rate === rate)) {
      row.ratio = Object.fromEntries(METRICS.map((m) => [m.key, fraction(row.values[m.key].median, base?.values[m.key].median)])) as Record<MetricKey, number | null>;
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

const num = (x: number | null, digits = 2): string => (x === null ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(digits));

/** "×0.93"; for a baseline at 0 (errors), the change in absolute terms. */
export function formatRatio(row: SummaryRow, base: SummaryRow | undefined, key: MetricKey): string {
  const r = row.ratio[key];
  if (r !== null) return `×${r.toFixed(2)}`;
  const v = row.values[key].median;
  const b = base?.values[key].median;
  if (v === null || b === null || b === undefined) return '–';
  return v === b ? '=' : `${numFor(key, b)}→${numFor(key, v)}`;
}

/** Counts (errors) print as integers unless a median falls between two. */
const numFor = (key: MetricKey, x: number | null): string => (key === 'errors' && x !== null && Number.isInteger(x) ? String(x) : num(x));

const spreadText = (key: MetricKey, s: Spread): string =>
  s.median === null ? '–' : s.min === s.max ? numFor(key, s.median) : `${numFor(key, s.median)} (${numFor(key, s.min)}–${numFor(key, s.max)})`;

const flag = (row: SummaryRow): string => (row.allInvalid ? ' !!' : row.valid < row.steps ? ' !' : '');

/** Rows of cells for the ratio table: one per variant and rate. */
export function ratioTable(rows: SummaryRow[]): string[][] {
  const head = ['rate', 'variant', 'n', ...METRICS.map((m) => m.label), 'other'];
  const body = rows.map((row) => {
    const base = rows.find((r) => r.rate === row.rate && r.baseline);
    const cells = METRICS.map((m) => (row.baseline ? numFor(m.key, row.values[m.key].median) : formatRatio(row, base, m.key)));
    return [String(row.rate), row.variant + (row.baseline ? ' (base)' : ''), `${row.valid}/${row.steps}${flag(row)}`, ...cells, num(row.otherCores.median)];
  });
  return [head, ...body];
}

function valueTable(rows: SummaryRow[]): string[][] {
  const head = ['rate', 'variant', 'n', ...METRICS.map((m) => m.label), 'other'];
  const cells = (row: SummaryRow): string[] => METRICS.map((m) => spreadText(m.key, row.values[m.key]));
  return [head, ...rows.map((row) => [String(row.rate), row.variant, `${row.valid}/${row.steps}${flag(row)}`, ...cells(row), spreadText('p50', row.otherCores)])];
}

export function textTable(cells: string[][]): string {
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

export function markdownTable(cells: string[][]): string {
  const line = (r: string[]): string => `| ${r.join(' | ')} |`;
  return [line(cells[0]), line(cells[0].map((_, i) => (i < 2 ? '---' : '---:'))), ...cells.slice(1).map(line)].join('\n');
}

const LEGEND =
  'Latency in ms; CPU in ms per complete response (db, the two APIs together, nginx, total) from the cgroups; ' +
  'a 503 costs little, so under overload CPU per request falls. ' +
  'The baseline row shows its medians; other rows the ratio of their median to the baseline’s at the same rate (lower is better; ' +
  "for a baseline median of 0, the change, e.g. 0→12). n: steps with a valid generator lag / steps measured; '!' some and '!!' all " +
  `had an invalid lag (p99 > ${LAG_LIMITS.p99Ms} ms or max > ${LAG_LIMITS.maxMs} ms) and are left out of the medians unless none is valid. ` +
  'other: median cores that processes outside the stack and the generator used during the steps (another load on the machine).';

// ---------------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------------

/** Variables that change the stack or the APIs: cleared, so the baseline is the repository's configuration. */
export const CONFIG_ENV = [
  'NODE_OPTIONS', 'CREBITOS_NO_LIMITS', 'SOCKET_DIR', 'CREBITOS_API_SCRIPT', 'CREBITOS_COMPOSE', 'CREBITOS_NGINX_CONF', 'CREBITOS_SQL',
  'CREBITOS_TRANSPORT', 'PG_SETTINGS', 'POOL_SIZE', 'UV_THREADPOOL_SIZE', 'MAX_QUEUE', 'QUERY_TIMEOUT_MS', 'DRAIN_MS',
  'STARTUP_TIMEOUT_MS', 'DATABASE_URL', 'SOCKET_PATH', 'PORT', 'HOST', 'INSTANCE_NAME',
];
/** Variant variables that name files: relative to the repository, or to the run's directory when generated. */
const PATH_ENV = new Set(['CREBITOS_COMPOSE', 'CREBITOS_NGINX_CONF', 'CREBITOS_SQL', 'PG_SETTINGS']);

/** The environment of a variant's stack. */
export function variantEnv(variant: Variant, filesDir: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const key of CONFIG_ENV) delete env[key];
  for (const [key, value] of Object.entries(variant.env)) {
    const generated = variant.files.find((f) => f.env === key);
    env[key] = generated ? path.join(filesDir, generated.name) : PATH_ENV.has(key) ? path.resolve(REPO, value) : value;
  }
  return env;
}

/** A variant's stack from a claimed home: the repository's configuration with only the variant's variables set. */
export function benchStack(home: string, httpPort: number, env: NodeJS.ProcessEnv): StackClient {
  const cleared = Object.fromEntries(CONFIG_ENV.map((k) => [k, undefined]));
  return new StackClient({ home, httpPort, pgPort: httpPort + 30000, env: { ...cleared, ...env } });
}

/** The stack running now, stopped by a Ctrl-C. */
let running: StackClient | undefined;

/**
 * One bench per stack home. Starting a stack first stops whatever runs from its home, so two
 * invocations on the same ports would stop each other's stacks: each claims its home with its
 * pid, and a second one moves on to the next port base (or fails, when the port was given).
 */
export function claimHome(portBase: number, explicit: boolean): { portBase: number; home: string; release: () => void } {
  for (let port = portBase; port < portBase + 20; port++) {
    const home = path.join(REPO, `.stack-bench-${port}`);
    const lock = path.join(home, 'bench.pid');
    fs.mkdirSync(home, { recursive: true });
    let owner = 0;
    try {
      owner = Number(fs.readFileSync(lock, 'utf8'));
    } catch {
      // unclaimed
    }
    if (owner && owner !== process.pid && alive(owner)) {
      if (explicit) throw new Error(`another npm run bench (pid ${owner}) runs stacks from ${home}; choose another --port-base`);
      continue;
    }
    fs.writeFileSync(lock, String(process.pid));
    const release = (): void => {
      try {
        if (Number(fs.readFileSync(lock, 'utf8')) === process.pid) fs.rmSync(lock);
      } catch {
        // already gone
      }
    };
    return { portBase: port, home, release };
  }
  throw new Error(`ports ${portBase}-${portBase + 19} are all taken by other npm run bench invocations`);
}

// ---------------------------------------------------------------------------------------------
// Running an experiment
// ---------------------------------------------------------------------------------------------

export interface BenchReport {
  version: 1;
  kind: 'bench';
  experiment: string;
  title: string;
  compares: string;
  startedAt: string;
  finishedAt: string;
  command: string;
  git: { commit: string; dirty: boolean };
  machine: ReturnType<typeof machineInfo>;
  options: { rates: number[]; seconds: number; rounds: number; warmupS: number; seed: number };
  variants: Variant[];
  steps: StepRecord[];
  failures: FailedMeasurement[];
  summary: SummaryRow[];
  /** the baseline's CPU per request at the highest rate, and the split proportional to it */
  suggestedSplit: { rate: number; cpuMsPerRequest: { db: number; api: number; nginx: number }; split: Split } | null;
  wallS: number;
}

export function repoSources(): Sources {
  const composePath = path.join(REPO, 'docker-compose.yml');
  return {
    nginxConf: fs.readFileSync(path.join(REPO, 'nginx.conf'), 'utf8'),
    compose: fs.readFileSync(composePath, 'utf8'),
    composePath,
    defaultPoolSize: readConfig({}).poolSize,
  };
}

const timestamp = (d: Date): string => d.toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');

/**
 * A run's report id (<name>-<timestamp>) under `dir`, and the variants' generated files (an
 * nginx.conf, a compose file) written to the directory of that id, where variantEnv points.
 */
export function prepareRunDir(dir: string, name: string, started: Date, variants: readonly Variant[]): { id: string; dir: string; filesDir: string } {
  const id = `${name}-${timestamp(started)}`;
  const filesDir = path.join(dir, id);
  fs.mkdirSync(dir, { recursive: true });
  if (variants.some((v) => v.files.length > 0)) {
    fs.mkdirSync(filesDir, { recursive: true });
    for (const v of variants) for (const f of v.files) fs.writeFileSync(path.join(filesDir, f.name), f.text);
  }
  return { id, dir, filesDir };
}

function stepLine(prefix: string, s: StepRecord): string {
  const cpu = s.cpuMsPerRequest ? `cpu/req db ${s.cpuMsPerRequest.db.toFixed(2)} api ${s.cpuMsPerRequest.api.toFixed(2)} nginx ${s.cpuMsPerRequest.nginx.toFixed(2)} = ${s.cpuMsPerRequest.total.toFixed(2)} ms` : 'cpu not measured';
  const lag = s.lagValid ? `lag p99 ${s.lagP99Ms.toFixed(1)}` : `LAG INVALID (${s.lagReasons.join('; ')})`;
  const other = s.otherCores === null ? '' : `  other load ${s.otherCores.toFixed(2)} cores`;
  return `${prefix} ${String(s.rate).padStart(5)}/s  p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} max ${s.max.toFixed(1)} ms  err ${s.errors}  ${lag}  ${cpu}${other}`;
}

/** One variant in one round: a fresh stack, the warm-up, one step per rate, the stack stopped. */
async function measureOnce(o: { stack: StackClient; rates: number[]; seconds: number; warmupS: number; seed: number; round: number; variant: string; prefix: string }, log: (line: string) => void): Promise<StepRecord[]> {
  const { stack } = o;
  running = stack;
  const steps: StepRecord[] = [];
  try {
    const state = await stack.up();
    if (!state.cgroups) log(`${o.prefix} WARNING: the stack runs without cgroups; CPU is not measured`);
    if (o.warmupS > 0) await runStep({ port: stack.httpPort, ratePerS: Math.min(...o.rates) / 2, durationS: o.warmupS, seed: o.seed + 999 });
    for (let i = 0; i < o.rates.length; i++) {
      await sleep(PAUSE_S * 1000);
      // The same seed for every variant of a round: identical request sequences.
      const cpu0 = readMachineCpu();
      const t0 = performance.now();
      const m = await measuredStep(state, { port: stack.httpPort, ratePerS: o.rates[i], durationS: o.seconds, seed: o.seed * 1000 + o.round * 10 + i });
      const cpu1 = readMachineCpu();
      const busyCores = cpu0 && cpu1 ? (cpu1.busy - cpu0.busy) / ((performance.now() - t0) / 1000) : null;
      const record = stepRecord(o.round, o.variant, m, busyCores);
      steps.push(record);
      log(stepLine(o.prefix, record));
    }
  } finally {
    stack.downIfStarted();
    running = undefined;
  }
  return steps;
}

export async function runExperiment(experiment: Experiment, o: BenchOptions, log: (line: string) => void = console.log): Promise<{ report: BenchReport; json: string; markdown: string }> {
  const started = new Date();
  const git = gitInfo(); // at the start, as the other tools: a commit merged during the run is not what it measured
  const t0 = performance.now();
  const variants = variantsOf(experiment, repoSources());
  const seconds = o.seconds ?? planSeconds(variants.length, o.rounds, o.rates.length, o.warmupS, o.budgetS);
  const { id, dir, filesDir } = prepareRunDir(path.join(o.out, 'bench'), experiment.name, started, variants);
  const estimate = estimateSeconds(variants.length, o.rounds, o.rates.length, seconds, o.warmupS);
  log(`[${experiment.name}] ${experiment.title}: ${variants.map((v) => v.name).join(' vs ')}`);
  log(`[${experiment.name}] ${o.rounds} rounds x ${variants.length} variants, ${o.rates.join(' and ')} req/s for ${seconds} s each, fresh stack per measurement; about ${Math.round(estimate / 60)} min`);

  const steps: StepRecord[] = [];
  const failures: FailedMeasurement[] = [];
  const claim = claimHome(o.portBase, o.portBaseExplicit ?? true);
  if (claim.portBase !== o.portBase) log(`[${experiment.name}] port ${o.portBase} is in use by another npm run bench; using ${claim.portBase}`);
  try {
    for (let round = 1; round <= o.rounds; round++) {
      for (const v of variants) {
        const prefix = `[${experiment.name} ${round}/${o.rounds}] ${v.name.padEnd(Math.max(...variants.map((x) => x.name.length)))}`;
        const stack = benchStack(claim.home, claim.portBase, variantEnv(v, filesDir));
        try {
          steps.push(...(await measureOnce({ stack, rates: o.rates, seconds, warmupS: o.warmupS, seed: o.seed, round, variant: v.name, prefix }, log)));
        } catch (err) {
          const error = (err as Error).message;
          failures.push({ round, variant: v.name, error });
          log(`${prefix} FAILED: ${error}`);
        }
      }
    }
  } finally {
    claim.release();
  }

  const summary = summarize(steps, variants, o.rates);
  const top = Math.max(...o.rates);
  const base = summary.find((r) => r.baseline && r.rate === top);
  const cpu = base && base.values.cpuDb.median !== null ? { db: base.values.cpuDb.median, api: base.values.cpuApi.median!, nginx: base.values.cpuNginx.median! } : null;
  const report: BenchReport = {
    version: 1,
    kind: 'bench',
    experiment: experiment.name,
    title: experiment.title,
    compares: experiment.compares,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npm run bench -- ${experiment.name} --rates ${o.rates.join(',')} --seconds ${seconds} --rounds ${o.rounds} --warmup ${o.warmupS} --seed ${o.seed}`,
    git,
    machine: machineInfo(),
    options: { rates: o.rates, seconds, rounds: o.rounds, warmupS: o.warmupS, seed: o.seed },
    variants,
    steps,
    failures,
    summary,
    suggestedSplit: cpu && cpu.db + cpu.api + cpu.nginx > 0 ? { rate: top, cpuMsPerRequest: cpu, split: proportionalSplit(cpu) } : null,
    wallS: Math.round((performance.now() - t0) / 100) / 10,
  };
  const json = path.join(dir, `${id}.json`);
  const markdown = path.join(dir, `${id}.md`);
  fs.writeFileSync(json, `${JSON.stringify(report, null, 1)}\n`);
  fs.writeFileSync(markdown, renderMarkdown(report));
  log('');
  log(formatReport(report));
  log(`[${experiment.name}] ${path.relative(process.cwd(), json)} and .md (${report.wallS} s)`);
  return { report, json, markdown };
}

function formatReport(r: BenchReport): string {
  const lines = [`${r.experiment}: ${r.title}`, `  ${r.compares}`, '', textTable(ratioTable(r.summary))];
  for (const f of r.failures) lines.push(`  FAILED round ${f.round} ${f.variant}: ${f.error.split('\n')[0]}`);
  if (r.experiment === 'split' && r.suggestedSplit) {
    const s = r.suggestedSplit;
    lines.push(`  baseline CPU per request at ${s.rate} req/s: db ${s.cpuMsPerRequest.db}, APIs ${s.cpuMsPerRequest.api}, nginx ${s.cpuMsPerRequest.nginx} ms; proportional split: ${describeSplit(s.split)}`);
  }
  return lines.join('\n');
}

function renderMarkdown(r: BenchReport): string {
  const lines = [
    `# npm run bench -- ${r.experiment}`,
    '',
    `**${r.title}**: ${r.compares}.`,
    '',
    `\`${r.command}\` at ${r.startedAt}, commit ${r.git.commit}${r.git.dirty ? ' (with uncommitted changes)' : ''}, ${r.machine.cpus} × ${r.machine.model}, ${r.wallS} s. ` +
      `The load generator shares the machine's cores with the stack, and other load on the machine is not controlled: compare ratios, not absolute numbers.`,
    '',
    '## Variants',
    '',
    ...r.variants.map((v) => `- \`${v.name}\`${v.baseline ? ' (baseline)' : ''}: ${v.description}${Object.keys(v.env).length ? ` — ${Object.entries(v.env).map(([k, val]) => `\`${k}=${val}\``).join(' ')}` : ''}`),
    '',
    `## Ratios to the baseline (medians of ${r.options.rounds} round${r.options.rounds === 1 ? '' : 's'})`,
    '',
    markdownTable(ratioTable(r.summary)),
    '',
    LEGEND,
    '',
    '## Medians (min–max)',
    '',
    markdownTable(valueTable(r.summary)),
    '',
  ];
  if (r.failures.length) lines.push('## Failed measurements', '', ...r.failures.map((f) => `- round ${f.round}, ${f.variant}: ${f.error.split('\n')[0]}`), '');
  if (r.suggestedSplit) {
    const s = r.suggestedSplit;
    lines.push(`Baseline CPU per request at ${s.rate} req/s: db ${s.cpuMsPerRequest.db}, APIs ${s.cpuMsPerRequest.api}, nginx ${s.cpuMsPerRequest.nginx} ms; a split in proportion: ${describeSplit(s.split)}.`, '');
  }
  return lines.join('\n');
}

function listExperiments(): string {
  const sources = repoSources();
  return EXPERIMENTS.map((e) => {
    const variants = variantsOf(e, sources);
    const seconds = planSeconds(variants.length, DEFAULTS.rounds, DEFAULTS.rates.length, DEFAULT_WARMUP_S);
    const minutes = estimateSeconds(variants.length, DEFAULTS.rounds, DEFAULTS.rates.length, seconds, DEFAULT_WARMUP_S) / 60;
    const indent = ' '.repeat(17);
    return `${e.name.padEnd(17)}${e.title}\n${indent}${e.compares}\n${indent}variants: ${variants.map((v) => v.name).join(', ')}; default run ${seconds} s per rate, about ${minutes.toFixed(1)} min`;
  }).join('\n');
}

if (require.main === module) {
  runCli<BenchOptions | 'list'>({
    name: 'bench failed',
    usage: USAGE,
    parse: parseBenchArgs,
    cleanup: () => running?.downIfStarted(),
    crashStatus: 1,
    run: async (o) => {
      if (o === 'list') {
        console.log(listExperiments());
        return 0;
      }
      const reports: BenchReport[] = [];
      for (const e of o.experiments) reports.push((await runExperiment(e, o)).report);
      if (reports.length > 1) {
        console.log('\nAll experiments:\n');
        for (const r of reports) console.log(`${formatReport(r)}\n`);
      }
      return 0;
    },
  });
}
