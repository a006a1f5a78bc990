// npm run ageing's pure parts: options, the database readings between windows, the ageing
// ratio and the summary across variants; and the PostgreSQL process roles read from /proc.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AGEING_LIMIT, ageingRatio, servedCount, trendRatio, dbReading, dbWindow, measurement, parseAgeingArgs, rolesText, summarizeAgeing, type AgeingWindow, type DbReading } from '../loadtest/bench/ageing';
import { cpuSecondsOfStat, readPgRoleCpu, waitedChildrenCpuSecondsOfStat, roleMsPerRequest, roleOf, type PgRoleCpu } from '../loadtest/lib/pg-processes';

describe('ageing options', () => {
  it('defaults: 2,500 req/s for 3 minutes in 10 s windows, the repository alone', () => {
    const o = parseAgeingArgs([]);
    assert.deepEqual([o.rate, o.seconds, o.windowS, o.rounds, o.compare, o.variants], [2500, 180, 10, 1, undefined, undefined]);
  });
  it('refuses what cannot run', () => {
    assert.throws(() => parseAgeingArgs(['--window', '20', '--seconds', '10']), /longer than --seconds/);
    assert.throws(() => parseAgeingArgs(['--compare', 'nope']), /unknown experiment/);
    assert.throws(() => parseAgeingArgs(['--variants', 'before']), /needs --compare/);
    assert.throws(() => parseAgeingArgs(['--compare', 'ledger', '--variants', 'before,nope']), /no variant nope/);
    assert.throws(() => parseAgeingArgs(['--rounds', '1.5']), /integer/);
  });
  it('takes a subset of an experiment', () => {
    assert.deepEqual(parseAgeingArgs(['--compare', 'ledger', '--variants', 'before']).variants, ['before']);
  });
});

const reading = (scans: Record<string, [number, number]>, a: Partial<DbReading['accounts']> = {}): DbReading => ({
  ledgerIndexes: Object.fromEntries(Object.entries(scans).map(([k, [s, r]]) => [k, { scans: s, read: r }])),
  accounts: { updates: 0, hotUpdates: 0, deadTuples: 0, autovacuums: 0, autoanalyzes: 0, heapPages: 1, indexPages: 2, ...a },
});

describe('database readings', () => {
  it('reads the two queries’ rows, numbers given as text or numbers', () => {
    const r = dbReading([
      [{ name: 'ledger_pkey', scans: '40', read: 400 }],
      [{ updates: 10, hot: 9, dead: 3, autovacuums: 0, autoanalyzes: '1', heap_pages: 1, index_pages: 2 }],
    ]);
    assert.deepEqual(r.ledgerIndexes, { ledger_pkey: { scans: 40, read: 400 } });
    assert.equal(r.accounts.hotUpdates, 9);
    assert.equal(r.accounts.autoanalyzes, 1);
    assert.throws(() => dbReading([[], []]), /no row for accounts/);
  });
  it('a window: entries read per scan of each index, the HOT share, autovacuum’s visits', () => {
    const before = reading({ ledger_pkey: [100, 1000], ledger_account_recent: [5, 5] }, { updates: 100, hotUpdates: 90, autovacuums: 1 });
    const after = reading({ ledger_pkey: [300, 3030], ledger_account_recent: [5, 5] }, { updates: 200, hotUpdates: 180, autovacuums: 2, autoanalyzes: 1, deadTuples: 7 });
    const w = dbWindow(before, after);
    assert.deepEqual(w.ledgerReadPerScan, { ledger_pkey: 10.2, ledger_account_recent: null });
    assert.equal(w.hotShare, 0.9);
    assert.equal(w.autovacuumed, 'va');
    assert.equal(w.deadTuples, 7);
  });
  it('an index that appears later counts from zero', () => {
    assert.deepEqual(dbWindow(reading({}), reading({ x: [4, 40] })).ledgerReadPerScan, { x: 10 });
  });
});

const win = (db: number | null, p99 = 1, errors = 0, lagValid = true, nginx = 0.1): AgeingWindow =>
  ({ p99, errors, lagValid, dbMsPerServed: db, cpuMsPerRequest: db === null ? null : { db, api: 0, nginx, total: db + nginx } }) as unknown as AgeingWindow;

