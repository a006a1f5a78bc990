// The open-model generator and npm run hops against a real stack (the pure parts and misbehaving
// fake servers are in test/open.test.ts).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { measuredStep, runStep } from '../../loadtest/lib/open-model';
import type { StackState } from '../../stack/state';
import { REPO, useStack, assertSane } from '../helpers';

describe('against a real stack', () => {
  const stack = useStack('open');
  let state: StackState;
  before(() => {
    state = stack.refresh();
    stack.reset();
  });

  it('300 req/s for 3 s: every request answered, and the ledger holds exactly the acknowledged transactions', async () => {
    const r = await runStep({ port: stack.httpPort, ratePerS: 300, durationS: 3, seed: 42 });
    assertSane(r);
    assert.equal(r.sent, 900);
    assert.equal(r.completed, 900, JSON.stringify(r.statuses));
    assert.equal(r.errors, 0, JSON.stringify(r.statuses));
    assert.equal((r.statuses['200'] ?? 0) + (r.statuses['422'] ?? 0), 900);
    assert.deepEqual([r.byKind.debits.sent, r.byKind.credits.sent, r.byKind.statements.sent], [582, 291, 27]);
    assert.equal(r.byKind.statements.ok, 27);
    assert.equal(r.byKind.credits.ok, 291);
    assert.equal(r.achievedPerS, 300);
    // Each 200 to a POST is one ledger entry; a 422 changes nothing.
    const posts200 = r.byKind.debits.sent + r.byKind.credits.sent - (r.statuses['422'] ?? 0);
    assert.equal(Number(stack.psql('SELECT count(*) FROM ledger')[0][0]), posts200);
    assert.deepEqual(stack.audit(), []);
  });

  it('measuredStep: CPU and memory of each component during the step', async (t) => {
    const r = await measuredStep(state, { port: stack.httpPort, ratePerS: 200, durationS: 2, seed: 43 });
    assertSane(r);
    assert.equal(r.errors, 0, JSON.stringify(r.statuses));
    if (!state.cgroups) {
      assert.equal(r.usageMeasured, false);
      t.skip('the stack runs without cgroups (needs root and cgroup v1): per-component usage not checked');
      return;
    }
    assert.deepEqual(r.components.map((c) => c.name), ['db', 'api1', 'api2', 'nginx']);
    for (const c of r.components) {
      assert.ok(c.cpuUtil > 0 && c.cpuUtil <= (c.cpuLimit ?? 2) * 1.1, `${c.name} ${c.cpuUtil}`);
      assert.ok(c.cpuMsPerRequest > 0 && c.cpuMsPerRequest < 20, `${c.name} ${c.cpuMsPerRequest}`);
      assert.ok(c.peakMemoryBytes > 0 && c.peakMemoryBytes <= (c.memoryLimitBytes ?? Infinity));
      assert.equal(c.oomKills, 0);
    }
    for (const api of r.components.filter((c) => c.name.startsWith('api'))) {
      assert.ok(api.rssBytes! > 10 * 2 ** 20 && api.rssBytes! < 100 * 2 ** 20, `${api.name} rss ${api.rssBytes}`);
      assert.ok(api.peakRssBytes! >= api.rssBytes! * 0.9, `${api.name} peak ${api.peakRssBytes} rss ${api.rssBytes}`);
    }
    // The two instances share the load round-robin.
    const [a1, a2] = r.components.filter((c) => c.name.startsWith('api')).map((c) => c.cpuUtil);
    assert.ok(Math.min(a1, a2) > 0.4 * Math.max(a1, a2), `api cpu ${a1} vs ${a2}`);
  });

  it('npm run hops: every path measured, and client 5 left as it was', () => {
    const balance = (): string => stack.psql('SELECT balance FROM accounts WHERE id = 5')[0][0];
    const entries = (): number => Number(stack.psql('SELECT count(*) FROM ledger WHERE account_id = 5')[0][0]);
    const [before, entriesBefore] = [balance(), entries()];
    const json = path.join(stack.home, 'hops.json');
    const env: NodeJS.ProcessEnv = { ...process.env, CREBITOS_HOME: stack.home, HTTP_PORT: String(stack.httpPort), PG_PORT: String(stack.pgPort) };
    delete env.NODE_OPTIONS;
    const run = spawnSync(process.execPath, ['dist/loadtest/bench/hops.js', '--gaps', '3,1', '--requests', '10', '--rounds', '1', '--json', json], { cwd: REPO, env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /gap 3 ms against 1 ms, p50: db x[\d.]+, api x[\d.]+, nginx x[\d.]+/);
    type P = { p50: number; p90: number; p99: number };
    const out = JSON.parse(fs.readFileSync(json, 'utf8')) as {
      results: { gapMs: number; db: P; api: P; nginx: P; nodeP50: number; edgeP50: number }[];
      perRound: Record<string, P[]>;
    };
    assert.deepEqual(out.results.map((r) => r.gapMs), [3, 1]);
    for (const r of out.results) {
      for (const p of [r.db, r.api, r.nginx]) assert.ok(p.p50 > 0 && p.p50 < 1000 && p.p50 <= p.p90 && p.p90 <= p.p99, JSON.stringify(r));
      // One round: each gap's figures are that gap's own series, and the hop shares their differences.
      for (const name of ['db', 'api', 'nginx'] as const) assert.deepEqual(r[name], out.perRound[`${r.gapMs}/${name}`][0]);
      assert.equal(r.nodeP50, r.api.p50 - r.db.p50);
      assert.equal(r.edgeP50, r.nginx.p50 - r.api.p50);
    }
    // 3 paths x 2 gaps x (2 unmeasured + 10 measured) transactions, credits and debits of 1 in turn.
    assert.equal(entries() - entriesBefore, 3 * 2 * 12);
    assert.equal(balance(), before);
    assert.deepEqual(stack.audit(), []);
  });

  it('hops refuses bad options and a stack that is not running', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, CREBITOS_HOME: path.join(stack.home, 'nothing-here') };
    delete env.NODE_OPTIONS;
    const hops = (...args: string[]) => spawnSync(process.execPath, ['dist/loadtest/bench/hops.js', ...args], { cwd: REPO, env, encoding: 'utf8', timeout: 30_000 });
    const odd = hops('--requests', '11');
    assert.equal(odd.status, 1);
    assert.match(odd.stderr, /--requests: an even number/);
    const down = hops();
    assert.equal(down.status, 1);
    assert.match(down.stderr, /no running stack .*npm run up/);
  });
});
