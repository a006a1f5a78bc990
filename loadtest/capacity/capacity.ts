// npm run capacity [-- --steps 500,1000,... --step-seconds 15 --runs 3 --quick --out DIR --no-baselines --only api|db|http]
//
// How much load the stack carries inside the envelope before latency breaks, and how that
// compares with two ceilings measured by the same command in the same invocation:
//
//   api   the real stack (nginx + two APIs + PostgreSQL, docker-compose.yml's limits): a stepped
//         open-model load with the official mix, new connection per request (loadtest/lib/open-model.ts);
//   http  the same topology and limits with loadtest/capacity/fixed-server.ts in place of the APIs (a fixed
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
import { setTimeout as sleep } from 'node:timers/promises';
import { readEnvelope } from '../../stack/envelope';
import { StackClient } from '../../stack/client';
import { readUsage, type StackState } from '../../stack/state';
import { renderCapacityReport } from './capacity-report';
import { autoDbRates, capacityOf, type CapacityOptions, type CapacitySummary, composeWithDbCpus, CONFIG_ENV, DB_BASELINE_CPUS, DB_RATE_FRACTIONS, type DbRun, type DbTarget, DEFAULT_PORT_BASE, failedBelow, fraction, type JudgedStep, type Judgement, judgeStep, type LoadRun, type LoadTarget, parseCapacityArgs, parsePgbenchOutput, PGBENCH_SCRIPTS, pgbenchArgs, pgbenchLatencies, type PgbenchStep, QUICK_DB_RATE_FRACTIONS, shouldStop, type Spread, spread, TARGET_P99_MS, type TargetName, TARGETS, USAGE } from './capacity-rules';
import { runCli } from '../lib/cli';
import { REPO, gitInfo, machineInfo } from '../lib/provenance';
import { componentSteps, measuredStep, runStep } from '../lib/open-model';
import { currentRss } from '../../stack/cgroups';
import { LAG_LIMITS } from '../lib/stats';
import { writeIndex } from '../lib/report';

const FIXED_SERVER_JS = path.join(REPO, 'dist', 'loadtest', 'capacity', 'fixed-server.js');
const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';
const composeFile = (): string => path.resolve(process.env.CREBITOS_COMPOSE || path.join(REPO, 'docker-compose.yml'));
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

async function runCapacity(o: CapacityOptions, log: (line: string) => void = console.log): Promise<{ summary: CapacitySummary; dir: string }> {
  const startedAt = new Date();
  // The commit at the start: one merged during a long run is not what the run measured.
  const git = gitInfo();
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
    git,
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
  runCli({
    name: '[capacity]',
    usage: USAGE,
    parse: parseCapacityArgs,
    run: async (options: CapacityOptions) => {
      const { summary, dir } = await runCapacity(options);
      console.log('');
      console.log(formatCapacitySummary(summary));
      console.log(`report: ${path.relative(process.cwd(), path.join(dir, 'capacity.html')) || dir}`);
      const failed = [summary.api, summary.http].some((t) => t?.runs.some((r) => r.error)) || summary.db?.runs.some((r) => r.error);
      return failed ? 1 : 0;
    },
    // Ctrl-C or a crash: stop the stack being measured, not only this process.
    cleanup: () => current?.downIfStarted(),
  });
}
