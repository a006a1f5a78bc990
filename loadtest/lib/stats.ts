// Measurements of a load run: HDR histograms (hdr-histogram-js) per request group and per
// second, generator lag, status codes and errors; and the Gatling-style summary computed from
// them. Latencies are recorded in microseconds and reported in milliseconds.

import * as hdr from 'hdr-histogram-js';
import { GROUPS, HIGHER_BOUND_MS, LOWER_BOUND_MS, isConsistencyFailure, type Group } from './official-simulation';

/** Largest recordable value: 2 minutes in µs (requests time out at 60 s). */
const HIGHEST_US = 120_000_000;

export type Histogram = hdr.Histogram;

export function newHistogram(digits: 2 | 3 = 3): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: digits, autoResize: true });
}

const clampUs = (us: number): number => Math.min(HIGHEST_US, Math.max(1, Math.round(us)));

// ---------------------------------------------------------------------------------------------
// Latency distribution buckets for the report's histogram: 10 per decade of µs
// ---------------------------------------------------------------------------------------------

export const DISTRIBUTION_PER_DECADE = 10;
/** Bucket k covers [10^(k/10), 10^((k+1)/10)) µs; 81 buckets reach 125 s. */
const DISTRIBUTION_BUCKETS = 81;

export function distributionBucket(us: number): number {
  const k = Math.floor(Math.log10(Math.max(1, us)) * DISTRIBUTION_PER_DECADE + 1e-9);
  return Math.min(DISTRIBUTION_BUCKETS - 1, Math.max(0, k));
}

export function distributionBucketBoundsMs(k: number): [number, number] {
  return [10 ** (k / DISTRIBUTION_PER_DECADE) / 1000, 10 ** ((k + 1) / DISTRIBUTION_PER_DECADE) / 1000];
}

// ---------------------------------------------------------------------------------------------
// Per-group tallies
// ---------------------------------------------------------------------------------------------

/** Gatling's numbers for one request name (or all of them). Times in ms; null when empty. */
export interface LatencyStats {
  count: number;
  ok: number;
  ko: number;
  minMs: number | null;
  meanMs: number | null;
  stdMs: number | null;
  p50Ms: number | null;
  p75Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** OK and t < 250 ms (group1 of the official reports) */
  under250: number;
  /** OK and 250 ms <= t < 1200 ms */
  from250to1200: number;
  /** OK and t >= 1200 ms */
  over1200: number;
  /** KO, whatever the time */
  failed: number;
  consistencyFailures: number;
}

export class Tally {
  readonly histogram: Histogram;
  count = 0;
  ok = 0;
  ko = 0;
  under250 = 0;
  from250to1200 = 0;
  over1200 = 0;
  consistencyFailures = 0;

  constructor(digits: 2 | 3 = 3) {
    this.histogram = newHistogram(digits);
  }

  record(latencyUs: number, failure: string | undefined): void {
    this.histogram.recordValue(clampUs(latencyUs));
    this.count++;
    if (failure === undefined) {
      this.ok++;
      if (latencyUs < LOWER_BOUND_MS * 1000) this.under250++;
      else if (latencyUs < HIGHER_BOUND_MS * 1000) this.from250to1200++;
      else this.over1200++;
    } else {
      this.ko++;
      if (isConsistencyFailure(failure)) this.consistencyFailures++;
    }
  }

  stats(): LatencyStats {
    return latencyStats(this.histogram, this);
  }
}

const ms = (us: number): number => Math.round(us) / 1000;

function latencyStats(
  h: Histogram,
  counts: Pick<Tally, 'count' | 'ok' | 'ko' | 'under250' | 'from250to1200' | 'over1200' | 'consistencyFailures'>,
): LatencyStats {
  const empty = h.totalCount === 0;
  const at = (p: number): number | null => (empty ? null : ms(h.getValueAtPercentile(p)));
  return {
    count: counts.count,
    ok: counts.ok,
    ko: counts.ko,
    minMs: empty ? null : ms(h.minNonZeroValue),
    meanMs: empty ? null : ms(h.mean),
    stdMs: empty ? null : ms(h.stdDeviation),
    p50Ms: at(50),
    p75Ms: at(75),
    p95Ms: at(95),
    p99Ms: at(99),
    maxMs: empty ? null : ms(h.maxValue),
    under250: counts.under250,
    from250to1200: counts.from250to1200,
    over1200: counts.over1200,
    failed: counts.ko,
    consistencyFailures: counts.consistencyFailures,
  };
}

// ---------------------------------------------------------------------------------------------
// The recorder
// ---------------------------------------------------------------------------------------------

