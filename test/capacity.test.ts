// npm run capacity (loadtest/capacity/capacity.ts): option and step parsing, step verdicts, the stop rule,
// capacity and spread over runs, pgbench's output and logs, the database-only compose file, the
// fixed-body server of the HTTP-only baseline, the HTML report; then one quick invocation
// end to end (three fresh stacks on their own ports, each stopped afterwards).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { formatCapacitySummary } from '../loadtest/capacity/capacity';
import { PGBENCH_SCRIPTS, UsageError, autoDbRates, capacityOf, composeWithDbCpus, failedBelow, fraction, judgeStep, parseCapacityArgs, parsePgbenchOutput, parseSteps, pgbenchArgs, pgbenchLatencies, shouldStop, spread, type CapacitySummary, type JudgedStep } from '../loadtest/capacity/capacity-rules';
import { renderCapacityReport } from '../loadtest/capacity/capacity-report';
import { xyChart } from '../loadtest/lib/charts';
import { createFixedServer, fixedBody } from '../loadtest/capacity/fixed-server';
import { readComposeLimits, readEnvelope } from '../stack/envelope';
import { REPO } from './helpers';

describe('options', () => {
  it('steps: lists and ranges, sorted, without duplicates', () => {
    assert.deepEqual(parseSteps('500,1000,1500'), [500, 1000, 1500]);
    assert.deepEqual(parseSteps('1500, 500 ,1000,500'), [500, 1000, 1500]);
    assert.deepEqual(parseSteps('500..2000/500'), [500, 1000, 1500, 2000]);
    assert.deepEqual(parseSteps('250,500..1000/250,3000'), [250, 500, 750, 1000, 3000]);
    assert.deepEqual(parseSteps('0.5,1'), [0.5, 1]);
  });

  it('bad steps are refused with a reason', () => {
    for (const bad of ['', ',', 'abc', '-5', '0', '500..100/100', '100..500/0', '1e3', '100;200']) {
      assert.throws(() => parseSteps(bad), UsageError, bad);
    }
  });

  it('--quick, --only and --no-baselines', () => {
    const q = parseCapacityArgs(['--quick']);
    assert.equal(q.runs, 1);
    assert.ok(q.stepSeconds * q.steps.length <= 12, 'quick stays CI-sized');
    assert.deepEqual(parseCapacityArgs(['--quick', '--runs', '2', '--steps', '100,200']).steps, [100, 200]);
    assert.equal(parseCapacityArgs(['--quick', '--runs', '2']).runs, 2);
    assert.deepEqual(parseCapacityArgs(['--only', 'db']).targets, ['db']);
    assert.deepEqual(parseCapacityArgs(['--no-baselines']).targets, ['api']);
    assert.deepEqual(parseCapacityArgs(['--db-rates', '']).dbRates, []);
    assert.equal(parseCapacityArgs([]).dbRates, 'auto');
    assert.deepEqual(parseCapacityArgs(['--db-rates', '2000,1000']).dbRates, [1000, 2000]);
    assert.equal(parseCapacityArgs(['--pause-seconds', '0']).pauseSeconds, 0);
    assert.throws(() => parseCapacityArgs(['--only', 'nginx']), /--only must be one of/);
    assert.throws(() => parseCapacityArgs(['--no-baselines', '--only', 'db']), /contradicts/);
    assert.throws(() => parseCapacityArgs(['--runs', '0']), /--runs must be a positive integer/);
    assert.throws(() => parseCapacityArgs(['--runs', '1.5']), /positive integer/);
    assert.throws(() => parseCapacityArgs(['--port-base', '60000']), /--port-base/);
    assert.throws(() => parseCapacityArgs(['--bogus']), UsageError);
  });
});

const step = (o: { p99?: number; errors?: number; lagValid?: boolean; statuses?: Record<string, number> }) => ({
  sent: 100,
  errors: o.errors ?? 0,
  statuses: o.statuses ?? { '200': 100 },
  latencyMs: { p99: o.p99 ?? 3 },
  lagValid: o.lagValid ?? true,
  lagReasons: o.lagValid === false ? ['generator lag p99 14.0 ms > 10 ms'] : [],
});

