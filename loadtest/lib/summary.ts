// The result of one load run (written as summary.json), built the same way whichever generator
// sent the requests (the Node harness or k6), and its Gatling-style text rendering.

import { GROUPS, LOWER_BOUND_MS, HIGHER_BOUND_MS, VALIDATION_REQUESTS, buildSchedule, computePayout, type Group, type Payout, type Profile } from './official-simulation';
import type { Usage } from '../../stack/cgroups';
import { DISTRIBUTION_PER_DECADE, LAG_LIMITS, lagVerdict, type LagStats, type LatencyStats, type Recorder, type TimelinePoint, type WindowLatency } from './stats';

export interface UsageRow {
  name: string;
  /** CPU seconds spent during the run (difference of readUsage before and after), or since start when only one reading exists */
  cpuSeconds: number;
  /** average cores used during the run */
  cpuCores?: number;
  cpuLimit?: number;
  peakMemoryBytes: number;
  memoryLimitBytes?: number;
  oomKills?: number;
  /** peak RSS of the component's main process (the APIs), which counts shared pages the cgroup may not */
  peakRssBytes?: number;
  /** CFS periods in which the component ran out of CPU quota during the run, and the time it waited */
  throttledPeriods?: number;
  throttledSeconds?: number;
}

/** CPU spent during the run: the difference of two cumulative readings of the stack's cgroups. */
export function usageDuring(before: Usage[] | undefined, after: Usage[] | undefined, seconds: number): UsageRow[] | undefined {
  if (!after) return undefined;
  return after.map((u) => {
    const b = before?.find((x) => x.name === u.name);
    const cpu = b ? Math.max(0, u.cpuSeconds - b.cpuSeconds) : u.cpuSeconds;
    return {
      name: u.name,
      cpuSeconds: cpu,
      cpuCores: b && seconds > 0 ? cpu / seconds : undefined,
      cpuLimit: u.cpuLimit,
      peakMemoryBytes: u.peakMemoryBytes,
      memoryLimitBytes: u.memoryLimitBytes,
      peakRssBytes: u.peakRssBytes,
      oomKills: Math.max(0, u.oomKills - (b?.oomKills ?? 0)),
      throttledPeriods: u.throttledPeriods === undefined ? undefined : u.throttledPeriods - (b?.throttledPeriods ?? 0),
      throttledSeconds: u.throttledSeconds === undefined ? undefined : u.throttledSeconds - (b?.throttledSeconds ?? 0),
    };
  });
}

export interface AuditResult {
  status: 'passed' | 'failed' | 'skipped' | 'error';
  /** why the audit was skipped or errored */
  reason?: string;
  /** rows of the audit_failures view (empty when the books are straight) */
  failures: Record<string, unknown>[];
  /** rows of the ledger_audit view, one per client */
  ledger: Record<string, unknown>[];
  /** further findings that fail the audit, e.g. ledger entries vs POSTs answered 200 */
  problems: string[];
  ledgerEntries?: number;
  postsOk?: number;
  postsUnanswered?: number;
}

export interface PhaseResult {
  name: string;
  requests: number;
  ko: number;
  /** start, ms after the run started */
  atMs: number;
  /** duration */
  ms: number;
}

/** What only a k6 run has: k6's own verdict and what the converter read (loadtest/lib/k6-results.ts). */
export interface K6Facts {
  version: string;
  /** k6's exit status: 0, or 99 when a threshold failed */
  exitCode: number | null;
  /** arrivals k6 could not start (no free VU): Gatling's open model never drops one */
  droppedIterations: number;
  /** thresholds k6 reported failed, as "metric: rule" */
  failedThresholds: string[];
  /** the --out json file the requests were read from, relative to the run's directory */
  samplesFile: string;
}

