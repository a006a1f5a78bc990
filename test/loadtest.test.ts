// Pure-logic tests of the load test (loadtest/): arrival schedule, payloads, checks and the
// consistency validator, summary math and the contest payout. No stack, no network.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonNumber, asGatlingInt, asGatlingString, jmesPath, parseJson } from '../loadtest/lib/json-source';
import { renderIndex, renderReport } from '../loadtest/lib/report';
import {
  FULL_PROFILE,
  QUICK_PROFILE,
  ResponseView,
  VALIDATION_REQUESTS,
  buildSchedule,
  clientValidationSteps,
  computePayout,
  concurrentBalance,
  consistenciaSaldoLimite,
  creditRequest,
  debitRequest,
  isConsistencyFailure,
  rampUsers,
  randomDescricao,
  runChecks,
  scalaToInt,
  scenarioArrivals,
  seededRng,
  shards,
  statementRequest,
  transactionPayload,
  type RequestSpec,
  type Session,
} from '../loadtest/lib/official-simulation';
import { LAG_LIMITS, Recorder, Tally, distributionBucket, lagVerdict } from '../loadtest/lib/stats';
import { formatSummary, verdictReasons, type RunSummary } from '../loadtest/lib/summary';

const check = (spec: RequestSpec, status: number, body: string, session: Session = new Map()): string | undefined =>
  runChecks(spec.checks, new ResponseView(status, body), session);

describe('arrival schedule', () => {
  it('full profile: 39,660 débitos, 19,860 créditos, 1,860 extratos, 61,503 requests with the validations', () => {
    const s = buildSchedule(FULL_PROFILE);
    assert.deepEqual(s.counts, { 'débitos': 39_660, 'créditos': 19_860, 'extratos': 1_860 });
    assert.equal(VALIDATION_REQUESTS, 123);
    assert.equal(s.total + VALIDATION_REQUESTS, 61_503);
  });

  it('ramp counts are the integral of the rate: (r1 + r2) / 2 × d, then r2 × d', () => {
    assert.equal(rampUsers(1, 220, 120), 13_260);
    assert.equal(rampUsers(1, 110, 120), 6_660);
    assert.equal(rampUsers(1, 10, 120), 660);
    const debits = scenarioArrivals(FULL_PROFILE.scenarios[0], 120, 120);
    assert.equal(debits.filter((t) => t < 120).length, 13_260);
    assert.equal(debits.filter((t) => t >= 120).length, 26_400);
  });

  it('arrivals are sorted, start at 0 and follow the ramp rate', () => {
    const s = buildSchedule(FULL_PROFILE);
    for (let i = 1; i < s.total; i++) assert.ok(s.times[i] >= s.times[i - 1]);
    assert.equal(s.times[0], 0);
    assert.ok(s.times[s.total - 1] < 240);
    const debits = scenarioArrivals(FULL_PROFILE.scenarios[0], 120, 120);
    const inSecond = (from: number): number => debits.filter((t) => t >= from && t < from + 1).length;
    // r(t) = 1 + 219 t / 120: about 1.9/s over [0,1), 110/s around t = 60, 219/s just before 120, then 220/s
    assert.ok(Math.abs(inSecond(60) - (1 + (219 * 60.5) / 120)) <= 1, `${inSecond(60)}`);
    assert.ok(Math.abs(inSecond(119) - (1 + (219 * 119.5) / 120)) <= 1);
    assert.equal(inSecond(200), 220);
  });

  it('follows Gatling: per-second counts with carried fractions, spread by Shard over whole milliseconds', () => {
    assert.equal(shards(1, 1000)[0], 1); // the first user of a second starts at its millisecond 0
    assert.equal(shards(220, 1000).reduce((a, b) => a + b, 0), 220);
    assert.ok(shards(26_400, 120).every((n) => n === 220));
    const debits = scenarioArrivals(FULL_PROFILE.scenarios[0], 120, 120);
    const perSecond = (from: number): number => debits.filter((t) => t >= from && t < from + 1).length;
    // a = 219/240: second 0 gets trunc(1.9125) = 1, second 1 trunc(0.9125 × 3 + 1 + 0.9125) = 4, ...
    assert.deepEqual([0, 1, 2].map(perSecond), [1, 4, 6]);
    assert.ok(debits.every((t) => Math.abs(t * 1000 - Math.round(t * 1000)) < 1e-6));
    const s = buildSchedule(FULL_PROFILE);
    assert.deepEqual([...s.times.slice(0, 4)], [0, 0, 0, 1]); // one user of each scenario at t = 0
  });

  it('quick profile: same shape, 1/4 of the time and 1/2 of the rates: 4,965 + 2,490 + 240 + 123 = 7,818', () => {
    const s = buildSchedule(QUICK_PROFILE);
    assert.deepEqual(s.counts, { 'débitos': 4_965, 'créditos': 2_490, 'extratos': 240 });
    assert.equal(s.total + VALIDATION_REQUESTS, 7_818);
    assert.ok(s.times[s.total - 1] < 60);
    assert.equal(QUICK_PROFILE.rampSeconds + QUICK_PROFILE.constantSeconds, 60);
  });
});

