// npm run loadtest [-- --quick] [--base-url URL] [--out DIR] [--database CONNINFO] [--allow-dirty] [--seed N]
//
// The official Rinha de Backend 2024/Q1 Gatling simulation, run on Node (no JVM, no k6 here):
// the sequential validation pre-phase S1-S4, then S5 (per-client validations) concurrently with
// S6 (404) followed by the open-model load S7-S9, with the same payloads, random ranges, checks
// and User-Agent (lib/official-simulation.ts; the official test step by step is in
// docs/contest.md). As in Gatling 3.10,
// each `andThen` step starts on the injector's next 1-second tick (S2 at 1 s ... load at 5 s).
// Every load request starts at its scheduled time on a new TCP connection, whatever the
// response times, and the generator's own lag is measured so a run where it fell behind is
// flagged INVALID (limits in stats.ts, LAG_LIMITS).
//
// At the end: a Gatling-style summary with the contest payout (the judging, docs/contest.md), a
// database audit, the
// stack's resource usage, and reports/<timestamp>/{summary.json,report.html} + reports/index.html.
// Exit status: 0 pass; 1 KO, consistency failure or audit failure (whatever the lag); 2 could not
// run; 3 every check passed but the run is INVALID because the generator fell behind.

import * as dns from 'node:dns/promises';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, localStack, readUsage, type StackState } from '../../stack/state';
import type { Usage } from '../../stack/cgroups';
import { DEFAULT_REPORTS_DIR, gitInfo, machineInfo } from '../lib/provenance';
import { pgQueries } from '../lib/database';
import { httpExchange, type Raw, type Target } from '../lib/http';
import { writeRunReport } from '../lib/report';
import {
  CLIENTS,
  FULL_PROFILE,
  LOAD_GROUPS,
  QUICK_PROFILE,
  ResponseView,
  VALIDATION_REQUESTS,
  buildSchedule,
  clientValidationSteps,
  concurrentBalance,
  concurrentTransaction,
  loadRequest,
  loadSeconds,
  notFoundRequest,
  phaseNames,
  runChecks,
  seededRng,
  type Profile,
  type RequestSpec,
  type Rng,
  type Schedule,
  type Session,
} from '../lib/official-simulation';
import { Recorder } from '../lib/stats';
import { buildRunSummary, exitStatusOf, formatSummary, usageDuring, type AuditResult, type PhaseResult, type RunSummary } from '../lib/summary';
import { UsageError, parseToolArgs, runCli } from '../lib/cli';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

export interface Options {
  profile: Profile;
  baseUrl?: string;
  out: string;
  database?: string;
  allowDirty: boolean;
  rng: Rng;
}

const USAGE = `usage: npm run loadtest -- [--quick] [--base-url URL] [--out DIR] [--database CONNINFO] [--allow-dirty] [--seed N]
  --quick          ~1 minute CI profile: same shape, time x 1/4, peak rates x 1/2 (7,818 requests)
  --base-url URL   target (default: the local stack's url from its state file, else http://localhost:9999)
  --out DIR        reports root (default reports/): writes DIR/<timestamp>/ and DIR/index.html
  --database STR   libpq conninfo for the audit (default: the local stack's database)
  --allow-dirty    run even if the target's data is not freshly initialised
  --seed N         seed the random payloads (default: Math.random)`;

