// An open-model load generator for capacity measurements (npm run capacity, npm run bench).
//
// One step = a constant offered rate for a few seconds with the official mix (debits : credits :
// statements = 220 : 110 : 10), every request on a new TCP connection as Gatling opens one per
// virtual user in the official test. It is written on raw node:net sockets with every request's
// bytes built before the step starts, not on node:http: the generator shares the machine's two
// cores with a stack that may use 1.5 of them, so each request must cost it as little as possible.
// Arrivals are evenly spaced and scheduled from performance.now(); the generator's lag (actual
// send minus scheduled send) is kept in its own histogram, and a step whose lag breaks LAG_LIMITS
// (stats.ts) is not a valid measurement of the stack.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { currentRss, type Usage } from '../../stack/cgroups';
import { readUsage, type StackState } from '../../stack/state';
import { BODY_UNTIL_CLOSE, formatRequest, isResponseComplete, parseResponseHead, type ResponseHead } from './http';
import { LOAD_GROUPS, OFFICIAL_MIX, creditRequest, debitRequest, isOkStatus, seededRng, statementRequest, type Mix, type RequestSpec, type Rng } from './official-simulation';
import { lagStatsOf, lagVerdict, newHistogram } from './stats';

// ---------------------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------------------

export interface StepOptions {
  /** default 127.0.0.1 (an IP: no name lookup per connection) */
  host?: string;
  port: number;
  ratePerS: number;
  durationS: number;
  mix?: Mix;
  seed?: number;
  /** per request, from its send to its complete response; default 5000 */
  timeoutMs?: number;
  /** the step's requests, when the caller needs to know each one (default: the official generators') */
  prepared?: PreparedRequests;
  /** each request's outcome as soon as it is known (performance.now() times) */
  onOutcome?: (i: number, outcome: Outcome) => void;
  /** the step's time zero (performance.now()), once, before the first send */
  onStart?: (t0: number) => void;
}

export interface Outcome {
  /** a StepResult.statuses key: '200', '503', 'error:ECONNRESET', 'timeout', ... */
  outcome: string;
  /** the HTTP status; 0 when there was no complete response */
  status: number;
  scheduledAt: number;
  sentAt: number;
  endAt: number;
}

export interface KindCounts {
  sent: number;
  /** answered as the official test accepts: 200, or 422 for a debit */
  ok: number;
}

export interface StepResult {
  ratePerS: number;
  durationS: number;
  /** requests started (connections opened) */
  sent: number;
  /** requests that received a complete HTTP response, whatever its status */
  completed: number;
  /** complete responses per second of the step's duration */
  achievedPerS: number;
  /** '200', '422', '503', 'error:ECONNRESET', 'error:EOF' (closed before a complete response), 'timeout', ... */
  statuses: Record<string, number>;
  /** anything other than 200, or 422 on a debit */
  errors: number;
  /** from each request's actual send to its complete response (or failure), every request */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  /** the generator's own lag: actual send time minus scheduled send time */
  lagMs: { p50: number; p99: number; max: number };
  lagValid: boolean;
  /** why lagValid is false (empty when valid) */
  lagReasons: string[];
  byKind: { debits: KindCounts; credits: KindCounts; statements: KindCounts };
  /** most requests in flight at once */
  maxInFlight: number;
  /** the generator process's CPU-seconds per second during the step (it shares the machine) */
  generatorCpuUtil: number;
  /** from the first scheduled send to the last request's end, seconds */
  wallS: number;
}

// ---------------------------------------------------------------------------------------------
// Pure parts: schedule, mix and the step's request bytes
// ---------------------------------------------------------------------------------------------

const KINDS = ['debits', 'credits', 'statements'] as const;
export type Kind = (typeof KINDS)[number];

/** Arrivals in a step: the offered rate times the duration. */
export const arrivalCount = (ratePerS: number, durationS: number): number => Math.max(0, Math.round(ratePerS * durationS));

/** When arrival i is due, ms after the step's start: evenly spaced at the offered rate. */
export const arrivalOffsetMs = (i: number, ratePerS: number): number => (i * 1000) / ratePerS;

/**
 * The kind of each arrival, interleaved by smooth weighted round-robin (nginx's algorithm): every
 * prefix of the sequence follows the mix as closely as whole requests allow, so a short step or
 * the first second of a long one already has the official proportions, with no randomness.
 */