describe('the ageing ratio', () => {
  it('is the costliest window over the first, so a rise that later falls back still counts', () => {
    assert.equal(ageingRatio([0.16, 0.2, 0.28, 0.17]), 1.75);
    assert.equal(ageingRatio([0.2, 0.19, 0.18]), 1);
    assert.equal(ageingRatio([]), null);
    assert.equal(ageingRatio([0, 1]), null);
  });
  it('the trend compares the medians of the last and first thirds', () => {
    assert.equal(trendRatio([0.2, 0.2, 0.9, 0.2, 0.3, 0.3]), 1.5);
    assert.equal(trendRatio([0.2, 0.9, 0.2]), 1);
    assert.equal(trendRatio([0.2, 0.3]), null);
  });
  it('counts the requests that reached the database: 200 and 422, not 503s or errors', () => {
    assert.equal(servedCount({ '200': 10, '422': 3, '503': 50, 'error:ECONNRESET': 2 }), 13);
    assert.equal(servedCount({}), 0);
  });
  it('a measurement without CPU readings has no ratio', () => {
    assert.equal(measurement(1, 'x', [win(0.2), win(null)]).ageingRatio, null);
    const m = measurement(1, 'x', [win(0.2, 1, 0), win(0.21, 3, 2, false), win(0.2, 2, 1)]);
    assert.deepEqual([m.ageingRatio, m.dbCpuMsMedian, m.p99Median, m.errors, m.invalidWindows], [1.05, 0.2, 2, 3, 1]);
  });
  it('summary: medians with their spread, ratios to the repository, and a verdict on every run', () => {
    const ms = [
      measurement(1, 'current', [win(0.2), win(0.21)]),
      measurement(1, 'before', [win(0.2), win(0.3)]),
      measurement(2, 'current', [win(0.2), win(0.2)]),
      measurement(2, 'before', [win(0.2), win(0.32)]),
    ];
    const [cur, old] = summarizeAgeing(ms, [
      { name: 'current', baseline: true },
      { name: 'before', baseline: false },
    ]);
    assert.equal(cur.pass, true);
    assert.equal(old.pass, false);
    assert.equal(old.ageingRatio?.max, 1.6);
    assert.equal(cur.vsBaseline, null);
    assert.ok(old.vsBaseline && old.vsBaseline.dbCpuMs !== null && old.vsBaseline.dbCpuMs > 1.2);
    assert.ok(AGEING_LIMIT > 1 && AGEING_LIMIT < 1.2);
  });
  it("in units of nginx's CPU per request, a host that slowed everything down during one variant's runs does not count against it", () => {
    // The variant ran while the host was 20 % slower: every component's CPU per request rose.
    const ms = [measurement(1, 'current', [win(0.2, 1, 0, true, 0.1), win(0.2, 1, 0, true, 0.1)]), measurement(1, 'slow-host', [win(0.24, 1, 0, true, 0.12), win(0.24, 1, 0, true, 0.12)])];
    const [, slow] = summarizeAgeing(ms, [
      { name: 'current', baseline: true },
      { name: 'slow-host', baseline: false },
    ]);
    assert.equal(ms[0].dbPerNginxMedian, 2);
    assert.equal(slow.vsBaseline?.dbCpuMs, 1.2);
    assert.equal(slow.vsBaseline?.dbPerNginx, 1);
    // Without nginx readings there is no such ratio.
    assert.equal(measurement(1, 'x', [win(0.2, 1, 0, true, 0)]).dbPerNginxMedian, null);
  });
});

describe('PostgreSQL process roles', () => {
  it('names each process by its title', () => {
    assert.equal(roleOf('postgres: walwriter '), 'walwriter');
    assert.equal(roleOf('postgres: checkpointer '), 'checkpointer');
    assert.equal(roleOf('postgres: background writer '), 'bgwriter');
    assert.equal(roleOf('postgres: autovacuum launcher '), 'autovacuum');
    assert.equal(roleOf('postgres: autovacuum worker postgres'), 'autovacuum');
    assert.equal(roleOf('postgres: postgres postgres [local] idle'), 'backends');
    assert.equal(roleOf('postgres: postgres postgres 127.0.0.1(40312) SELECT'), 'backends');
    assert.equal(roleOf('postgres: logical replication launcher '), 'other');
  });
  it('reads utime + stime after the command, whatever the command holds', () => {
    const stat = '123 (postgres: a) b) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 0 0';
    assert.equal(cpuSecondsOfStat(stat), 3);
    // cutime + cstime (fields 16 and 17): the waited-for children's CPU, as npm run k6 reads k6's.
    assert.equal(waitedChildrenCpuSecondsOfStat('9 (node) S 1 9 9 0 -1 0 0 0 0 0 250 50 600 100 20 0 1 0'), 7);
  });
  it('a process that is not there reads as not measured, not as zeros', () => {
    assert.equal(readPgRoleCpu(2 ** 22 + 12345), null);
  });
  it('CPU per request by role', () => {
    const zero = { backends: 0, walwriter: 0, checkpointer: 0, bgwriter: 0, autovacuum: 0, postmaster: 0, other: 0 } satisfies PgRoleCpu;
    const r = roleMsPerRequest(zero, { ...zero, backends: 2, walwriter: 0.1 }, 10_000);
    assert.equal(r.backends, 0.2);
    assert.equal(r.walwriter, 0.01);
    assert.equal(rolesText(r), 'backends 0.200 walwriter 0.010');
    assert.equal(roleMsPerRequest(zero, zero, 0).backends, 0);
  });
});