export interface RunSummary {
  version: 1;
  /** the load generator; absent in summaries written before k6 runs had reports: node */
  tool?: 'node' | 'k6';
  k6?: K6Facts;
  id: string;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  profile: Pick<Profile, 'name' | 'description' | 'rampSeconds' | 'constantSeconds' | 'scenarios'> & { expectedRequests: number; loadRequests: Record<string, number> };
  target: { baseUrl: string; stackHome?: string; database?: string; envelope?: unknown };
  git: { commit: string; dirty: boolean };
  machine: { cpus: number; model: string; totalMemoryBytes: number; kernel: string; node: string; platform: string; loadAverageStart: number[]; loadAverageEnd: number[] };
  groups: Record<Group, LatencyStats>;
  total: LatencyStats & { requestsPerSecond: number };
  statuses: Record<string, number>;
  errors: { message: string; count: number; groups: Group[]; consistency: boolean }[];
  payout: Payout;
  phases: PhaseResult[];
  lag: LagStats & { limits: typeof LAG_LIMITS; valid: boolean; reasons: string[]; eventLoopDelayP99Ms: number | null; eventLoopDelayMaxMs: number | null; generatorCpuSeconds?: number };
  timeline: { loadStartSecond: number; points: TimelinePoint[] };
  /**
   * The load's ramp and plateau apart (requests started in each, validations included): at the
   * ramp's low rates every hop pays the host's wake-up cost, so its p99 sits above the plateau's
   */
  stages?: { ramp: WindowLatency; plateau: WindowLatency };
  distribution: { perDecade: number; ok: number[]; ko: number[] };
  audit: AuditResult;
  usage?: UsageRow[];
  verdict: { pass: boolean; valid: boolean; reasons: string[] };
}

// ---------------------------------------------------------------------------------------------
// Formatting helpers shared with the HTML report
// ---------------------------------------------------------------------------------------------

