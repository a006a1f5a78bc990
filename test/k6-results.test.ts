// loadtest/lib/k6-results.ts: a k6 run's `--out json` samples read into the harness's own records,
// summarised and reported like a Node run, and the index and k6-vs-node table that show both.
// The fixture test/fixtures/k6/samples.json is hand-written: nine requests of the script's shape
// among k6's own samples, one dropped arrival and one line cut short.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { K6_LOAD_START_S, K6_RUN_FILE, failedThresholds, k6RunSummary, readK6Samples, replayK6Run, rfc3339Ms, summarizeK6RunDir, type K6Request, type K6RunRecord } from '../loadtest/lib/k6-results';
import { FULL_PROFILE, QUICK_PROFILE, VALIDATION_REQUESTS, buildSchedule } from '../loadtest/lib/official-simulation';
import { renderIndex, renderReport } from '../loadtest/lib/report';
import { exitStatusOf, type RunSummary } from '../loadtest/lib/summary';
import { comparisonTable, figuresOf, runOrder } from '../loadtest/bench/k6-vs-node';
import { REPO } from '../stack/settings';

const FIXTURE = path.join(REPO, 'test', 'fixtures', 'k6', 'samples.json');
const T0 = Date.parse('2026-12-06T10:00:00Z');

function record(overrides: Partial<K6RunRecord> = {}): K6RunRecord {
  return {
    version: 1,
    profile: 'full',
    target: { baseUrl: 'http://localhost:9999' },
    git: { commit: 'abc1234', dirty: false },
    machine: { cpus: 2, model: 'AMD EPYC', totalMemoryBytes: 2 ** 32, kernel: 'Linux', node: 'v20', platform: 'linux/x64', loadAverageStart: [0.5, 0.5, 0.5], loadAverageEnd: [1, 1, 1] },
    generatorCpuSeconds: 70,
    k6Version: 'k6 v0.48.0',
    exitCode: 0,
    audit: { status: 'skipped', reason: 'test', failures: [], ledger: [], problems: [] },
    usage: undefined,
    ...overrides,
  };
}

describe('k6 samples', () => {
  test('RFC 3339 times keep their nanosecond fraction (to the µs a double holds) and their offset', () => {
    assert.equal(rfc3339Ms('2026-12-06T10:00:00.002500000Z'), T0 + 2.5);
    assert.equal(rfc3339Ms('2026-12-06T11:00:01.001000000+01:00'), T0 + 1001);
    assert.ok(Math.abs(rfc3339Ms('2026-12-06T10:00:00.123456789Z') - (T0 + 123.456789)) < 1e-3);
    assert.equal(rfc3339Ms('2026-12-06T10:00:00Z'), T0);
    assert.ok(Number.isNaN(rfc3339Ms('yesterday')));
  });

  test('the reader keeps the script\'s requests and k6\'s dropped arrivals, skips k6\'s own samples, counts a cut line', async () => {
    const s = await readK6Samples(FIXTURE);
    assert.equal(s.requests.length, 9);
    assert.equal(s.droppedIterations, 1);
    assert.equal(s.unreadable, 1);
    const [first] = s.requests;
    // start = sample time − response time
    assert.deepEqual(first, { group: 'validações', method: 'POST', status: 200, failure: undefined, scenario: 's1_debitos_concorrentes', startMs: T0, endMs: T0 + 2.5 });
    assert.deepEqual(
      s.requests.map((r) => r.group),
      ['validações', 'validações', 'validações', 'validações', 'débitos', 'débitos', 'créditos', 'extratos', 'débitos'],
    );
    assert.equal(s.requests[7].failure, 'dial: connection refused');
  });
});

