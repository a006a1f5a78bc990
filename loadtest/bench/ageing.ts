// npm run ageing -- [--rate 2500] [--seconds 180] [--window 10] [--rounds 1] [--compare EXPERIMENT]
//
// Does PostgreSQL's cost per request grow as a fresh stack ages under steady load? A fresh native
// stack inside the envelope takes the official mix at one open-model rate, with a new connection
// per request, for a few minutes. Every window (10 s) prints each component's CPU per request,
// the latency and errors (PostgreSQL's per request that reached it: 200 or 422), and what the
// database looks like: index entries read per scan of each
// ledger index (about 10 when the statement's plan is the LIMITed range scan), the accounts
// table's and index's pages, the share of HOT updates, dead row versions, and autovacuum's visits.
//
// The verdict is the ageing ratio: PostgreSQL's CPU per request in the costliest window over the
// first window's; at most 1.1 passes. A rise that autovacuum later undoes still counts. Beside
// it, the trend: the median of the last third of the windows over the first third's, which a
// single noisy window (a neighbour on the shared machine) cannot move.
//
// --compare runs the variants of a bench experiment (loadtest/bench/bench-variants.ts) alternately,
// A B A B …, each on a fresh stack, and prints each variant's medians and their ratios to the
// repository's; PostgreSQL's also in units of nginx's CPU per request in the same window, a
// cross-check for a host that slows every process at once. Reports go to
// reports/ageing/<name>-<timestamp>.json and .md.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StackClient } from '../../stack/client';
import { benchStack, claimHome, prepareRunDir, markdownTable, readMachineCpu, repoSources, stepRecord, textTable, variantEnv, type StepRecord } from './bench';
import { UsageError, numberOption, parseToolArgs, runCli } from '../lib/cli';
import { findExperiment, variantsOf, type Variant } from './bench-variants';
import { spread, type Spread } from '../capacity/capacity-rules';
import { pgQueries } from '../lib/database';
import { DEFAULT_REPORTS_DIR, commitText, gitInfo, machineInfo } from '../lib/provenance';
import { measuredStep } from '../lib/open-model';
import { PG_ROLES, readPgRoleCpu, roleMsPerRequest, type PgRoleCpu } from '../lib/pg-processes';

export const AGEING_LIMIT = 1.1;

export interface AgeingOptions {
  rate: number;
  seconds: number;
  windowS: number;
  rounds: number;
  /** a bench experiment whose variants are compared; undefined: the repository alone */
  compare: string | undefined;
  /** with compare: only these of its variants (the baseline always runs) */
  variants: string[] | undefined;
  out: string;
  seed: number;
  portBase: number;
}

const DEFAULT_AGEING: Omit<AgeingOptions, 'out'> = { rate: 2500, seconds: 180, windowS: 10, rounds: 1, compare: undefined, variants: undefined, seed: 1, portBase: 32400 };

export const USAGE = `usage: npm run ageing -- [options]
  --rate R          requests per second, the official mix (default ${DEFAULT_AGEING.rate})
  --seconds S       how long each fresh stack is loaded (default ${DEFAULT_AGEING.seconds})
  --window W        seconds per printed window (default ${DEFAULT_AGEING.windowS})
  --rounds N        measurements per variant, alternating (default ${DEFAULT_AGEING.rounds})
  --compare NAME    the variants of a bench experiment (npm run bench -- --list), e.g. ledger
  --variants A,B    with --compare: only these variants (the repository's always runs)
  --seed N          the request sequence (default ${DEFAULT_AGEING.seed})
  --port-base P     the stacks' HTTP port; PostgreSQL's is P + 30000 (default ${DEFAULT_AGEING.portBase})
  --out DIR         reports root: writes DIR/ageing/ (default reports)`;


