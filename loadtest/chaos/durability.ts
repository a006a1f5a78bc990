// durability: what a crash of PostgreSQL loses under each settings profile, and what safety costs.
//
// 1. Crash runs, per profile (safe = postgresql.conf + postgresql.safe.conf, contest =
//    postgresql.conf alone), under the official peak load:
//    - "all": every PostgreSQL process stopped (SIGSTOP) then SIGKILLed, as `docker kill` of the
//      container or a host-level kill does: nothing gets to flush or exit by itself;
//    - "postmaster": SIGKILL of the postmaster alone (the backends notice and exit by themselves).
//    The stack restarts PostgreSQL (crash recovery replays the WAL), then every request answered
//    200 is looked up in the ledger. Safe must lose nothing; the contest profile's losses are
//    counted (synchronous_commit = off: a commit is acknowledged once its WAL record is in
//    shared memory, and the WAL writer writes it out every wal_writer_delay; a crash of every
//    process before that loses it: up to ~3 x wal_writer_delay of commits). Killing the
//    postmaster alone is worse for that profile: the WAL writer exits at once when the
//    postmaster dies, but a backend busy with a query still commits and answers before it
//    notices, and nobody writes that WAL any more.
// 2. Cost: both profiles up side by side, the same closed-loop POST load (autocannon-style, N
//    keep-alive connections) alternating between them, --runs times each: median throughput and
//    p99, and the safe/contest ratios.
//
// Only crashes of PostgreSQL are simulated, not of the OS: data handed to the kernel with
// write() survives a process crash whether or not it was fsynced, so fsync (and initdb's
// --no-sync in stack/supervisor.ts) does not change these results; they matter only for an OS crash or a
// power loss, which this scenario cannot produce.

import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ChaosStack, PEAK, VerdictBuilder, closedLoop, errorWindow, reconcile, recovery, report, runLoad, runPrefix, waitForDatabase, type RequestOutcome, type ScenarioOptions, type ThroughputResult, type Verdict } from './scenario-kit';
import { REPO } from '../lib/provenance';
import { median } from '../lib/stats';
import { setTimeout as sleep } from 'node:timers/promises';

export type Profile = 'safe' | 'contest';
export type CrashMode = 'all' | 'postmaster';
export const SAFE_SETTINGS = path.join(REPO, 'postgresql.safe.conf');
const settingsOf = (p: Profile): string | undefined => (p === 'safe' ? SAFE_SETTINGS : undefined);

export interface CrashRun {
  profile: Profile;
  mode: CrashMode;
  acknowledged: number;
  lost: number;
  lostSample: string[];
  errors: Record<string, number>;
  firstOkAfterMs: number | null;
  problems: string[];
}

/** One crash under load on a running stack; the stack restarts PostgreSQL. */
export async function crashOnce(stack: ChaosStack, profile: Profile, mode: CrashMode, options: { durationS: number; seed?: number; log: (l: string) => void }): Promise<CrashRun> {
  const prefix = runPrefix(profile === 'safe' ? 'D' : 'C');
  let t0 = 0;
  const loadDone = runLoad({ port: stack.httpPort, rates: PEAK, durationS: options.durationS, prefix, seed: options.seed, onStart: (t) => (t0 = t) });
  await sleep((options.durationS / 2) * 1000);
  const postmaster = stack.pid('db');
  const faultMs = performance.now() - t0;
  const processes = stack.dbProcesses();
  if (mode === 'all') {
    // PostgreSQL's children each lead their own process group (InitPostmasterChild calls
    // setsid()), so no single kill(2) reaches them all. Freeze every one first, so none can flush
    // or exit cleanly in between, then kill them.
    for (const pid of processes) signal(pid, 'SIGSTOP');
    for (const pid of processes) signal(pid, 'SIGKILL');
  } else {
    process.kill(postmaster, 'SIGKILL');
  }
  options.log(`[durability] ${profile}: SIGKILL ${mode === 'all' ? `every PostgreSQL process (${processes.length})` : 'the postmaster'} at ${(faultMs / 1000).toFixed(1)} s`);
  await stack.waitForRestart('db', postmaster, 30_000);
  const load = await loadDone;
  await waitForDatabase(stack.state.database);
  const books = await reconcile(stack.state.database, prefix, load.outcomes);
  const rec = recovery(load.outcomes, faultMs);
  return {
    profile,
    mode,
    acknowledged: books.acknowledged,
    lost: books.lost,
    lostSample: books.lostSample,
    errors: errorWindow(load.outcomes).byStatus,
    firstOkAfterMs: rec.firstOkAfterMs,
    problems: books.problems.filter((p) => !p.includes('missing from the ledger')),
  };
}