export function fmtMs(x: number | null | undefined): string {
  if (x === null || x === undefined) return '-';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

export function fmtPct(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((part / whole) * 100).toFixed(2)}%`;
}

export function fmtUsd(x: number): string {
  return `USD ${x.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** One component's row of the resource-usage table, shared by the text summary and the HTML report. */
export function usageCells(u: UsageRow): string[] {
  return [
    u.name,
    u.cpuSeconds.toFixed(1),
    u.cpuCores === undefined ? '-' : u.cpuCores.toFixed(3),
    u.cpuLimit === undefined ? '-' : String(u.cpuLimit),
    fmtBytes(u.peakMemoryBytes),
    fmtBytes(u.memoryLimitBytes),
    u.peakRssBytes === undefined ? '-' : fmtBytes(u.peakRssBytes),
    u.oomKills === undefined ? '-' : String(u.oomKills),
    u.throttledPeriods === undefined ? '-' : `${u.throttledPeriods} (${((u.throttledSeconds ?? 0) * 1000).toFixed(0)} ms)`,
  ];
}

export function fmtBytes(b: number | undefined): string {
  if (b === undefined) return '-';
  if (b >= 1 << 30) return `${(b / (1 << 30)).toFixed(1)} GiB`;
  return `${(b / (1 << 20)).toFixed(1)} MiB`;
}

export function fmtInt(n: number): string {
  return n.toLocaleString('en-US');
}

// ---------------------------------------------------------------------------------------------
// Text summary
// ---------------------------------------------------------------------------------------------

const RULE = '='.repeat(100);
const section = (title: string): string => `---- ${title} ${'-'.repeat(Math.max(0, 95 - title.length))}`;

function table(rows: string[][], alignLeft = 1): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => [...r[c]].length)));
  return rows.map((r) => r.map((cell, c) => (c < alignLeft ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
}

export function latencyTable(summary: Pick<RunSummary, 'groups' | 'total'>): string[][] {
  const header = ['request', 'count', 'OK', 'KO', 'min', 'mean', 'p50', 'p75', 'p95', 'p99', 'max', `<${LOWER_BOUND_MS}ms`, `${LOWER_BOUND_MS}-${HIGHER_BOUND_MS}`, `>=${HIGHER_BOUND_MS}`, 'failed'];
  const row = (name: string, s: LatencyStats): string[] => [
    name,
    fmtInt(s.count),
    fmtInt(s.ok),
    fmtInt(s.ko),
    fmtMs(s.minMs),
    fmtMs(s.meanMs),
    fmtMs(s.p50Ms),
    fmtMs(s.p75Ms),
    fmtMs(s.p95Ms),
    fmtMs(s.p99Ms),
    fmtMs(s.maxMs),
    fmtInt(s.under250),
    fmtInt(s.from250to1200),
    fmtInt(s.over1200),
    fmtInt(s.failed),
  ];
  return [header, ...GROUPS.map((g) => row(g, summary.groups[g])), row('Total', summary.total)];
}

export function formatSummary(s: RunSummary): string {
  const t = s.total;
  const lines: string[] = [RULE, section('Global Information')];
  const g = (label: string, value: string): string => `> ${label.padEnd(44)} ${value}`;
  lines.push(
    g('request count', `${fmtInt(t.count)} (OK=${fmtInt(t.ok)} KO=${fmtInt(t.ko)}); expected ${fmtInt(s.profile.expectedRequests)}`),
    g('min / mean / max response time (ms)', `${fmtMs(t.minMs)} / ${fmtMs(t.meanMs)} / ${fmtMs(t.maxMs)}  (std ${fmtMs(t.stdMs)})`),
    g('response time p50 / p75 / p95 / p99 (ms)', `${fmtMs(t.p50Ms)} / ${fmtMs(t.p75Ms)} / ${fmtMs(t.p95Ms)} / ${fmtMs(t.p99Ms)}`),
    g('mean requests/sec', t.requestsPerSecond.toFixed(3)),
    ...(s.stages
      ? [
          g('ramp: requests, p50 / p99 / max (ms)', `${fmtInt(s.stages.ramp.count)}, ${fmtMs(s.stages.ramp.p50Ms)} / ${fmtMs(s.stages.ramp.p99Ms)} / ${fmtMs(s.stages.ramp.maxMs)}`),
          g('plateau: requests, p50 / p99 / max (ms)', `${fmtInt(s.stages.plateau.count)}, ${fmtMs(s.stages.plateau.p50Ms)} / ${fmtMs(s.stages.plateau.p99Ms)} / ${fmtMs(s.stages.plateau.maxMs)}`),
        ]
      : []),
    section('Requests (times in ms)'),
    ...table(latencyTable(s)),
    section('Response Time Distribution'),
    g(`t < ${LOWER_BOUND_MS} ms`, `${fmtInt(t.under250).padStart(7)} (${fmtPct(t.under250, t.count)})`),
    g(`${LOWER_BOUND_MS} ms <= t < ${HIGHER_BOUND_MS} ms`, `${fmtInt(t.from250to1200).padStart(7)} (${fmtPct(t.from250to1200, t.count)})`),
    g(`t >= ${HIGHER_BOUND_MS} ms`, `${fmtInt(t.over1200).padStart(7)} (${fmtPct(t.over1200, t.count)})`),
    g('failed', `${fmtInt(t.failed).padStart(7)} (${fmtPct(t.failed, t.count)})`),
    g('status codes', Object.entries(s.statuses).map(([k, v]) => `${k}: ${fmtInt(v)}`).join(', ')),
  );
  if (s.errors.length > 0) {
    lines.push(section('Errors'));
    for (const e of s.errors.slice(0, 20)) {
      lines.push(`> ${e.consistency ? '[consistency] ' : ''}${e.message}  (${e.groups.join(', ')})`.padEnd(90) + ` ${fmtInt(e.count)} (${fmtPct(e.count, t.ko)})`);
    }
    if (s.errors.length > 20) lines.push(`> ... ${s.errors.length - 20} more kinds of error in summary.json`);
  }
  lines.push(section('Validation phases'));
  for (const p of s.phases) lines.push(g(p.name, `at ${(p.atMs / 1000).toFixed(3)} s: ${p.requests} requests, ${p.ko} KO, ${p.ms.toFixed(0)} ms`));
  lines.push(
    section('Load generator'),
    ...(s.k6
      ? [g('k6 dropped arrivals (it has no per-arrival lag)', `${fmtInt(s.k6.droppedIterations)}: ${s.lag.valid ? 'VALID' : `INVALID (${s.lag.reasons.join('; ')})`}`)]
      : [
          g('lag (actual - scheduled start) p50 / p99 / max', `${fmtMs(s.lag.p50Ms)} / ${fmtMs(s.lag.p99Ms)} / ${fmtMs(s.lag.maxMs)} ms over ${fmtInt(s.lag.count)} arrivals`),
          g('limits', `p99 <= ${s.lag.limits.p99Ms} ms, max <= ${s.lag.limits.maxMs} ms: ${s.lag.valid ? 'VALID' : `INVALID (${s.lag.reasons.join('; ')})`}`),
          g('event-loop delay p99 / max', `${fmtMs(s.lag.eventLoopDelayP99Ms)} / ${fmtMs(s.lag.eventLoopDelayMaxMs)} ms`),
        ]),
    g(`generator CPU (${toolOf(s)})`, s.lag.generatorCpuSeconds === undefined ? 'not measured' : `${s.lag.generatorCpuSeconds.toFixed(1)} s (${((s.lag.generatorCpuSeconds / s.durationSeconds) * 100).toFixed(0)}% of one core)`),
    g('load average at start / end', `${s.machine.loadAverageStart.map((x) => x.toFixed(2)).join(' ')} / ${s.machine.loadAverageEnd.map((x) => x.toFixed(2)).join(' ')} (${s.machine.cpus} cpus)`),
    section('Contest payout (docs/contest.md)'),
    g(`OK and < ${LOWER_BOUND_MS} ms, share of all requests`, `${fmtInt(t.under250)} / ${fmtInt(t.count)} = ${s.payout.pct.toFixed(2)}%`),
    g('SLA penalty max(0, (98 - pct) x 1000)', fmtUsd(s.payout.slaPenalty)),
    g('consistency penalty 803.01 x failures', `${s.payout.consistencyFailures} x 803.01 = ${fmtUsd(s.payout.consistencyPenalty)}`),
    g('payout 100,000 - penalties', fmtUsd(s.payout.payout)),
    section('Database audit'),
  );
  const a = s.audit;
  if (a.status === 'skipped' || a.status === 'error') {
    lines.push(g(a.status === 'skipped' ? 'SKIPPED' : 'ERROR', a.reason ?? ''));
  } else {
    lines.push(g('audit_failures rows', `${a.failures.length} ${a.status === 'passed' ? '(books are straight)' : ''}`));
    lines.push(g('ledger entries / POSTs answered 200', `${a.ledgerEntries ?? '-'} / ${a.postsOk ?? '-'}${a.postsUnanswered ? ` (+${a.postsUnanswered} unanswered)` : ''}`));
    for (const row of a.ledger) {
      lines.push(`>   client ${row.id}: limite ${row.credit_limit}, balance ${row.balance}, ledger ${row.ledger_balance} over ${row.entries} entries, lowest running ${row.lowest_running_balance}`);
    }
    for (const f of a.failures) lines.push(`>   FAILURE ${JSON.stringify(f)}`);
    for (const p of a.problems) lines.push(`>   PROBLEM ${p}`);
  }
  if (s.usage && s.usage.length > 0) {
    lines.push(section('Resource usage (stack readUsage)'));
    lines.push(
      ...table([
        ['component', 'cpu s', 'avg cores', 'cpu limit', 'peak memory', 'memory limit', 'peak RSS', 'OOM kills', 'throttled periods (wait)'],
        ...s.usage.map(usageCells),
      ]).map((l) => `> ${l}`),
    );
  }
  lines.push(RULE);
  lines.push(s.verdict.pass ? `RESULT: PASS (${s.profile.name} profile, ${fmtInt(t.count)} requests, 0 KO, payout ${fmtUsd(s.payout.payout)})` : `RESULT: FAIL: ${s.verdict.reasons.join('; ')}`);
  return lines.join('\n');
}

/** Why a run fails; an empty list means it passed. */
export function verdictReasons(s: Pick<RunSummary, 'total' | 'payout' | 'audit' | 'lag' | 'profile' | 'usage' | 'k6'>): string[] {
  const reasons: string[] = [];
  // Arrivals k6 dropped were never sent: the INVALID reason below already says so, and counting
  // them again as missing requests would turn a generator that fell behind into a failure.
  const missing = s.profile.expectedRequests - s.total.count;
  const dropped = s.k6?.droppedIterations ?? 0;
  if (missing !== 0 && !(dropped > 0 && missing === dropped)) reasons.push(`${s.total.count} requests instead of ${s.profile.expectedRequests}`);
  if (s.total.ko > 0) reasons.push(`${s.total.ko} KO request(s)`);
  if (s.payout.consistencyFailures > 0) reasons.push(`${s.payout.consistencyFailures} consistency failure(s) (USD ${s.payout.consistencyPenalty.toFixed(2)} penalty)`);
  if (s.audit.status === 'failed') reasons.push(`database audit failed (${[...(s.audit.failures.length ? [`${s.audit.failures.length} row(s) in audit_failures`] : []), ...s.audit.problems].join('; ')})`);
  if (s.audit.status === 'error') reasons.push(`database audit error: ${s.audit.reason}`);
  for (const u of s.usage ?? []) if (u.oomKills) reasons.push(`${u.name} was OOM-killed ${u.oomKills} time(s)`);
  if (!s.lag.valid) reasons.push(`INVALID run: ${s.lag.reasons.join('; ')}`);
  return reasons;
}

/** The k6 script's threshold on the share of requests OK and under 250 ms (the payout's SLA). */
export const K6_SLA_THRESHOLD = 'sla_ok_abaixo_250ms';

/** The load generator of a run (summaries from before the field existed are Node's). */
export const toolOf = (s: Pick<RunSummary, 'tool'>): 'node' | 'k6' => s.tool ?? 'node';

// ---------------------------------------------------------------------------------------------
// Building a summary from a run's recorded requests (either generator)
// ---------------------------------------------------------------------------------------------

/** What a generator knows about its run besides the requests it recorded. */
export interface RunFacts {
  tool: 'node' | 'k6';
  startedAt: Date;
  finishedAt: Date;
  durationSeconds: number;
  profile: Profile;
  target: RunSummary['target'];
  git: RunSummary['git'];
  machine: RunSummary['machine'];
  phases: PhaseResult[];
  /** seconds from the run's start (S1) to the load's start; undefined when the load never started */
  loadStartSecond: number | undefined;
  generator: {
    /** the generator's own CPU over the run (undefined: not measured) */
    cpuSeconds: number | undefined;
    eventLoopDelayP99Ms: number | null;
    eventLoopDelayMaxMs: number | null;
    /** further reasons the run is INVALID beyond the measured lag (k6: dropped arrivals) */
    invalidReasons: string[];
  };
  audit: AuditResult;
  usage: UsageRow[] | undefined;
  k6?: K6Facts;
}

/** A run's id: its start time, to the second, usable as a folder name. */
export const isoId = (d: Date): string => d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');

/** The ramp from the run's start to the plateau's, and the plateau to the run's end. */
function stagesOf(recorder: Recorder, loadStartS: number, endS: number, profile: Pick<Profile, 'rampSeconds'>): NonNullable<RunSummary['stages']> {
  // Whole seconds, so the boundary second is counted once (the recorder keeps a histogram per second).
  const plateauS = Math.round(loadStartS + profile.rampSeconds);
  return { ramp: recorder.latencyBetween(0, plateauS), plateau: recorder.latencyBetween(plateauS, Math.ceil(endS)) };
}

/**
 * The summary of a finished run from the recorder that saw every request, and its verdict. The
 * official schedule's arrivals are added to the recorder's per-second counts here, for the charts.
 */
export function buildRunSummary(recorder: Recorder, f: RunFacts): RunSummary {
  const schedule = buildSchedule(f.profile);
  if (f.loadStartSecond !== undefined) for (let i = 0; i < schedule.total; i++) recorder.schedule((f.loadStartSecond + schedule.times[i]) * 1000);
  const total = { ...recorder.total.stats(), requestsPerSecond: recorder.total.count / f.durationSeconds };
  const lag = recorder.lagStats();
  const lagCheck = lagVerdict(lag);
  const invalidReasons = [...lagCheck.reasons, ...f.generator.invalidReasons];
  const summary: RunSummary = {
    version: 1,
    tool: f.tool,
    ...(f.k6 ? { k6: f.k6 } : {}),
    id: isoId(f.startedAt),
    startedAt: f.startedAt.toISOString(),
    finishedAt: f.finishedAt.toISOString(),
    durationSeconds: f.durationSeconds,
    profile: {
      name: f.profile.name,
      description: f.profile.description,
      rampSeconds: f.profile.rampSeconds,
      constantSeconds: f.profile.constantSeconds,
      scenarios: f.profile.scenarios,
      expectedRequests: schedule.total + VALIDATION_REQUESTS,
      loadRequests: schedule.counts,
    },
    target: f.target,
    git: f.git,
    machine: f.machine,
    groups: recorder.groupStats(),
    total,
    statuses: Object.fromEntries([...recorder.statusCounts.entries()].sort()),
    errors: recorder.errorList(),
    payout: computePayout(total.count, total.under250, total.consistencyFailures),
    phases: f.phases,
    lag: {
      ...lag,
      limits: LAG_LIMITS,
      valid: invalidReasons.length === 0,
      reasons: invalidReasons,
      eventLoopDelayP99Ms: f.generator.eventLoopDelayP99Ms,
      eventLoopDelayMaxMs: f.generator.eventLoopDelayMaxMs,
      generatorCpuSeconds: f.generator.cpuSeconds,
    },
    timeline: { loadStartSecond: f.loadStartSecond ?? 0, points: recorder.timeline() },
    stages: f.loadStartSecond === undefined ? undefined : stagesOf(recorder, f.loadStartSecond, f.durationSeconds, f.profile),
    distribution: { perDecade: DISTRIBUTION_PER_DECADE, ok: [...recorder.distribution], ko: [...recorder.distributionKo] },
    audit: f.audit,
    usage: f.usage,
    verdict: { pass: false, valid: invalidReasons.length === 0, reasons: [] },
  };
  summary.verdict.reasons = verdictReasons(summary);
  // k6's thresholds restate most of the above (checks, dropped arrivals); one failing on its own
  // means something only k6 saw, e.g. a validation phase that overran its slot. The SLA threshold
  // is left out: the share under 250 ms costs the payout, not the verdict, for either generator.
  const k6Only = (f.k6?.failedThresholds ?? []).filter((t) => !t.startsWith(`${K6_SLA_THRESHOLD}:`));
  if (k6Only.length > 0 && summary.verdict.reasons.length === 0) summary.verdict.reasons.push(`k6 thresholds failed: ${k6Only.join('; ')}`);
  summary.verdict.pass = summary.verdict.reasons.length === 0;
  return summary;
}

/**
 * A run's exit status: 0 pass; 1 on any KO, consistency or audit failure; 3 when only the
 * generator's validity failed (it fell behind, or k6 dropped arrivals): the service did nothing
 * wrong, but the numbers are not to be trusted, and a distinct status lets CI retry.
 */
export function exitStatusOf(s: RunSummary): number {
  if (s.verdict.pass) return 0;
  const onlyLag = s.verdict.reasons.length === 1 && !s.lag.valid;
  return onlyLag ? 3 : 1;
}
