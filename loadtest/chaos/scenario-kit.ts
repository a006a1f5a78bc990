// What every chaos scenario uses (npm run chaos -- <scenario>): a private native stack per
// scenario, the official open-model load (lib/official-simulation.ts, lib/stats.ts),
// one record per request with a unique descricao, the audit and reconciliation against the
// ledger, a verdict, and a results line appended to reports/chaos/results.jsonl.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { StackClient, portOffset } from '../../stack/client';
import type { StackState } from '../../stack/state';
import { pgQueries } from '../lib/database';
import { formatRequest, httpExchange, localTarget } from '../lib/http';
import { LOAD_GROUPS, OFFICIAL_MIX, buildSchedule, isOkStatus, randomClienteId, randomValor, seededRng, transactionPayload, type LoadGroup, type Mix, type Profile, type Rng } from '../lib/official-simulation';
import { arrivalCount, mixSequence, packRequests, runStep } from '../lib/open-model';
import { REPO } from '../lib/provenance';
import { Recorder, lagVerdict, newHistogram, type LagStats } from '../lib/stats';

const RESULTS_DIR = path.join(REPO, 'reports', 'chaos');

// ---------------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------------

export interface StackOptions {
  /** PostgreSQL settings file included after postgresql.conf (PG_SETTINGS). */
  pgSettings?: string;
  env?: Record<string, string>;
  log?: (line: string) => void;
}

/** A scenario's own stack: home and ports derived from its name. */
export class ChaosStack extends StackClient {
  constructor(
    readonly name: string,
    private readonly options: StackOptions = {},
  ) {
    const offset = portOffset(name, 900, 7);
    super({
      home: path.join(REPO, `.stack-chaos-${name}`),
      httpPort: 29000 + offset,
      pgPort: 59000 + offset,
      env: { ...options.env, PG_SETTINGS: options.pgSettings ? path.resolve(REPO, options.pgSettings) : undefined },
    });
  }

  /** Starts the stack and logs the lines of its start-up that say what runs. */
  override async up(): Promise<StackState> {
    const state = await super.up();
    this.options.log?.(this.upOutput.trim().split('\n').filter((l) => /envelope|ready|db:/.test(l)).join('\n'));
    return state;
  }
}

// ---------------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------------