describe('payloads', () => {
  it('uses the simulation string template, a space after each colon', () => {
    assert.equal(transactionPayload(123, 'd', 'aB3xYz0Q9k'), '{"valor": 123, "tipo": "d", "descricao": "aB3xYz0Q9k"}');
    assert.equal(transactionPayload(1, 'c', null), '{"valor": 1, "tipo": "c", "descricao": null}');
  });

  it('draws clients 1..5, valor 1..10000 and 10 alphanumerics', () => {
    const rng = seededRng(42);
    const clients = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const d = debitRequest(rng);
      const body = JSON.parse(d.body!) as { valor: number; tipo: string; descricao: string };
      clients.add(d.path);
      assert.ok(Number.isInteger(body.valor) && body.valor >= 1 && body.valor <= 10_000);
      assert.equal(body.tipo, 'd');
      assert.match(body.descricao, /^[A-Za-z0-9]{10}$/);
    }
    assert.deepEqual([...clients].sort(), [1, 2, 3, 4, 5].map((id) => `/clientes/${id}/transacoes`));
    assert.match(randomDescricao(seededRng(1)), /^[A-Za-z0-9]{10}$/);
  });

  it('S5 is 14 requests per client, with 4 parallel GETs after danada', () => {
    const steps = clientValidationSteps(3);
    assert.equal(steps.flat().length, 14);
    const parallel = steps.find(Array.isArray) as RequestSpec[];
    assert.equal(parallel.length, 4);
    assert.ok(steps.flat().every((s) => s.path.startsWith('/clientes/3/')));
  });
});

describe('JSON as Gatling reads it', () => {
  it('keeps the source text of numbers', () => {
    const v = parseJson('{"saldo": {"total": -25, "limite": 100000.0}, "x": [1, {"y": "z"}]}');
    assert.equal(asGatlingString(jmesPath(v, 'saldo.total')!), '-25');
    assert.equal(asGatlingString(jmesPath(v, 'saldo.limite')!), '100000.0');
    assert.equal(asGatlingInt(jmesPath(v, 'saldo.total')!), -25);
    assert.equal(asGatlingInt(jmesPath(v, 'saldo.limite')!), undefined);
    assert.equal(asGatlingString(jmesPath(v, 'x[1].y')!), 'z');
    assert.equal(jmesPath(v, 'x[5]'), undefined);
    assert.ok(jmesPath(v, 'x[0]') instanceof JsonNumber);
  });

  it('rejects what is not JSON', () => {
    for (const bad of ['', '{', '{"a": 1,}', 'nope', '{"a": 01}', '[1] 2']) assert.throws(() => parseJson(bad), SyntaxError, bad);
  });
});

