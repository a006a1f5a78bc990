// npm run bench (loadtest/bench/bench.ts, loadtest/bench/bench-variants.ts): variant generation from the
// repository's files, the time plan, medians and ratios (the runs on real stacks, and nginx -t of
// the generated nginx.conf files, are in test/integration/bench.test.ts).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { CONFIG_ENV, claimHome, DEFAULT_BUDGET_S, DEFAULT_WARMUP_S, estimateSeconds, formatRatio, machineCpu, markdownTable, parseBenchArgs, planSeconds, ratioTable, repoSources, summarize, variantEnv, type BenchOptions, type StepRecord } from '../loadtest/bench/bench';
import {
  DEFAULTS,
  EXPERIMENTS,
  composeWithSplit,
  currentSplit,
  directiveValue,
  findExperiment,
  nginxWithLeastConn,
  nginxWithWorkers,
  nginxWithoutKeepalive,
  proportionalSplit,
  substituteOnce,
  variantsOf,
  type Variant,
} from '../loadtest/bench/bench-variants';
import { parseComposeLimits } from '../stack/envelope';
import { REPO } from './helpers';

const sources = repoSources();

/** Lines of b that are not in a, and of a that are not in b. */
function lineDiff(a: string, b: string): { added: string[]; removed: string[] } {
  const la = a.split('\n');
  const lb = b.split('\n');
  return { added: lb.filter((l) => !la.includes(l)), removed: la.filter((l) => !lb.includes(l)) };
}