export interface RequestRecord {
  group: Group;
  /** ms since the run started (performance.now() based) */
  startMs: number;
  endMs: number;
  /** 0 when no HTTP response arrived */
  status: number;
  /** first failed check (or transport error); undefined when OK */
  failure: string | undefined;
  /** generator lag of an open-model arrival: actual start − scheduled start, µs */
  lagUs?: number;
  /** scheduled start, ms since the run started (load arrivals only) */
  scheduledMs?: number;
}

interface Second {
  latency: Histogram;
  lag: Histogram | undefined;
  scheduled: number;
  started: number;
  responses: number;
  ko: number;
  statuses: Map<string, number>;
  inflightMax: number;
}

export interface TimelinePoint {
  /** second since the run started */
  t: number;
  /** load arrivals scheduled in this second */
  scheduled: number;
  /** requests started in this second */
  started: number;
  /** responses (or errors) completed in this second */
  responses: number;
  ko: number;
  /** latency percentiles of requests started in this second, ms */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
  /** status codes of responses completed in this second; "error" when no response */
  statuses: Record<string, number>;
  lagP99: number | null;
  lagMax: number | null;
  inflightMax: number;
}

export interface WindowLatency {
  /** seconds since the run started */
  fromS: number;
  toS: number;
  count: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export interface LagStats {
  count: number;
  meanMs: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
}

const statusKey = (status: number): string => (status === 0 ? 'error' : String(status));

export class Recorder {
  readonly groups = new Map<Group, Tally>(GROUPS.map((g) => [g, new Tally(3)]));
  readonly total = new Tally(3);
  readonly lag = newHistogram(3);
  readonly errors = new Map<string, { count: number; groups: Set<Group> }>();
  readonly distribution = new Uint32Array(DISTRIBUTION_BUCKETS);
  readonly distributionKo = new Uint32Array(DISTRIBUTION_BUCKETS);
  private readonly seconds: Second[] = [];
  inflight = 0;
  /** POST /transacoes answered 200 (each must be one ledger entry) */
  postsOk = 0;
  /** POSTs without an HTTP response (they may or may not have been applied) */
  postsUnanswered = 0;
  statusCounts = new Map<string, number>();

  private second(index: number): Second {
    const i = Math.max(0, Math.floor(index));
    while (this.seconds.length <= i) {
      this.seconds.push({ latency: newHistogram(2), lag: undefined, scheduled: 0, started: 0, responses: 0, ko: 0, statuses: new Map(), inflightMax: 0 });
    }
    return this.seconds[i];
  }

  /** Load arrivals planned for a second (to chart scheduled vs actual). */
  schedule(scheduledMs: number): void {
    this.second(scheduledMs / 1000).scheduled++;
  }

  started(startMs: number): void {
    this.inflight++;
    const s = this.second(startMs / 1000);
    s.started++;
    if (this.inflight > s.inflightMax) s.inflightMax = this.inflight;
  }

  record(r: RequestRecord, method: 'GET' | 'POST'): void {
    this.inflight--;
    const latencyUs = (r.endMs - r.startMs) * 1000;
    this.groups.get(r.group)!.record(latencyUs, r.failure);
    this.total.record(latencyUs, r.failure);
    const k = distributionBucket(latencyUs);
    if (r.failure === undefined) this.distribution[k]++;
    else this.distributionKo[k]++;
    const startSecond = this.second(r.startMs / 1000);
    startSecond.latency.recordValue(clampUs(latencyUs));
    const endSecond = this.second(r.endMs / 1000);
    endSecond.responses++;
    const key = statusKey(r.status);
    endSecond.statuses.set(key, (endSecond.statuses.get(key) ?? 0) + 1);
    this.statusCounts.set(key, (this.statusCounts.get(key) ?? 0) + 1);
    if (r.failure !== undefined) {
      endSecond.ko++;
      const e = this.errors.get(r.failure) ?? { count: 0, groups: new Set<Group>() };
      e.count++;
      e.groups.add(r.group);
      this.errors.set(r.failure, e);
    }
    if (r.lagUs !== undefined) {
      const lagUs = clampUs(r.lagUs);
      this.lag.recordValue(lagUs);
      const s = this.second(r.startMs / 1000);
      (s.lag ??= newHistogram(2)).recordValue(lagUs);
    }
    if (method === 'POST') {
      if (r.status === 200) this.postsOk++;
      else if (r.status === 0) this.postsUnanswered++;
    }
  }

