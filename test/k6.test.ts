// Tests for loadtest/official/rinha.k6.js, the k6 port of the official Gatling simulation
// (the official test and its judging: docs/contest.md). They need no k6 (CI has none; the run under
// a real k6 is test/integration/k6.test.ts):
//  - the script is type-checked with `tsc -p loadtest/official/tsconfig.k6.json` (checkJs against @types/k6);
//  - the script is evaluated in a node:vm sandbox with stub modules for k6, k6/http, k6/execution
//    and k6/metrics, the only modules it may import (no remote module: it must run offline). The
//    stubs record every request, check and metric sample, and a fake in-memory API answers the requests.
// The official numbers are written out here, not imported from the script, so a drifting script fails.

import { spawnSync } from 'node:child_process';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import * as vm from 'node:vm';
import { K6_LOAD_START_S } from '../loadtest/lib/k6-results';

const REPO = path.resolve(__dirname, '..', '..');
const SCRIPT = path.join(REPO, 'loadtest', 'official', 'rinha.k6.js');
const TSCONFIG = path.join(REPO, 'loadtest', 'official', 'tsconfig.k6.json');
const TSC = path.join(REPO, 'node_modules', '.bin', 'tsc');

// ---------------------------------------------------------------------------------------------
// The official simulation, as numbers (RinhaBackendCrebitosSimulation.scala; docs/contest.md)
// ---------------------------------------------------------------------------------------------

const OFFICIAL_LOAD = {
  debitos: { startRate: 1, peak: 220, rampSeconds: 120, constantSeconds: 120, requests: 39660 },
  creditos: { startRate: 1, peak: 110, rampSeconds: 120, constantSeconds: 120, requests: 19860 },
  extratos: { startRate: 1, peak: 10, rampSeconds: 120, constantSeconds: 120, requests: 1860 },
} as const;
type LoadName = keyof typeof OFFICIAL_LOAD;
const LOAD_NAMES = Object.keys(OFFICIAL_LOAD) as LoadName[];
const OFFICIAL_TOTAL = 61503;
const OFFICIAL_VALIDATION_REQUESTS = 123;
const LIMITS: Record<number, number> = { 1: 100000, 2: 80000, 3: 1000000, 4: 10000000, 5: 500000 };
const USER_AGENT = 'Agente do Caos - 2024/Q1';

/** The S5 request sequence, with the official bodies byte for byte (null = GET extrato). */
const S5_SEQUENCE: { method: 'GET' | 'POST'; body: string | null; batch?: true }[] = [
  { method: 'GET', body: null },
  { method: 'POST', body: '{"valor": 1, "tipo": "c", "descricao": "toma"}' },
  { method: 'POST', body: '{"valor": 1, "tipo": "d", "descricao": "devolve"}' },
  { method: 'GET', body: null },
  { method: 'POST', body: '{"valor": 1, "tipo": "c", "descricao": "danada"}' },
  { method: 'GET', body: null, batch: true },
  { method: 'GET', body: null, batch: true },
  { method: 'GET', body: null, batch: true },
  { method: 'GET', body: null, batch: true },
  { method: 'POST', body: '{"valor": 1.2, "tipo": "d", "descricao": "devolve"}' },
  { method: 'POST', body: '{"valor": 1, "tipo": "x", "descricao": "devolve"}' },
  { method: 'POST', body: '{"valor": 1, "tipo": "c", "descricao": "123456789 e mais um pouco"}' },
  { method: 'POST', body: '{"valor": 1, "tipo": "c", "descricao": ""}' },
  { method: 'POST', body: '{"valor": 1, "tipo": "c", "descricao": null}' },
];

// ---------------------------------------------------------------------------------------------
// Sandbox: evaluate the k6 script with stub modules
// ---------------------------------------------------------------------------------------------

interface Req {
  method: string;
  url: string;
  body: string | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  params: any;
  /** Index of the http.batch() call this request belongs to, if any. */
  batch?: number;
}
interface FakeResponse {
  status: number;
  body: string;
  timings?: Partial<Record<'blocked' | 'connecting' | 'tls_handshaking' | 'duration', number>>;
}
type Responder = (req: Req) => FakeResponse;
interface CheckRecord {
  name: string;
  ok: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  tags: any;
}
interface Sample {
  value: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  tags: any;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

interface Loaded {
  /** The script's exports. */
  mod: Any;
  requests: Req[];
  checks: CheckRecord[];
  metrics: Record<string, { type: string; isTime: boolean; samples: Sample[] }>;
  exec: { scenario: { name: string; startTime: number; iterationInTest: number } };
  setResponder(r: Responder): void;
  setRandom(f: () => number): void;
  /** Clears recorded requests, checks and samples. */
  reset(): void;
  metricSum(name: string): number;
}

/** Turns the ES module into a script for node:vm; only the import/export forms the script uses. */
function moduleToScript(src: string): string {
  const exported: string[] = [];
  let out = src
    .replace(/^import\s+([A-Za-z_$][\w$]*)\s+from\s+'([^']+)';[ \t]*$/gm, (_m, id: string, spec: string) => `const ${id} = __import(${JSON.stringify(spec)}).default;`)
    .replace(/^import\s+\{([^}]+)\}\s+from\s+'([^']+)';[ \t]*$/gm, (_m, list: string, spec: string) => `const {${list.replace(/\bas\b/g, ':')}} = __import(${JSON.stringify(spec)});`)
    .replace(/^export\s+(const|let|function|class)\s+([A-Za-z_$][\w$]*)/gm, (_m, kind: string, name: string) => {
      exported.push(name);
      return `${kind} ${name}`;
    });
  const leftover = /^[ \t]*(import|export)\b.*$/m.exec(out);
  if (leftover) throw new Error(`unsupported import/export form in rinha.k6.js: ${leftover[0]}`);
  out += `\n;__exports = { ${exported.join(', ')} };\n`;
  return out;
}