export function readOptions(argv: string[]): Options {
  const values = parseToolArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      'base-url': { type: 'string' },
      out: { type: 'string' },
      database: { type: 'string' },
      'allow-dirty': { type: 'boolean', default: false },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
  if (values.help) throw new UsageError('');
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (seed !== undefined && !Number.isInteger(seed)) throw new UsageError('--seed must be an integer');
  return {
    profile: values.quick ? QUICK_PROFILE : FULL_PROFILE,
    baseUrl: values['base-url']?.replace(/\/+$/, ''),
    out: path.resolve(values.out ?? DEFAULT_REPORTS_DIR),
    database: values.database,
    allowDirty: values['allow-dirty'] ?? false,
    rng: seed === undefined ? Math.random : seededRng(seed),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

async function resolveTarget(baseUrl: string): Promise<Target> {
  const url = new URL(baseUrl);
  if (url.protocol !== 'http:') throw new UsageError(`only http:// targets are supported, got ${baseUrl}`);
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = await dns.lookup(hostname, { all: true });
  // Prefer IPv4 (nginx listens on 0.0.0.0:9999; "localhost" may list ::1 first).
  const chosen = addresses.find((a) => a.family === 4) ?? addresses[0];
  return { baseUrl, address: chosen.address, family: chosen.family, port: Number(url.port || 80), hostHeader: url.host, basePath: url.pathname.replace(/\/+$/, '') };
}

// ---------------------------------------------------------------------------------------------
// Execution of requests and scenarios
// ---------------------------------------------------------------------------------------------

interface Context {
  target: Target;
  recorder: Recorder;
  /** performance.now() when S1 started: time zero of every chart */
  runStart: number;
}

interface PhaseCounter {
  name: string;
  requests: number;
  ko: number;
  startMs: number;
  endMs: number;
}

const newPhase = (name: string): PhaseCounter => ({ name, requests: 0, ko: 0, startMs: 0, endMs: 0 });

/** Sends one request, runs its checks, records it. Resolves with the failure (undefined if OK). */
function exec(ctx: Context, spec: RequestSpec, session: Session, agent: http.Agent | false, phase: PhaseCounter, scheduledAt?: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const start = performance.now();
    const startMs = start - ctx.runStart;
    ctx.recorder.started(startMs);
    phase.requests++;
    httpExchange(ctx.target, spec, agent, (raw) => {
      const endMs = performance.now() - ctx.runStart;
      const failure = raw.error ?? runChecks(spec.checks, new ResponseView(raw.status, raw.body), session);
      if (failure !== undefined) phase.ko++;
      ctx.recorder.record(
        {
          group: spec.group,
          startMs,
          endMs,
          status: raw.status,
          failure,
          lagUs: scheduledAt === undefined ? undefined : Math.max(0, (start - scheduledAt) * 1000),
          scheduledMs: scheduledAt === undefined ? undefined : scheduledAt - ctx.runStart,
        },
        spec.method,
      );
      resolve(failure);
    });
  });
}

async function timed<T>(ctx: Context, phase: PhaseCounter, fn: () => Promise<T>): Promise<T> {
  phase.startMs = performance.now() - ctx.runStart;
  try {
    return await fn();
  } finally {
    phase.endMs = performance.now() - ctx.runStart;
  }
}

const times = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/** S5: one user per client, 14 requests in sequence; the 4 GETs after `danada` in parallel. */
async function clientValidations(ctx: Context, client: { id: number; limite: number }, phase: PhaseCounter): Promise<void> {
  // A Gatling user keeps its connections (keep-alive) and fetches resources over up to 6.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
  const session: Session = new Map([
    ['id', String(client.id)],
    ['limite', String(client.limite)],
  ]);
  try {
    for (const step of clientValidationSteps(client.id)) {
      if (Array.isArray(step)) await Promise.all(step.map((s) => exec(ctx, s, session, agent, phase)));
      else await exec(ctx, step, session, agent, phase);
    }
  } finally {
    agent.destroy();
  }
}

/**
 * The open-model load: every arrival starts at t0 + its scheduled time, on a new connection.
 * A timer wakes up for the next arrival and starts every one that is due; each records its lag.
 */
function runLoad(ctx: Context, schedule: Schedule, rng: Rng, phase: PhaseCounter, onStart: (t0: number) => void): Promise<void> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    onStart(t0);
    let next = 0;
    let pending = 0;
    const finished = (): void => {
      pending--;
      if (next >= schedule.total && pending === 0) resolve();
    };
    const tick = (): void => {
      const elapsedS = (performance.now() - t0) / 1000;
      while (next < schedule.total && schedule.times[next] <= elapsedS) {
        const scheduledAt = t0 + schedule.times[next] * 1000;
        const spec = loadRequest(LOAD_GROUPS[schedule.groups[next]], rng);
        next++;
        pending++;
        exec(ctx, spec, new Map(), false, phase, scheduledAt).then(finished);
      }
      if (next >= schedule.total) {
        if (pending === 0) resolve();
        return;
      }
      const waitMs = t0 + schedule.times[next] * 1000 - performance.now();
      setTimeout(tick, Math.max(0, waitMs));
    };
    tick();
  });
}

// ---------------------------------------------------------------------------------------------
// Warm-up, freshness and the database
// ---------------------------------------------------------------------------------------------

function simpleGet(target: Target, urlPath: string): Promise<Raw> {
  return new Promise((resolve) => httpExchange(target, { method: 'GET', path: urlPath }, false, resolve));
}

/**
 * As the official runner: up to 20 attempts, 2 s apart, of two GETs of /clientes/1/extrato
 * (which also wakes both API instances). Returns client 1's statement.
 */
