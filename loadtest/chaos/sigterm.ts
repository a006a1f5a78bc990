// sigterm: a rolling restart during the official peak load. SIGTERM api1, wait until the stack
// has restarted it and it serves, then the same for api2. Each instance must stop accepting,
// drain its in-flight requests and exit cleanly (its log shows `stopped`, not `closing remaining
// connections`), and no client may see a failed request.

import { performance } from 'node:perf_hooks';
import { ChaosStack, PEAK, VerdictBuilder, errorWindow, latency, runLoad, runPrefix, scaleRates, statusCounts, type ScenarioOptions, type Verdict, onOwnStack } from './scenario-kit';
import { alive as isAlive } from '../../stack/state';
import { setTimeout as sleep } from 'node:timers/promises';

export async function sigterm(options: ScenarioOptions = {}): Promise<Verdict> {
  const log = options.log ?? console.log;
  const durationS = options.durationS ?? 30;
  const v = new VerdictBuilder('sigterm');
  const stack = new ChaosStack('sigterm', { log });
  await stack.up();
  return onOwnStack(stack, v, options, log, async () => {
    const prefix = runPrefix('S');
    let t0 = 0;
    const loadDone = runLoad({ port: stack.httpPort, rates: scaleRates(PEAK, options.rateScale ?? 1), durationS, prefix, seed: options.seed, onStart: (t) => (t0 = t) });
    await sleep(Math.min(8, durationS / 4) * 1000);
    const drains: Record<string, unknown> = {};
    for (const name of ['api1', 'api2'] as const) {
      const pid = stack.pid(name);
      const logBefore = stack.componentLog(name).length;
      const at = performance.now();
      process.kill(pid, 'SIGTERM');
      log(`[sigterm] SIGTERM ${name} (pid ${pid}) at ${((at - t0) / 1000).toFixed(1)} s`);
      while (isAlive(pid) && performance.now() - at < 15_000) await sleep(10);
      const exitMs = performance.now() - at;
      let restartMs: number | null = null;
      try {
        restartMs = (await stack.waitForRestart(name, pid)).ms + exitMs;
      } catch (err) {
        v.check(false, (err as Error).message);
      }
      const segment = stack.componentLog(name).slice(logBefore);
      const clean = /SIGTERM: draining[\s\S]*stopped/.test(segment) && !/closing remaining connections/.test(segment);
      drains[name] = { exitedAfterMs: Math.round(exitMs), servingAgainAfterMs: restartMs === null ? null : Math.round(restartMs), cleanExit: clean };
      v.check(!isAlive(pid), `${name} exited`);
      v.check(clean, `${name} drained cleanly (log shows "stopped", not "closing remaining connections"): ${JSON.stringify(segment.slice(-400))}`);
      await sleep(3000);
    }
    const load = await loadDone;
    const outcomes = load.outcomes;
    const errs = errorWindow(outcomes);
    v.set('requests', outcomes.length);
    v.set('statuses', statusCounts(outcomes));
    v.set('errorsSeen', { failed: errs.failed, byStatus: errs.byStatus, firstToLastMs: errs.windowMs });
    v.set('latencyMs', latency(outcomes));
    v.set('drains', drains);
    v.lag(load);
    v.check(errs.failed === 0, `zero failed requests (${errs.failed}: ${JSON.stringify(errs.byStatus)})`);
    await v.reconcile(stack.state.database, prefix, outcomes);
  });
}
