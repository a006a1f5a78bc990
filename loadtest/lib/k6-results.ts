// A k6 run of loadtest/official/rinha.k6.js as one of the harness's own runs: its
// `k6 run --out json=FILE` samples become the per-request records the Node generator produces,
// replayed into the same Recorder, and summarised by the same buildRunSummary, so the report, the
// index and the verdict are the Node run's.
//
// What the script writes for this (rinha.k6.js, `avaliar`): every Gatling request adds one
// `gatling_response_time` sample, tagged with its group (`grupo`), `status`, method (`metodo`),
// its first failed check (`falha`, only on a KO) and k6's `scenario`. Its value is the response
// time on Gatling's clock (connection time included) and its time is when the response had been
// checked, so the request started at time − value (a few µs late: the checks' own time). k6's
// `dropped_iterations` samples count arrivals it could not start.
//
// The samples file is large (a few hundred bytes per sample, about 20 samples per request: 100+ MB
// for the official profile), so it is read line by line and only the two metrics are parsed.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { FULL_PROFILE, QUICK_PROFILE, phaseNames, type Group, type Profile } from './official-simulation';
import { gitInfo, machineInfo } from './provenance';
import { Recorder } from './stats';
import { buildRunSummary, type AuditResult, type PhaseResult, type RunSummary, type UsageRow } from './summary';

/** The file `npm run k6` has k6 write its samples to, in the run's directory. */
export const K6_SAMPLES_FILE = 'samples.json';
/** What `npm run k6` knew of the run besides the samples (target, audit, CPU), in the run's directory. */
export const K6_RUN_FILE = 'k6-run.json';
/** The script's handleSummary output (with K6_OUT_DIR): k6's own summary and the payout. */
export const K6_SUMMARY_FILE = 'k6-summary.json';
const K6_PAYOUT_FILE = 'payout.json';

/**
 * When the script's load scenarios start, after the test's start (rinha.k6.js FASES_MS.carga; the
 * k6 tests compare the two). k6 has no `andThen`, so the load starts at this fixed offset.
 */
export const K6_LOAD_START_S = 4;

/** The script's ASCII group tags and the harness's group names. */
const GROUP_OF_TAG: Record<string, Group> = { debitos: 'débitos', creditos: 'créditos', extratos: 'extratos', validacoes: 'validações' };

/** The script's scenarios and the simulation's phases. */
const PHASE_OF_SCENARIO: Record<string, keyof ReturnType<typeof phaseNames>> = {
  s1_debitos_concorrentes: 's1',
  s2_saldo_menos_25: 's2',
  s3_creditos_concorrentes: 's3',
  s4_saldo_zero: 's4',
  s5_validacoes: 's5',
  s6_http_404: 's6',
  debitos: 'load',
  creditos: 'load',
  extratos: 'load',
};

/** One request as the script recorded it; times in ms since the epoch (µs precision). */
export interface K6Request {
  group: Group;
  method: 'GET' | 'POST';
  status: number;
  /** the first failed check, or k6's transport error; undefined when OK */
  failure: string | undefined;
  scenario: string;
  startMs: number;
  endMs: number;
}

export interface K6Samples {
  requests: K6Request[];
  droppedIterations: number;
  /** lines that looked like a sample of ours but could not be read */
  unreadable: number;
}

/** An RFC 3339 time as k6 writes it (nanosecond fraction, Z or an offset), in ms since the epoch. */
export function rfc3339Ms(text: string): number {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!m) return NaN;
  // Date.parse keeps only milliseconds: the fraction is added apart.
  return Date.parse(`${m[1]}${m[3]}`) + (m[2] ? Number(`0${m[2]}`) * 1000 : 0);
}

interface Point {
  metric: string;
  type: string;
  data: { time: string; value: number; tags?: Record<string, string> };
}

/** One request from a `gatling_response_time` point, or undefined when the point is not one. */
export function requestOfPoint(p: Point): K6Request | undefined {
  const tags = p.data.tags ?? {};
  const group = GROUP_OF_TAG[tags.grupo];
  const endMs = rfc3339Ms(p.data.time);
  const status = Number(tags.status);
  if (!group || !Number.isFinite(endMs) || !Number.isInteger(status) || typeof p.data.value !== 'number') return undefined;
  return {
    group,
    method: tags.metodo === 'POST' ? 'POST' : 'GET',
    status,
    failure: tags.falha,
    scenario: tags.scenario ?? '',
    startMs: endMs - p.data.value,
    endMs,
  };
}

