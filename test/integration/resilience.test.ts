// Faults the service must survive without losing an acknowledged transaction: database
// connections killed, a PostgreSQL backend crash (what an OOM kill does), and an API instance
// drained with SIGTERM while nginx keeps sending it requests on keep-alive connections.
// Tests run in order on one stack; the last one leaves only api1 running.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { test } from 'node:test';
import { alive, range, sleep, useStack, type HttpResponse } from '../helpers';

// A short watchdog (server.ts QUERY_TIMEOUT_MS) bounds how long a request can wait on a
// connection that died without pg-native noticing.
const QUERY_TIMEOUT_MS = 1000;
const stack = useStack('resilience', { env: { QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS) } });

let serial = 0;
/** A unique 10-character descricao, so every acknowledged POST can be found in the ledger. */
const tag = (prefix: string): string => `${prefix}${(serial++).toString(36).padStart(10 - prefix.length, '0')}`;

interface Outcome {
  descricao: string;
  status: number;
  ms: number;
  /** performance.now() when the response (or the error) arrived */
  end: number;
}

/** Credits of 1 on client 3 (limit high enough never to refuse), one request at a time per worker. */
async function postLoop(prefix: string, workers: number, until: () => boolean, agent: http.Agent): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  await Promise.all(
    range(workers).map(async () => {
      while (!until()) {
        const descricao = tag(prefix);
        const started = performance.now();
        let res: HttpResponse | undefined;
        try {
          res = await stack.request('POST', '/clientes/3/transacoes', { valor: 1, tipo: 'c', descricao }, { agent });
        } catch {
          // a connection error counts as status 0
        }
        const end = performance.now();
        outcomes.push({ descricao, status: res?.status ?? 0, ms: end - started, end });
      }
    }),
  );
  return outcomes;
}

/**
 * Runs `postLoop` while `fault` injects a failure and waits for its effects; returns every
 * request's outcome once the load has stopped.
 */
async function underLoad(prefix: string, workers: number, fault: () => Promise<void>): Promise<Outcome[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: workers });
  let stopAt = Infinity;
  const load = postLoop(prefix, workers, () => performance.now() > stopAt, agent);
  try {
    await sleep(500);
    await fault();
  } finally {
    stopAt = performance.now();
  }
  const outcomes = await load;
  agent.destroy();
  return outcomes;
}

/**
 * Every 200 is in the ledger exactly once, nothing else is, and the audit is clean. With
 * `lossWindow`, acknowledged entries may be missing only if they were acknowledged within that
 * window around a database crash (synchronous_commit = off, see postgresql.conf); returns how many.
 */
function assertBooks(prefix: string, outcomes: Outcome[], lossWindow?: { at: number; ms: number }): number {
  const rows = stack.psql(`SELECT description, count(*) FROM ledger WHERE description LIKE '${prefix}%' GROUP BY description`);
  const inLedger = new Map(rows.map(([d, n]) => [d, Number(n)]));
  let lost = 0;
  for (const o of outcomes.filter((x) => x.status === 200)) {
    const count = inLedger.get(o.descricao);
    if (count === undefined && lossWindow && Math.abs(o.end - lossWindow.at) <= lossWindow.ms) {
      lost++;
      continue;
    }
    assert.equal(count, 1, `acknowledged ${o.descricao} is in the ledger once`);
  }
  const unacknowledged = outcomes.filter((o) => o.status !== 200 && inLedger.has(o.descricao));
  // A request cut by a fault after its commit would show up here (the client saw an error but
  // the money moved). None may, for the faults these tests inject.
  assert.deepEqual(unacknowledged, [], 'no unacknowledged request was applied');
  assert.deepEqual(stack.audit(), []);
  return lost;
}

const countBy = (outcomes: Outcome[]): Record<number, number> =>
  outcomes.reduce<Record<number, number>>((acc, o) => ((acc[o.status] = (acc[o.status] ?? 0) + 1), acc), {});