export function parseAgeingArgs(argv: string[]): AgeingOptions {
  const v = parseToolArgs({
    args: argv,
    options: {
      rate: { type: 'string' },
      seconds: { type: 'string' },
      window: { type: 'string' },
      rounds: { type: 'string' },
      compare: { type: 'string' },
      variants: { type: 'string' },
      seed: { type: 'string' },
      'port-base': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }).values;
  if (v.help) throw new UsageError('');
  const number = numberOption;
  const o: AgeingOptions = {
    rate: number('rate', v.rate, DEFAULT_AGEING.rate, 1, false),
    seconds: number('seconds', v.seconds, DEFAULT_AGEING.seconds, 1, false),
    windowS: number('window', v.window, DEFAULT_AGEING.windowS, 1, false),
    rounds: number('rounds', v.rounds, DEFAULT_AGEING.rounds, 1, true),
    compare: v.compare,
    variants: v.variants?.split(',').map((x) => x.trim()).filter(Boolean),
    seed: number('seed', v.seed, DEFAULT_AGEING.seed, 0, true),
    portBase: number('port-base', v['port-base'], DEFAULT_AGEING.portBase, 1024, true),
    out: path.resolve(v.out ?? DEFAULT_REPORTS_DIR),
  };
  if (o.windowS > o.seconds) throw new UsageError(`--window ${o.windowS} is longer than --seconds ${o.seconds}`);
  if (o.compare !== undefined && !findExperiment(o.compare)) throw new UsageError(`unknown experiment ${JSON.stringify(o.compare)}; npm run bench -- --list shows them`);
  if (o.variants !== undefined && o.compare === undefined) throw new UsageError('--variants needs --compare');
  if (o.variants !== undefined) {
    const known = variantsOf(findExperiment(o.compare!)!, repoSources()).map((x) => x.name);
    const unknown = o.variants.filter((x) => !known.includes(x));
    if (unknown.length > 0) throw new UsageError(`${o.compare} has no variant ${unknown.join(', ')}; its variants: ${known.join(', ')}`);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// What the database looks like after each window (pure, from two readings)
// ---------------------------------------------------------------------------------------------

/** Cumulative counters and sizes, read after a window. */
export interface DbReading {
  /** per ledger index: scans and index entries read since the stack started */
  ledgerIndexes: Record<string, { scans: number; read: number }>;
  accounts: { updates: number; hotUpdates: number; deadTuples: number; autovacuums: number; autoanalyzes: number; heapPages: number; indexPages: number };
}

const DB_READING_QUERIES = [
  `SELECT indexrelname AS name, idx_scan::float8 AS scans, idx_tup_read::float8 AS read
     FROM pg_stat_user_indexes WHERE relname = 'ledger' ORDER BY indexrelname`,
  `SELECT n_tup_upd::float8 AS updates, n_tup_hot_upd::float8 AS hot, n_dead_tup::float8 AS dead,
          autovacuum_count::float8 AS autovacuums, autoanalyze_count::float8 AS autoanalyzes,
          (pg_relation_size('accounts') / 8192)::float8 AS heap_pages,
          (pg_indexes_size('accounts') / 8192)::float8 AS index_pages
     FROM pg_stat_user_tables WHERE relname = 'accounts'`,
];

export function dbReading(rows: Record<string, unknown>[][]): DbReading {
  const [indexes, [accounts]] = rows;
  if (!accounts) throw new Error('pg_stat_user_tables has no row for accounts');
  const n = (x: unknown): number => Number(x);
  return {
    ledgerIndexes: Object.fromEntries(indexes.map((r) => [String(r.name), { scans: n(r.scans), read: n(r.read) }])),
    accounts: {
      updates: n(accounts.updates),
      hotUpdates: n(accounts.hot),
      deadTuples: n(accounts.dead),
      autovacuums: n(accounts.autovacuums),
      autoanalyzes: n(accounts.autoanalyzes),
      heapPages: n(accounts.heap_pages),
      indexPages: n(accounts.index_pages),
    },
  };
}

export interface DbWindow {
  /** index entries read per scan in the window, per ledger index (null: not scanned) */
  ledgerReadPerScan: Record<string, number | null>;
  accountsHeapPages: number;
  accountsIndexPages: number;
  /** HOT updates / all updates of accounts in the window (null: none) */
  hotShare: number | null;
  deadTuples: number;
  /** autovacuum (v) or autoanalyze (a) of accounts finished during the window */
  autovacuumed: string;
}

export function dbWindow(before: DbReading, after: DbReading): DbWindow {
  const readPerScan: Record<string, number | null> = {};
  for (const [name, a] of Object.entries(after.ledgerIndexes)) {
    const b = before.ledgerIndexes[name] ?? { scans: 0, read: 0 };
    const scans = a.scans - b.scans;
    readPerScan[name] = scans > 0 ? Math.round(((a.read - b.read) / scans) * 10) / 10 : null;
  }
  const updates = after.accounts.updates - before.accounts.updates;
  const hot = after.accounts.hotUpdates - before.accounts.hotUpdates;
  return {
    ledgerReadPerScan: readPerScan,
    accountsHeapPages: after.accounts.heapPages,
    accountsIndexPages: after.accounts.indexPages,
    hotShare: updates > 0 ? Math.round((hot / updates) * 1000) / 1000 : null,
    deadTuples: after.accounts.deadTuples,
    autovacuumed:
      (after.accounts.autovacuums > before.accounts.autovacuums ? 'v' : '') + (after.accounts.autoanalyzes > before.accounts.autoanalyzes ? 'a' : ''),
  };
}

// ---------------------------------------------------------------------------------------------
// Windows, measurements and their summary (pure)
// ---------------------------------------------------------------------------------------------

export interface AgeingWindow extends StepRecord {
  /** seconds since the load started, at the window's end */
  t: number;
  db: DbWindow;
  /**
   * PostgreSQL's CPU ms per request that reached it (answered 200 or 422): a 503 from an API's
   * admission control costs the database nothing, so counting it would make a window of
   * refusals (a fresh stack's first seconds) look cheap (null: CPU not measured)
   */
  dbMsPerServed: number | null;
  /** PostgreSQL's CPU ms per served request by process role (null: the postmaster's pid is unknown) */
  dbRoles: PgRoleCpu | null;
}

/**
 * Requests that reached the database: 200, or 422. The load's bodies are all valid, so its 422s
 * are debits the database refused; an invalid body would be refused by the API alone.
 */
export const servedCount = (statuses: Record<string, number>): number => (statuses['200'] ?? 0) + (statuses['422'] ?? 0);

export interface AgeingMeasurement {
  round: number;
  variant: string;
  windows: AgeingWindow[];
  /** PostgreSQL's CPU per request: costliest window / first window (null: not measured) */
  ageingRatio: number | null;
  /**
   * PostgreSQL's CPU per request, median of the last third of the windows / median of the first
   * third: the trend, which one noisy window cannot move the way it moves the ratio above
   */
  trendRatio: number | null;
  /** median over the windows of PostgreSQL's CPU ms per request */
  dbCpuMsMedian: number | null;
  /**
   * median over the windows of PostgreSQL's CPU per request divided by nginx's in the same window:
   * a cross-check for a host that runs everything slower for a while (a busy neighbour, a CPU that
   * changed speed), which moves both. Not a correction: nginx's cost per request also moves with
   * the latency behind it (more connections in flight), so part of a variant's own effect can
   * show up in nginx and be divided out.
   */
  dbPerNginxMedian: number | null;
  p99Median: number;
  errors: number;
  /** windows whose generator lag broke its limits */
  invalidWindows: number;
}

export function ageingRatio(dbCpuMs: readonly number[]): number | null {
  if (dbCpuMs.length === 0 || !(dbCpuMs[0] > 0)) return null;
  return Math.round((Math.max(...dbCpuMs) / dbCpuMs[0]) * 1000) / 1000;
}

export function trendRatio(dbCpuMs: readonly number[]): number | null {
  const third = Math.floor(dbCpuMs.length / 3);
  if (third === 0) return null;
  const first = spread(dbCpuMs.slice(0, third)).median;
  const last = spread(dbCpuMs.slice(-third)).median;
  return first && last !== null ? Math.round((last / first) * 1000) / 1000 : null;
}

export function measurement(round: number, variant: string, windows: AgeingWindow[]): AgeingMeasurement {
  const db = windows.map((w) => w.dbMsPerServed).filter((x): x is number => x !== null);
  // Both per completed request (nginx's counts the 503s it answered too).
  const perNginx = windows.flatMap((w) => (w.cpuMsPerRequest && w.cpuMsPerRequest.nginx > 0 ? [w.cpuMsPerRequest.db / w.cpuMsPerRequest.nginx] : []));
  return {
    round,
    variant,
    windows,
    ageingRatio: db.length === windows.length ? ageingRatio(db) : null,
    trendRatio: db.length === windows.length ? trendRatio(db) : null,
    dbCpuMsMedian: db.length === windows.length ? spread(db).median : null,
    dbPerNginxMedian: perNginx.length === windows.length && perNginx.length > 0 ? spread(perNginx).median : null,
    p99Median: spread(windows.map((w) => w.p99)).median ?? 0,
    errors: windows.reduce((sum, w) => sum + w.errors, 0),
    invalidWindows: windows.filter((w) => !w.lagValid).length,
  };
}

export interface AgeingSummaryRow {
  variant: string;
  baseline: boolean;
  measurements: number;
  ageingRatio: Spread | null;
  trendRatio: Spread | null;
  dbCpuMs: Spread | null;
  /** PostgreSQL's CPU per request in units of nginx's (see AgeingMeasurement.dbPerNginxMedian) */
  dbPerNginx: Spread | null;
  p99: Spread;
  errors: Spread;
  /** medians over this variant's measurements divided by the baseline's */
  vsBaseline: { dbCpuMs: number | null; dbPerNginx: number | null; p99: number | null } | null;
  pass: boolean;
}

const spreadOf = (xs: (number | null)[]): Spread | null => {
  const ok = xs.filter((x): x is number => x !== null);
  return ok.length === xs.length && ok.length > 0 ? spread(ok) : null;
};

export function summarizeAgeing(measurements: AgeingMeasurement[], variants: Pick<Variant, 'name' | 'baseline'>[]): AgeingSummaryRow[] {
  const rows = variants.map((v) => {
    const ms = measurements.filter((m) => m.variant === v.name);
    const ratio = spreadOf(ms.map((m) => m.ageingRatio));
    return {
      variant: v.name,
      baseline: v.baseline,
      measurements: ms.length,
      ageingRatio: ratio,
      trendRatio: spreadOf(ms.map((m) => m.trendRatio)),
      dbCpuMs: spreadOf(ms.map((m) => m.dbCpuMsMedian)),
      dbPerNginx: spreadOf(ms.map((m) => m.dbPerNginxMedian)),
      p99: spread(ms.map((m) => m.p99Median)),
      errors: spread(ms.map((m) => m.errors)),
      vsBaseline: null as AgeingSummaryRow['vsBaseline'],
      pass: ratio !== null && ms.every((m) => m.ageingRatio !== null && m.ageingRatio <= AGEING_LIMIT),
    };
  });
  const base = rows.find((r) => r.baseline);
  const ratioOf = (a: number | null | undefined, b: number | null | undefined): number | null => (a != null && b != null && b > 0 ? Math.round((a / b) * 100) / 100 : null);
  for (const r of rows) {
    if (!base || r === base || r.measurements === 0) continue;
    r.vsBaseline = { dbCpuMs: ratioOf(r.dbCpuMs?.median, base.dbCpuMs?.median), dbPerNginx: ratioOf(r.dbPerNginx?.median, base.dbPerNginx?.median), p99: ratioOf(r.p99.median, base.p99.median) };
  }
  return rows;
}

const fmt = (x: number | null | undefined, digits = 2): string => (x === null || x === undefined ? '–' : x.toFixed(digits));
const spreadText = (s: Spread | null, digits = 2): string => (s === null ? '–' : s.min === s.max ? fmt(s.median, digits) : `${fmt(s.median, digits)} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]`);

function windowLine(prefix: string, w: AgeingWindow): string {
  const c = w.cpuMsPerRequest;
  const cpu = c ? `cpu/req db ${fmt(w.dbMsPerServed, 3)} (served) api ${c.api.toFixed(3)} nginx ${c.nginx.toFixed(3)} ms` : 'cpu not measured';
  const scans = Object.entries(w.db.ledgerReadPerScan)
    .map(([name, x]) => `${name} ${x === null ? '–' : x}`)
    .join(', ');
  const lag = w.lagValid ? '' : `  LAG INVALID (${w.lagReasons.join('; ')})`;
  const roles = w.dbRoles ? `  db by role ${rolesText(w.dbRoles)}` : '';
  return (
    `${prefix} ${String(Math.round(w.t)).padStart(4)} s  ${cpu}  p99 ${w.p99.toFixed(2)} ms  err ${w.errors}  ` +
    `read/scan ${scans}  accounts ${w.db.accountsHeapPages}+${w.db.accountsIndexPages} pages, HOT ${w.db.hotShare === null ? '–' : `${Math.round(w.db.hotShare * 100)} %`}, dead ${w.db.deadTuples}` +
    `${w.db.autovacuumed ? `  autovacuum(${w.db.autovacuumed})` : ''}${roles}${lag}`
  );
}

/** "backends 0.120 walwriter 0.010 …": the roles that used any CPU. */
export function rolesText(r: PgRoleCpu): string {
  return PG_ROLES.filter((k) => r[k] > 0)
    .map((k) => `${k} ${r[k].toFixed(3)}`)
    .join(' ');
}

export function summaryTable(rows: AgeingSummaryRow[]): string[][] {
  const header = ['variant', 'runs', `ageing ratio (≤ ${AGEING_LIMIT})`, 'trend (last third / first third)', 'db CPU ms per served request, median of windows', 'p99 ms, median of windows', 'errors', 'db CPU vs repository', 'the same in units of nginx CPU per request (a cross-check for host drift)', 'p99 vs repository'];
  return [
    header,
    ...rows.map((r) => [
      `${r.variant}${r.baseline ? ' (repository)' : ''}`,
      String(r.measurements),
      `${spreadText(r.ageingRatio)} ${r.pass ? 'PASS' : 'FAIL'}`,
      spreadText(r.trendRatio),
      spreadText(r.dbCpuMs, 3),
      spreadText(r.p99),
      spreadText(r.errors, 0),
      r.vsBaseline ? `×${fmt(r.vsBaseline.dbCpuMs)}` : '',
      r.vsBaseline ? `×${fmt(r.vsBaseline.dbPerNginx)}` : '',
      r.vsBaseline ? `×${fmt(r.vsBaseline.p99)}` : '',
    ]),
  ];
}

// ---------------------------------------------------------------------------------------------
// Running it
// ---------------------------------------------------------------------------------------------

export interface AgeingReport {
  version: 1;
  kind: 'ageing';
  startedAt: string;
  finishedAt: string;
  command: string;
  git: { commit: string; dirty: boolean };
  machine: ReturnType<typeof machineInfo>;
  options: Omit<AgeingOptions, 'out'>;
  variants: Variant[];
  measurements: AgeingMeasurement[];
  failures: { round: number; variant: string; error: string }[];
  summary: AgeingSummaryRow[];
}

const REPOSITORY: Variant = { name: 'repository', description: "the repository's configuration", baseline: true, env: {}, files: [] };

async function measureAgeing(o: AgeingOptions, stack: StackClient, round: number, variant: string, prefix: string, log: (line: string) => void): Promise<AgeingMeasurement> {
  const state = await stack.up();
  if (!state.cgroups) log(`${prefix} WARNING: the stack runs without cgroups; CPU is not measured`);
  const windows: AgeingWindow[] = [];
  const postmaster = state.components.find((c) => c.name === 'db')?.pid;
  let before = dbReading(await pgQueries(state.database, DB_READING_QUERIES));
  const count = Math.max(1, Math.round(o.seconds / o.windowS));
  let t = 0;
  for (let i = 0; i < count; i++) {
    const cpu0 = readMachineCpu();
    const roles0 = postmaster ? readPgRoleCpu(postmaster) : null;
    const m = await measuredStep(state, { port: stack.httpPort, ratePerS: o.rate, durationS: o.windowS, seed: o.seed * 1000 + round * 100 + i });
    const cpu1 = readMachineCpu();
    const served = servedCount(m.statuses);
    const roles1 = roles0 && postmaster ? readPgRoleCpu(postmaster) : null;
    const roles = roles0 && roles1 ? roleMsPerRequest(roles0, roles1, served) : null;
    t += m.wallS;
    let after: DbReading;
    try {
      after = dbReading(await pgQueries(state.database, DB_READING_QUERIES));
    } catch (err) {
      // Keep what was measured: the windows so far still say how the stack aged.
      log(`${prefix} the database's statistics could not be read after ${Math.round(t)} s (${(err as Error).message}); stopping this measurement`);
      break;
    }
    const busy = cpu0 && cpu1 && m.wallS > 0 ? (cpu1.busy - cpu0.busy) / m.wallS : null;
    const record = stepRecord(round, variant, m, busy);
    // From the step's db ms per response (rounded to 0.001 ms: well under the windows' noise).
    const dbMsPerServed = record.cpuMsPerRequest && served > 0 ? Math.round(((record.cpuMsPerRequest.db * m.completed) / served) * 1000) / 1000 : null;
    const w: AgeingWindow = { ...record, t, db: dbWindow(before, after), dbMsPerServed, dbRoles: roles };
    windows.push(w);
    log(windowLine(prefix, w));
    before = after;
  }
  return measurement(round, variant, windows);
}

async function runAgeing(o: AgeingOptions, log: (line: string) => void = console.log, onStack: (s: StackClient | undefined) => void = () => {}): Promise<{ report: AgeingReport; json: string }> {
  const started = new Date();
  // The code that runs is the commit at the start (a commit during a long run changes no dist/).
  const git = gitInfo();
  const experiment = o.compare === undefined ? undefined : findExperiment(o.compare);
  const variants = experiment ? variantsOf(experiment, repoSources()).filter((v) => v.baseline || !o.variants || o.variants.includes(v.name)) : [REPOSITORY];
  const name = experiment?.name ?? 'repository';
  const { id, dir, filesDir } = prepareRunDir(path.join(o.out, 'ageing'), name, started, variants);
  const minutes = (o.rounds * variants.length * (o.seconds + 10)) / 60;
  log(`[ageing] ${variants.map((v) => v.name).join(' vs ')}: ${o.rate} req/s for ${o.seconds} s on a fresh stack, ${o.windowS} s windows, ${o.rounds} round(s); about ${Math.ceil(minutes)} min`);
  const measurements: AgeingMeasurement[] = [];
  const failures: AgeingReport['failures'] = [];
  const claim = claimHome(o.portBase, false);
  try {
    for (let round = 1; round <= o.rounds; round++) {
      for (const v of variants) {
        const prefix = `[ageing ${round}/${o.rounds}] ${v.name.padEnd(Math.max(...variants.map((x) => x.name.length)))}`;
        const stack = benchStack(claim.home, claim.portBase, variantEnv(v, filesDir));
        onStack(stack);
        try {
          const m = await measureAgeing(o, stack, round, v.name, prefix, log);
          measurements.push(m);
          log(`${prefix} ageing ratio ${fmt(m.ageingRatio, 3)} (${m.ageingRatio !== null && m.ageingRatio <= AGEING_LIMIT ? 'PASS' : 'FAIL'}), trend ${fmt(m.trendRatio, 3)}, db CPU median ${fmt(m.dbCpuMsMedian, 3)} ms/request, ${m.invalidWindows} window(s) with generator lag`);
        } catch (err) {
          failures.push({ round, variant: v.name, error: (err as Error).message });
          log(`${prefix} FAILED: ${(err as Error).message}`);
        } finally {
          stack.downIfStarted();
          onStack(undefined);
        }
      }
    }
  } finally {
    claim.release();
  }
  const summary = summarizeAgeing(measurements, variants);
  const report: AgeingReport = {
    version: 1,
    kind: 'ageing',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npm run ageing -- --rate ${o.rate} --seconds ${o.seconds} --window ${o.windowS} --rounds ${o.rounds}${o.compare ? ` --compare ${o.compare}` : ''}${o.variants ? ` --variants ${o.variants.join(',')}` : ''} --seed ${o.seed}`,
    git,
    machine: machineInfo(),
    options: { rate: o.rate, seconds: o.seconds, windowS: o.windowS, rounds: o.rounds, compare: o.compare, variants: o.variants, seed: o.seed, portBase: o.portBase },
    variants,
    measurements,
    failures,
    summary,
  };
  const json = path.join(dir, `${id}.json`);
  fs.writeFileSync(json, `${JSON.stringify(report, null, 1)}\n`);
  fs.writeFileSync(path.join(dir, `${id}.md`), renderAgeingMarkdown(report));
  log('');
  log(textTable(summaryTable(summary)));
  for (const f of failures) log(`  FAILED round ${f.round} ${f.variant}: ${f.error.split('\n')[0]}`);
  log(`[ageing] ${path.relative(process.cwd(), json)} and .md`);
  return { report, json };
}

const AGEING_LEGEND =
  'Legend: PostgreSQL\'s CPU is per served request (answered 200 or 422; 503s never reach it). ' +
  '"ledger read/scan": index entries read per scan of each ledger index in the window (10 when the statement\'s plan is the LIMITed range scan). ' +
  '"accounts pages": heap + indexes of the accounts table. "HOT": share of the window\'s updates of accounts that were heap-only. ' +
  '"dead": dead row versions in accounts at the window\'s end (a level, not a count per window). ' +
  '"autovacuum": v = autovacuum, a = autoanalyze of accounts finished in the window. ' +
  '"lag": INVALID when the generator sent late (p99 > 10 ms or max > 100 ms); such windows are kept, and counted in the summary.';

function renderAgeingMarkdown(r: AgeingReport): string {
  const lines = [
    `# Ageing: ${r.variants.map((v) => v.name).join(' vs ')}`,
    '',
    `${r.startedAt} to ${r.finishedAt}, commit ${commitText(r.git)}, ${r.machine.cpus} × ${r.machine.model}.`,
    '',
    `Command: \`${r.command}\``,
    '',
    AGEING_LEGEND,
    '',
    markdownTable(summaryTable(r.summary)),
    '',
  ];
  for (const m of r.measurements) {
    lines.push(`## ${m.variant}, round ${m.round}`, '');
    const header = ['t s', 'db ms/served req', 'api ms/req', 'nginx ms/req', 'p99 ms', 'errors', 'ledger read/scan', 'accounts pages', 'HOT', 'dead', 'autovacuum', 'db ms/req by role', 'lag'];
    const rows = m.windows.map((w) => [
      String(Math.round(w.t)),
      fmt(w.dbMsPerServed, 3),
      fmt(w.cpuMsPerRequest?.api, 3),
      fmt(w.cpuMsPerRequest?.nginx, 3),
      fmt(w.p99),
      String(w.errors),
      Object.entries(w.db.ledgerReadPerScan)
        .map(([k, x]) => `${k} ${x ?? '–'}`)
        .join(', '),
      `${w.db.accountsHeapPages}+${w.db.accountsIndexPages}`,
      w.db.hotShare === null ? '–' : `${Math.round(w.db.hotShare * 100)} %`,
      String(w.db.deadTuples),
      w.db.autovacuumed,
      w.dbRoles ? rolesText(w.dbRoles) : '–',
      w.lagValid ? 'ok' : 'INVALID',
    ]);
    lines.push(markdownTable([header, ...rows]), '');
  }
  return `${lines.join('\n')}\n`;
}

if (require.main === module) {
  let current: StackClient | undefined;
  runCli({
    name: 'ageing failed',
    usage: USAGE,
    parse: parseAgeingArgs,
    cleanup: () => current?.downIfStarted(),
    crashStatus: 1,
    run: async (o) => {
      const { report } = await runAgeing(o, console.log, (s) => (current = s));
      return report.failures.length > 0 ? 1 : 0;
    },
  });
}