function loadScript(env: Record<string, string> = {}): Loaded {
  const requests: Req[] = [];
  const checks: CheckRecord[] = [];
  const metrics: Loaded['metrics'] = {};
  let responder: Responder = () => ({ status: 599, body: '' });
  let batches = 0;
  const respond = (req: Req) => {
    const r = responder(req);
    return {
      status: r.status,
      body: r.body,
      error: (r as FakeResponse & { error?: string }).error ?? '',
      timings: { blocked: 0, connecting: 0, tls_handshaking: 0, duration: 1, ...r.timings },
      request: req,
    };
  };
  const httpStub = {
    get: (url: string, params?: Any) => {
      const req: Req = { method: 'GET', url, body: null, params };
      requests.push(req);
      return respond(req);
    },
    post: (url: string, body: string, params?: Any) => {
      const req: Req = { method: 'POST', url, body, params };
      requests.push(req);
      return respond(req);
    },
    batch: (list: Any[]) => {
      const b = ++batches;
      const reqs: Req[] = list.map((r: Any[]) => ({ method: r[0], url: r[1], body: r[2] ?? null, params: r[3], batch: b }));
      requests.push(...reqs);
      return reqs.map(respond);
    },
    expectedStatuses: (...statuses: Any[]) => ({ expectedStatuses: statuses }),
  };
  const k6Stub = {
    check: (val: Any, sets: Record<string, (v: Any) => boolean>, tags?: Any) => {
      let all = true;
      for (const [name, fn] of Object.entries(sets)) {
        const ok = fn(val) === true;
        checks.push({ name, ok, tags });
        all = all && ok;
      }
      return all;
    },
  };
  const exec = { scenario: { name: 'test', startTime: Date.now(), iterationInTest: 0 } };
  const metricClass = (type: string) =>
    class {
      name: string;
      constructor(name: string, isTime = false) {
        this.name = name;
        if (metrics[name]) throw new Error(`metric ${name} declared twice`);
        metrics[name] = { type, isTime, samples: [] };
      }
      add(value: number | boolean, tags?: Any) {
        metrics[this.name].samples.push({ value: typeof value === 'boolean' ? (value ? 1 : 0) : value, tags });
      }
    };
  const modules: Record<string, Any> = {
    k6: { ...k6Stub, default: k6Stub },
    'k6/http': { ...httpStub, default: httpStub },
    'k6/execution': { ...exec, default: exec },
    'k6/metrics': { Counter: metricClass('counter'), Rate: metricClass('rate'), Trend: metricClass('trend'), Gauge: metricClass('gauge') },
  };
  const context = vm.createContext({
    __ENV: env,
    __exports: undefined,
    __random: Math.random,
    __import: (spec: string) => {
      if (!(spec in modules)) throw new Error(`rinha.k6.js imports an unexpected module: ${spec}`);
      return modules[spec];
    },
  });
  vm.runInContext('Math.random = function () { return __random(); };', context);
  vm.runInContext(moduleToScript(fs.readFileSync(SCRIPT, 'utf8')), context, { filename: SCRIPT });
  return {
    mod: context.__exports,
    requests,
    checks,
    metrics,
    exec: modules['k6/execution'].default,
    setResponder: (r) => (responder = r),
    setRandom: (f) => (context.__random = f),
    reset: () => {
      requests.length = 0;
      checks.length = 0;
      for (const m of Object.values(metrics)) m.samples.length = 0;
    },
    metricSum: (name) => {
      assert.ok(metrics[name], `metric ${name} is declared`);
      return metrics[name].samples.reduce((a, s) => a + s.value, 0);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A fake, correct API (same rules as the contest) that tests can break on purpose
// ---------------------------------------------------------------------------------------------

interface Tx {
  valor: number;
  tipo: string;
  descricao: string;
}
interface FakeApiOptions {
  /** Return the last transactions oldest first (wrong). */
  oldestFirst?: boolean;
  /** Offset added to saldo.total in every extrato (a stale/cached balance). */
  extratoTotalOffset?: number;
}

function fakeApi(opts: FakeApiOptions = {}): Responder {
  const saldo: Record<number, number> = { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0 };
  const txs: Record<number, Tx[]> = { 1: [], 2: [], 3: [], 4: [], 5: [] };
  return (req) => {
    const m = /\/clientes\/(\d+)\/(transacoes|extrato)$/.exec(req.url);
    if (!m) return { status: 404, body: '' };
    const id = Number(m[1]);
    if (!(id in LIMITS)) return { status: 404, body: '' };
    if (m[2] === 'extrato') {
      const list = opts.oldestFirst ? txs[id].slice(-10) : txs[id].slice(-10).reverse();
      return {
        status: 200,
        body: JSON.stringify({
          saldo: { total: saldo[id] + (opts.extratoTotalOffset ?? 0), data_extrato: new Date().toISOString(), limite: LIMITS[id] },
          ultimas_transacoes: list.map((t) => ({ ...t, realizada_em: new Date().toISOString() })),
        }),
      };
    }
    let body: Any;
    try {
      body = JSON.parse(req.body ?? '');
    } catch {
      return { status: 400, body: '' };
    }
    const { valor, tipo, descricao } = body;
    if (!Number.isInteger(valor) || valor <= 0 || (tipo !== 'c' && tipo !== 'd') || typeof descricao !== 'string' || descricao.length < 1 || descricao.length > 10) {
      return { status: 422, body: '' };
    }
    const novo = saldo[id] + (tipo === 'c' ? valor : -valor);
    if (novo < -LIMITS[id]) return { status: 422, body: '' };
    saldo[id] = novo;
    txs[id].push({ valor, tipo, descricao });
    return { status: 200, body: JSON.stringify({ limite: LIMITS[id], saldo: novo }) };
  };
}

// ---------------------------------------------------------------------------------------------
// Arrival schedules: k6's ramping-arrival-rate and Gatling's open injection
// ---------------------------------------------------------------------------------------------

/** k6 duration string to nanoseconds ("2m", "4ms", "1s", "1m30s"). */
function durationNs(d: string | undefined, fallback = '0s'): number {
  const s = d ?? fallback;
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|ns|s|m|h)/g;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * unit[m[2]];
    consumed += m[0].length;
  }
  assert.equal(consumed, s.length, `unparsable k6 duration ${JSON.stringify(s)}`);
  return total;
}

/**
 * Start offsets (ns) of the iterations k6 actually starts: a port of RampingArrivalRateConfig.cal
 * (lib/executor/ramping_arrival_rate.go, one instance: start 0, offsets [1]) plus Run()'s cut-off,
 * which stops at the end of the regular duration (sum of stages): an iteration scheduled exactly at
 * that instant loses the race against the duration context and is never started.
 */
function k6Arrivals(sc: Any): number[] {
  const timeUnit = durationNs(sc.timeUnit, '1s');
  let from = (sc.startRate ?? 0) / timeUnit;
  let doneSoFar = 0;
  let endCount = 0;
  let i = 1;
  let stageStart = 0;
  const times: number[] = [];
  for (const stage of sc.stages as { duration: string; target: number }[]) {
    const to = stage.target / timeUnit;
    const dur = durationNs(stage.duration);
    if (from !== to) {
      endCount += dur * ((to - from) / 2 + from);
      for (; i <= endCount; i++) {
        const radicand = dur * (from * from * dur + 2 * (i - doneSoFar) * (to - from));
        const x = (from * dur - (radicand >= 0 ? Math.sqrt(radicand) : 0)) / (from - to);
        times.push(Math.trunc(x) + stageStart);
      }
    } else {
      endCount += dur * to;
      for (; i <= endCount; i++) times.push(Math.trunc((i - doneSoFar) / to) + stageStart);
    }
    doneSoFar = endCount;
    from = to;
    stageStart += dur;
  }
  return times.filter((t) => t < stageStart);
}

/**
 * Users Gatling 3.10 injects in each second for rampUsersPerSec(start).to(end).during(D) followed by
 * constantUsersPerSec(end).during(D2) (OpenInjectionStep.scala: RampRateOpenInjection adds
 * a·(2s+1) + start users in second s, carrying the fraction; the constant step is
 * RampOpenInjection(round(D2·rate), D2) spread evenly). Second 0 starts with user 0 at t = 0.
 */
function gatlingUsersPerSecond(start: number, end: number, rampS: number, constS: number): number[] {
  const perSecond: number[] = [];
  let acc = 0; // numerator over 2·rampS, exact
  for (let s = 0; s < rampS; s++) {
    acc += (end - start) * (2 * s + 1) + 2 * rampS * start;
    const users = Math.floor(acc / (2 * rampS));
    acc -= users * 2 * rampS;
    perSecond.push(users);
  }
  const users = Math.round(constS * end);
  for (let s = 0; s < constS; s++) perSecond.push(Math.floor((users * (s + 1)) / constS) - Math.floor((users * s) / constS));
  return perSecond;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function runTsc(project: string): { status: number | null; output: string } {
  const r = spawnSync(TSC, ['-p', project, '--pretty', 'false'], { cwd: REPO, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function failedChecks(l: Loaded): string[] {
  return l.checks.filter((c) => !c.ok).map((c) => c.name);
}

const PRE_PHASES = [
  { key: 's1_debitos_concorrentes', exec: 's1DebitosConcorrentes', vus: 25, requestsPerIteration: 1 },
  { key: 's2_saldo_menos_25', exec: 's2SaldoAposDebitos', vus: 1, requestsPerIteration: 1 },
  { key: 's3_creditos_concorrentes', exec: 's3CreditosConcorrentes', vus: 25, requestsPerIteration: 1 },
  { key: 's4_saldo_zero', exec: 's4SaldoAposCreditos', vus: 1, requestsPerIteration: 1 },
  { key: 's5_validacoes', exec: 's5Validacoes', vus: 5, requestsPerIteration: 14 },
  { key: 's6_http_404', exec: 's6Http404', vus: 1, requestsPerIteration: 1 },
] as const;

// =============================================================================================
// (a) Type-checking
// =============================================================================================

describe('k6 script type-checks against @types/k6', () => {
  test('tsc -p loadtest/official/tsconfig.k6.json exits 0', () => {
    const r = runTsc(TSCONFIG);
    assert.equal(r.status, 0, `tsc diagnostics:\n${r.output}`);
  });

  test('the k6 tsconfig rejects real API misuse (and accepts a correct control file)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k6-tsc-'));
    try {
      fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
      const good = [
        "import http from 'k6/http';",
        "/** @type {import('k6/options').Options} */",
        "export const options = { scenarios: { a: { executor: 'ramping-arrival-rate', stages: [{ duration: '1m', target: 1 }], preAllocatedVUs: 1 } } };",
        "export default function () { http.get('http://localhost:9999/'); }",
        '/** @param {object} data */',
        'export function handleSummary(data) { return { stdout: JSON.stringify(data) }; }',
        '',
      ].join('\n');
      const bad = [
        "import http from 'k6/http';",
        "/** @type {import('k6/options').Options} */",
        "export const options = { scenarios: { a: { executor: 'ramping-arrival-rates', stages: [], preAllocatedVUs: 1 } } };", // line 3
        'export default function () {',
        '  http.get(42);', // line 5
        "  http.gett('http://localhost:9999/');", // line 6
        "  console.log('k6 has console, but the typings must not invent DOM/node globals');", // line 7
        '}',
        '',
      ].join('\n');
      fs.writeFileSync(path.join(dir, 'good.js'), good);
      fs.writeFileSync(path.join(dir, 'bad.js'), bad);
      const mk = (file: string) => {
        const p = path.join(dir, `tsconfig.${file}.json`);
        fs.writeFileSync(p, JSON.stringify({ extends: TSCONFIG, files: [`${file}.js`] }));
        return p;
      };
      const ok = runTsc(mk('good'));
      assert.equal(ok.status, 0, `control file should type-check:\n${ok.output}`);
      const ko = runTsc(mk('bad'));
      assert.notEqual(ko.status, 0, 'misuse must fail the type-check');
      for (const line of [3, 5, 6, 7]) {
        assert.match(ko.output, new RegExp(`bad\\.js\\(${line},\\d+\\): error`), `line ${line} of the misuse file should be flagged:\n${ko.output}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// =============================================================================================
// (b) Options: injection profile, phases, global options
// =============================================================================================

describe('k6 options match the official profile', () => {
  const l = loadScript();
  // Plain data in this realm (arrays made inside the vm context have another Array.prototype).
  const opts = JSON.parse(JSON.stringify(l.mod.options));
  const scenarios: Record<string, Any> = opts.scenarios;

  test('the script evaluates with only k6, k6/http, k6/execution and k6/metrics, and imports nothing remote', () => {
    assert.doesNotMatch(fs.readFileSync(SCRIPT, 'utf8'), /^import[^;]*'(https?:)?\/\//m, 'a remote import needs a network at run time');
    for (const name of ['options', 'handleSummary', ...PRE_PHASES.map((p) => p.exec), 'debitos', 'creditos', 'extratos']) {
      assert.ok(name in l.mod, `export ${name}`);
    }
    assert.equal(typeof l.mod.handleSummary, 'function');
    // Every scenario's exec names an exported function.
    for (const [key, sc] of Object.entries(scenarios)) {
      assert.equal(typeof l.mod[sc.exec], 'function', `scenario ${key} exec ${sc.exec}`);
    }
    assert.deepEqual(Object.keys(scenarios).sort(), [...PRE_PHASES.map((p) => p.key), ...LOAD_NAMES].sort());
  });

  test('load scenarios: ramping-arrival-rate 1 → peak/s over 2 min, then 2 min at peak', () => {
    for (const name of LOAD_NAMES) {
      const sc = scenarios[name];
      const off = OFFICIAL_LOAD[name];
      assert.equal(sc.executor, 'ramping-arrival-rate', name);
      assert.equal(durationNs(sc.timeUnit, '1s'), 1e9, `${name} timeUnit`);
      assert.equal(sc.startRate, off.startRate, `${name} startRate`);
      assert.ok(sc.stages.length === 2 || sc.stages.length === 3, `${name} stages`);
      assert.deepEqual([durationNs(sc.stages[0].duration), sc.stages[0].target], [off.rampSeconds * 1e9, off.peak], `${name} ramp stage`);
      assert.deepEqual([durationNs(sc.stages[1].duration), sc.stages[1].target], [off.constantSeconds * 1e9, off.peak], `${name} constant stage`);
      if (sc.stages.length === 3) {
        // The tail only moves the end of the schedule; it must not add an arrival of its own.
        const tail = sc.stages[2];
        assert.equal(tail.target, off.peak, `${name} tail keeps the rate`);
        assert.ok((durationNs(tail.duration) / 1e9) * off.peak < 1, `${name} tail adds < 1 arrival`);
      }
    }
  });

  test('arrivals: k6 schedule == Gatling injection == 39,660 / 19,860 / 1,860, at most 1 arrival apart each second', () => {
    for (const name of LOAD_NAMES) {
      const sc = scenarios[name];
      const off = OFFICIAL_LOAD[name];
      const k6 = k6Arrivals(sc);
      const gatling = gatlingUsersPerSecond(off.startRate, off.peak, off.rampSeconds, off.constantSeconds);
      const gatlingTotal = gatling.reduce((a, b) => a + b, 0);
      // Closed form of the injection: (1 + peak) / 2 × 120 + peak × 120.
      const closedForm = ((off.startRate + off.peak) / 2) * off.rampSeconds + off.peak * off.constantSeconds;
      assert.equal(closedForm, off.requests, `${name} closed form`);
      assert.equal(gatlingTotal, off.requests, `${name} Gatling total`);
      assert.equal(k6.length, off.requests, `${name} k6 iterations`);
      // Gatling injects user 0 at t=0 and then per second; k6 starts iteration i when the integral of
      // the rate reaches i. So k6 may trail Gatling by one arrival at a second boundary, never more,
      // and is never ahead of it.
      let cumulative = 0;
      let j = 0;
      for (let s = 1; s <= gatling.length; s++) {
        cumulative += gatling[s - 1];
        while (j < k6.length && k6[j] < s * 1e9) j++;
        const lag = cumulative - j;
        assert.ok(lag >= 0 && lag <= 1, `${name}: at t=${s}s Gatling injected ${cumulative}, k6 started ${j}`);
      }
      // The whole k6 schedule ends before the regular duration (sum of stages) runs out.
      const total = sc.stages.reduce((a: number, st: Any) => a + durationNs(st.duration), 0);
      assert.ok(k6[k6.length - 1] < total, `${name}: last arrival inside the schedule`);
    }
  });

  test('PROFILE=quick: time × 1/4, peak rates × 1/2, the validations unchanged: 4,965 / 2,490 / 240 + 123 = 7,818 (as npm run loadtest -- --quick)', () => {
    const quick = loadScript({ PROFILE: 'quick' });
    const q = JSON.parse(JSON.stringify(quick.mod.options.scenarios));
    const expected: Record<LoadName, number> = { debitos: 4965, creditos: 2490, extratos: 240 };
    for (const name of LOAD_NAMES) {
      const off = OFFICIAL_LOAD[name];
      assert.deepEqual(q[name].stages.slice(0, 2).map((st: Any) => [durationNs(st.duration) / 1e9, st.target]), [[off.rampSeconds / 4, off.peak / 2], [off.constantSeconds / 4, off.peak / 2]], name);
      assert.equal(k6Arrivals(q[name]).length, expected[name], `${name} k6 iterations`);
      assert.equal(gatlingUsersPerSecond(1, off.peak / 2, off.rampSeconds / 4, off.constantSeconds / 4).reduce((a, b) => a + b, 0), expected[name], `${name} Gatling users`);
      assert.equal(k6Arrivals({ ...q[name], stages: q[name].stages.slice(0, 2) }).length, expected[name] - 1, `${name}: the tail stage is needed here too`);
    }
    for (const p of PRE_PHASES) assert.deepEqual(q[p.key], scenarios[p.key], `${p.key} is the same in both profiles`);
    assert.equal(quick.mod.REQUISICOES_ESPERADAS, 7818);
    assert.equal(loadScript({ PROFILE: 'anything else' }).mod.REQUISICOES_ESPERADAS, OFFICIAL_TOTAL);
  });

  test('off-by-one explained: without the tail stage k6 would lose the last arrival (it lands on t = 240 s)', () => {
    for (const name of LOAD_NAMES) {
      const sc = scenarios[name];
      assert.equal(sc.stages.length, 3, `${name} has the 4 ms tail`);
      const withoutTail = { ...sc, stages: sc.stages.slice(0, 2) };
      assert.equal(k6Arrivals(withoutTail).length, OFFICIAL_LOAD[name].requests - 1, name);
    }
  });

  test('enough VUs for an open model: preAllocated ≥ peak × 250 ms, maxVUs ≥ peak × 2 s', () => {
    for (const name of LOAD_NAMES) {
      const sc = scenarios[name];
      const peak = OFFICIAL_LOAD[name].peak;
      assert.ok(sc.preAllocatedVUs >= Math.ceil(peak * 0.25), `${name} preAllocatedVUs ${sc.preAllocatedVUs}`);
      assert.ok(sc.maxVUs >= peak * 2, `${name} maxVUs ${sc.maxVUs}`);
    }
    assert.deepEqual(opts.thresholds.dropped_iterations, ['count==0']);
  });

  test('validation phases: executors and VU/iteration counts 25, 1, 25, 1, 5, 1', () => {
    for (const p of PRE_PHASES) {
      const sc = scenarios[p.key];
      assert.equal(sc.executor, 'per-vu-iterations', p.key);
      assert.equal(sc.vus, p.vus, `${p.key} vus`);
      assert.equal(sc.iterations ?? 1, 1, `${p.key} iterations per VU (atOnceUsers: one request chain each)`);
      assert.equal(sc.exec, p.exec, `${p.key} exec`);
    }
  });

  test('order via startTime: S1 < S2 < S3 < S4 < S5 = S6 ≤ load, each slot longer than its deadline', () => {
    const t = (key: string) => durationNs(scenarios[key].startTime, '0s') / 1e6;
    const [s1, s2, s3, s4, s5, s6] = PRE_PHASES.map((p) => t(p.key));
    assert.equal(s1, 0);
    assert.ok(s1 < s2 && s2 < s3 && s3 < s4 && s4 < s5, `sequential phases ${[s1, s2, s3, s4, s5]}`);
    assert.equal(s5, s6, 'S5 and S6 start together (both follow S4)');
    for (const name of LOAD_NAMES) assert.ok(t(name) >= s6, `${name} does not start before S6`);
    assert.equal(new Set(LOAD_NAMES.map(t)).size, 1, 'the three load scenarios start together');
    // The guard checks' deadlines fit the slots, so a phase that is on time never overlaps the next.
    const deadline = l.mod.PRAZO_FASE_MS;
    assert.ok(deadline.s1 <= s2 - s1 && deadline.s2 <= s3 - s2 && deadline.s3 <= s4 - s3 && deadline.s4 <= s5 - s4);
    // S6 → load: S6's deadline ends before the first load arrival of every scenario.
    for (const name of LOAD_NAMES) {
      const firstArrivalMs = t(name) + k6Arrivals(scenarios[name])[0] / 1e6;
      assert.ok(firstArrivalMs - s6 >= deadline.s6, `${name}: first arrival ${firstArrivalMs} ms vs S6 at ${s6} ms`);
    }
  });

  test('the load starts where loadtest/lib/k6-results.ts places it on the report\'s time axis', () => {
    assert.equal(l.mod.FASES_MS.carga, K6_LOAD_START_S * 1000);
    for (const name of LOAD_NAMES) assert.equal(durationNs(scenarios[name].startTime) / 1e6, K6_LOAD_START_S * 1000, name);
  });

  test('global options: User-Agent, one connection set per iteration (Gatling user), thresholds', () => {
    assert.equal(opts.userAgent, USER_AGENT);
    assert.equal(opts.noVUConnectionReuse, true);
    assert.notEqual(opts.noConnectionReuse, true, 'keep-alive inside an iteration, as inside a Gatling user');
    assert.ok((opts.batchPerHost ?? 6) >= 4, 'the 4 parallel GETs run in parallel');
    assert.deepEqual(opts.thresholds.checks, ['rate==1.0']);
    assert.deepEqual(opts.thresholds.sla_ok_abaixo_250ms, ['rate>=0.98']);
    assert.deepEqual(opts.thresholds.ConsistenciaSaldoLimite, ['count==0']);
    assert.deepEqual(opts.thresholds.jmesPath_saldo_total_find_is, ['count==0']);
    // Thresholds only name metrics that exist (builtin or declared by the script), with valid names.
    const builtin = new Set(['checks', 'dropped_iterations', 'http_reqs', 'http_req_duration', 'http_req_failed', 'iterations']);
    for (const key of Object.keys(opts.thresholds)) {
      const metric = key.replace(/\{.*\}$/, '');
      assert.ok(builtin.has(metric) || metric in l.metrics, `threshold on unknown metric ${key}`);
    }
    for (const name of Object.keys(l.metrics)) assert.match(name, /^[A-Za-z_][A-Za-z0-9_]{0,127}$/, `k6 metric name ${name}`);
    assert.equal(l.metrics.ConsistenciaSaldoLimite.type, 'counter');
    assert.equal(l.metrics.sla_ok_abaixo_250ms.type, 'rate');
  });
});

// =============================================================================================
// Requests, payloads and checks (run against the fake API)
// =============================================================================================

describe('validation phases send the official requests', () => {
  test('S1/S3: 25 × POST /clientes/1/transacoes with the official bodies; S2/S4 expect -25 and 0; S6 expects 404', () => {
    const l = loadScript();
    l.setResponder(fakeApi());
    for (let i = 0; i < 25; i++) l.mod.s1DebitosConcorrentes();
    l.mod.s2SaldoAposDebitos();
    for (let i = 0; i < 25; i++) l.mod.s3CreditosConcorrentes();
    l.mod.s4SaldoAposCreditos();
    l.mod.s6Http404();
    assert.deepEqual(failedChecks(l), []);
    assert.equal(l.requests.length, 25 + 1 + 25 + 1 + 1);
    for (const r of l.requests.slice(0, 25)) {
      assert.deepEqual([r.method, r.url, r.body], ['POST', 'http://localhost:9999/clientes/1/transacoes', '{"valor": 1, "tipo": "d", "descricao": "validacao"}']);
      assert.equal(r.params.headers['content-type'], 'application/json');
      assert.equal(r.params.tags.name, 'validações');
    }
    assert.deepEqual([l.requests[25].method, l.requests[25].url], ['GET', 'http://localhost:9999/clientes/1/extrato']);
    for (const r of l.requests.slice(26, 51)) assert.equal(r.body, '{"valor": 1, "tipo": "c", "descricao": "validacao"}');
    assert.deepEqual([l.requests[51].method, l.requests[51].url], ['GET', 'http://localhost:9999/clientes/1/extrato']);
    assert.deepEqual([l.requests[52].method, l.requests[52].url], ['GET', 'http://localhost:9999/clientes/6/extrato']);
    assert.equal(l.metricSum('ConsistenciaSaldoLimite') + l.metricSum('jmesPath_saldo_total_find_is'), 0);
  });

  test('S2: a lost update (-24) or a non-integer total (-25.0) fails and is penalised like jmesPath(saldo.total).find.is', () => {
    for (const body of ['{"saldo": {"total": -24, "limite": 100000}}', '{"saldo": {"total": -25.0, "limite": 100000}}']) {
      const l = loadScript();
      l.setResponder(() => ({ status: 200, body }));
      l.mod.s2SaldoAposDebitos();
      assert.ok(failedChecks(l).some((n) => n.includes('jmesPath(saldo.total).find.is(-25)')), body);
      assert.equal(l.metricSum('jmesPath_saldo_total_find_is'), 1, body);
    }
    // A 500 fails the implicit status check first: KO, but no penalty (first failure is the status).
    const l = loadScript();
    l.setResponder(() => ({ status: 500, body: '' }));
    l.mod.s4SaldoAposCreditos();
    assert.ok(failedChecks(l).length > 0);
    assert.equal(l.metricSum('jmesPath_saldo_total_find_is'), 0);
    assert.equal(l.metricSum('gatling_ko'), 1);
  });

  test('S6 fails on anything but 404', () => {
    const l = loadScript();
    l.setResponder(() => ({ status: 200, body: '{}' }));
    l.mod.s6Http404();
    assert.deepEqual(failedChecks(l), ['validações: status.find.is(404)']);
  });

  test('phase guard: a phase still running when the next one starts fails a check', () => {
    const l = loadScript();
    l.setResponder(fakeApi());
    l.exec.scenario.startTime = Date.now() - 5000;
    l.mod.s1DebitosConcorrentes();
    assert.equal(failedChecks(l).length, 1);
    assert.match(failedChecks(l)[0], /^\[k6\] fase s1/);
  });

  test('S5: 14 requests per client in the official order, 4 parallel extratos after "danada", all checks pass', () => {
    const l = loadScript();
    l.setResponder(fakeApi());
    for (let k = 0; k < 5; k++) {
      l.exec.scenario.iterationInTest = k;
      l.mod.s5Validacoes();
    }
    assert.equal(l.requests.length, 5 * 14);
    for (let k = 0; k < 5; k++) {
      const reqs = l.requests.slice(k * 14, (k + 1) * 14);
      const id = k + 1;
      reqs.forEach((r, i) => {
        const e = S5_SEQUENCE[i];
        const url = `http://localhost:9999/clientes/${id}/${e.method === 'GET' ? 'extrato' : 'transacoes'}`;
        assert.deepEqual([r.method, r.url, r.body ?? null], [e.method, url, e.body], `client ${id} request ${i + 1}`);
        assert.equal(r.batch !== undefined, e.batch === true, `client ${id} request ${i + 1} in http.batch`);
        assert.equal(r.params.tags.name, 'validações');
        if (e.method === 'POST') assert.equal(r.params.headers['content-type'], 'application/json');
      });
      assert.equal(new Set(reqs.filter((r) => r.batch !== undefined).map((r) => r.batch)).size, 1, 'the 4 GETs are one batch');
    }
    assert.deepEqual(failedChecks(l), []);
    // Each client: +1 toma, -1 devolve, +1 danada.
    assert.equal(l.metricSum('gatling_ko'), 0);
    // Every request produced exactly one SLA sample (the payout's denominator).
    assert.equal(l.metrics.sla_ok_abaixo_250ms.samples.length, 5 * 14);
  });

  test('S5: the limit is checked as text, so a JSON 100000.0 fails', () => {
    const l = loadScript();
    const api = fakeApi();
    l.setResponder((req) => {
      const r = api(req);
      return { ...r, body: r.body.replace(/"limite":(\d+)/g, '"limite":$1.0') };
    });
    l.exec.scenario.iterationInTest = 0;
    l.mod.s5Validacoes();
    const failed = failedChecks(l);
    assert.ok(failed.includes('validações: jmesPath(saldo.limite).find.is(#{limite})'), failed.join('\n'));
    // toma/devolve validate saldo against the saved limite "100000.0", which toInt rejects: "WTF?!".
    assert.ok(failed.includes('validações: jmesPath(saldo).find.validate(ConsistenciaSaldoLimite - Transação)'), failed.join('\n'));
    assert.ok(l.metricSum('ConsistenciaSaldoLimite') >= 2);
  });

  test('S5: statement oldest-first fails the ordering checks without a balance penalty', () => {
    const l = loadScript();
    l.setResponder(fakeApi({ oldestFirst: true }));
    l.exec.scenario.iterationInTest = 1;
    l.mod.s5Validacoes();
    const failed = failedChecks(l);
    assert.ok(failed.includes('validações: jmesPath(ultimas_transacoes[0].descricao).find.is(devolve)'), failed.join('\n'));
    assert.ok(failed.includes('validações: jmesPath(ultimas_transacoes[1].descricao).find.is(toma)'), failed.join('\n'));
    assert.equal(l.metricSum('jmesPath_saldo_total_find_is') + l.metricSum('ConsistenciaSaldoLimite'), 0);
  });

  test('S5: a stale balance in the extrato is penalised once per affected request (first failure = saldo.total)', () => {
    const l = loadScript();
    l.setResponder(fakeApi({ extratoTotalOffset: -1 }));
    l.exec.scenario.iterationInTest = 2;
    l.mod.s5Validacoes();
    // Step 1 (total "0") and the 4 parallel GETs (total == saved saldo) fail on saldo.total first.
    assert.equal(l.metricSum('jmesPath_saldo_total_find_is'), 5);
    assert.ok(failedChecks(l).includes('validações: jmesPath(saldo.total).find.is(#{saldo})'));
  });
});

describe('load scenarios', () => {
  test('débitos/créditos: official body format, client 1..5, valor 1..10000, descricao 10 × [A-Za-z0-9]', () => {
    const l = loadScript();
    l.setResponder(() => ({ status: 200, body: '{"limite": 100000, "saldo": 0}' }));
    const seen = { ids: new Set<number>(), min: Infinity, max: -Infinity, chars: new Set<string>() };
    for (let i = 0; i < 3000; i++) {
      l.mod.debitos();
      l.mod.creditos();
    }
    for (const [i, r] of l.requests.entries()) {
      const tipo = i % 2 === 0 ? 'd' : 'c';
      const m = /^\{"valor": (\d+), "tipo": "([cd])", "descricao": "([A-Za-z0-9]{10})"\}$/.exec(r.body ?? '');
      assert.ok(m, `body ${r.body}`);
      assert.equal(m[2], tipo);
      const u = /^http:\/\/localhost:9999\/clientes\/(\d)\/transacoes$/.exec(r.url);
      assert.ok(u, r.url);
      seen.ids.add(Number(u[1]));
      seen.min = Math.min(seen.min, Number(m[1]));
      seen.max = Math.max(seen.max, Number(m[1]));
      for (const ch of m[3]) seen.chars.add(ch);
      assert.equal(r.params.headers['content-type'], 'application/json');
      assert.equal(r.params.tags.name, tipo === 'd' ? 'débitos' : 'créditos');
    }
    assert.deepEqual([...seen.ids].sort(), [1, 2, 3, 4, 5]);
    assert.ok(seen.min >= 1 && seen.max <= 10000 && seen.max - seen.min > 9000, `valor range ${seen.min}..${seen.max}`);
    assert.ok(seen.chars.size > 55, 'all 62 alphanumerics are in use');
    assert.deepEqual(failedChecks(l), []);
  });

  test('random ranges hit both ends exactly (Math.random → 0 and → 1-ε)', () => {
    const l = loadScript();
    l.setResponder(() => ({ status: 200, body: '{"limite": 100000, "saldo": 0}' }));
    l.setRandom(() => 0);
    l.mod.debitos();
    l.setRandom(() => 1 - Number.EPSILON);
    l.mod.creditos();
    assert.deepEqual(
      l.requests.map((r) => [r.url, r.body]),
      [
        ['http://localhost:9999/clientes/1/transacoes', '{"valor": 1, "tipo": "d", "descricao": "0000000000"}'],
        ['http://localhost:9999/clientes/5/transacoes', '{"valor": 10000, "tipo": "c", "descricao": "zzzzzzzzzz"}'],
      ],
    );
  });

  test('débitos accept 200 or 422 and validate saldo >= -limite only on 200', () => {
    const l = loadScript();
    l.setResponder(() => ({ status: 422, body: 'not json' }));
    l.mod.debitos();
    assert.deepEqual(failedChecks(l), []);
    assert.deepEqual(l.checks.map((c) => c.name), ['débitos: status.find.in(200,422)']);
    l.reset();
    l.setResponder(() => ({ status: 200, body: '{"limite": 100000, "saldo": -100000}' }));
    l.mod.debitos();
    assert.deepEqual(failedChecks(l), []);
    assert.equal(l.metricSum('ConsistenciaSaldoLimite'), 0);
    l.reset();
    l.setResponder(() => ({ status: 200, body: '{"limite": 100000, "saldo": -100001}' }));
    l.mod.debitos();
    assert.deepEqual(failedChecks(l), ['débitos: jmesPath(saldo).find.validate(ConsistenciaSaldoLimite - Transação)']);
    assert.equal(l.metricSum('ConsistenciaSaldoLimite'), 1);
    l.reset();
    l.setResponder(() => ({ status: 500, body: '' }));
    l.mod.debitos();
    assert.deepEqual(failedChecks(l), ['débitos: status.find.in(200,422)']);
    assert.equal(l.metricSum('ConsistenciaSaldoLimite'), 0);
  });

  test('créditos require 200; a non-integer saldo is "WTF?!" and penalised', () => {
    const l = loadScript();
    l.setResponder(() => ({ status: 422, body: '' }));
    l.mod.creditos();
    assert.equal(failedChecks(l)[0], 'créditos: status.find.is(200)');
    assert.equal(l.metricSum('ConsistenciaSaldoLimite'), 0);
    l.reset();
    l.setResponder(() => ({ status: 200, body: '{"limite": 100000, "saldo": 5.0}' }));
    l.mod.creditos();
    assert.deepEqual(failedChecks(l), ['créditos: jmesPath(saldo).find.validate(ConsistenciaSaldoLimite - Transação)']);
    assert.equal(l.metricSum('ConsistenciaSaldoLimite'), 1);
  });

  test('extratos: implicit 2xx status, validator on saldo.total vs saldo.limite', () => {
    const l = loadScript();
    const body = (total: number, limite: number) => JSON.stringify({ saldo: { total, limite, data_extrato: 'x' }, ultimas_transacoes: [] });
    l.setResponder(() => ({ status: 200, body: body(-80000, 80000) }));
    l.mod.extratos();
    assert.deepEqual(failedChecks(l), []);
    assert.match(l.requests[0].url, /^http:\/\/localhost:9999\/clientes\/[1-5]\/extrato$/);
    assert.equal(l.requests[0].params.tags.name, 'extratos');
    l.reset();
    l.setResponder(() => ({ status: 200, body: body(-80001, 80000) }));
    l.mod.extratos();
    assert.deepEqual(failedChecks(l), ['extratos: jmesPath(saldo.total).find.validate(ConsistenciaSaldoLimite - Extrato)']);
    assert.equal(l.metricSum('ConsistenciaSaldoLimite'), 1);
    l.reset();
    l.setResponder(() => ({ status: 503, body: '' }));
    l.mod.extratos();
    assert.equal(failedChecks(l)[0], 'extratos: status.find.in(200,201,202,203,204,205,206,207,208,209,304)');
    assert.equal(l.metricSum('ConsistenciaSaldoLimite'), 0, 'first failure is the status: not penalised');
  });

  test('each request leaves one gatling_response_time sample with its status, method and first failure (for k6-results.ts)', () => {
    const l = loadScript();
    const cases: [FakeResponse & { error?: string }, Record<string, string>][] = [
      [{ status: 200, body: '{"limite": 1000, "saldo": -5}' }, { grupo: 'creditos', status: '200', metodo: 'POST' }],
      [{ status: 422, body: '' }, { grupo: 'creditos', status: '422', metodo: 'POST', falha: 'status.find.is(200), but actually found 422' }],
      [{ status: 200, body: '{"limite": 1000, "saldo": -1001}' }, { grupo: 'creditos', status: '200', metodo: 'POST', falha: 'jmesPath(saldo).find.validate(ConsistenciaSaldoLimite - Transação)' }],
      [{ status: 0, body: '', error: 'dial: connection refused' }, { grupo: 'creditos', status: '0', metodo: 'POST', falha: 'dial: connection refused' }],
    ];
    for (const [res, tags] of cases) {
      l.reset();
      l.setResponder(() => res);
      l.mod.creditos();
      const samples = l.metrics.gatling_response_time.samples;
      assert.equal(samples.length, 1, JSON.stringify(res));
      assert.deepEqual({ ...samples[0].tags }, tags, JSON.stringify(res));
    }
  });

  test('SLA sample: OK and under 250 ms, counting connection time like Gatling', () => {
    const l = loadScript();
    const cases: [FakeResponse, number][] = [
      [{ status: 200, body: '{"limite": 1, "saldo": 0}', timings: { duration: 249 } }, 1],
      [{ status: 200, body: '{"limite": 1, "saldo": 0}', timings: { duration: 250 } }, 0],
      [{ status: 200, body: '{"limite": 1, "saldo": 0}', timings: { duration: 240, connecting: 10 } }, 0],
      [{ status: 422, body: '', timings: { duration: 1 } }, 0],
    ];
    for (const [res, expected] of cases) {
      l.reset();
      l.setResponder(() => res);
      l.mod.creditos();
      assert.deepEqual(l.metrics.sla_ok_abaixo_250ms.samples.map((s) => s.value), [expected], JSON.stringify(res));
    }
  });
});

// =============================================================================================
// Totals and the payout
// =============================================================================================

describe('totals and payout', () => {
  test('total expected requests = 123 validations + 61,380 load = 61,503', () => {
    const l = loadScript();
    l.setResponder(fakeApi());
    const scenarios = l.mod.options.scenarios;
    let validation = 0;
    for (const p of PRE_PHASES) {
      const sc = scenarios[p.key];
      const before = l.requests.length;
      for (let v = 0; v < sc.vus * (sc.iterations ?? 1); v++) {
        l.exec.scenario.iterationInTest = v;
        l.mod[sc.exec]();
      }
      assert.equal(l.requests.length - before, sc.vus * p.requestsPerIteration, p.key);
      validation += l.requests.length - before;
    }
    assert.equal(validation, OFFICIAL_VALIDATION_REQUESTS);
    const load = LOAD_NAMES.reduce((a, n) => a + k6Arrivals(scenarios[n]).length, 0);
    assert.equal(load, 39660 + 19860 + 1860);
    assert.equal(validation + load, OFFICIAL_TOTAL);
    assert.equal(l.mod.REQUISICOES_ESPERADAS, OFFICIAL_TOTAL);
  });

  const summary = (passes: number, fails: number, consistencia: number, saldoTotal: number) => ({
    metrics: {
      http_reqs: { type: 'counter', values: { count: passes + fails, rate: 250 } },
      sla_ok_abaixo_250ms: { type: 'rate', values: { rate: passes / (passes + fails), passes, fails } },
      ConsistenciaSaldoLimite: { type: 'counter', values: { count: consistencia, rate: 0 } },
      jmesPath_saldo_total_find_is: { type: 'counter', values: { count: saldoTotal, rate: 0 } },
      'gatling_response_time{grupo:debitos}': { type: 'trend', values: { med: 1, 'p(75)': 1.5, 'p(95)': 2, 'p(99)': 3, max: 40, count: 39660 } },
    },
  });

  test('payout: SLA fine max(0, (98 − pct) × 1000), 803.01 per inconsistency, floor at 0', () => {
    const l = loadScript();
    // 59,965 / 61,503 = 97.4993% → 97.50 → USD 500; 2 + 1 inconsistencies → USD 2,409.03.
    const p = l.mod.calcularPagamento(summary(59965, 1538, 2, 1));
    assert.equal(p.pctOkAbaixo250ms, 97.5);
    assert.equal(p.multaSla, 500);
    assert.equal(p.inconsistencias, 3);
    assert.equal(p.multaInconsistencia, 2409.03);
    assert.equal(p.multaTotal, 2909.03);
    assert.equal(p.valorAReceber, 97090.97);
    const clean = l.mod.calcularPagamento(summary(61503, 0, 0, 0));
    assert.deepEqual([clean.pctOkAbaixo250ms, clean.multaSla, clean.multaInconsistencia, clean.valorAReceber], [100, 0, 0, 100000]);
    const exactly98 = l.mod.calcularPagamento(summary(98, 2, 0, 0));
    assert.equal(exactly98.multaSla, 0);
    const broke = l.mod.calcularPagamento(summary(1, 99, 200, 0));
    assert.equal(broke.valorAReceber, 0);
  });

  test('the text summary is written here: checks with each failing one, http_req_duration, counts, thresholds', () => {
    const data = {
      root_group: {
        name: '',
        checks: [{ name: 'débitos: status.find.in(200,422)', passes: 39658, fails: 2 }],
        groups: [{ name: 'g', checks: [{ name: 'extratos: status.find.in(200,201,202,203,204,205,206,207,208,209,304)', passes: 1860, fails: 0 }], groups: [] }],
      },
      metrics: {
        ...summary(61501, 2, 0, 0).metrics,
        http_req_duration: { type: 'trend', values: { min: 0.31, avg: 1.2, med: 0.9, 'p(75)': 1.1, 'p(95)': 2.5, 'p(99)': 4.75, max: 30.1, count: 61503 } },
        iterations: { type: 'counter', values: { count: 61385, rate: 250 } },
        dropped_iterations: { type: 'counter', values: { count: 3, rate: 0 } },
        gatling_ko: { type: 'counter', values: { count: 2, rate: 0 }, thresholds: { 'count==0': { ok: false } } },
        checks: { type: 'rate', values: { rate: 0.99997, passes: 41518, fails: 2 }, thresholds: { 'rate==1.0': { ok: false } } },
        sla_ok_abaixo_250ms: { type: 'rate', values: { rate: 1, passes: 61501, fails: 2 }, thresholds: { 'rate>=0.98': { ok: true } } },
      },
    };
    const text: string = loadScript().mod.resumoTexto(data);
    assert.match(text, /checks: 100\.00% passed \(41518 ✓, 2 ✗, 2 distinct checks\)/);
    assert.match(text, /✗ débitos: status\.find\.in\(200,422\): 2 of 39660 failed/);
    assert.doesNotMatch(text, /✗ extratos/, 'only failing checks are listed');
    assert.match(text, /http_req_duration \(ms\): min 0\.31, avg 1\.20, p50 0\.90, p75 1\.10, p95 2\.50, p99 4\.75, max 30\.10/);
    assert.match(text, /http_reqs: 61503 \(250\.0\/s\); iterations: 61385; dropped arrivals \(dropped_iterations\): 3; KO \(gatling_ko\): 2/);
    assert.match(text, /✗ FAILED checks: rate==1\.0/);
    assert.match(text, /✓ sla_ok_abaixo_250ms: rate>=0\.98/);
  });

  test('handleSummary writes k6-summary.json/k6-summary.txt/payout.json to K6_OUT_DIR (or timestamped files) and prints the payout', () => {
    const data = summary(59965, 1538, 2, 1);
    const withDir = loadScript({ K6_OUT_DIR: 'reports/run1/' }).mod.handleSummary(data);
    assert.deepEqual(Object.keys(withDir).sort(), ['reports/run1/k6-summary.json', 'reports/run1/k6-summary.txt', 'reports/run1/payout.json', 'stdout']);
    assert.deepEqual(JSON.parse(withDir['reports/run1/k6-summary.json']), data);
    assert.equal(JSON.parse(withDir['reports/run1/payout.json']).valorAReceber, 97090.97);
    assert.equal(withDir.stdout, withDir['reports/run1/k6-summary.txt'], 'the terminal and the file get the same text');
    for (const text of [withDir.stdout, withDir['reports/run1/k6-summary.txt']]) {
      assert.match(text, /multa SLA \(> 249ms\): USD 500\.00/);
      assert.match(text, /803\.01 × 3/);
      assert.match(text, /valor a receber: USD 97090\.97/);
      assert.match(text, /debitos\s+1\.00\s+1\.50\s+2\.00\s+3\.00\s+40\.00\s+39660/);
    }
    const noDir = loadScript().mod.handleSummary(data);
    const files = Object.keys(noDir).filter((k) => k !== 'stdout');
    assert.equal(files.length, 3);
    for (const f of files) assert.match(f, /^k6-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z-(k6-summary\.json|k6-summary\.txt|payout\.json)$/);
  });
});