export async function durability(options: ScenarioOptions = {}): Promise<Verdict> {
  const log = options.log ?? console.log;
  const runs = options.runs ?? 3;
  const durationS = options.durationS ?? 12;
  const v = new VerdictBuilder('durability');
  const crashes: CrashRun[] = [];
  // 1. Crash runs, each on a fresh stack: the restart policy's backoff doubles with every crash
  // within a minute, so crashes in a row on one stack would measure the backoff, not recovery.
  for (let i = 0; i < runs; i++) {
    for (const profile of ['safe', 'contest'] as Profile[]) {
      for (const mode of ['all', 'postmaster'] as CrashMode[]) {
        const stack = new ChaosStack(`dur-${profile}`, { pgSettings: settingsOf(profile), log });
        await stack.up();
        try {
          const r = await crashOnce(stack, profile, mode, { durationS, seed: options.seed, log });
          log(`[durability] ${profile}/${mode}: ${r.acknowledged} acknowledged, ${r.lost} lost, errors ${JSON.stringify(r.errors)}, first 200 ${r.firstOkAfterMs} ms after the crash`);
          crashes.push(r);
          for (const p of r.problems) v.check(false, `${profile}/${mode}: ${p}`);
        } finally {
          stack.down();
        }
      }
    }
  }
  const lostBy = (p: Profile, m?: CrashMode): number[] => crashes.filter((c) => c.profile === p && (!m || c.mode === m)).map((c) => c.lost);
  v.set('crashRuns', crashes.map((c) => ({ profile: c.profile, mode: c.mode, acknowledged: c.acknowledged, lost: c.lost, errors: c.errors, firstOkAfterMs: c.firstOkAfterMs })));
  v.set('lostPerRun', {
    safe: { all: lostBy('safe', 'all'), postmaster: lostBy('safe', 'postmaster') },
    contest: { all: lostBy('contest', 'all'), postmaster: lostBy('contest', 'postmaster') },
  });
  v.check(lostBy('safe').every((n) => n === 0), `the safe profile lost acknowledged transactions: ${JSON.stringify(lostBy('safe'))}`);
  const contestLost = lostBy('contest').reduce((a, b) => a + b, 0);
  if (contestLost > 0) v.note(`the contest profile lost ${contestLost} acknowledged transaction(s) over ${lostBy('contest').length} crashes (documented: synchronous_commit = off)`);

  // 2. Cost, alternating between the two profiles in one run.
  if (!options.skipCost) {
    const cost = await measureCost({ runs, log, seed: options.seed });
    v.set('cost', cost.summary);
    for (const p of cost.problems) v.check(false, p);
  }
  const verdict = v.finish();
  if (!options.quiet) report(verdict, log);
  return verdict;
}

async function measureCost(options: { runs: number; durationS?: number; connections?: number; log: (l: string) => void; seed?: number }): Promise<{ summary: Record<string, unknown>; problems: string[] }> {
  const durationS = options.durationS ?? 10;
  const connections = options.connections ?? 32;
  const stacks = { safe: new ChaosStack('cost-safe', { pgSettings: SAFE_SETTINGS, log: options.log }), contest: new ChaosStack('cost-contest', { log: options.log }) };
  const results: Record<Profile, ThroughputResult[]> = { safe: [], contest: [] };
  const outcomes: Record<Profile, RequestOutcome[]> = { safe: [], contest: [] };
  const prefixes = { safe: runPrefix('Q'), contest: runPrefix('W') };
  const problems: string[] = [];
  await stacks.safe.up();
  try {
    await stacks.contest.up();
    try {
      let serial = 0;
      for (const p of ['safe', 'contest'] as Profile[]) await closedLoop({ port: stacks[p].httpPort, connections, durationS: 2, prefix: runPrefix('U') }); // warm-up
      for (let i = 0; i < options.runs; i++) {
        const order: Profile[] = i % 2 === 0 ? ['safe', 'contest'] : ['contest', 'safe'];
        for (const p of order) {
          const r = await closedLoop({ port: stacks[p].httpPort, connections, durationS, prefix: prefixes[p] + String.fromCharCode(97 + (serial++ % 26)), seed: options.seed });
          results[p].push(r);
          outcomes[p].push(...r.outcomes.map((o) => ({ ...o })));
          options.log(`[durability] cost run ${i + 1} ${p.padEnd(7)}: ${r.throughput} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, ${JSON.stringify(r.statuses)}`);
          r.outcomes = [];
        }
      }
      for (const p of ['safe', 'contest'] as Profile[]) {
        const books = await reconcile(stacks[p].state.database, prefixes[p], outcomes[p]);
        for (const x of books.problems) problems.push(`cost/${p}: ${x}`);
      }
    } finally {
      stacks.contest.down();
    }
  } finally {
    stacks.safe.down();
  }
  const med = (p: Profile, f: (r: ThroughputResult) => number): number => median(results[p].map(f));
  const summary = {
    load: `closed loop, ${connections} keep-alive connections, POSTs (2/3 debits), ${durationS} s per run, alternating profiles`,
    runs: Object.fromEntries((['safe', 'contest'] as Profile[]).map((p) => [p, results[p].map((r) => ({ throughput: r.throughput, p99: r.latencyMs.p99, p50: r.latencyMs.p50 }))])),
    medianThroughput: { safe: med('safe', (r) => r.throughput), contest: med('contest', (r) => r.throughput) },
    medianP99Ms: { safe: med('safe', (r) => r.latencyMs.p99 ?? 0), contest: med('contest', (r) => r.latencyMs.p99 ?? 0) },
    ratioSafeOverContest: {
      throughput: Math.round((med('safe', (r) => r.throughput) / med('contest', (r) => r.throughput)) * 1000) / 1000,
      p99: Math.round((med('safe', (r) => r.latencyMs.p99 ?? 0) / med('contest', (r) => r.latencyMs.p99 ?? 0)) * 1000) / 1000,
    },
  };
  return { summary, problems };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
