// kill-api: SIGKILL api1 in the middle of the official peak load (340 req/s, a new connection
// per request). nginx keeps serving through api2; only requests already written to api1 may
// fail (502; nginx never replays a POST); the stack restarts api1 and it rejoins.

import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import { ChaosStack, PEAK, VerdictBuilder, errorWindow, latency, round1, runLoad, runPrefix, scaleRates, statusCounts, type ScenarioOptions, type Verdict, onOwnStack } from './scenario-kit';
import { alive as isAlive } from '../../stack/state';
import { setTimeout as sleep } from 'node:timers/promises';

export async function killApi(options: ScenarioOptions = {}): Promise<Verdict> {
  const log = options.log ?? console.log;
  const durationS = options.durationS ?? 30;
  const faultAtS = Math.min(10, durationS / 3);
  const v = new VerdictBuilder('kill-api');
  const stack = new ChaosStack('kill-api', { log });
  await stack.up();
  return onOwnStack(stack, v, options, log, async () => {
    const prefix = runPrefix('K');
    const victim = stack.pid('api1');
    let faultMs = 0;
    let restart: { pid: number; ms: number } | undefined;
    let restartError: string | undefined;
    let t0 = 0;
    const loadDone = runLoad({ port: stack.httpPort, rates: scaleRates(PEAK, options.rateScale ?? 1), durationS, prefix, seed: options.seed, onStart: (t) => (t0 = t) });
    await sleep(faultAtS * 1000);
    faultMs = performance.now() - t0;
    process.kill(victim, 'SIGKILL');
    log(`[kill-api] SIGKILL api1 (pid ${victim}) at ${(faultMs / 1000).toFixed(1)} s of ${durationS} s`);
    try {
      restart = await stack.waitForRestart('api1', victim);
      log(`[kill-api] api1 restarted as pid ${restart.pid}, serving ${Math.round(restart.ms)} ms after the kill`);
    } catch (err) {
      restartError = (err as Error).message;
    }
    const load = await loadDone;
    const outcomes = load.outcomes;
    const errs = errorWindow(outcomes);
    v.set('requests', outcomes.length);
    v.set('statuses', statusCounts(outcomes));
    v.set('errorsSeen', { failed: errs.failed, byStatus: errs.byStatus, firstToLastMs: errs.windowMs, firstAtMsAfterKill: errs.firstMs === null ? null : round1(errs.firstMs - faultMs) });
    v.set('latencyMs', latency(outcomes));
    v.set('restartMs', restart ? Math.round(restart.ms) : null);
    v.lag(load);
    v.check(!restartError, restartError ?? '');
    v.check(!isAlive(victim), 'the killed api1 is gone');
    // Requests written to api1 may fail, as 502 (or a debit's 422, which is fine). While api2
    // alone carries the load it may reach its edge limit (nginx max_conns): those requests get
    // a 503 and reached no instance.
    v.check(Object.keys(errs.byStatus).every((s) => s === '502' || s === '503'), `only 502s and 503s: ${JSON.stringify(errs.byStatus)}`);
    v.check((errs.byStatus['502'] ?? 0) <= 20, `a handful of requests cut by the kill (${errs.byStatus['502'] ?? 0} × 502)`);
    v.check(errs.failed <= 100, `a handful of failures, not a blackout (${errs.failed})`);
    v.check(errs.windowMs <= 2000, `errors within 2 s of each other (${errs.windowMs} ms)`);
    // Rejoined: both instances' write counters move across a burst of fresh connections.
    const before = stack.apiWrites();
    await Promise.all(Array.from({ length: 20 }, () => get(stack.httpPort, '/clientes/1/extrato')));
    const after = stack.apiWrites();
    const rejoined = after.api1 > before.api1 && after.api2 > before.api2;
    v.set('rejoined', rejoined);
    v.check(rejoined, 'requests reach both instances again after the restart');
    v.check(/api1 exited unexpectedly \(signal SIGKILL\)[\s\S]*restarting api1[\s\S]*api1 restarted/.test(stack.stackLog()), 'the stack logged the exit and the restart');
    await v.reconcile(stack.state.database, prefix, outcomes);
  });
}

export function get(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