async function warmUp(target: Target, attempts: number): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const a = await simpleGet(target, '/clientes/1/extrato');
    const b = a.status === 200 ? await simpleGet(target, '/clientes/1/extrato') : a;
    if (a.status === 200 && b.status === 200) return b.body;
    const why = a.error ?? `HTTP ${a.status}`;
    if (attempt >= attempts) throw new Error(`${target.baseUrl}/clientes/1/extrato does not answer 200 (${why}) after ${attempts} attempt(s); is the stack up? (npm run up)`);
    console.log(`waiting for ${target.baseUrl} (${why}); attempt ${attempt}/${attempts}`);
    await sleep(2000);
  }
}

async function ledgerCount(conninfo: string): Promise<{ entries: number; nonZeroBalances: number }> {
  const [[row]] = await pgQueries(conninfo, ['SELECT (SELECT count(*) FROM ledger)::int AS entries, (SELECT count(*) FROM accounts WHERE balance <> 0)::int AS non_zero']);
  return { entries: Number(row.entries), nonZeroBalances: Number(row.non_zero) };
}

/**
 * The books after a run: `audit_failures` must be empty, and the ledger must hold one entry per
 * POST answered 200 (an unanswered POST may or may not have been applied).
 */
export async function audit(conninfo: string | undefined, skipReason: string | undefined, entriesBefore: number, recorder: Pick<Recorder, 'postsOk' | 'postsUnanswered'>): Promise<AuditResult> {
  const base = { failures: [], ledger: [], problems: [] };
  if (!conninfo) return { status: 'skipped', reason: skipReason, ...base };
  try {
    const [failures, ledger, [count]] = await pgQueries(conninfo, [
      'SELECT * FROM audit_failures ORDER BY id',
      'SELECT * FROM ledger_audit ORDER BY id',
      'SELECT count(*)::int AS entries FROM ledger',
    ]);
    const entries = Number(count.entries) - entriesBefore;
    const problems: string[] = [];
    // Every POST answered 200 is one ledger entry; an unanswered POST may or may not have been applied.
    if (entries < recorder.postsOk) problems.push(`${recorder.postsOk - entries} transaction(s) answered 200 are missing from the ledger`);
    if (entries > recorder.postsOk + recorder.postsUnanswered) {
      problems.push(`the ledger has ${entries - recorder.postsOk - recorder.postsUnanswered} more entries than the POSTs answered 200`);
    }
    return {
      status: failures.length === 0 && problems.length === 0 ? 'passed' : 'failed',
      failures,
      ledger,
      problems,
      ledgerEntries: entries,
      postsOk: recorder.postsOk,
      postsUnanswered: recorder.postsUnanswered,
    };
  } catch (err) {
    return { status: 'error', reason: `cannot query ${conninfo}: ${(err as Error).message.trim()}`, ...base };
  }
}

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

function startProgress(ctx: Context, expected: number, profile: Profile, loadStart: () => number | undefined, stage: () => string): () => void {
  const tty = process.stdout.isTTY === true;
  const everyMs = tty ? 1000 : 10_000;
  let last = 0;
  const line = (): string => {
    const now = performance.now();
    const second = Math.floor((now - ctx.runStart) / 1000) - 1;
    const s = ctx.recorder.secondStats(second);
    const t0 = loadStart();
    const where = t0 === undefined ? `${stage()} ${((now - ctx.runStart) / 1000).toFixed(1)} s` : `load ${((now - t0) / 1000).toFixed(0).padStart(3)}/${loadSeconds(profile)} s`;
    const total = ctx.recorder.total;
    const lag = s && s.lagMaxMs !== null ? `lag p99 ${s.lagP99Ms!.toFixed(1)} max ${s.lagMaxMs.toFixed(1)} ms` : 'lag -';
    return `[${where}] ${String(s?.started ?? 0).padStart(3)} req/s  in-flight ${String(ctx.recorder.inflight).padStart(3)}  done ${total.count}/${expected}  KO ${total.ko}  ${lag}`;
  };
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - last < everyMs - 50) return;
    last = now;
    if (tty) process.stdout.write(`\r${line()}\x1b[K`);
    else console.log(line());
  }, 1000);
  return () => {
    clearInterval(timer);
    if (tty) process.stdout.write(`\r${line()}\x1b[K\n`);
  };
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0']);

/** True when two base URLs reach the same local listener. */
function sameLocalEndpoint(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b);
    const port = (u: URL): string => u.port || (u.protocol === 'https:' ? '443' : '80');
    return LOCAL_HOSTS.has(x.hostname) && LOCAL_HOSTS.has(y.hostname) && port(x) === port(y);
  } catch {
    return false;
  }
}

