// pg-restart / pg-kill: PostgreSQL goes away during the official peak load.
// - restart: SIGINT to the postmaster (fast shutdown: backends terminated, checkpoint, exit);
// - kill: SIGKILL of the postmaster alone (its backends notice its death and exit on their own,
//   which may take a moment; the new postmaster cannot start while they hold shared memory).
// The stack restarts the postmaster on the same data directory. Requests in flight and during
// the outage must get a fast 503 (never a hang), and both APIs' pools must reconnect by
// themselves: the API pids do not change.

import { performance } from 'node:perf_hooks';
import { ChaosStack, PEAK, VerdictBuilder, errorWindow, latency, reconcile, recovery, round1, runLoad, runPrefix, scaleRates, statusCounts, type ScenarioOptions, type Verdict, onOwnStack } from './scenario-kit';
import { alive as isAlive } from '../../stack/state';
import { setTimeout as sleep } from 'node:timers/promises';

/** server.ts's QUERY_TIMEOUT_MS (default 2000, passed through from the environment): the longest a request may wait on a dead connection. */
const QUERY_TIMEOUT_MS = Number(process.env.QUERY_TIMEOUT_MS || 2000);

export async function pgFault(mode: 'restart' | 'kill', options: ScenarioOptions = {}): Promise<Verdict> {
  const log = options.log ?? console.log;
  const durationS = options.durationS ?? 30;
  const faultAtS = Math.min(10, durationS / 3);
  const name = mode === 'restart' ? 'pg-restart' : 'pg-kill';
  const v = new VerdictBuilder(name);
  const stack = new ChaosStack(name, { log, pgSettings: options.pgSettings });
  v.set('profile', options.pgSettings ? `postgresql.conf + ${options.pgSettings.split('/').pop()}` : 'contest (postgresql.conf)');
  await stack.up();
  return onOwnStack(stack, v, options, log, async () => {
    const prefix = runPrefix(mode === 'restart' ? 'R' : 'P');
    const apis = { api1: stack.pid('api1'), api2: stack.pid('api2') };
    const postmaster = stack.pid('db');
    let t0 = 0;
    const loadDone = runLoad({ port: stack.httpPort, rates: scaleRates(PEAK, options.rateScale ?? 1), durationS, prefix, seed: options.seed, onStart: (t) => (t0 = t) });
    await sleep(faultAtS * 1000);
    const children = stack.dbProcesses().length - 1;
    const faultMs = performance.now() - t0;
    process.kill(postmaster, mode === 'restart' ? 'SIGINT' : 'SIGKILL');
    log(`[${name}] ${mode === 'restart' ? 'SIGINT' : 'SIGKILL'} to the postmaster (pid ${postmaster}, ${children} children) at ${(faultMs / 1000).toFixed(1)} s`);
    let dbRestart: { pid: number; ms: number } | undefined;
    try {
      dbRestart = await stack.waitForRestart('db', postmaster, 30_000);
      log(`[${name}] postmaster restarted as pid ${dbRestart.pid} ${Math.round(dbRestart.ms)} ms after the fault`);
    } catch (err) {
      v.check(false, (err as Error).message);
    }
    const load = await loadDone;
    const outcomes = load.outcomes;
    const errs = errorWindow(outcomes);
    const rec = recovery(outcomes, faultMs);
    const failed = outcomes.filter((o) => !(o.status === 200 || (o.status === 422 && o.group === 'débitos')));
    v.set('requests', outcomes.length);
    v.set('statuses', statusCounts(outcomes));
    v.set('errorsSeen', { failed: errs.failed, byStatus: errs.byStatus, firstToLastMs: errs.windowMs });
    v.set('failedLatencyMs', latency(failed));
    v.set('latencyMs', latency(outcomes));
    v.set('postmasterRestartedAfterMs', dbRestart ? Math.round(dbRestart.ms) : null);
    v.set('recoveryMs', { firstOkAfterFault: rec.firstOkAfterMs, steadyAfterFault: rec.steadyAfterMs });
    v.lag(load);
    v.check(!isAlive(postmaster), 'the old postmaster is gone');
    v.check(Object.keys(errs.byStatus).every((s) => s === '503'), `clients saw only 503s: ${JSON.stringify(errs.byStatus)}`);
    const maxMs = Math.max(0, ...outcomes.map((o) => o.endMs - o.startMs));
    v.check(maxMs < QUERY_TIMEOUT_MS + 1000, `no request hung: the slowest took ${round1(maxMs)} ms (bound ${QUERY_TIMEOUT_MS + 1000} ms)`);
    v.check(rec.firstOkAfterMs !== null, 'a 200 after the fault');
    v.check(rec.steadyAfterMs !== null && rec.steadyAfterMs < durationS * 1000 - faultMs - 2000, 'steady 200s before the load ended');
    const now = { api1: stack.pid('api1'), api2: stack.pid('api2') };
    v.set('apiPids', { before: apis, after: now });
    v.check(now.api1 === apis.api1 && now.api2 === apis.api2 && isAlive(apis.api1) && isAlive(apis.api2), 'the APIs were not restarted (same pids, alive)');
    v.check(/db exited unexpectedly[\s\S]*restarting db[\s\S]*db restarted/.test(stack.stackLog()), 'the stack logged the exit and the restart of db');
    const books = await reconcile(stack.state.database, prefix, outcomes);
    // A SIGKILL under the contest profile (synchronous_commit = off) may lose the last
    // acknowledged commits: counted and reported, as documented; any other profile must not.
    v.books(books, { tolerateLost: mode === 'kill' && !options.pgSettings });
  });
}