/** Retries every `pollMs` until the database answers (after a restart). */
export async function waitForDatabase(conninfo: string, timeoutMs = 30_000, pollMs = 200): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    try {
      await pgQueries(conninfo, ['SELECT 1']);
      return;
    } catch (err) {
      if (performance.now() - t0 > timeoutMs) throw err;
      await sleep(pollMs);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The load: the official open model (new connection per request), unique descricao per POST
// ---------------------------------------------------------------------------------------------

export interface RequestOutcome {
  seq: number;
  group: LoadGroup;
  method: 'GET' | 'POST';
  client: number;
  descricao?: string;
  tipo?: 'c' | 'd';
  valor?: number;
  /** 0: no HTTP response (connection error or timeout) */
  status: number;
  error?: string;
  /** ms since the load started */
  scheduledMs: number;
  startMs: number;
  endMs: number;
}

export type Rates = Mix;

/** The official peak. */
export const PEAK: Rates = OFFICIAL_MIX;

export const scaleRates = (r: Rates, k: number): Rates => ({ debits: r.debits * k, credits: r.credits * k, statements: r.statements * k });

export interface LoadOptions {
  port: number;
  rates: Rates;
  durationS: number;
  /** descricao prefix (1-3 characters); the rest of the 10 characters is a serial number */
  prefix: string;
  seed?: number;
  timeoutMs?: number;
  /** called once with the load's time zero (performance.now()) */
  onStart?: (t0: number) => void;
  /** keep-alive agent instead of a new connection per request (the official model uses none) */
  agent?: http.Agent;
  /**
   * 'node-http' (default): node:http clients on three independent schedules, as the official test
   * port does. 'raw-socket': lib/open-model.ts's generator, evenly spaced arrivals in the rates'
   * proportions, at a fraction of the CPU per connection: what it takes for one Node process to
   * offer thousands of new connections per second on a machine whose cores the stack shares.
   */
  generator?: 'node-http' | 'raw-socket';
}

export interface LoadResult {
  t0: number;
  outcomes: RequestOutcome[];
  recorder: Recorder;
  lag: LagStats;
  lagValid: boolean;
  lagReasons: string[];
  /** the generator's CPU-seconds per second during the load (raw-socket generator only) */
  generatorCpuUtil?: number;
}

/** A constant-rate Gatling profile (no ramp), scheduled exactly as lib/official-simulation.ts does. */
function constantProfile(rates: Rates, seconds: number): Profile {
  return {
    name: 'quick',
    rampSeconds: 0,
    constantSeconds: seconds,
    scenarios: [
      { group: 'débitos', startRate: rates.debits, peakRate: rates.debits },
      { group: 'créditos', startRate: rates.credits, peakRate: rates.credits },
      { group: 'extratos', startRate: rates.statements, peakRate: rates.statements },
    ].filter((s) => s.peakRate > 0) as Profile['scenarios'],
    description: `constant ${rates.debits}/${rates.credits}/${rates.statements} per s for ${seconds} s`,
  };
}

/** One request to the stack's nginx on localhost; a transport error or a cut response is status 0. */
function exchange(port: number, method: 'GET' | 'POST', urlPath: string, body: string | undefined, agent: http.Agent | false, timeoutMs: number, onDone: (status: number, error?: string) => void): void {
  const target = localTarget(port);
  httpExchange(target, { method, path: urlPath, body }, agent, (r) => onDone(r.error ? 0 : r.status, r.error), timeoutMs);
}

/** A 10-character descricao unique within the run: prefix + base-36 serial. */
function descricaoFor(prefix: string, n: number): string {
  return prefix + n.toString(36).padStart(10 - prefix.length, '0');
}

/** Request seq of a run: its record (for a POST, an amount and a descricao unique in the run) and what to send. */
function newRequest(seq: number, group: LoadGroup, rng: Rng, prefix: string, scheduledMs: number): { o: RequestOutcome; path: string; body?: string } {
  const client = randomClienteId(rng);
  const o: RequestOutcome = { seq, group, method: group === 'extratos' ? 'GET' : 'POST', client, status: 0, scheduledMs, startMs: 0, endMs: 0 };
  if (o.method === 'GET') return { o, path: `/clientes/${client}/extrato` };
  o.tipo = group === 'débitos' ? 'd' : 'c';
  o.valor = randomValor(rng);
  o.descricao = descricaoFor(prefix, seq);
  return { o, path: `/clientes/${client}/transacoes`, body: transactionPayload(o.valor, o.tipo, o.descricao) };
}

/**
 * Open-model load: every arrival starts at t0 + its scheduled time on a new connection, whatever
 * the response times (official-test.ts's runLoad, with per-request records kept).
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  if (options.generator === 'raw-socket') return runLoadRawSocket(options);
  const schedule = buildSchedule(constantProfile(options.rates, options.durationS));
  const rng: Rng = options.seed === undefined ? Math.random : seededRng(options.seed);
  const recorder = new Recorder();
  const outcomes: RequestOutcome[] = [];
  const timeoutMs = options.timeoutMs ?? 60_000;
  const agent = options.agent ?? false;
  return new Promise((resolve) => {
    const t0 = performance.now();
    options.onStart?.(t0);
    let next = 0;
    let pending = 0;
    const finish = (): void => {
      const lag = recorder.lagStats();
      const v = lagVerdict(lag);
      resolve({ t0, outcomes, recorder, lag, lagValid: v.valid, lagReasons: v.reasons });
    };
    const tick = (): void => {
      const elapsedS = (performance.now() - t0) / 1000;
      while (next < schedule.total && schedule.times[next] <= elapsedS) {
        const scheduledAt = t0 + schedule.times[next] * 1000;
        const group = LOAD_GROUPS[schedule.groups[next]];
        const { o, path: urlPath, body } = newRequest(next++, group, rng, options.prefix, scheduledAt - t0);
        const start = performance.now();
        o.startMs = start - t0;
        recorder.started(o.startMs);
        pending++;
        exchange(options.port, o.method, urlPath, body, agent, timeoutMs, (status, error) => {
          o.endMs = performance.now() - t0;
          o.status = status;
          if (error) o.error = error;
          recorder.record({ group, startMs: o.startMs, endMs: o.endMs, status, failure: isOk(o) ? undefined : error ?? `status ${status}`, lagUs: Math.max(0, (start - scheduledAt) * 1000), scheduledMs: o.scheduledMs }, o.method);
          outcomes.push(o);
          pending--;
          if (next >= schedule.total && pending === 0) finish();
        });
      }
      if (next >= schedule.total) {
        if (pending === 0) finish();
        return;
      }
      setTimeout(tick, Math.max(0, t0 + schedule.times[next] * 1000 - performance.now()));
    };
    tick();
  });
}

/** The same load and the same records on raw sockets (see LoadOptions.generator). */
async function runLoadRawSocket(options: LoadOptions): Promise<LoadResult> {
  if (options.agent) throw new Error('the raw-socket generator opens a new connection per request; it takes no agent');
  const { rates } = options;
  const ratePerS = rates.debits + rates.credits + rates.statements;
  const n = arrivalCount(ratePerS, options.durationS);
  const rng: Rng = options.seed === undefined ? Math.random : seededRng(options.seed);
  const kinds = mixSequence(rates, n);
  const outcomes: RequestOutcome[] = new Array(n);
  const texts: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    // The generator's kinds are debits, credits, statements: LOAD_GROUPS' order.
    const r = newRequest(i, LOAD_GROUPS[kinds[i]], rng, options.prefix, 0);
    outcomes[i] = r.o;
    texts[i] = formatRequest({ method: r.o.method, path: r.path, body: r.body }, `127.0.0.1:${options.port}`);
  }
  // Throws for a non-ASCII descricao prefix, whose Content-Length would be wrong.
  const prepared = packRequests(texts, kinds);
  const recorder = new Recorder();
  let t0 = 0;
  const step = await runStep({
    port: options.port,
    ratePerS,
    durationS: options.durationS,
    prepared,
    timeoutMs: options.timeoutMs ?? 60_000,
    onStart: (t) => {
      t0 = t;
      options.onStart?.(t);
    },
    onOutcome: (i, r) => {
      const o = outcomes[i];
      o.scheduledMs = r.scheduledAt - t0;
      o.startMs = r.sentAt - t0;
      o.endMs = r.endAt - t0;
      o.status = r.status;
      // The generator's 'error:ECONNRESET' becomes 'ECONNRESET' and its 'timeout' node-http's
      // 'TIMEOUT', so statusCounts has the same keys for both generators; 'EOF' (closed before a
      // complete response) and 'malformed-response' have no node-http equivalent.
      if (r.status === 0) o.error = r.outcome === 'timeout' ? 'TIMEOUT' : r.outcome.replace(/^error:/, '');
      // Recorded at completion, so the Recorder's in-flight counts mean nothing for this
      // generator (nothing in the chaos scenarios reads them).
      recorder.started(o.startMs);
      recorder.record({ group: o.group, startMs: o.startMs, endMs: o.endMs, status: o.status, failure: isOk(o) ? undefined : o.error ?? `status ${o.status}`, lagUs: Math.max(0, (r.sentAt - r.scheduledAt) * 1000), scheduledMs: o.scheduledMs }, o.method);
    },
  });
  const lag = recorder.lagStats();
  const v = lagVerdict(lag);
  return { t0, outcomes, recorder, lag, lagValid: v.valid, lagReasons: v.reasons, generatorCpuUtil: step.generatorCpuUtil };
}