describe('consistency validator and checks', () => {
  it('validarConsistenciaSaldoLimite: Limite ultrapassado! below -limite, WTF?! when unparsable', () => {
    assert.equal(consistenciaSaldoLimite('-100000', '100000'), undefined);
    assert.equal(consistenciaSaldoLimite('5', '100000'), undefined);
    assert.equal(consistenciaSaldoLimite('-100001', '100000'), 'Limite ultrapassado!');
    assert.equal(consistenciaSaldoLimite('-1.0', '100000'), 'WTF?!');
    assert.equal(consistenciaSaldoLimite(undefined, '100000'), 'WTF?!');
    assert.equal(consistenciaSaldoLimite('0', undefined), 'WTF?!');
    assert.equal(scalaToInt('+7'), 7);
    assert.equal(scalaToInt('2147483648'), undefined);
  });

  it('débitos: 200 or 422; the validator runs only on 200', () => {
    const d = debitRequest(seededRng(1));
    assert.equal(check(d, 200, '{"limite": 1000, "saldo": -1000}'), undefined);
    assert.equal(check(d, 422, 'anything'), undefined);
    const over = check(d, 200, '{"limite": 1000, "saldo": -1001}')!;
    assert.match(over, /ConsistenciaSaldoLimite - Transação.*Limite ultrapassado!/);
    assert.ok(isConsistencyFailure(over));
    const wrongStatus = check(d, 500, '')!;
    assert.equal(wrongStatus, 'status.find.in(200,422), but actually found 500');
    assert.ok(!isConsistencyFailure(wrongStatus));
  });

  it('créditos: 200 only; a float balance is a consistency failure (WTF?!)', () => {
    const c = creditRequest(seededRng(2));
    assert.equal(check(c, 200, '{"limite":1000,"saldo":12}'), undefined);
    assert.equal(check(c, 422, ''), 'status.find.is(200), but actually found 422');
    const float = check(c, 200, '{"limite": 1000, "saldo": 12.0}')!;
    assert.match(float, /WTF\?!/);
    assert.ok(isConsistencyFailure(float));
    // limite missing: the saveAs check fails first; not a consistency line
    assert.ok(!isConsistencyFailure(check(c, 200, '{"saldo": 1}')!));
  });

  it('extratos: implicit status check, then saldo.total against saldo.limite', () => {
    const e = statementRequest(seededRng(3));
    const body = (total: number): string => `{"saldo": {"total": ${total}, "data_extrato": "x", "limite": 80000}, "ultimas_transacoes": []}`;
    assert.equal(check(e, 200, body(-80000)), undefined);
    assert.ok(isConsistencyFailure(check(e, 200, body(-80001))!));
    assert.match(check(e, 503, '')!, /^status\.find\.in\(200,.*304\), but actually found 503$/);
  });

  it('S2/S4 totals are consistency failures; statement order checks are not', () => {
    const s2 = check(concurrentBalance(-25), 200, '{"saldo": {"total": -24, "limite": 100000}}')!;
    assert.equal(s2, 'jmesPath(saldo.total).find.is(-25), but actually found -24');
    assert.ok(isConsistencyFailure(s2));
    assert.equal(check(concurrentBalance(0), 200, '{"saldo": {"total": 0, "limite": 100000}}'), undefined);
    const order = clientValidationSteps(1)[3] as RequestSpec;
    const failure = check(order, 200, '{"saldo":{"total":0},"ultimas_transacoes":[{"valor":1,"tipo":"c","descricao":"R3kbCtDFpX"}]}')!;
    assert.match(failure, /ultimas_transacoes\[0\]\.descricao/);
    assert.ok(!isConsistencyFailure(failure));
  });

  it('S5: danada GETs compare with the saldo and limite saved from the POST', () => {
    const steps = clientValidationSteps(2);
    const session: Session = new Map([['limite', '80000']]);
    assert.equal(check(steps[4] as RequestSpec, 200, '{"limite": 80000, "saldo": 1}', session), undefined);
    const get = (steps[5] as RequestSpec[])[0];
    const statement = (total: number): string => `{"saldo":{"total":${total},"limite":80000},"ultimas_transacoes":[{"valor":1,"tipo":"c","descricao":"danada"}]}`;
    assert.equal(check(get, 200, statement(1), session), undefined);
    const stale = check(get, 200, statement(0), session)!;
    assert.equal(stale, 'jmesPath(saldo.total).find.is(#{saldo}), but actually found 0');
    assert.ok(isConsistencyFailure(stale));
    for (const invalid of steps.slice(6) as RequestSpec[]) {
      assert.equal(check(invalid, 422, ''), undefined);
      assert.equal(check(invalid, 400, ''), undefined);
      assert.ok(check(invalid, 200, '{}'));
    }
  });
});