/** Reads a `k6 run --out json` file line by line, keeping the requests and the dropped arrivals. */
export async function readK6Samples(file: string): Promise<K6Samples> {
  const out: K6Samples = { requests: [], droppedIterations: 0, unreadable: 0 };
  const lines = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) {
    // Most lines are k6's own http_req_* samples: skip them before paying for JSON.parse.
    const ours = line.includes('"gatling_response_time"');
    if (!ours && !line.includes('"dropped_iterations"')) continue;
    let p: Point;
    try {
      p = JSON.parse(line) as Point;
    } catch {
      out.unreadable++;
      continue;
    }
    if (p.type !== 'Point') continue;
    if (p.metric === 'dropped_iterations') out.droppedIterations += p.data.value;
    else if (p.metric === 'gatling_response_time') {
      const r = requestOfPoint(p);
      if (r) out.requests.push(r);
      else out.unreadable++;
    }
  }
  return out;
}

/** A k6 run's requests replayed into a Recorder, with the phases and the run's time span. */
export interface ReplayedK6Run {
  recorder: Recorder;
  phases: PhaseResult[];
  /** the first request's start and the last one's end, ms since the epoch */
  startMs: number;
  endMs: number;
}

/**
 * Feeds the requests to a Recorder in time order (starts and ends interleaved, so the in-flight
 * count is the Node run's), on a clock whose zero is the first request's start (S1, as in the
 * Node run).
 */
export function replayK6Run(requests: K6Request[], profile: Profile): ReplayedK6Run {
  const recorder = new Recorder();
  if (requests.length === 0) return { recorder, phases: [], startMs: NaN, endMs: NaN };
  let zero = Infinity;
  let end = -Infinity;
  for (const r of requests) {
    zero = Math.min(zero, r.startMs);
    end = Math.max(end, r.endMs);
  }
  // Events: +1 = a start, -1 = an end; at the same instant ends first (a request that ended frees its place).
  const events: { t: number; kind: 1 | -1; r: K6Request }[] = [];
  for (const r of requests) events.push({ t: r.startMs, kind: 1, r }, { t: r.endMs, kind: -1, r });
  events.sort((a, b) => a.t - b.t || a.kind - b.kind);
  for (const e of events) {
    if (e.kind === 1) recorder.started(e.t - zero);
    else recorder.record({ group: e.r.group, startMs: e.r.startMs - zero, endMs: e.r.endMs - zero, status: e.r.status, failure: e.r.failure }, e.r.method);
  }
  const names = phaseNames(profile);
  const phases = (Object.keys(names) as (keyof typeof names)[]).map((key): PhaseResult => {
    let count = 0;
    let ko = 0;
    let from = Infinity;
    let to = -Infinity;
    for (const r of requests) {
      if (PHASE_OF_SCENARIO[r.scenario] !== key) continue;
      count++;
      if (r.failure !== undefined) ko++;
      from = Math.min(from, r.startMs);
      to = Math.max(to, r.endMs);
    }
    return count === 0 ? { name: names[key], requests: 0, ko: 0, atMs: 0, ms: 0 } : { name: names[key], requests: count, ko, atMs: from - zero, ms: to - from };
  });
  return { recorder, phases, startMs: zero, endMs: end };
}

/** What `npm run k6` records besides the samples (K6_RUN_FILE); a bare `k6 run` leaves none. */
export interface K6RunRecord {
  version: 1;
  profile: Profile['name'];
  target: RunSummary['target'];
  git: RunSummary['git'];
  machine: RunSummary['machine'];
  /** k6's own CPU (user + system) over its whole run */
  generatorCpuSeconds: number | undefined;
  k6Version: string;
  /** k6's exit status: 0, 99 when a threshold failed */
  exitCode: number | null;
  audit: AuditResult;
  usage: UsageRow[] | undefined;
}