/** The stack under test, ready and checked fresh; the same for the Node run and the k6 run (k6-test.ts). */
export interface PreparedTarget {
  baseUrl: string;
  target: Target;
  /** the running native stack when it is the target (its cgroups give the resource table) */
  liveState: StackState | undefined;
  /** the audit's database, or why the audit is skipped */
  database: string | undefined;
  auditSkipReason: string | undefined;
  /** ledger entries before the run (0 on fresh data) */
  entriesBefore: number;
}

/**
 * Finds the target (--base-url, else the running stack), where the audit can look, waits until
 * the target answers as the official runner does, and refuses data that is not fresh unless
 * --allow-dirty. Prints what it found.
 */
export async function prepareTarget(options: Pick<Options, 'profile' | 'baseUrl' | 'database' | 'allowDirty'>): Promise<PreparedTarget> {
  const { profile } = options;
  const { state, stateFile } = localStack();
  const running = state && alive(state.supervisorPid) ? state : undefined;
  const baseUrl = options.baseUrl ?? running?.url ?? 'http://localhost:9999';
  const isLocalStack = running !== undefined && sameLocalEndpoint(baseUrl, running.url);

  // Where the audit can look.
  let database = options.database;
  let auditSkipReason: string | undefined;
  if (!database) {
    if (!running) auditSkipReason = `no running native stack (state file ${stateFile}) and no --database <conninfo>`;
    else if (!isLocalStack) auditSkipReason = `--base-url ${baseUrl} is not the local stack (${running.url}, ${stateFile}) and no --database <conninfo> was given`;
    else if (!running.database) auditSkipReason = `the stack state ${stateFile} records no database`;
    else database = running.database;
  }

  const target = await resolveTarget(baseUrl);
  const schedule = buildSchedule(profile);
  const expected = schedule.total + VALIDATION_REQUESTS;
  console.log(`Crébitos load test: ${profile.description}`);
  console.log(`target ${baseUrl} (${target.address}:${target.port}); ${expected.toLocaleString('en-US')} requests expected (${schedule.counts['débitos']} débitos, ${schedule.counts['créditos']} créditos, ${schedule.counts['extratos']} extratos, ${VALIDATION_REQUESTS} validações)`);
  console.log(database ? `database audit: ${database}` : `database audit SKIPPED: ${auditSkipReason}`);

  // Readiness and freshness: the simulation's checks assume the initial data (all balances 0).
  const statement = await warmUp(target, isLocalStack ? 20 : 3);
  let entriesBefore = 0;
  const dirty: string[] = [];
  try {
    const parsed = JSON.parse(statement) as { saldo?: { total?: unknown }; ultimas_transacoes?: unknown[] };
    if (parsed.saldo?.total !== 0 || (parsed.ultimas_transacoes?.length ?? 0) > 0) dirty.push(`client 1 has balance ${parsed.saldo?.total} and ${parsed.ultimas_transacoes?.length} transaction(s)`);
  } catch {
    dirty.push(`client 1's statement is not JSON: ${statement.slice(0, 100)}`);
  }
  if (database) {
    try {
      const before = await ledgerCount(database);
      entriesBefore = before.entries;
      if (before.entries > 0 || before.nonZeroBalances > 0) dirty.push(`the database already holds ${before.entries} ledger entries and ${before.nonZeroBalances} non-zero balance(s)`);
    } catch (err) {
      console.log(`warning: cannot read ${database} before the run: ${(err as Error).message.trim()}`);
    }
  }
  if (dirty.length > 0) {
    const msg = `the target is not freshly initialised: ${dirty.join('; ')}. The official test runs against fresh data (S2, S4 and S5 would fail)`;
    if (!options.allowDirty) throw new Error(`${msg}; restart the stack (npm run down && npm run up) or pass --allow-dirty.`);
    console.log(`warning: ${msg}; going on anyway (--allow-dirty).`);
  }
  return { baseUrl, target, liveState: isLocalStack ? running : undefined, database, auditSkipReason, entriesBefore };
}

/** The target's stack as the summary records it. */
export function targetFacts(t: PreparedTarget): RunSummary['target'] {
  return { baseUrl: t.baseUrl, stackHome: t.liveState?.home, database: t.database, envelope: t.liveState?.envelope ?? undefined };
}