describe('summary math', () => {
  it('latency of a span of seconds: the ramp and the plateau apart, by when each request started', () => {
    const r = new Recorder();
    const at = (startMs: number, latencyMs: number): void => {
      r.started(startMs);
      r.record({ group: 'extratos', startMs, endMs: startMs + latencyMs, status: 200, failure: undefined }, 'GET');
    };
    for (let i = 0; i < 100; i++) at(500 + i, 3); // second 0
    for (let i = 0; i < 100; i++) at(1500 + i, 1); // second 1
    at(2990, 40); // second 2, ends in second 3
    const ramp = r.latencyBetween(0, 1);
    const plateau = r.latencyBetween(1, Infinity);
    const near = (x: number | null, y: number): boolean => x !== null && Math.abs(x - y) / y < 0.01; // 2 significant digits
    assert.equal(ramp.count, 100);
    assert.ok(near(ramp.p50Ms, 3) && near(ramp.maxMs, 3), JSON.stringify(ramp));
    assert.equal(plateau.count, 101);
    assert.ok(near(plateau.p50Ms, 1), JSON.stringify(plateau));
    assert.ok(Math.abs(plateau.maxMs! - 40) < 0.5, `${plateau.maxMs}`);
    assert.equal(r.latencyBetween(5, 9).count, 0);
    assert.equal(r.latencyBetween(5, 9).p99Ms, null);
  });
  it('Gatling response-time groups and percentiles from an HDR histogram', () => {
    const t = new Tally();
    for (let i = 0; i < 97; i++) t.record(1_000, undefined); // 1 ms
    t.record(249_999, undefined);
    t.record(300_000, undefined);
    t.record(1_500_000, 'status.find.in(200,422), but actually found 502');
    const s = t.stats();
    assert.equal(s.count, 100);
    assert.equal(s.ok, 99);
    assert.equal(s.ko, 1);
    assert.equal(s.under250, 98);
    assert.equal(s.from250to1200, 1);
    assert.equal(s.over1200, 0);
    assert.equal(s.failed, 1);
    assert.equal(s.consistencyFailures, 0);
    assert.equal(s.p50Ms, 1);
    assert.equal(s.minMs, 1);
    assert.ok(Math.abs(s.maxMs! - 1500) / 1500 < 0.001, `${s.maxMs}`);
    assert.ok(Math.abs(s.p99Ms! - 300) / 300 < 0.001, `${s.p99Ms}`);
    assert.ok(Math.abs(s.meanMs! - (97 + 250 + 300 + 1500) / 100) < 0.05, `${s.meanMs}`);
  });

  it('counts consistency failures from the failure messages', () => {
    const t = new Tally();
    t.record(1000, 'jmesPath(saldo).find.validate(ConsistenciaSaldoLimite - Transação), but actually Limite ultrapassado!');
    t.record(1000, 'jmesPath(saldo.total).find.is(0), but actually found 1');
    t.record(1000, 'jmesPath(ultimas_transacoes[0].descricao).find.is(danada), but actually found x');
    assert.equal(t.stats().consistencyFailures, 2);
  });

  it('distribution buckets are 10 per decade of µs', () => {
    assert.equal(distributionBucket(1000), 30);
    assert.equal(distributionBucket(999), 29);
    assert.equal(distributionBucket(0), 0);
  });

  it('payout: max(0, (98 - pct) × 1000) + 803.01 per consistency failure', () => {
    assert.deepEqual(computePayout(61_503, 61_503, 0), { pct: 100, slaPenalty: 0, consistencyFailures: 0, consistencyPenalty: 0, totalPenalty: 0, payout: 100_000 });
    const p = computePayout(61_503, 60_000, 3);
    assert.equal(p.pct, 97.56); // round(97.5562…, 2)
    assert.equal(p.slaPenalty, 440);
    assert.equal(p.consistencyPenalty, 2409.03);
    assert.equal(p.payout, 97_150.97);
    assert.equal(computePayout(1000, 975, 0).slaPenalty, 500);
    assert.equal(computePayout(100, 0, 200).payout, 0);
  });

  it('a run is INVALID when the generator lag exceeds the limits', () => {
    const base = { count: 10, meanMs: 1, p50Ms: 1, p999Ms: 2 };
    assert.deepEqual(lagVerdict({ ...base, p99Ms: 2, maxMs: 50 }), { valid: true, reasons: [] });
    assert.equal(lagVerdict({ ...base, p99Ms: LAG_LIMITS.p99Ms + 1, maxMs: 50 }).valid, false);
    assert.equal(lagVerdict({ ...base, p99Ms: 1, maxMs: LAG_LIMITS.maxMs + 1 }).valid, false);
  });
});