/** Thresholds k6 reported failed in the script's summary.json, as "metric: rule". */
export function failedThresholds(k6Summary: { metrics?: Record<string, { thresholds?: Record<string, { ok: boolean }> }> }): string[] {
  const failed: string[] = [];
  for (const [metric, m] of Object.entries(k6Summary.metrics ?? {})) for (const [rule, t] of Object.entries(m.thresholds ?? {})) if (!t.ok) failed.push(`${metric}: ${rule}`);
  return failed.sort();
}

const profileNamed = (name: string | undefined): Profile => (name === 'quick' ? QUICK_PROFILE : FULL_PROFILE);

/** The run summary of a replayed k6 run: buildRunSummary with what k6 and `npm run k6` recorded. */
export function k6RunSummary(run: ReplayedK6Run, record: K6RunRecord, samples: Pick<K6Samples, 'droppedIterations'>, thresholdsFailed: string[]): RunSummary {
  const profile = profileNamed(record.profile);
  const dropped = samples.droppedIterations;
  const durationSeconds = Math.max(0.001, (run.endMs - run.startMs) / 1000);
  return buildRunSummary(run.recorder, {
    tool: 'k6',
    startedAt: new Date(run.startMs),
    finishedAt: new Date(run.endMs),
    durationSeconds,
    profile,
    target: record.target,
    git: record.git,
    machine: record.machine,
    phases: run.phases,
    loadStartSecond: K6_LOAD_START_S,
    generator: {
      cpuSeconds: record.generatorCpuSeconds,
      eventLoopDelayP99Ms: null,
      eventLoopDelayMaxMs: null,
      // k6 reports no per-arrival lag; an arrival it could not start at all is the open model broken.
      invalidReasons: dropped > 0 ? [`k6 dropped ${dropped} arrival(s) (dropped_iterations: no free VU when they were due)`] : [],
    },
    audit: record.audit,
    usage: record.usage,
    k6: { version: record.k6Version, exitCode: record.exitCode, droppedIterations: dropped, failedThresholds: thresholdsFailed, samplesFile: K6_SAMPLES_FILE },
  });
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * The summary of a k6 run directory (`npm run report -- DIR`): its samples, and what `npm run k6`
 * recorded; for a bare `k6 run --out json=DIR/samples.json` with K6_OUT_DIR=DIR, the profile comes
 * from the script's payout.json, the machine and commit are this one's now, and there is no audit.
 */
export async function summarizeK6RunDir(dir: string): Promise<RunSummary> {
  const samplesFile = path.join(dir, K6_SAMPLES_FILE);
  if (!fs.existsSync(samplesFile)) throw new Error(`${dir} holds no ${K6_SAMPLES_FILE} (k6 run --out json=${samplesFile} writes it)`);
  const samples = await readK6Samples(samplesFile);
  if (samples.requests.length === 0) throw new Error(`${samplesFile} holds no gatling_response_time samples: not a run of loadtest/official/rinha.k6.js?`);
  const record = readJson<K6RunRecord>(path.join(dir, K6_RUN_FILE)) ?? bareRunRecord(dir);
  const k6Summary = readJson<Parameters<typeof failedThresholds>[0]>(path.join(dir, K6_SUMMARY_FILE));
  const run = replayK6Run(samples.requests, profileNamed(record.profile));
  return k6RunSummary(run, record, samples, k6Summary ? failedThresholds(k6Summary) : []);
}

function bareRunRecord(dir: string): K6RunRecord {
  const payout = readJson<{ perfil?: string }>(path.join(dir, K6_PAYOUT_FILE));
  return {
    version: 1,
    profile: payout?.perfil === 'quick' ? 'quick' : 'full',
    target: { baseUrl: 'not recorded (a bare k6 run)' },
    git: gitInfo(),
    machine: { ...machineInfo(), loadAverageStart: [], loadAverageEnd: [] },
    generatorCpuSeconds: undefined,
    k6Version: 'not recorded',
    exitCode: null,
    audit: { status: 'skipped', reason: 'a bare k6 run has no database audit (npm run k6 runs one)', failures: [], ledger: [], problems: [] },
    usage: undefined,
  };
}