describe('verdicts', () => {
  it('PASS needs p99 <= 10 ms, zero errors and a valid lag', () => {
    assert.deepEqual(judgeStep(step({})), { verdict: 'PASS', meetsTarget: true, reasons: [] });
    assert.equal(judgeStep(step({ p99: 10 })).verdict, 'PASS');
    const slow = judgeStep(step({ p99: 10.01 }));
    assert.equal(slow.verdict, 'FAIL');
    assert.match(slow.reasons[0], /p99 10\.01 ms > 10 ms/);
    const errors = judgeStep(step({ errors: 3, statuses: { '200': 97, '503': 2, timeout: 1 } }));
    assert.equal(errors.verdict, 'FAIL');
    assert.match(errors.reasons[0], /3 error\(s\): 503 x2, timeout x1/);
  });

  it('a late generator makes a step INVALID, good numbers or not', () => {
    const good = judgeStep(step({ lagValid: false }));
    assert.equal(good.verdict, 'INVALID');
    assert.equal(good.meetsTarget, true);
    assert.match(good.reasons.join(), /generator lag/);
    const bad = judgeStep(step({ lagValid: false, p99: 50 }));
    assert.equal(bad.verdict, 'INVALID');
    assert.equal(bad.meetsTarget, false);
  });

  it('a run stops after two consecutive steps that missed the target', () => {
    const m = (...xs: boolean[]) => xs.map((meetsTarget) => ({ meetsTarget }));
    assert.equal(shouldStop(m()), false);
    assert.equal(shouldStop(m(false)), false);
    assert.equal(shouldStop(m(true, false)), false);
    assert.equal(shouldStop(m(false, true, false)), false);
    assert.equal(shouldStop(m(true, false, false)), true);
  });

  it('capacity is the highest PASS; failures below it are reported, INVALID steps ignored', () => {
    const s = (ratePerS: number, verdict: 'PASS' | 'FAIL' | 'INVALID') => ({ ratePerS, verdict });
    assert.equal(capacityOf([]), 0);
    assert.equal(capacityOf([s(500, 'FAIL'), s(1000, 'FAIL')]), 0);
    assert.equal(capacityOf([s(500, 'PASS'), s(1000, 'PASS'), s(1500, 'FAIL'), s(2000, 'FAIL')]), 1000);
    assert.equal(capacityOf([s(500, 'PASS'), s(1000, 'INVALID'), s(1500, 'PASS'), s(2000, 'FAIL')]), 1500);
    const noisy = [s(500, 'PASS'), s(1000, 'FAIL'), s(1500, 'PASS'), s(2000, 'FAIL')];
    assert.equal(capacityOf(noisy), 1500);
    assert.deepEqual(failedBelow(noisy), [1000]);
  });

  it('median with its min-max spread; fractions', () => {
    assert.deepEqual(spread([1500, 1000, 2000]), { median: 1500, min: 1000, max: 2000, values: [1500, 1000, 2000] });
    assert.equal(spread([1000, 2000]).median, 1500);
    assert.equal(spread([7]).median, 7);
    assert.deepEqual(spread([]), { median: null, min: null, max: null, values: [] });
    assert.equal(fraction(1500, 3000), 0.5);
    assert.equal(fraction(1000, 3000), 0.333);
    assert.equal(fraction(1000, 0), null);
    assert.equal(fraction(null, 3000), null);
  });
});