describe('nginx.conf variants', () => {
  it('substituteOnce insists on exactly one match', () => {
    assert.equal(substituteOnce('a b c', /b/, 'x', 'test'), 'a x c');
    assert.throws(() => substituteOnce('a c', /b/, 'x', 'test'), /expected exactly one match.*found 0/);
    assert.throws(() => substituteOnce('b b', /b/, 'x', 'test'), /found 2/);
  });

  it('reads a directive set once', () => {
    assert.equal(directiveValue('worker_processes 1;\nkeepalive_requests 5;\n    keepalive 64;\n', 'keepalive'), '64');
    assert.throws(() => directiveValue('keepalive 1;\nkeepalive 2;', 'keepalive'), /2 times/);
  });

  it('workers: only worker_processes changes', () => {
    const d = lineDiff(sources.nginxConf, nginxWithWorkers(sources.nginxConf, 'auto'));
    assert.equal(d.added.length, 1);
    assert.match(d.added[0], /^worker_processes auto;/);
    assert.deepEqual(d.removed.map((l) => l.replace(/\s+#.*/, '')), [`worker_processes ${directiveValue(sources.nginxConf, 'worker_processes')};`]);
  });

  it('no keep-alive: only the upstream keepalive line goes; keepalive_requests and _timeout stay', () => {
    const text = nginxWithoutKeepalive(sources.nginxConf);
    const d = lineDiff(sources.nginxConf, text);
    assert.deepEqual(d.added, []);
    assert.equal(d.removed.length, 1);
    assert.match(d.removed[0], /^\s*keepalive \d+;/);
    assert.match(text, /keepalive_requests/);
    assert.match(text, /keepalive_timeout/);
  });

  it('least_conn: one line, first in the api upstream', () => {
    const text = nginxWithLeastConn(sources.nginxConf);
    assert.deepEqual(lineDiff(sources.nginxConf, text).added, ['        least_conn;']);
    assert.match(text, /upstream api \{[^\n]*\n\s+least_conn;\n/);
    assert.throws(() => nginxWithLeastConn(text), /already/);
  });
});

describe('resource splits', () => {
  it('the current split is the compose file’s', () => {
    const split = currentSplit(sources.compose, sources.composePath);
    const limits = parseComposeLimits(sources.compose, sources.composePath);
    for (const name of ['db', 'api1', 'api2', 'nginx'] as const) assert.equal(split[name], limits[name].cpus);
  });

  it('a generated compose file changes CPUs only, keeps the total, and gives api1 and api2 their own', () => {
    const split = { db: 0.6, api1: 0.3, api2: 0.35, nginx: 0.25 };
    const text = composeWithSplit(sources.compose, sources.composePath, split, 'test');
    const before = parseComposeLimits(sources.compose, sources.composePath);
    const after = parseComposeLimits(text, 'generated.yml');
    for (const name of Object.keys(split) as (keyof typeof split)[]) {
      assert.equal(after[name].cpus, split[name]);
      assert.equal(after[name].memoryBytes, before[name].memoryBytes);
    }
    assert.throws(() => composeWithSplit(sources.compose, sources.composePath, { ...split, db: 0.7 }, 'test'), /totals 1\.6/);
  });

  it('proportional: in proportion to CPU per request, on a 0.05 grid, equal API shares, the same total', () => {
    const s = proportionalSplit({ db: 0.43, api: 0.51, nginx: 0.21 }, 1.5);
    // 1.5 x 0.51 / 1.15 = 0.665 for the APIs, 0.274 for nginx: 0.65 and 0.25, the rest for the database.
    assert.deepEqual(s, { db: 0.6, api1: 0.325, api2: 0.325, nginx: 0.25 });
    const t = proportionalSplit({ db: 1, api: 1, nginx: 1 }, 1.5);
    assert.equal(Number((t.db + t.api1 + t.api2 + t.nginx).toFixed(6)), 1.5);
    assert.equal(t.api1, t.api2);
    assert.throws(() => proportionalSplit({ db: 0, api: 0, nginx: 0 }), /no CPU/);
  });

  it('the split experiment: the compose file first, the first submission’s split, no variant equal to the compose file', () => {
    const variants = variantsOf(findExperiment('split')!, sources);
    assert.equal(variants[0].name, 'current');
    assert.ok(variants.some((v) => v.name === 'first-split'));
    const now = currentSplit(sources.compose, sources.composePath);
    for (const v of variants.slice(1)) {
      const file = v.files.find((f) => f.env === 'CREBITOS_COMPOSE')!;
      const split = currentSplit(file.text, file.name);
      assert.ok((['db', 'api1', 'api2', 'nginx'] as const).some((c) => split[c] !== now[c]), `${v.name} differs from the compose file`);
    }
  });
});

describe('experiments', () => {
  it('each has one baseline, first, with nothing changed, and variants that change only known settings', () => {
    assert.ok(EXPERIMENTS.length >= 10);
    for (const e of EXPERIMENTS) {
      const variants = variantsOf(e, sources);
      assert.ok(variants[0].baseline, e.name);
      assert.deepEqual(variants[0].env, {}, e.name);
      assert.equal(variants.filter((v) => v.baseline).length, 1, e.name);
      assert.equal(new Set(variants.map((v) => v.name)).size, variants.length, e.name);
      for (const v of variants.slice(1)) {
        assert.ok(Object.keys(v.env).length > 0, `${e.name}/${v.name} changes something`);
        for (const key of Object.keys(v.env)) assert.ok(CONFIG_ENV.includes(key), `${e.name}/${v.name}: ${key} is cleared for the baseline`);
        for (const f of v.files) assert.ok(v.env[f.env], `${e.name}/${v.name}: ${f.name} is passed`);
        for (const [key, value] of Object.entries(v.env)) {
          if (['CREBITOS_SQL', 'PG_SETTINGS'].includes(key)) assert.ok(fs.existsSync(path.join(REPO, value)), `${value} exists`);
        }
      }
    }
  });

  it('pool compares 1, 2, 4 and 6 with server.ts’s default', () => {
    const variants = variantsOf(findExperiment('pool')!, { ...sources, defaultPoolSize: 3 });
    assert.deepEqual(variants.map((v) => v.name), ['pool=3', 'pool=1', 'pool=2', 'pool=4', 'pool=6']);
    assert.deepEqual(variants[1].env, { POOL_SIZE: '1' });
    assert.deepEqual(variantsOf(findExperiment('pool')!, { ...sources, defaultPoolSize: 5 }).map((v) => v.name), ['pool=5', 'pool=1', 'pool=2', 'pool=3', 'pool=4', 'pool=6']);
  });

  it('a variant equal to the configuration is the baseline, never a second row', () => {
    const one = variantsOf(findExperiment('nginx-workers')!, { ...sources, nginxConf: nginxWithWorkers(sources.nginxConf, '2') });
    assert.deepEqual(one.map((v) => v.name), ['workers=2', 'workers=1', 'workers=auto']);
    assert.equal(one[0].files.length, 0);
  });

  it('the default run of every experiment fits the budget', () => {
    for (const e of EXPERIMENTS) {
      const n = variantsOf(e, sources).length;
      const seconds = planSeconds(n, DEFAULTS.rounds, DEFAULTS.rates.length, DEFAULT_WARMUP_S);
      const total = estimateSeconds(n, DEFAULTS.rounds, DEFAULTS.rates.length, seconds, DEFAULT_WARMUP_S);
      assert.ok(total <= DEFAULT_BUDGET_S, `${e.name}: ${n} variants, ${seconds} s steps, ${total} s`);
      assert.ok(seconds >= 3, e.name);
    }
    assert.equal(planSeconds(2, 3, 2, 1), 15);
    assert.equal(planSeconds(4, 3, 2, 1), 5);
    assert.equal(planSeconds(5, 3, 2, 1), 3);
    assert.equal(planSeconds(20, 3, 2, 1), 3, 'never below the shortest step');
  });

  it('a variant’s environment: configuration variables cleared, paths resolved, generated files from the run directory', () => {
    const v: Variant = { name: 'x', description: '', baseline: false, env: { CREBITOS_SQL: 'loadtest/bench/variants/lock-advisory.sql', CREBITOS_NGINX_CONF: 'n.conf', POOL_SIZE: '2' }, files: [{ env: 'CREBITOS_NGINX_CONF', name: 'n.conf', text: '' }] };
    const env = variantEnv(v, '/run/dir', { PATH: '/bin', POOL_SIZE: '9', UV_THREADPOOL_SIZE: '1', CREBITOS_TRANSPORT: 'tcp' });
    assert.deepEqual(env, { PATH: '/bin', POOL_SIZE: '2', CREBITOS_SQL: path.join(REPO, 'loadtest/bench/variants/lock-advisory.sql'), CREBITOS_NGINX_CONF: '/run/dir/n.conf' });
  });

  it('arguments', () => {
    assert.equal(parseBenchArgs(['--list']), 'list');
    const all = parseBenchArgs(['all', '--rates', '500,1500', '--rounds', '5']) as BenchOptions;
    assert.equal(all.experiments.length, EXPERIMENTS.length);
    assert.deepEqual(all.rates, [500, 1500]);
    assert.equal(all.rounds, 5);
    assert.equal(all.seconds, undefined);
    const one = parseBenchArgs(['locking', '--seconds', '3', '--warmup', '0']) as BenchOptions;
    assert.deepEqual(one.experiments.map((e) => e.name), ['locking']);
    assert.equal(one.seconds, 3);
    assert.equal(one.warmupS, 0);
    assert.throws(() => parseBenchArgs(['nope']), /unknown experiment/);
    assert.throws(() => parseBenchArgs([]), /name an experiment/);
    assert.throws(() => parseBenchArgs(['pool', '--rounds', '0']), /--rounds/);
  });
});

describe('one bench per stack home', () => {
  it('a home claimed by another live process is skipped, or refused when the port was given', () => {
    const base = 32370;
    const homes = [0, 1].map((i) => path.join(REPO, `.stack-bench-${base + i}`));
    try {
      fs.mkdirSync(homes[0], { recursive: true });
      // The test runner's parent stands in for another bench: alive, and not us.
      fs.writeFileSync(path.join(homes[0], 'bench.pid'), String(process.ppid));
      const claim = claimHome(base, false);
      assert.equal(claim.portBase, base + 1);
      assert.equal(claim.home, homes[1]);
      assert.equal(fs.readFileSync(path.join(homes[1], 'bench.pid'), 'utf8'), String(process.pid));
      assert.throws(() => claimHome(base, true), /another npm run bench/);
      claim.release();
      assert.ok(!fs.existsSync(path.join(homes[1], 'bench.pid')));
      // A claim left by a process that is gone is taken over.
      fs.writeFileSync(path.join(homes[0], 'bench.pid'), '2147483646');
      const again = claimHome(base, true);
      assert.equal(again.portBase, base);
      again.release();
    } finally {
      for (const home of homes) fs.rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('machine CPU', () => {
  it('busy and total seconds from /proc/stat', () => {
    const stat = 'cpu  100 20 30 400 50 6 4 0 0 0\ncpu0 50 10 15 200 25 3 2 0 0 0\n';
    assert.deepEqual(machineCpu(stat), { busy: 1.6, total: 6.1 });
    assert.equal(machineCpu('nothing'), undefined);
  });
});

describe('medians and ratios', () => {
  const step = (variant: string, round: number, p99: number, extra: Partial<StepRecord> = {}): StepRecord => ({
    round,
    variant,
    rate: 1000,
    p50: p99 / 4,
    p99,
    max: p99 * 3,
    errors: 0,
    statuses: { '200': 1000 },
    achievedPerS: 1000,
    lagValid: true,
    lagReasons: [],
    lagP99Ms: 1,
    generatorCpuUtil: 0.3,
    cpuMsPerRequest: { db: 0.4, api: 0.5, nginx: 0.2, total: 1.1 },
    cpuUtil: {},
    otherCores: 0.1,
    ...extra,
  });
  const variants = [
    { name: 'base', baseline: true },
    { name: 'b', baseline: false },
  ];

  it('medians over rounds, ratios against the baseline at the same rate', () => {
    const rows = summarize([step('base', 1, 4), step('base', 2, 2), step('base', 3, 3), step('b', 1, 6), step('b', 2, 9), step('b', 3, 3)], variants, [1000]);
    const [base, b] = rows;
    assert.deepEqual([base.values.p99.median, base.values.p99.min, base.values.p99.max], [3, 2, 4]);
    assert.equal(b.values.p99.median, 6);
    assert.equal(b.ratio.p99, 2);
    assert.equal(base.ratio.p99, 1);
    assert.equal(b.ratio.cpuTotal, 1);
  });

  it('steps with an invalid generator lag are flagged and left out while a valid one remains', () => {
    const rows = summarize([step('base', 1, 3), step('b', 1, 100, { lagValid: false }), step('b', 2, 6), step('b', 3, 12, { lagValid: false })], variants, [1000]);
    assert.equal(rows[1].values.p99.median, 6);
    assert.deepEqual([rows[1].valid, rows[1].steps, rows[1].allInvalid], [1, 3, false]);
    const none = summarize([step('base', 1, 3), step('b', 1, 8, { lagValid: false }), step('b', 2, 10, { lagValid: false })], variants, [1000]);
    assert.equal(none[1].values.p99.median, 9);
    assert.equal(none[1].allInvalid, true);
    assert.match(ratioTable(none)[2][2], /0\/2 !!/);
  });

  it('a baseline of zero errors gives the change instead of a ratio', () => {
    const rows = summarize([step('base', 1, 3), step('b', 1, 3, { errors: 12 })], variants, [1000]);
    assert.equal(rows[1].ratio.errors, null);
    assert.equal(formatRatio(rows[1], rows[0], 'errors'), '0→12');
    assert.equal(formatRatio(rows[0], rows[0], 'errors'), '=');
    const table = ratioTable(rows);
    assert.deepEqual(table[0].slice(0, 4), ['rate', 'variant', 'n', 'p50 ms']);
    assert.equal(table[1][1], 'base (base)');
    assert.equal(table[2][table[0].indexOf('p99 ms')], '×1.00');
    assert.match(markdownTable(table), /^\| rate \| variant \|/);
  });

  it('a variant with no steps (its stack failed) has no ratio', () => {
    const rows = summarize([step('base', 1, 3)], variants, [1000]);
    assert.equal(rows[1].steps, 0);
    assert.equal(rows[1].ratio.p99, null);
    assert.equal(formatRatio(rows[1], rows[0], 'p99'), '–');
  });
});