// ---------------------------------------------------------------------------------------------
// Numbers about a load
// ---------------------------------------------------------------------------------------------

/** A request the service answered as it should (a 422 is a valid answer to a debit). */
export const isOk = (o: RequestOutcome): boolean => isOkStatus(o.group, o.status);

export function statusCounts(outcomes: RequestOutcome[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) {
    const k = o.status === 0 ? `error(${(o.error ?? '').split(':')[0]})` : String(o.status);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export interface LatencySummary {
  count: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export function latency(outcomes: RequestOutcome[]): LatencySummary {
  const h = newHistogram(3);
  let max = 0;
  for (const o of outcomes) {
    const ms = o.endMs - o.startMs;
    max = Math.max(max, ms);
    h.recordValue(Math.max(1, Math.round(ms * 1000)));
  }
  const n = outcomes.length;
  const r = (v: number): number => Math.round(v) / 1000;
  return { count: n, p50: n ? r(h.getValueAtPercentile(50)) : null, p99: n ? r(h.getValueAtPercentile(99)) : null, max: n ? Math.round(max * 1000) / 1000 : null };
}

export interface ErrorWindow {
  failed: number;
  byStatus: Record<string, number>;
  /** first failed request's start to the last failed request's end, ms (0 when none) */
  windowMs: number;
  firstMs: number | null;
  lastMs: number | null;
}

export function errorWindow(outcomes: RequestOutcome[]): ErrorWindow {
  const failed = outcomes.filter((o) => !isOk(o));
  if (failed.length === 0) return { failed: 0, byStatus: {}, windowMs: 0, firstMs: null, lastMs: null };
  const first = Math.min(...failed.map((o) => o.startMs));
  const last = Math.max(...failed.map((o) => o.endMs));
  return { failed: failed.length, byStatus: statusCounts(failed), windowMs: round1(last - first), firstMs: round1(first), lastMs: round1(last) };
}

export const round1 = (x: number): number => Math.round(x * 10) / 10;

/**
 * Recovery after a fault at `faultMs` (ms since the load started): the first 200 to a request
 * started after the first failure the fault caused (backends that outlive a killed postmaster
 * may still answer for a moment, which is not a recovery), and the end of the last failure.
 */
export function recovery(outcomes: RequestOutcome[], faultMs: number): { firstOkAfterMs: number | null; steadyAfterMs: number | null } {
  const failed = outcomes.filter((o) => !isOk(o) && o.endMs >= faultMs);
  if (failed.length === 0) return { firstOkAfterMs: 0, steadyAfterMs: 0 };
  const firstFailEnd = Math.min(...failed.map((o) => o.endMs));
  const lastFailEnd = Math.max(...failed.map((o) => o.endMs));
  const firstOk = outcomes.filter((o) => o.status === 200 && o.startMs >= firstFailEnd).sort((a, b) => a.endMs - b.endMs)[0];
  return { firstOkAfterMs: firstOk ? round1(firstOk.endMs - faultMs) : null, steadyAfterMs: round1(lastFailEnd - faultMs) };
}

// ---------------------------------------------------------------------------------------------
// Audit and reconciliation
// ---------------------------------------------------------------------------------------------

export interface Reconciliation {
  acknowledged: number;
  /** acknowledged with 200 but not in the ledger */
  lost: number;
  lostSample: string[];
  /** a descricao present more than once (a replayed POST) */
  duplicates: number;
  duplicateSample: string[];
  /** not acknowledged with 200 but in the ledger (e.g. a 502 whose commit had happened) */
  appliedUnacknowledged: number;
  appliedUnacknowledgedByStatus: Record<string, number>;
  /** ledger entries of this run's prefix that no request of the run sent (must be 0) */
  unknown: number;
  auditFailures: Record<string, unknown>[];
  balancesBelowLimit: number;
  problems: string[];
}

/**
 * Each POST answered 200 is in the ledger exactly once, nothing is replayed, no balance is below
 * -limite, and every balance equals its ledger (the audit_failures view).
 */
export async function reconcile(conninfo: string, prefix: string, outcomes: RequestOutcome[]): Promise<Reconciliation> {
  await waitForDatabase(conninfo);
  const [rows, failures, below] = await pgQueries(conninfo, [
    `SELECT description AS d, count(*)::int AS n FROM ledger WHERE description LIKE '${prefix.replace(/'/g, "''")}%' GROUP BY description`,
    'SELECT * FROM audit_failures ORDER BY id',
    'SELECT count(*)::int AS n FROM accounts WHERE balance < -credit_limit',
  ]);
  const inLedger = new Map(rows.map((r) => [String(r.d), Number(r.n)]));
  const posts = outcomes.filter((o) => o.method === 'POST');
  const sent = new Set(posts.map((o) => o.descricao!));
  const ack = posts.filter((o) => o.status === 200);
  const lost = ack.filter((o) => !inLedger.has(o.descricao!)).map((o) => o.descricao!);
  const dups = [...inLedger.entries()].filter(([, n]) => n > 1).map(([d]) => d);
  const appliedUnack = posts.filter((o) => o.status !== 200 && inLedger.has(o.descricao!));
  const unknown = [...inLedger.keys()].filter((d) => !sent.has(d));
  const r: Reconciliation = {
    acknowledged: ack.length,
    lost: lost.length,
    lostSample: lost.slice(0, 10),
    duplicates: dups.length,
    duplicateSample: dups.slice(0, 10),
    appliedUnacknowledged: appliedUnack.length,
    appliedUnacknowledgedByStatus: statusCounts(appliedUnack),
    unknown: unknown.length,
    auditFailures: failures,
    balancesBelowLimit: Number(below[0].n),
    problems: [],
  };
  if (r.lost) r.problems.push(`${r.lost} transaction(s) acknowledged with 200 are missing from the ledger (${r.lostSample.join(', ')})`);
  if (r.duplicates) r.problems.push(`${r.duplicates} descricao(s) appear more than once in the ledger: a POST was replayed (${r.duplicateSample.join(', ')})`);
  if (r.unknown) r.problems.push(`${r.unknown} ledger entries with this run's prefix were never sent`);
  if (failures.length) r.problems.push(`audit_failures: ${JSON.stringify(failures)}`);
  if (r.balancesBelowLimit) r.problems.push(`${r.balancesBelowLimit} balance(s) below -limite`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------------------------

export interface Verdict {
  scenario: string;
  pass: boolean;
  /** why it failed (empty on PASS) */
  reasons: string[];
  /** notes that do not fail the run (e.g. the generator's lag) */
  notes: string[];
  numbers: Record<string, unknown>;
  startedAt: string;
  durationS: number;
}

export class VerdictBuilder {
  readonly reasons: string[] = [];
  readonly notes: string[] = [];
  readonly numbers: Record<string, unknown> = {};
  private readonly started = new Date();
  private readonly t0 = performance.now();

  constructor(readonly scenario: string) {}

  check(ok: boolean, what: string): boolean {
    if (!ok) this.reasons.push(what);
    return ok;
  }

  note(what: string): void {
    this.notes.push(what);
  }

  set(key: string, value: unknown): void {
    this.numbers[key] = value;
  }

  /** Adds the reconciliation's numbers and problems. Contest-profile loss may be tolerated. */
  books(r: Reconciliation, options: { tolerateLost?: boolean } = {}): void {
    this.set('books', {
      acknowledged: r.acknowledged,
      lost: r.lost,
      duplicates: r.duplicates,
      appliedUnacknowledged: r.appliedUnacknowledged,
      appliedUnacknowledgedByStatus: r.appliedUnacknowledgedByStatus,
      auditFailures: r.auditFailures.length,
      balancesBelowLimit: r.balancesBelowLimit,
    });
    for (const p of r.problems) {
      if (options.tolerateLost && p.includes('missing from the ledger')) this.note(`documented loss (contest profile): ${p}`);
      else this.reasons.push(p);
    }
  }

  /** Reconciles the run's requests against the ledger and adds the books (see books()). */
  async reconcile(conninfo: string, prefix: string, outcomes: RequestOutcome[], options: { tolerateLost?: boolean } = {}): Promise<Reconciliation> {
    const r = await reconcile(conninfo, prefix, outcomes);
    this.books(r, options);
    return r;
  }

  lag(load: LoadResult): void {
    this.set('generatorLag', { p99Ms: load.lag.p99Ms, maxMs: load.lag.maxMs });
    if (!load.lagValid) this.note(`the generator fell behind (${load.lagReasons.join('; ')}): the arrival process was not exactly the official one`);
  }

  finish(): Verdict {
    return {
      scenario: this.scenario,
      pass: this.reasons.length === 0,
      reasons: this.reasons,
      notes: this.notes,
      numbers: this.numbers,
      startedAt: this.started.toISOString(),
      durationS: round1((performance.now() - this.t0) / 1000),
    };
  }
}

/** Prints the verdict and appends it to reports/chaos/results.jsonl. */
export function report(v: Verdict, print: (line: string) => void = console.log): void {
  print('');
  print(`${v.pass ? 'PASS' : 'FAIL'}  ${v.scenario}  (${v.durationS} s)`);
  for (const [k, val] of Object.entries(v.numbers)) print(`  ${k}: ${typeof val === 'object' ? JSON.stringify(val) : String(val)}`);
  for (const n of v.notes) print(`  note: ${n}`);
  for (const r of v.reasons) print(`  FAILED: ${r}`);
  try {
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    fs.appendFileSync(path.join(RESULTS_DIR, 'results.jsonl'), `${JSON.stringify(v)}\n`);
  } catch (err) {
    print(`  (could not append to ${RESULTS_DIR}/results.jsonl: ${(err as Error).message})`);
  }
}

/**
 * A scenario on its own stack: `body` starts it, loads and checks; the stack is stopped whatever
 * happens, then the verdict is finished, and printed and appended unless quiet.
 */
export async function onOwnStack(stack: StackClient, v: VerdictBuilder, options: ScenarioOptions, log: (line: string) => void, body: () => Promise<void>): Promise<Verdict> {
  try {
    await body();
  } finally {
    stack.down();
  }
  const verdict = v.finish();
  if (!options.quiet) report(verdict, log);
  return verdict;
}

export interface ScenarioOptions {
  /** load seconds (default: the scenario's own) */
  durationS?: number;
  /** multiplies the official peak rates */
  rateScale?: number;
  runs?: number;
  /** PostgreSQL settings included after postgresql.conf (e.g. postgresql.safe.conf) */
  pgSettings?: string;
  /** durability: crash runs only */
  skipCost?: boolean;
  /** pg-flap: how many times PostgreSQL goes down */
  flaps?: number;
  seed?: number;
  log?: (line: string) => void;
  /** do not print/append the verdict (the caller does) */
  quiet?: boolean;
}

let prefixes = 0;
/** A descricao prefix of 3 characters, different for every load of the process. */
export function runPrefix(letter: string): string {
  return letter + (prefixes++ % 1296).toString(36).padStart(2, '0');
}

// ---------------------------------------------------------------------------------------------
// Closed-loop throughput (autocannon-style): N connections, each sends its next POST as soon as
// the previous one answered. Measures what a configuration can sustain, not an arrival process.
// ---------------------------------------------------------------------------------------------

export interface ThroughputResult {
  requests: number;
  ok: number;
  /** answered requests (200 or a debit's 422) per second */
  throughput: number;
  latencyMs: LatencySummary;
  statuses: Record<string, number>;
  outcomes: RequestOutcome[];
}

export async function closedLoop(options: { port: number; connections: number; durationS: number; prefix: string; seed?: number }): Promise<ThroughputResult> {
  const rng: Rng = options.seed === undefined ? Math.random : seededRng(options.seed);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
  const outcomes: RequestOutcome[] = [];
  const t0 = performance.now();
  const end = t0 + options.durationS * 1000;
  let seq = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const n = seq++;
      const client = randomClienteId(rng);
      const tipo: 'c' | 'd' = rng() < 2 / 3 ? 'd' : 'c';
      const o: RequestOutcome = { seq: n, group: tipo === 'd' ? 'débitos' : 'créditos', method: 'POST', client, tipo, valor: randomValor(rng), descricao: descricaoFor(options.prefix, n), status: 0, scheduledMs: 0, startMs: performance.now() - t0, endMs: 0 };
      o.scheduledMs = o.startMs;
      const body = transactionPayload(o.valor!, tipo, o.descricao!);
      await new Promise<void>((resolve) =>
        exchange(options.port, 'POST', `/clientes/${client}/transacoes`, body, agent, 10_000, (status, error) => {
          o.status = status;
          if (error) o.error = error;
          o.endMs = performance.now() - t0;
          outcomes.push(o);
          resolve();
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  agent.destroy();
  const elapsedS = (performance.now() - t0) / 1000;
  const ok = outcomes.filter(isOk).length;
  return { requests: outcomes.length, ok, throughput: Math.round((ok / elapsedS) * 10) / 10, latencyMs: latency(outcomes), statuses: statusCounts(outcomes), outcomes };
}