describe('database-only baseline', () => {
  it('the compose file gives the database 1.5 CPU and leaves everything else as it was', () => {
    const original = path.join(REPO, 'docker-compose.yml');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cap-test-')), 'compose.yml');
    fs.writeFileSync(file, composeWithDbCpus(fs.readFileSync(original, 'utf8'), 1.5));
    const before = readComposeLimits(original);
    const after = readComposeLimits(file);
    assert.equal(after.db.cpus, 1.5);
    assert.deepEqual({ ...after, db: undefined }, { ...before, db: undefined });
    assert.equal(after.db.memoryBytes, before.db.memoryBytes);
    assert.equal(readEnvelope(file).api1.cpus, before.api1.cpus);
    fs.rmSync(path.dirname(file), { recursive: true });
  });

  it('pgbench runs the calls server.ts prepares, weighted 220:110:10, prepared, over the socket', () => {
    const server = fs.readFileSync(path.join(REPO, 'server.ts'), 'utf8');
    assert.ok(server.includes("'SELECT status, body FROM post_transaction($1, $2, $3, $4)'"), 'server.ts changed its transaction call: update PGBENCH_SCRIPTS');
    assert.ok(server.includes("'SELECT account_statement($1)'"), 'server.ts changed its statement call: update PGBENCH_SCRIPTS');
    assert.match(PGBENCH_SCRIPTS.debit.text, /post_transaction\(:id, :valor, :debit, :descricao\)/);
    assert.match(PGBENCH_SCRIPTS.credit.text, /post_transaction\(:id, :valor, :credit, :descricao\)/);
    assert.match(PGBENCH_SCRIPTS.statement.text, /account_statement\(:id\)/);
    for (const s of Object.values(PGBENCH_SCRIPTS)) assert.match(s.text, /\\set id random\(1, 5\)/);
    assert.match(PGBENCH_SCRIPTS.debit.text, /\\set valor random\(1, 10000\)/);
    const args = pgbenchArgs({ socketDir: '/s', pgPort: 5, clients: 6, seconds: 15, rate: 5000, scriptDir: '/d', logPrefix: '/d/log' });
    const joined = args.join(' ');
    assert.match(joined, /-M prepared/);
    assert.match(joined, /-h \/s -p 5/);
    assert.match(joined, /-f \/d\/debit\.sql@220 -f \/d\/credit\.sql@110 -f \/d\/statement\.sql@10/);
    assert.match(joined, /-D debit=d -D credit=c -D descricao=pgbench123/);
    assert.match(joined, /-R 5000/);
    assert.match(joined, /-T 15/);
    assert.ok(!pgbenchArgs({ socketDir: '/s', pgPort: 5, clients: 6, seconds: 15, scriptDir: '/d', logPrefix: '/d/log' }).includes('-R'));
  });

  it('automatic -R steps bracket the full speed just measured', () => {
    assert.deepEqual(autoDbRates(9876, [0.25, 0.5, 0.7, 0.85, 1]), [2400, 4900, 6900, 8300, 9800]);
    assert.deepEqual(autoDbRates(150, [0.25, 0.5, 1]), [100]);
    assert.deepEqual(autoDbRates(50, [0.5]), []);
  });

  it("pgbench's report and per-transaction logs", () => {
    const report = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: multiple scripts
number of transactions actually processed: 5404
number of failed transactions: 2 (0.037%)
latency average = 116.810 ms
latency stddev = 59.766 ms
rate limit schedule lag: avg 113.507 (max 323.312) ms
initial connection time = 19.967 ms
tps = 1803.262825 (without initial connection time)
SQL script 1: debit.sql
 - latency average = 116.609 ms`;
    assert.deepEqual(parsePgbenchOutput(report), { transactions: 5404, failed: 2, tps: 1803.262825, latencyAvgMs: 116.81, lagAvgMs: 113.507, lagMaxMs: 323.312 });
    const full = parsePgbenchOutput('number of transactions actually processed: 10\nnumber of failed transactions: 0 (0.000%)\nlatency average = 0.4 ms\ntps = 9.5 (without initial connection time)\n');
    assert.equal(full.lagAvgMs, null);
    assert.throws(() => parsePgbenchOutput('connection to server failed'), /printed no result/);
    const lines = ['0 1 1000 0 1700000000 1 12', '0 2 2000 0 1700000000 2 0', '1 1 3000 1 1700000000 3 5', '1 2 40000 2 1700000000 4 7', '', 'garbage'];
    const lat = pgbenchLatencies(lines);
    assert.equal(lat.count, 4);
    assert.equal(lat.latencyMs.max, 40);
    assert.ok(Math.abs(lat.latencyMs.p50 - 2) < 0.01, String(lat.latencyMs.p50));
    assert.deepEqual(Object.fromEntries(Object.entries(lat.byScript).map(([k, v]) => [k, v.count])), { debit: 2, credit: 1, statement: 1 });
  });
});

describe('HTTP-only baseline server', () => {
  it('answers every request 200 with the fixed statement-sized body, after reading the request body', async () => {
    const body = fixedBody();
    assert.ok(body.length > 600 && body.length < 2000, String(body.length));
    const parsed = JSON.parse(body.toString()) as { saldo: { total: number }; ultimas_transacoes: unknown[] };
    assert.equal(parsed.ultimas_transacoes.length, 10);
    const server = createFixedServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      for (const [method, p, payload] of [['GET', '/clientes/1/extrato', undefined], ['POST', '/clientes/9/transacoes', '{"valor": 1}'], ['DELETE', '/x', undefined]] as const) {
        const res = await new Promise<{ status: number; text: string; length: string | undefined }>((resolve, reject) => {
          const req = http.request({ host: '127.0.0.1', port, method, path: p, agent: false }, (r) => {
            let text = '';
            r.on('data', (c: Buffer) => (text += c));
            r.on('end', () => resolve({ status: r.statusCode!, text, length: r.headers['content-length'] }));
          });
          req.on('error', reject);
          req.end(payload);
        });
        assert.equal(res.status, 200);
        assert.equal(res.text, body.toString());
        assert.equal(res.length, String(body.length));
      }
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('report', () => {
  it('charts and tables for every target; fractions only where both sides exist', () => {
    const judged = (ratePerS: number, p99: number, verdict: 'PASS' | 'FAIL'): JudgedStep => ({
      ratePerS,
      durationS: 1,
      sent: ratePerS,
      completed: ratePerS,
      achievedPerS: ratePerS,
      statuses: { '200': ratePerS },
      errors: 0,
      latencyMs: { p50: 1, p90: 2, p99, p999: p99 * 2, max: p99 * 3, mean: 1.2 },
      lagMs: { p50: 0.5, p99: 1, max: 3 },
      lagValid: true,
      lagReasons: [],
      byKind: { debits: { sent: 0, ok: 0 }, credits: { sent: 0, ok: 0 }, statements: { sent: 0, ok: 0 } },
      maxInFlight: 3,
      generatorCpuUtil: 0.2,
      wallS: 1,
      components: [{ name: 'db', cpuUtil: 0.3, cpuMsPerRequest: 0.3, cpuLimit: 0.5, peakMemoryBytes: 30e6 }],
      usageMeasured: true,
      verdict,
      meetsTarget: verdict === 'PASS',
      reasons: verdict === 'PASS' ? [] : [`p99 ${p99} ms > 10 ms`],
    });
    const summary = {
      version: 1,
      kind: 'capacity',
      id: 'capacity-x',
      startedAt: '2024-01-01T00:00:00.000Z',
      finishedAt: '2024-01-01T00:01:00.000Z',
      git: { commit: 'abc1234', dirty: false },
      machine: { cpus: 2, model: 'cpu', totalMemoryBytes: 1, kernel: 'k', node: 'v20', platform: 'linux/x64' },
      options: parseCapacityArgs(['--quick']),
      envelope: readEnvelope(path.join(REPO, 'docker-compose.yml')),
      environment: {},
      criteria: { p99Ms: 10, errors: 0, lag: { p99Ms: 10, maxMs: 100 } },
      api: { name: 'api', title: 'ours <b>', runs: [{ run: 1, capacity: 500, failedBelow: [], steps: [judged(500, 3, 'PASS'), judged(1000, 30, 'FAIL')], idleRssBytes: {} }], capacity: spread([500]) },
      fractions: { ofHttp: null, ofDbFullSpeed: null, ofDbCapacity: null },
    } as unknown as CapacitySummary;
    const html = renderCapacityReport(summary);
    assert.equal((html.match(/<svg/g) ?? []).length, 2);
    assert.ok(html.includes('ours &lt;b&gt;'), 'titles are escaped');
    assert.ok(html.includes('>PASS<') && html.includes('>FAIL<'));
    assert.ok(!html.includes('ours / HTTP only'));
    const text = formatCapacitySummary(summary);
    assert.match(text, /ours \(api\): +500 req\/s +\[500–500\]/);
    assert.ok(!/HTTP only/.test(text));
    // A baseline that was measured but passed no step: the fraction is explicitly unavailable.
    const noPass = { ...summary, http: { name: 'http', title: 'http', runs: [], capacity: spread([0]) } } as unknown as CapacitySummary;
    assert.match(formatCapacitySummary(noPass), /ours \/ HTTP only: +n\/a \(the baseline passed no step\)/);
  });

  it('xyChart places points by offered rate', () => {
    const svg = xyChart({ xLabel: 'x', yLabel: 'y', series: [{ name: 's', color: '#000', points: [[0, 0], [1000, 10]] }] });
    assert.equal((svg.match(/<circle/g) ?? []).length, 2);
    assert.match(svg, /<path d="M\d/);
  });
});