export function mixSequence(mix: Mix, n: number): Uint8Array {
  const weights = KINDS.map((k) => mix[k]);
  if (weights.some((w) => !(w >= 0)) || weights.every((w) => w === 0)) throw new Error(`invalid mix ${JSON.stringify(mix)}`);
  const total = weights.reduce((a, b) => a + b, 0);
  const current = [0, 0, 0];
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 0; k < 3; k++) {
      current[k] += weights[k];
      if (current[k] > current[best]) best = k;
    }
    current[best] -= total;
    out[i] = best;
  }
  return out;
}

export interface PreparedRequests {
  /** every request's bytes, back to back */
  bytes: Buffer;
  /** request i is bytes[offsets[i], offsets[i + 1]) */
  offsets: Uint32Array;
  kinds: Uint8Array;
}

const GENERATORS: readonly ((rng: Rng) => RequestSpec)[] = [debitRequest, creditRequest, statementRequest];

/** All of a step's requests, built with the official generators (ids 1..5, valor 1..10000, 10-char descricao). */
export function prepareRequests(mix: Mix, n: number, rng: Rng, hostHeader: string): PreparedRequests {
  const kinds = mixSequence(mix, n);
  return packRequests(Array.from(kinds, (kind) => formatRequest(GENERATORS[kind](rng), hostHeader)), kinds);
}

/** Requests (formatRequest's texts, one per kind) back to back in one buffer, with their offsets. */
export function packRequests(texts: readonly string[], kinds: Uint8Array): PreparedRequests {
  const offsets = new Uint32Array(texts.length + 1);
  for (let i = 0; i < texts.length; i++) offsets[i + 1] = offsets[i] + texts[i].length;
  const joined = texts.join('');
  // formatRequest counts Content-Length in characters, which are bytes only for ASCII; latin1
  // always writes one byte per character, so the check is on the UTF-8 length.
  if (Buffer.byteLength(joined, 'utf8') !== joined.length) throw new Error('request bytes are not ASCII');
  return { bytes: Buffer.from(joined, 'latin1'), offsets, kinds };
}

// ---------------------------------------------------------------------------------------------
// The step
// ---------------------------------------------------------------------------------------------

/** How long a finished exchange may wait for the server's close before the generator closes it. */
const LINGER_MS = 1000;
/** Resolution of the timeout sweep: one timer for all requests, not one per request. */
const SWEEP_MS = 25;

interface Exchange {
  socket: net.Socket;
  index: number;
  kind: number;
  scheduledAt: number;
  sentAt: number;
  chunks: Buffer | undefined;
  head: ResponseHead | undefined;
  /** set once the outcome is recorded; the socket may still be waiting for the server's FIN */
  finishedAt: number;
}