  /** Numbers of one second, for the progress line. */
  secondStats(index: number): { started: number; responses: number; lagP99Ms: number | null; lagMaxMs: number | null } | undefined {
    const s = this.seconds[index];
    if (!s) return undefined;
    return {
      started: s.started,
      responses: s.responses,
      lagP99Ms: s.lag ? ms(s.lag.getValueAtPercentile(99)) : null,
      lagMaxMs: s.lag ? ms(s.lag.maxValue) : null,
    };
  }

  timeline(): TimelinePoint[] {
    return this.seconds.map((s, t) => {
      const n = s.latency.totalCount;
      return {
        t,
        scheduled: s.scheduled,
        started: s.started,
        responses: s.responses,
        ko: s.ko,
        p50: n ? ms(s.latency.getValueAtPercentile(50)) : null,
        p95: n ? ms(s.latency.getValueAtPercentile(95)) : null,
        p99: n ? ms(s.latency.getValueAtPercentile(99)) : null,
        max: n ? ms(s.latency.maxValue) : null,
        statuses: Object.fromEntries(s.statuses),
        lagP99: s.lag ? ms(s.lag.getValueAtPercentile(99)) : null,
        lagMax: s.lag ? ms(s.lag.maxValue) : null,
        inflightMax: s.inflightMax,
      };
    });
  }

  lagStats(): LagStats {
    return lagStatsOf(this.lag);
  }

  /**
   * Latency of the requests started in whole seconds [fromS, toS) of the run, from the
   * per-second histograms (2 significant digits): the official profile's ramp and plateau apart.
   * Adjacent spans must share a whole-second bound, or the second between them counts twice.
   */
  latencyBetween(fromS: number, toS: number): WindowLatency {
    const h = newHistogram(2);
    for (let i = Math.max(0, Math.floor(fromS)); i < Math.min(this.seconds.length, Math.ceil(toS)); i++) h.add(this.seconds[i].latency);
    const n = h.totalCount;
    return { fromS, toS, count: n, p50Ms: n ? ms(h.getValueAtPercentile(50)) : null, p99Ms: n ? ms(h.getValueAtPercentile(99)) : null, maxMs: n ? ms(h.maxValue) : null };
  }

  groupStats(): Record<Group, LatencyStats> {
    return Object.fromEntries(GROUPS.map((g) => [g, this.groups.get(g)!.stats()])) as Record<Group, LatencyStats>;
  }

  errorList(): { message: string; count: number; groups: Group[]; consistency: boolean }[] {
    return [...this.errors.entries()]
      .map(([message, e]) => ({ message, count: e.count, groups: [...e.groups], consistency: isConsistencyFailure(message) }))
      .sort((a, b) => b.count - a.count);
  }
}

export function lagStatsOf(h: Histogram): LagStats {
  const n = h.totalCount;
  return {
    count: n,
    meanMs: n ? ms(h.mean) : null,
    p50Ms: n ? ms(h.getValueAtPercentile(50)) : null,
    p99Ms: n ? ms(h.getValueAtPercentile(99)) : null,
    p999Ms: n ? ms(h.getValueAtPercentile(99.9)) : null,
    maxMs: n ? ms(h.maxValue) : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Validity of an open-model run
// ---------------------------------------------------------------------------------------------

/**
 * A run is INVALID when the generator could not start requests on time, because then the
 * arrival process (and the latencies it causes) was not the official one. Node timers have
 * 1 ms granularity, so a healthy run shows a lag p99 of about 1-2 ms. p99 > 10 ms means the
 * generator was starved for a sustained period; a single 100 ms stall (a long GC pause, a
 * descheduled process) already delays ~34 arrivals at the peak rate and bunches them.
 */
export const LAG_LIMITS = { p99Ms: 10, maxMs: 100 };

export function lagVerdict(lag: LagStats): { valid: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (lag.p99Ms !== null && lag.p99Ms > LAG_LIMITS.p99Ms) reasons.push(`generator lag p99 ${lag.p99Ms.toFixed(1)} ms > ${LAG_LIMITS.p99Ms} ms`);
  if (lag.maxMs !== null && lag.maxMs > LAG_LIMITS.maxMs) reasons.push(`generator lag max ${lag.maxMs.toFixed(1)} ms > ${LAG_LIMITS.maxMs} ms`);
  return { valid: reasons.length === 0, reasons };
}

/** The median of a list of numbers (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The nearest-rank q-quantile of an ascending list: its ceil(q × n)-th value (the first for q = 0).
 * For the short lists of a second or a round, where a histogram would be overkill.
 */
export function nearestRank(ascending: number[], q: number): number {
  return ascending[Math.min(ascending.length - 1, Math.max(0, Math.ceil(q * ascending.length) - 1))];
}