test('database connections terminated under load: fast 503s at most, then the pools reconnect by themselves', async () => {
  const outcomes = await underLoad('t', 8, async () => {
    const killed = stack.psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`);
    assert.ok(Number(killed[0][0]) >= 2, `terminated ${killed[0][0]} API connections`);
    await sleep(1500);
  });
  const statuses = countBy(outcomes);
  assert.deepEqual(Object.keys(statuses).filter((s) => s !== '200' && s !== '503'), [], `only 200 and 503: ${JSON.stringify(statuses)}`);
  assert.ok(Math.max(...outcomes.map((o) => o.ms)) < QUERY_TIMEOUT_MS + 1500, 'no request hung');
  // Back to normal by themselves: a connection that died unnoticed is found by the watchdog
  // (QUERY_TIMEOUT_MS, checked every half second), so the last ones may only be replacing theirs
  // when the load stops; within a few seconds every connection of both pools answers again.
  const deadline = performance.now() + 5000;
  let after: number[] = [];
  do {
    after = (await Promise.all(range(12).map(() => stack.request('GET', '/clientes/3/extrato', undefined, { agent: false })))).map((r) => r.status);
    if (after.every((status) => status === 200)) break;
    await sleep(200);
  } while (performance.now() < deadline);
  assert.deepEqual(after, range(12).map(() => 200));
  assertBooks('t', outcomes);
});

test('a crashed PostgreSQL backend (as after an OOM kill): fast 503s during crash recovery, then service resumes', async (t) => {
  let killedAt = 0;
  const outcomes = await underLoad('k', 8, async () => {
    // SIGKILL one API backend: the postmaster ends every backend and runs crash recovery.
    const [[pid]] = stack.psql(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() LIMIT 1`);
    killedAt = performance.now();
    process.kill(Number(pid), 'SIGKILL');
    await sleep(3000);
  });
  const statuses = countBy(outcomes);
  assert.ok((statuses[503] ?? 0) > 0, `the crash was noticed: ${JSON.stringify(statuses)}`);
  assert.deepEqual(Object.keys(statuses).filter((s) => s !== '200' && s !== '503'), [], `only 200 and 503: ${JSON.stringify(statuses)}`);
  assert.ok(Math.max(...outcomes.map((o) => o.ms)) < QUERY_TIMEOUT_MS + 1500, 'no request hung');
  const tail = outcomes.slice(-16);
  assert.ok(tail.every((o) => o.status === 200), 'serving 200s again before the load ended');
  // synchronous_commit = off (the contest profile): commits acknowledged in the last few
  // wal_writer_delay periods before the crash can be lost in recovery; it happened in CI. Only
  // those may be missing: nothing acknowledged well before or after the crash.
  const lost = assertBooks('k', outcomes, { at: killedAt, ms: 250 });
  t.diagnostic(`acknowledged transactions lost in crash recovery: ${lost} of ${outcomes.filter((o) => o.status === 200).length}`);
});

test('SIGTERM drains an API instance behind nginx keep-alive: no request fails, none is cut', async () => {
  const api2 = stack.pids.api2;
  let drainMs = 0;
  const outcomes = await underLoad('s', 16, async () => {
    const started = performance.now();
    process.kill(api2, 'SIGTERM');
    while (alive(api2) && performance.now() - started < 10_000) await sleep(20);
    drainMs = performance.now() - started;
    await sleep(700);
  });
  assert.ok(!alive(api2), 'api2 exited');
  assert.ok(drainMs < 5000, `api2 drained in ${drainMs.toFixed(0)} ms, before the DRAIN_MS deadline`);
  const log = fs.readFileSync(path.join(stack.home, 'logs', 'api2.log'), 'utf8');
  assert.match(log, /SIGTERM: draining[\s\S]*stopped/);
  assert.doesNotMatch(log, /closing remaining connections/, 'nothing had to be cut at the deadline');
  assert.deepEqual(countBy(outcomes), { 200: outcomes.length }, 'every request got 200');
  assert.ok(outcomes.length > 100, `load kept flowing (${outcomes.length} requests)`);
  assertBooks('s', outcomes);
});


test('an API instance killed under load is restarted by the stack and rejoins nginx', async () => {
  // After the SIGTERM test the stack restarted api2 too (as docker's restart policy would).
  await waitForRestart('api2', stack.pids.api2);
  const old = stack.pids.api1;
  let fresh = 0;
  const outcomes = await underLoad('x', 8, async () => {
    process.kill(old, 'SIGKILL');
    fresh = await waitForRestart('api1', old);
    await sleep(500);
  });
  const statuses = countBy(outcomes);
  // Only requests already written to api1 when it died may fail: in flight, or sent on a
  // kept-alive connection nginx had not yet seen close. nginx never replays a POST, so they get
  // 502 (and may or may not have been applied: assertBooks below checks only the 200s).
  // While api2 alone carries the load it may reach its edge limit (nginx max_conns): those
  // requests get a 503 and reached no instance.
  const failed = outcomes.length - (statuses[200] ?? 0);
  assert.deepEqual(Object.keys(statuses).filter((s) => s !== '200' && s !== '502' && s !== '503'), [], JSON.stringify(statuses));
  assert.ok((statuses[502] ?? 0) <= 16, `a handful of requests cut by the kill: ${JSON.stringify(statuses)}`);
  assert.ok(failed <= 100, `a handful of requests failed, not a blackout: ${JSON.stringify(statuses)}`);
  assert.match(stack.log, /api1 exited unexpectedly \(signal SIGKILL\)[\s\S]*restarting api1[\s\S]*api1 restarted/);
  // Both instances serve again: each one's write counter moves across a burst of fresh connections.
  stack.pids.api1 = fresh;
  const before = stack.apiWrites();
  await Promise.all(range(20).map(() => stack.request('GET', '/clientes/1/extrato', undefined, { agent: false })));
  const after = stack.apiWrites();
  assert.ok(after.api1 > before.api1 && after.api2 > before.api2, `requests reached both instances: ${JSON.stringify({ before, after, pids: stack.pids })}`);
  assertBooks('x', outcomes.filter((o) => o.status === 200));
});

/** Waits until the stack has restarted the component and the new one serves; returns its pid. */
async function waitForRestart(name: string, oldPid: number): Promise<number> {
  const { pid } = await stack.waitForRestart(name, oldPid, 15_000);
  stack.pids[name] = pid;
  return pid;
}