async function main(options: Options): Promise<number> {
  const { profile } = options;
  const prepared = await prepareTarget(options);
  const { target, liveState, database, auditSkipReason, entriesBefore } = prepared;
  const schedule = buildSchedule(profile);
  const expected = schedule.total + VALIDATION_REQUESTS;

  const usageBefore: Usage[] | undefined = liveState ? readUsage(liveState) : undefined;
  const machine = machineInfo();
  const git = gitInfo();
  const loadAverageStart = os.loadavg();
  const startedAt = new Date();
  const recorder = new Recorder();
  const ctx: Context = { target, recorder, runStart: performance.now() };
  const cpuStart = process.cpuUsage();
  const eventLoop = monitorEventLoopDelay({ resolution: 5 });
  eventLoop.enable();

  const names = phaseNames(profile);
  const phases = {
    s1: newPhase(names.s1),
    s2: newPhase(names.s2),
    s3: newPhase(names.s3),
    s4: newPhase(names.s4),
    s5: newPhase(names.s5),
    s6: newPhase(names.s6),
    load: newPhase(names.load),
  };
  let stage = 'S1';
  let loadStart: number | undefined;
  const stopProgress = startProgress(ctx, expected, profile, () => loadStart, () => stage);

  // Gatling's injector starts the scenarios that `andThen` unblocks on its next tick, and it
  // ticks every second from the start of the simulation: S2 starts at 1 s, S3 at 2 s, S4 at 3 s,
  // S5 and S6 at 4 s, and the load at 5 s (when every step is quick), hence "4 min 4-5 s" runs.
  const nextTick = (): Promise<void> => {
    const elapsed = performance.now() - ctx.runStart;
    return sleep((Math.floor(elapsed / 1000) + 1) * 1000 - elapsed);
  };
  await timed(ctx, phases.s1, () => Promise.all(times(25, () => exec(ctx, concurrentTransaction('d'), new Map(), false, phases.s1))));
  await nextTick();
  stage = 'S2';
  await timed(ctx, phases.s2, () => exec(ctx, concurrentBalance(-25), new Map(), false, phases.s2));
  await nextTick();
  stage = 'S3';
  await timed(ctx, phases.s3, () => Promise.all(times(25, () => exec(ctx, concurrentTransaction('c'), new Map(), false, phases.s3))));
  await nextTick();
  stage = 'S4';
  await timed(ctx, phases.s4, () => exec(ctx, concurrentBalance(0), new Map(), false, phases.s4));
  await nextTick();
  stage = 'S5+S6';
  await Promise.all([
    timed(ctx, phases.s5, () => Promise.all(CLIENTS.map((c) => clientValidations(ctx, c, phases.s5)))),
    (async () => {
      await timed(ctx, phases.s6, () => exec(ctx, notFoundRequest(), new Map(), false, phases.s6));
      await nextTick();
      await timed(ctx, phases.load, () => runLoad(ctx, schedule, options.rng, phases.load, (t0) => (loadStart = t0)));
    })(),
  ]);
  const runEnd = performance.now();
  stopProgress();
  eventLoop.disable();
  const finishedAt = new Date();
  const durationSeconds = (runEnd - ctx.runStart) / 1000;
  const cpu = process.cpuUsage(cpuStart);

  const usageAfter = liveState ? readUsage(liveState) : undefined;
  const auditResult = await audit(database, auditSkipReason, entriesBefore, recorder);
  const summary = buildRunSummary(recorder, {
    tool: 'node',
    startedAt,
    finishedAt,
    durationSeconds,
    profile,
    target: targetFacts(prepared),
    git,
    machine: { ...machine, loadAverageStart, loadAverageEnd: os.loadavg() },
    phases: Object.values(phases).map((p): PhaseResult => ({ name: p.name, requests: p.requests, ko: p.ko, atMs: p.startMs, ms: p.endMs - p.startMs })),
    loadStartSecond: loadStart === undefined ? undefined : (loadStart - ctx.runStart) / 1000,
    generator: {
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      eventLoopDelayP99Ms: eventLoop.count ? eventLoop.percentile(99) / 1e6 : null,
      eventLoopDelayMaxMs: eventLoop.count ? eventLoop.max / 1e6 : null,
      invalidReasons: [],
    },
    audit: auditResult,
    usage: usageDuring(usageBefore, usageAfter, durationSeconds),
  });

  console.log(formatSummary(summary));
  const written = writeRunReport(summary, options.out);
  console.log(`report: ${written.report}`);
  console.log(`index:  ${written.index}`);
  return exitStatusOf(summary);
}

if (require.main === module) runCli({ name: 'loadtest', usage: USAGE, parse: readOptions, run: main });