describe('replay and summary', () => {
  test('replayed into the Recorder: time zero at the first start, statuses, KO, consistency, SLA groups, POSTs answered 200, in flight', async () => {
    const s = await readK6Samples(FIXTURE);
    const run = replayK6Run(s.requests, FULL_PROFILE);
    assert.equal(run.startMs, T0);
    assert.equal(run.endMs, T0 + 6400);
    const r = run.recorder;
    assert.deepEqual(Object.fromEntries(r.statusCounts), { '200': 6, '404': 1, '422': 1, error: 1 });
    const total = r.total.stats();
    assert.deepEqual([total.count, total.ok, total.ko, total.consistencyFailures, total.under250, total.from250to1200], [9, 7, 2, 1, 6, 1]);
    assert.equal(r.postsOk, 5);
    assert.equal(r.postsUnanswered, 0);
    // S1's two debits overlap in the first second; nothing else does.
    assert.deepEqual(r.timeline().map((p) => p.inflightMax), [2, 1, 0, 0, 1, 1, 1]);
    assert.equal(r.inflight, 0, 'every start has its end');
  });

  test('phases from k6\'s scenarios, named as the Node run names them', async () => {
    const run = replayK6Run((await readK6Samples(FIXTURE)).requests, FULL_PROFILE);
    const byStart = (prefix: string) => run.phases.find((p) => p.name.startsWith(prefix))!;
    assert.deepEqual({ ...byStart('S1') }, { name: 'S1 25 concurrent debits on client 1 (status 200)', requests: 2, ko: 0, atMs: 0, ms: 3 });
    assert.equal(byStart('S2').atMs, 1000);
    assert.equal(byStart('S3').requests, 0);
    assert.deepEqual([byStart('S6').atMs, byStart('S6').ms], [4000, 1.5]);
    const load = byStart('S7-S9');
    assert.equal(load.name, 'S7-S9 load: 61,380 arrivals over 240 s, one connection each');
    assert.deepEqual([load.requests, load.ko, load.atMs, load.ms], [5, 2, 4648.75, 1751.25]);
  });

  test('the summary is a Node run\'s with tool k6: verdict, INVALID on a dropped arrival, errors, k6 facts', async () => {
    const s = await readK6Samples(FIXTURE);
    const summary = k6RunSummary(replayK6Run(s.requests, FULL_PROFILE), record(), s, ['checks: rate==1.0']);
    assert.equal(summary.tool, 'k6');
    assert.equal(summary.profile.expectedRequests, 61503);
    assert.equal(summary.timeline.loadStartSecond, K6_LOAD_START_S);
    assert.equal(summary.lag.valid, false);
    assert.match(summary.lag.reasons.join(), /k6 dropped 1 arrival/);
    assert.equal(summary.lag.generatorCpuSeconds, 70);
    assert.deepEqual(summary.k6, { version: 'k6 v0.48.0', exitCode: 0, droppedIterations: 1, failedThresholds: ['checks: rate==1.0'], samplesFile: 'samples.json' });
    assert.equal(summary.payout.consistencyFailures, 1);
    assert.deepEqual(summary.errors.map((e) => [e.message, e.consistency]), [
      ['jmesPath(saldo).find.validate(ConsistenciaSaldoLimite - Transação)', true],
      ['dial: connection refused', false],
    ]);
    assert.equal(summary.verdict.pass, false);
    assert.ok(summary.verdict.reasons.some((x) => x === '9 requests instead of 61503'));
    // k6's failed thresholds restate what the harness already found, so they add no reason here.
    assert.ok(!summary.verdict.reasons.some((x) => x.startsWith('k6 thresholds')));
    assert.equal(exitStatusOf(summary), 1);
    // Scheduled arrivals are the official schedule placed at the k6 load's start.
    assert.equal(summary.timeline.points.reduce((a, p) => a + p.scheduled, 0), 61380);
  });

  /** A clean quick run of k6, request by request: every arrival on time, 2 ms each. */
  function cleanQuickRun(): K6Request[] {
    const requests: K6Request[] = [];
    for (let i = 0; i < VALIDATION_REQUESTS; i++) requests.push({ group: 'validações', method: 'GET', status: 200, failure: undefined, scenario: 's5_validacoes', startMs: T0 + i, endMs: T0 + i + 2 });
    const schedule = buildSchedule(QUICK_PROFILE);
    for (let i = 0; i < schedule.total; i++) {
      const start = T0 + (K6_LOAD_START_S + schedule.times[i]) * 1000;
      requests.push({ group: 'débitos', method: 'POST', status: 200, failure: undefined, scenario: 'debitos', startMs: start, endMs: start + 2 });
    }
    return requests;
  }

  test('exit status 3 when only k6\'s dropped arrivals fail the run, 0 when nothing does, and a threshold only k6 saw fails it', () => {
    const summaryWith = (requests: K6Request[], dropped: number, thresholds: string[]) => k6RunSummary(replayK6Run(requests, QUICK_PROFILE), record({ profile: 'quick' }), { droppedIterations: dropped }, thresholds);
    const clean = summaryWith(cleanQuickRun(), 0, []);
    assert.equal(clean.total.count, 7818);
    assert.deepEqual(clean.verdict, { pass: true, valid: true, reasons: [] });
    assert.equal(exitStatusOf(clean), 0);
    // Two arrivals dropped are two requests never sent: the run is INVALID, not failed.
    const dropped = summaryWith(cleanQuickRun().slice(0, -2), 2, ['dropped_iterations: count==0']);
    assert.equal(dropped.total.count, 7816);
    assert.equal(dropped.verdict.reasons.length, 1, dropped.verdict.reasons.join(' | '));
    assert.match(dropped.verdict.reasons[0], /^INVALID run: .*k6 dropped 2 arrival/);
    assert.equal(exitStatusOf(dropped), 3);
    // A request missing beyond the dropped ones is the service's or the script's fault.
    const lost = summaryWith(cleanQuickRun().slice(0, -3), 2, ['dropped_iterations: count==0']);
    assert.ok(lost.verdict.reasons.includes('7815 requests instead of 7818'));
    assert.equal(exitStatusOf(lost), 1);
    const guard = summaryWith(cleanQuickRun(), 0, ['checks: rate==1.0']);
    assert.deepEqual(guard.verdict.reasons, ['k6 thresholds failed: checks: rate==1.0']);
    assert.equal(exitStatusOf(guard), 1);
    // The share under 250 ms costs the payout, as it does for the Node generator, not the verdict.
    assert.deepEqual(summaryWith(cleanQuickRun(), 0, ['sla_ok_abaixo_250ms: rate>=0.98']).verdict.reasons, []);
  });

  test('failed thresholds read from k6\'s summary', () => {
    const k6 = { metrics: { checks: { thresholds: { 'rate==1.0': { ok: false } } }, dropped_iterations: { thresholds: { 'count==0': { ok: true } } }, http_reqs: {} } };
    assert.deepEqual(failedThresholds(k6), ['checks: rate==1.0']);
    assert.deepEqual(failedThresholds({}), []);
  });
});