describe('report', () => {
  it('renders a full-length run compactly, and the index', () => {
    const recorder = new Recorder();
    const rng = seededRng(7);
    for (let second = 0; second < 245; second++) {
      for (let i = 0; i < 40; i++) {
        const startMs = second * 1000 + i * 25;
        recorder.schedule(startMs);
        recorder.started(startMs);
        const latency = 0.5 + rng() * (i === 0 ? 300 : 5);
        recorder.record({ group: i % 3 ? 'débitos' : 'créditos', startMs, endMs: startMs + latency, status: i % 4 ? 200 : 422, failure: undefined, lagUs: rng() * 2000 }, 'POST');
      }
    }
    const total = { ...recorder.total.stats(), requestsPerSecond: 40 };
    const lag = recorder.lagStats();
    const summary: RunSummary = {
      version: 1,
      id: '2026-11-28T06-30-00Z',
      startedAt: '2026-11-28T06:30:00.000Z',
      finishedAt: '2026-11-28T06:34:05.000Z',
      durationSeconds: 245,
      profile: { ...FULL_PROFILE, expectedRequests: 61_503, loadRequests: buildSchedule(FULL_PROFILE).counts },
      target: { baseUrl: 'http://localhost:9999', envelope: { db: { cpus: 0.5, memoryBytes: 300 * 2 ** 20 } } },
      git: { commit: 'abc1234', dirty: true },
      machine: { cpus: 2, model: 'test cpu', totalMemoryBytes: 2 ** 33, kernel: 'Linux 6', node: 'v20', platform: 'linux/x64', loadAverageStart: [0, 0, 0], loadAverageEnd: [1, 1, 1] },
      groups: recorder.groupStats(),
      total,
      statuses: Object.fromEntries(recorder.statusCounts),
      errors: recorder.errorList(),
      payout: computePayout(total.count, total.under250, 0),
      phases: [{ name: 'S1', requests: 25, ko: 0, atMs: 0, ms: 12 }],
      lag: { ...lag, limits: LAG_LIMITS, ...lagVerdict(lag), eventLoopDelayP99Ms: 1, eventLoopDelayMaxMs: 2, generatorCpuSeconds: 10 },
      timeline: { loadStartSecond: 0.2, points: recorder.timeline() },
      distribution: { perDecade: 10, ok: [...recorder.distribution], ko: [...recorder.distributionKo] },
      audit: { status: 'skipped', reason: 'test', failures: [], ledger: [], problems: [] },
      verdict: { pass: false, valid: true, reasons: [] },
    };
    summary.verdict.reasons = verdictReasons(summary);
    assert.deepEqual(summary.verdict.reasons, [`${total.count} requests instead of 61503`]);
    const html = renderReport(summary);
    assert.ok(html.length < 300_000, `${html.length} bytes`);
    assert.ok(!/https?:\/\/(?!localhost)/.test(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')), 'no external resources');
    assert.equal((html.match(/<svg/g) ?? []).length, 6);
    assert.match(formatSummary(summary), /RESULT: FAIL/);
    assert.match(renderIndex([{ dir: summary.id, summary }]), /2026-11-28T06-30-00Z\/report\.html/);
  });
});