export async function runStep(o: StepOptions): Promise<StepResult> {
  const host = o.host ?? '127.0.0.1';
  const timeoutMs = o.timeoutMs ?? 5000;
  const mix = o.mix ?? OFFICIAL_MIX;
  const n = arrivalCount(o.ratePerS, o.durationS);
  const rng: Rng = o.seed === undefined ? Math.random : seededRng(o.seed);
  const prepared = o.prepared ?? prepareRequests(mix, n, rng, `${host}:${o.port}`);
  if (prepared.kinds.length < n) throw new Error(`${n} arrivals but ${prepared.kinds.length} prepared requests`);

  const latency = newHistogram(3);
  const lag = newHistogram(3);
  const statuses = new Map<string, number>();
  const byKind = KINDS.map(() => ({ sent: 0, ok: 0 }));
  let completed = 0;
  let errors = 0;
  let finished = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const open = new Set<Exchange>();

  return new Promise<StepResult>((resolve) => {
    const cpu0 = process.cpuUsage();
    // A few ms of head start so the first arrivals are not late by the set-up itself.
    const t0 = performance.now() + 5;
    o.onStart?.(t0);
    let next = 0;
    let tickTimer: NodeJS.Timeout | undefined;

    const finish = (ex: Exchange, outcome: string, status: number): void => {
      if (ex.finishedAt) return;
      const now = performance.now();
      ex.finishedAt = now;
      ex.chunks = undefined;
      latency.recordValue(Math.max(1, Math.round((now - ex.sentAt) * 1000)));
      statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
      if (status > 0) completed++;
      if (isOkStatus(LOAD_GROUPS[ex.kind], status)) byKind[ex.kind].ok++;
      else errors++;
      inFlight--;
      finished++;
      o.onOutcome?.(ex.index, { outcome, status, scheduledAt: ex.scheduledAt, sentAt: ex.sentAt, endAt: now });
      if (next >= n && finished === n) done();
    };

    const send = (i: number, scheduledAt: number): void => {
      const sentAt = performance.now();
      lag.recordValue(Math.max(1, Math.round((sentAt - scheduledAt) * 1000)));
      const socket = net.connect({ host, port: o.port });
      const ex: Exchange = { socket, index: i, kind: prepared.kinds[i], scheduledAt, sentAt, chunks: undefined, head: undefined, finishedAt: 0 };
      open.add(ex);
      byKind[ex.kind].sent++;
      if (++inFlight > maxInFlight) maxInFlight = inFlight;
      // Written before the connection completes: node sends it as soon as it does, no extra callback.
      socket.write(prepared.bytes.subarray(prepared.offsets[i], prepared.offsets[i + 1]));
      socket.on('data', (chunk: Buffer) => {
        if (ex.finishedAt) return;
        const buf = ex.chunks ? Buffer.concat([ex.chunks, chunk]) : chunk;
        ex.chunks = buf;
        ex.head ??= parseResponseHead(buf);
        if (ex.head === undefined) return;
        if (ex.head.status === 0) {
          finish(ex, 'error:malformed-response', 0);
          socket.destroy();
        } else if (isResponseComplete(ex.head, buf)) {
          // Recorded now; the socket stays until the server's close (Connection: close), so the
          // server, not the generator, is the side that keeps TIME_WAIT.
          finish(ex, String(ex.head.status), ex.head.status);
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => finish(ex, `error:${err.code ?? 'unknown'}`, 0));
      socket.on('close', () => {
        open.delete(ex);
        // A body delimited by the close is complete now; anything else was cut short.
        if (ex.head && ex.head.status > 0 && ex.head.length === BODY_UNTIL_CLOSE) finish(ex, String(ex.head.status), ex.head.status);
        else finish(ex, 'error:EOF', 0);
      });
    };

    const tick = (): void => {
      tickTimer = undefined;
      const now = performance.now();
      while (next < n) {
        const due = t0 + arrivalOffsetMs(next, o.ratePerS);
        if (due > now) break;
        send(next++, due);
      }
      if (next < n) {
        // setTimeout's resolution is about 1 ms, so at high rates each tick sends a small batch;
        // the lag histogram shows what that costs.
        tickTimer = setTimeout(tick, Math.max(0, t0 + arrivalOffsetMs(next, o.ratePerS) - performance.now()));
      } else if (finished === n) done();
    };

    const sweep = setInterval(() => {
      const now = performance.now();
      for (const ex of open) {
        if (!ex.finishedAt && now - ex.sentAt >= timeoutMs) {
          finish(ex, 'timeout', 0);
          ex.socket.destroy();
        } else if (ex.finishedAt && now - ex.finishedAt >= LINGER_MS) {
          ex.socket.destroy();
        }
      }
    }, Math.min(SWEEP_MS, Math.max(1, timeoutMs / 10)));

    let resolved = false;
    const done = (): void => {
      if (resolved) return;
      resolved = true;
      if (tickTimer) clearTimeout(tickTimer);
      clearInterval(sweep);
      // Responses are all recorded; sockets still waiting for the server's FIN are not needed.
      for (const ex of open) ex.socket.destroy();
      open.clear();
      const wallS = Math.max(1e-6, (performance.now() - t0) / 1000);
      const cpu = process.cpuUsage(cpu0);
      const lagStats = lagStatsOf(lag);
      const verdict = lagVerdict(lagStats);
      const msAt = (p: number): number => (latency.totalCount ? Math.round(latency.getValueAtPercentile(p)) / 1000 : 0);
      resolve({
        ratePerS: o.ratePerS,
        durationS: o.durationS,
        sent: n,
        completed,
        achievedPerS: o.durationS > 0 ? Math.round((completed / o.durationS) * 10) / 10 : 0,
        statuses: Object.fromEntries([...statuses.entries()].sort((a, b) => b[1] - a[1])),
        errors,
        latencyMs: {
          p50: msAt(50),
          p90: msAt(90),
          p99: msAt(99),
          p999: msAt(99.9),
          max: latency.totalCount ? Math.round(latency.maxValue) / 1000 : 0,
          mean: latency.totalCount ? Math.round(latency.mean) / 1000 : 0,
        },
        lagMs: { p50: lagStats.p50Ms ?? 0, p99: lagStats.p99Ms ?? 0, max: lagStats.maxMs ?? 0 },
        lagValid: verdict.valid,
        lagReasons: verdict.reasons,
        byKind: { debits: byKind[0], credits: byKind[1], statements: byKind[2] },
        maxInFlight,
        generatorCpuUtil: Math.round(((cpu.user + cpu.system) / 1e6 / wallS) * 1000) / 1000,
        wallS: Math.round(wallS * 1000) / 1000,
      });
    };

    tickTimer = setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
}

// ---------------------------------------------------------------------------------------------
// A step with the stack's resource usage, from its cgroups
// ---------------------------------------------------------------------------------------------

export interface ComponentStep {
  name: string;
  /** CPU-seconds per second over the step (1 = one core) */
  cpuUtil: number;
  /** CPU per complete response, ms */
  cpuMsPerRequest: number;
  cpuLimit?: number;
  /** the cgroup's peak during the step (reset at its start where the kernel allows) */
  peakMemoryBytes: number;
  memoryLimitBytes?: number;
  /** VmRSS of an API's process at the step's end */
  rssBytes?: number;
  /** VmHWM of an API's process: peak during the step when it could be reset, else since start */
  peakRssBytes?: number;
  oomKills?: number;
  /** CFS periods in which the cgroup used up its quota during the step, and the time it then waited */
  throttledPeriods?: number;
  throttledSeconds?: number;
}

export interface MeasuredStep extends StepResult {
  components: ComponentStep[];
  /** false when the stack runs without cgroups: components is then empty */
  usageMeasured: boolean;
}

function writeQuietly(file: string, value: string): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}

/** Per-component numbers of a step from two cumulative cgroup readings. */
export function componentSteps(before: Usage[], after: Usage[], seconds: number, completed: number): ComponentStep[] {
  return after.map((u) => {
    const b = before.find((x) => x.name === u.name);
    const cpu = Math.max(0, u.cpuSeconds - (b?.cpuSeconds ?? 0));
    return {
      name: u.name,
      cpuUtil: seconds > 0 ? Math.round((cpu / seconds) * 1000) / 1000 : 0,
      cpuMsPerRequest: completed > 0 ? Math.round(((cpu * 1000) / completed) * 1000) / 1000 : 0,
      cpuLimit: u.cpuLimit,
      peakMemoryBytes: u.peakMemoryBytes,
      memoryLimitBytes: u.memoryLimitBytes,
      peakRssBytes: u.peakRssBytes,
      oomKills: Math.max(0, u.oomKills - (b?.oomKills ?? 0)),
      ...(u.throttledPeriods === undefined
        ? {}
        : { throttledPeriods: Math.max(0, u.throttledPeriods - (b?.throttledPeriods ?? 0)), throttledSeconds: Math.max(0, Math.round(((u.throttledSeconds ?? 0) - (b?.throttledSeconds ?? 0)) * 1000) / 1000) }),
    };
  });
}

/**
 * runStep plus what each component of the stack used during it. The cgroups' peak memory and
 * the APIs' VmHWM are reset first where writable (root), so the peaks are this step's.
 */
export async function measuredStep(state: StackState, o: StepOptions): Promise<MeasuredStep> {
  const pidOf = (name: string): number | undefined => state.components.find((c) => c.name === name)?.pid;
  for (const [name, group] of Object.entries(state.cgroups ?? {})) {
    writeQuietly(path.join(group.memory, 'memory.max_usage_in_bytes'), '0');
    // 5 resets the process's peak RSS (VmHWM) to its current RSS (proc(5), clear_refs).
    if (name.startsWith('api')) writeQuietly(`/proc/${pidOf(name)}/clear_refs`, '5');
  }
  const before = readUsage(state);
  const t0 = performance.now();
  const result = await runStep(o);
  const seconds = (performance.now() - t0) / 1000;
  const after = readUsage(state);
  if (!before || !after) return { ...result, components: [], usageMeasured: false };
  const components = componentSteps(before, after, seconds, result.completed);
  for (const c of components) if (c.name.startsWith('api')) c.rssBytes = currentRss(pidOf(c.name));
  return { ...result, components, usageMeasured: true };
}