describe('run directories, report and index', () => {
  const withRunDir = async (files: Record<string, string>, check: (dir: string) => Promise<void>) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k6-run-'));
    try {
      fs.copyFileSync(FIXTURE, path.join(dir, 'samples.json'));
      for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
      await check(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  test('npm run k6\'s directory keeps its record (audit, CPU, commit); a bare k6 run\'s takes the profile from payout.json and has no audit', async () => {
    await withRunDir({ [K6_RUN_FILE]: JSON.stringify(record({ profile: 'quick', generatorCpuSeconds: 12.5 })) }, async (dir) => {
      const s = await summarizeK6RunDir(dir);
      assert.deepEqual([s.profile.name, s.lag.generatorCpuSeconds, s.git.commit, s.k6?.version], ['quick', 12.5, 'abc1234', 'k6 v0.48.0']);
    });
    await withRunDir({ 'payout.json': JSON.stringify({ perfil: 'quick' }), 'k6-summary.json': JSON.stringify({ metrics: { checks: { thresholds: { 'rate==1.0': { ok: false } } } } }) }, async (dir) => {
      const s = await summarizeK6RunDir(dir);
      assert.equal(s.profile.name, 'quick');
      assert.equal(s.audit.status, 'skipped');
      assert.equal(s.lag.generatorCpuSeconds, undefined);
      assert.deepEqual(s.k6?.failedThresholds, ['checks: rate==1.0']);
    });
    await assert.rejects(summarizeK6RunDir(os.tmpdir() + '/no-such-k6-run'), /holds no samples\.json/);
  });

  test('the report and the index show the tool; the index starts with the latest run, newest first', async () => {
    const s = await readK6Samples(FIXTURE);
    const k6: RunSummary = k6RunSummary(replayK6Run(s.requests, FULL_PROFILE), record(), s, []);
    const node: RunSummary = { ...k6, tool: undefined, k6: undefined, id: 'older', startedAt: '2026-12-05T10:00:00.000Z', profile: { ...k6.profile, name: 'quick' } };
    const html = renderReport(k6);
    assert.match(html, /official profile, k6<\/h1>/);
    assert.match(html, /k6 dropped arrivals/);
    assert.match(html, /k6 v0\.48\.0, exit status 0; dropped arrivals 1/);
    assert.match(renderReport(node), /quick profile, Node<\/h1>/);
    const index = renderIndex([
      { dir: 'new', summary: k6 },
      { dir: 'old', summary: node },
    ]);
    const latest = /<p><b>latest run<\/b>: <a href="new\/report\.html">2026-12-06 10:00:00Z<\/a>, k6, official profile: .*INVALID.*, 9 requests, 2 KO, p99 300 ms, max 300 ms<\/p>/;
    assert.match(index, latest);
    const rows = [...index.matchAll(/<tr><td><a href="(\w+)\/report\.html">[^<]*<\/a><\/td><td><code>abc1234<\/code><\/td><td>(k6|Node)<\/td><td>(official|quick)<\/td>/g)].map((m) => m.slice(1));
    assert.deepEqual(rows, [
      ['new', 'k6', 'official'],
      ['old', 'Node', 'quick'],
    ]);
    assert.match(index, /<th>tool<\/th><th>profile<\/th><th>verdict<\/th>/);
  });
});

describe('npm run k6-vs-node', () => {
  test('ABBA order: each generator first in every other round', () => {
    assert.deepEqual(
      runOrder(3).map((r) => `${r.round}${r.generator}`),
      ['1node', '1k6', '2k6', '2node', '3node', '3k6'],
    );
  });

  test('the table: median [min–max] per generator, a single value when the runs agree', () => {
    const base = { requests: 61503, ko: 0, consistency: 0, p50: 1, p75: 1.2, p95: 1.8, max: 20, stackCpuS: 60, valid: true, pass: true };
    const table = comparisonTable([
      { ...base, generator: 'node', p99: 2.5, generatorCpuS: 24, generatorCores: 0.1 },
      { ...base, generator: 'node', p99: 2.9, generatorCpuS: 26, generatorCores: 0.11 },
      { ...base, generator: 'node', p99: 2.7, generatorCpuS: 25, generatorCores: 0.105 },
      { ...base, generator: 'k6', p99: 5.1, generatorCpuS: 70, generatorCores: 0.29, pass: false },
    ]);
    const row = (label: string) => table.find((r) => r[0] === label)!.slice(1);
    assert.deepEqual(table[0], ['', 'Node (3 runs)', 'k6 (1 runs)']);
    assert.deepEqual(row('requests'), ['61,503', '61,503']);
    assert.deepEqual(row('p99 ms'), ['2.70 [2.50–2.90]', '5.10']);
    assert.deepEqual(row('generator cores'), ['0.105 [0.100–0.110]', '0.290']);
    assert.deepEqual(row('runs passed'), ['3 of 3', '0 of 1']);
  });

  test('figures of a run from its summary: generator cores = its CPU over the run\'s duration; stack CPU = every component\'s', async () => {
    const s = await readK6Samples(FIXTURE);
    const summary = k6RunSummary(replayK6Run(s.requests, FULL_PROFILE), record({ usage: [{ name: 'db', cpuSeconds: 10, peakMemoryBytes: 0 }, { name: 'nginx', cpuSeconds: 2.5, peakMemoryBytes: 0 }] }), s, []);
    const f = figuresOf(summary);
    assert.equal(f.generator, 'k6');
    assert.equal(f.stackCpuS, 12.5);
    assert.equal(f.generatorCores, 70 / 6.4);
    assert.equal(f.requests, 9);
  });
});

describe('npm run k6 without k6', () => {
  test('exits 2 naming the missing binary and the script, before touching any stack', () => {
    // PATH is an empty folder: no k6, whatever this machine has (node's own folder may hold one).
    const env = { ...process.env, PATH: fs.mkdtempSync(path.join(os.tmpdir(), 'crebitos-no-k6-')), CREBITOS_HOME: path.join(os.tmpdir(), 'no-such-stack') };
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist', 'loadtest', 'official', 'k6-test.js'), '--quick'], { cwd: REPO, env, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /no 'k6' on PATH/);
    assert.match(r.stderr, /loadtest\/official\/rinha\.k6\.js/);
  });

  test('--seed is refused: k6 cannot seed the script', () => {
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist', 'loadtest', 'official', 'k6-test.js'), '--seed', '1'], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--seed is for npm run loadtest/);
  });
});
