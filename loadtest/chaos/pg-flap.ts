// pg-flap: a flapping database. Under the official peak load, PostgreSQL goes down --flaps times
// (default 20 in 120 s) at irregular, seeded intervals, each time by one of: fast shutdown
// (SIGINT), immediate shutdown (SIGQUIT) or SIGKILL of the postmaster, mixed in equal shares in a
// seeded order. The stack restarts it each time after a fixed 0.5 s (CREBITOS_RESTART_DELAY_MS;
// its default policy would back off and give up after 10 crashes a minute). Safe profile
// (postgresql.safe.conf), so no acknowledged transaction may be lost.
//
// Judged:
// - the APIs never abort or restart (same pids before and after, alive), no request hangs;
// - every request is answered 200 (or 422 to a debit), or 503 during a flap's error window:
//   no reset, no 502, no other status, and no failure before the first fault;
// - per flap, "back" is when the new postmaster accepts connections (a SELECT 1 through
//   node-postgres, polled every 25 ms after the stack reports the new pid), and the flap's error
//   window is its failed requests: those that ended after its fault and before the next one. The
//   service is steady again when that window ends: its last failure must end within 3 s of
//   "back", and a 200 must follow before the next fault;
// - 0 acknowledged transactions lost, nothing replayed, a clean audit (scenario-kit's reconcile).

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { seededRng, type Rng } from '../lib/official-simulation';
import { median } from '../lib/stats';
import { SAFE_SETTINGS } from './durability';
import { apiPids, checkApisAndHangs, faultPostmaster, profileName, type PostmasterFault } from './pg-fault';
import { ChaosStack, PEAK, VerdictBuilder, isOk, onOwnStack, reconcile, round1, runLoad, runPrefix, statusCounts, waitForDatabase, type RequestOutcome, type ScenarioOptions, type Verdict } from './scenario-kit';

/** The bound: steady service again within this long after the postmaster is back. */
export const STEADY_WITHIN_MS = 3000;
/** The shortest up-time between flaps: the 3 s bound plus room to see a 200 after it (340 req/s: one every 3 ms). */
export const MIN_UP_MS = 3200;
/** A flap's outage (signal to accepting connections) assumed when fitting flaps into the duration: measured 0.9-1.2 s, with room for a busy machine. */
const PLANNED_OUTAGE_MS = 1500;
/** Load after the last flap is back, so its recovery is seen. */
const TAIL_MS = 4000;
/** The restart policy's fixed delay (the default policy's first one). */
const RESTART_DELAY_MS = 500;
const FAULTS: PostmasterFault[] = ['restart', 'immediate', 'kill'];

export interface FlapPlan {
  faults: PostmasterFault[];
  /** up-time before each fault: from the load's start for the first, from "back" for the others */
  upMs: number[];
}

/**
 * The seeded schedule: the three faults in equal shares (as near as n allows) in a shuffled
 * order, and up-times drawn uniformly from [MIN_UP_MS, 2 x mean - MIN_UP_MS], the mean being what
 * makes n flaps of PLANNED_OUTAGE_MS fit in the duration with TAIL_MS to spare.
 */
