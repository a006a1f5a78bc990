// pg-restart / pg-kill: PostgreSQL goes away during the official peak load.
// - restart: SIGINT to the postmaster (fast shutdown: backends terminated, checkpoint, exit);
// - kill: SIGKILL of the postmaster alone (its backends notice its death and exit on their own,
//   which may take a moment; the new postmaster cannot start while they hold shared memory).
// The stack restarts the postmaster on the same data directory. Requests in flight and during
// the outage must get a fast 503 (never a hang), and both APIs' pools must reconnect by
// themselves: the API pids do not change.
//
// The fault, the wait for the restart and the checks every PostgreSQL fault shares are exported
// for pg-flap.ts, which repeats them many times on one stack.

import { performance } from 'node:perf_hooks';
import { ChaosStack, PEAK, VerdictBuilder, errorWindow, latency, reconcile, recovery, round1, runLoad, runPrefix, scaleRates, statusCounts, type RequestOutcome, type ScenarioOptions, type Verdict, onOwnStack } from './scenario-kit';
import { alive as isAlive } from '../../stack/state';
import { setTimeout as sleep } from 'node:timers/promises';

/** server.ts's QUERY_TIMEOUT_MS (default 2000, passed through from the environment): the longest a request may wait on a dead connection. */
const QUERY_TIMEOUT_MS = Number(process.env.QUERY_TIMEOUT_MS || 2000);

/** How the postmaster is stopped: fast shutdown, immediate shutdown, or killed outright. */
export type PostmasterFault = 'restart' | 'immediate' | 'kill';
export const FAULT_SIGNALS: Record<PostmasterFault, NodeJS.Signals> = { restart: 'SIGINT', immediate: 'SIGQUIT', kill: 'SIGKILL' };

/** The verdict's name for the PostgreSQL settings in use. */
export const profileName = (pgSettings: string | undefined): string => (pgSettings ? `postgresql.conf + ${pgSettings.split('/').pop()}` : 'contest (postgresql.conf)');

export interface FaultResult {
  fault: PostmasterFault;
  postmaster: number;
  /** ms since the load's time zero when the signal was sent */
  faultMs: number;
  /** the new postmaster and how long after the signal the stack had it running (undefined: not restarted in time) */
  restart?: { pid: number; ms: number };
  error?: string;
}

/** Signals the postmaster and waits for the stack to start a new one. */
export async function faultPostmaster(stack: ChaosStack, fault: PostmasterFault, t0: number, log: (line: string) => void, name: string): Promise<FaultResult> {
  const postmaster = stack.pid('db');
  const children = stack.dbProcesses().length - 1;
  const faultMs = performance.now() - t0;
  process.kill(postmaster, FAULT_SIGNALS[fault]);
  log(`[${name}] ${FAULT_SIGNALS[fault]} to the postmaster (pid ${postmaster}, ${children} children) at ${(faultMs / 1000).toFixed(1)} s`);
  try {
    const restart = await stack.waitForRestart('db', postmaster, 30_000);
    log(`[${name}] postmaster restarted as pid ${restart.pid} ${Math.round(restart.ms)} ms after the fault`);
    return { fault, postmaster, faultMs, restart };
  } catch (err) {
    return { fault, postmaster, faultMs, error: (err as Error).message };
  }
}

export const apiPids = (stack: ChaosStack): { api1: number; api2: number } => ({ api1: stack.pid('api1'), api2: stack.pid('api2') });

/**
 * What any PostgreSQL fault must leave true, whatever else a scenario judges: no request hung past
 * the watchdog, the APIs neither restarted nor died (same pids, alive), and the stack saw the
 * database exit and restarted it.
 */
export function checkApisAndHangs(v: VerdictBuilder, stack: ChaosStack, before: { api1: number; api2: number }, outcomes: RequestOutcome[]): void {
  const maxMs = Math.max(0, ...outcomes.map((o) => o.endMs - o.startMs));
  v.check(maxMs < QUERY_TIMEOUT_MS + 1000, `no request hung: the slowest took ${round1(maxMs)} ms (bound ${QUERY_TIMEOUT_MS + 1000} ms)`);
  const now = apiPids(stack);
  v.set('apiPids', { before, after: now });
  v.check(now.api1 === before.api1 && now.api2 === before.api2 && isAlive(before.api1) && isAlive(before.api2), 'the APIs were not restarted (same pids, alive)');
  v.check(/db exited unexpectedly[\s\S]*restarting db[\s\S]*db restarted/.test(stack.stackLog()), 'the stack logged the exit and the restart of db');
}

export async function pgFault(mode: 'restart' | 'kill', options: ScenarioOptions = {}): Promise<Verdict> {
  const log = options.log ?? console.log;
  const durationS = options.durationS ?? 30;
  const faultAtS = Math.min(10, durationS / 3);
  const name = mode === 'restart' ? 'pg-restart' : 'pg-kill';
  const v = new VerdictBuilder(name);
  const stack = new ChaosStack(name, { log, pgSettings: options.pgSettings });
  v.set('profile', profileName(options.pgSettings));
  await stack.up();
  return onOwnStack(stack, v, options, log, async () => {
    const prefix = runPrefix(mode === 'restart' ? 'R' : 'P');
    const apis = apiPids(stack);
    let t0 = 0;
    const loadDone = runLoad({ port: stack.httpPort, rates: scaleRates(PEAK, options.rateScale ?? 1), durationS, prefix, seed: options.seed, onStart: (t) => (t0 = t) });
    await sleep(faultAtS * 1000);
    const f = await faultPostmaster(stack, mode, t0, log, name);
    if (f.error) v.check(false, f.error);
    const load = await loadDone;
    const outcomes = load.outcomes;
    const errs = errorWindow(outcomes);
    const rec = recovery(outcomes, f.faultMs);
    const failed = outcomes.filter((o) => !(o.status === 200 || (o.status === 422 && o.group === 'débitos')));
    v.set('requests', outcomes.length);
    v.set('statuses', statusCounts(outcomes));
    v.set('errorsSeen', { failed: errs.failed, byStatus: errs.byStatus, firstToLastMs: errs.windowMs });
    v.set('failedLatencyMs', latency(failed));
    v.set('latencyMs', latency(outcomes));
    v.set('postmasterRestartedAfterMs', f.restart ? Math.round(f.restart.ms) : null);
    v.set('recoveryMs', { firstOkAfterFault: rec.firstOkAfterMs, steadyAfterFault: rec.steadyAfterMs });
    v.lag(load);
    v.check(!isAlive(f.postmaster), 'the old postmaster is gone');
    v.check(Object.keys(errs.byStatus).every((s) => s === '503'), `clients saw only 503s: ${JSON.stringify(errs.byStatus)}`);
    v.check(rec.firstOkAfterMs !== null, 'a 200 after the fault');
    v.check(rec.steadyAfterMs !== null && rec.steadyAfterMs < durationS * 1000 - f.faultMs - 2000, 'steady 200s before the load ended');
    checkApisAndHangs(v, stack, apis, outcomes);
    const books = await reconcile(stack.state.database, prefix, outcomes);
    // A SIGKILL under the contest profile (synchronous_commit = off) may lose the last
    // acknowledged commits: counted and reported, as documented; any other profile must not.
    v.books(books, { tolerateLost: mode === 'kill' && !options.pgSettings });
  });
}