export function planFlaps(n: number, durationS: number, seed: number): FlapPlan {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--flaps must be a positive whole number, got ${n}`);
  const meanUp = (durationS * 1000 - TAIL_MS - n * PLANNED_OUTAGE_MS) / n;
  if (meanUp < MIN_UP_MS) {
    const needS = Math.ceil((n * (MIN_UP_MS + PLANNED_OUTAGE_MS) + TAIL_MS) / 1000);
    throw new Error(`${n} flaps do not fit in ${durationS} s (each needs ${MIN_UP_MS / 1000} s up and about ${PLANNED_OUTAGE_MS / 1000} s down): use --duration ${needS} or more`);
  }
  const rng: Rng = seededRng(seed);
  const faults = Array.from({ length: n }, (_, i) => FAULTS[i % FAULTS.length]);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [faults[i], faults[j]] = [faults[j], faults[i]];
  }
  const spread = 2 * (meanUp - MIN_UP_MS);
  const upMs = faults.map(() => Math.round(MIN_UP_MS + rng() * spread));
  return { faults, upMs };
}

export interface Flap {
  fault: PostmasterFault;
  /** ms since the load started */
  faultMs: number;
  /** when the new postmaster accepted connections (null: never, within 30 s) */
  backMs: number | null;
}

export interface FlapJudgement {
  fault: PostmasterFault;
  faultMs: number;
  /** signal to accepting connections */
  outageMs: number | null;
  failed: number;
  byStatus: Record<string, number>;
  /** the end of the flap's last failed request, minus "back" (0 when it had none) */
  steadyAfterBackMs: number | null;
  /** the first 200 to a request started after "back", minus "back" */
  firstOkAfterBackMs: number | null;
  /** a 200 after the error window and before the next fault (or the end of the load) */
  servedAfter: boolean;
  problems: string[];
}

/**
 * Splits the failed requests between the flaps (each to the last fault before its end) and
 * judges each flap; also names failures before the first fault and statuses other than 503.
 */
export function judgeFlaps(outcomes: RequestOutcome[], flaps: Flap[], loadEndMs: number): { perFlap: FlapJudgement[]; problems: string[] } {
  const problems: string[] = [];
  const failed = outcomes.filter((o) => !isOk(o));
  const wrong = failed.filter((o) => o.status !== 503);
  if (wrong.length) problems.push(`answers other than 200/422/503: ${JSON.stringify(statusCounts(wrong))}`);
  const early = failed.filter((o) => flaps.length === 0 || o.endMs < flaps[0].faultMs);
  if (early.length) problems.push(`${early.length} request(s) failed before the first fault: ${JSON.stringify(statusCounts(early))}`);
  const perFlap = flaps.map((f, i): FlapJudgement => {
    const nextMs = i + 1 < flaps.length ? flaps[i + 1].faultMs : Infinity;
    const mine = failed.filter((o) => o.endMs >= f.faultMs && o.endMs < nextMs);
    const windowEnd = mine.length ? Math.max(...mine.map((o) => o.endMs)) : null;
    const flapProblems: string[] = [];
    let steadyAfterBackMs: number | null = null;
    let firstOkAfterBackMs: number | null = null;
    if (f.backMs === null) {
      flapProblems.push('the postmaster was not back within 30 s');
    } else {
      const back = f.backMs;
      steadyAfterBackMs = windowEnd === null ? 0 : round1(windowEnd - back);
      if (steadyAfterBackMs > STEADY_WITHIN_MS) flapProblems.push(`steady only ${steadyAfterBackMs} ms after the postmaster was back (bound ${STEADY_WITHIN_MS} ms)`);
      const firstOk = outcomes.filter((o) => o.status === 200 && o.startMs >= back && o.endMs < nextMs).sort((a, b) => a.endMs - b.endMs)[0];
      firstOkAfterBackMs = firstOk ? round1(firstOk.endMs - back) : null;
    }
    const from = windowEnd ?? f.faultMs;
    const servedAfter = outcomes.some((o) => o.status === 200 && o.startMs >= from && o.endMs < Math.min(nextMs, loadEndMs));
    if (!servedAfter) flapProblems.push('no 200 between the end of its errors and the next fault');
    problems.push(...flapProblems.map((p) => `flap ${i + 1} (${f.fault} at ${round1(f.faultMs / 1000)} s): ${p}`));
    return {
      fault: f.fault,
      faultMs: round1(f.faultMs),
      outageMs: f.backMs === null ? null : round1(f.backMs - f.faultMs),
      failed: mine.length,
      byStatus: statusCounts(mine),
      steadyAfterBackMs,
      firstOkAfterBackMs,
      servedAfter,
      problems: flapProblems,
    };
  });
  return { perFlap, problems };
}

const range = (xs: number[]): [number, number] | null => (xs.length ? [Math.min(...xs), Math.max(...xs)] : null);

export async function pgFlap(options: ScenarioOptions = {}): Promise<Verdict> {
  const log = options.log ?? console.log;
  const n = options.flaps ?? (options.durationS ? Math.floor(options.durationS / 6) : 20);
  const durationS = options.durationS ?? Math.max(30, n * 6);
  const seed = options.seed ?? Math.floor(Math.random() * 1e6);
  const plan = planFlaps(n, durationS, seed);
  const pgSettings = options.pgSettings ?? SAFE_SETTINGS;
  const v = new VerdictBuilder('pg-flap');
  v.set('profile', profileName(pgSettings));
  v.set('plan', { flaps: n, durationS, seed, faults: Object.fromEntries(FAULTS.map((f) => [f, plan.faults.filter((x) => x === f).length])), upMs: range(plan.upMs) });
  const stack = new ChaosStack('pg-flap', { log, pgSettings, env: { CREBITOS_RESTART_DELAY_MS: String(RESTART_DELAY_MS) } });
  await stack.up();
  return onOwnStack(stack, v, options, log, async () => {
    const prefix = runPrefix('F');
    const apis = apiPids(stack);
    let t0 = 0;
    const loadDone = runLoad({ port: stack.httpPort, rates: PEAK, durationS, prefix, seed, onStart: (t) => (t0 = t) });
    while (t0 === 0) await sleep(1);
    const flaps: Flap[] = [];
    let upFrom = t0;
    for (let i = 0; i < n; i++) {
      await sleep(Math.max(0, upFrom + plan.upMs[i] - performance.now()));
      if (performance.now() - t0 > durationS * 1000 - TAIL_MS) {
        v.check(false, `only ${i} of ${n} flaps fitted in the ${durationS} s load (outages longer than planned)`);
        break;
      }
      const f = await faultPostmaster(stack, plan.faults[i], t0, log, `pg-flap ${i + 1}/${n}`);
      let backMs: number | null = null;
      if (f.restart) {
        try {
          await waitForDatabase(stack.state.database, 30_000, 25);
          backMs = performance.now() - t0;
        } catch {
          // judged below: backMs null
        }
      }
      flaps.push({ fault: f.fault, faultMs: f.faultMs, backMs });
      if (backMs === null) break;
      log(`[pg-flap ${i + 1}/${n}] accepting connections ${Math.round(backMs - f.faultMs)} ms after the ${f.fault}`);
      upFrom = t0 + backMs;
    }
    const load = await loadDone;
    const outcomes = load.outcomes;
    const judged = judgeFlaps(outcomes, flaps, durationS * 1000);
    for (const p of judged.problems) v.check(false, p);
    const steady = judged.perFlap.map((j) => j.steadyAfterBackMs).filter((x): x is number => x !== null);
    const outages = judged.perFlap.map((j) => j.outageMs).filter((x): x is number => x !== null);
    v.set('requests', outcomes.length);
    v.set('statuses', statusCounts(outcomes));
    v.set('flapsDone', flaps.length);
    v.set('outageMs', { range: range(outages), median: outages.length ? median(outages) : null });
    v.set('steadyAfterBackMs', { max: steady.length ? Math.max(...steady) : null, byFault: Object.fromEntries(FAULTS.map((f) => [f, range(judged.perFlap.filter((j) => j.fault === f && j.steadyAfterBackMs !== null).map((j) => j.steadyAfterBackMs!))])) });
    v.set('failedPerFlap', range(judged.perFlap.map((j) => j.failed)));
    v.set('perFlap', judged.perFlap.map((j) => `${j.fault}@${round1(j.faultMs / 1000)}s down ${j.outageMs} ms, ${j.failed} failed, steady +${j.steadyAfterBackMs} ms`));
    v.lag(load);
    checkApisAndHangs(v, stack, apis, outcomes);
    v.books(await reconcile(stack.state.database, prefix, outcomes));
  });
}
