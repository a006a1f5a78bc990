// npm run bench with nginx and real stacks: every generated nginx.conf through nginx -t, and a
// short experiment (the pure parts are in test/bench.test.ts).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { DEFAULT_BUDGET_S, repoSources, runExperiment } from '../../loadtest/bench/bench';
import { EXPERIMENTS, findExperiment, variantsOf } from '../../loadtest/bench/bench-variants';
import { nativeNginxConf } from '../../stack/nginx-config';

describe('a short experiment on real stacks', () => {
  it('balance: two variants, one round, a few seconds each; JSON and markdown written', { timeout: 120_000 }, async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-test-'));
    try {
      const lines: string[] = [];
      const { report, json, markdown } = await runExperiment(
        findExperiment('balance')!,
        { experiments: [], rates: [300], seconds: 2, rounds: 1, warmupS: 0.5, out, seed: 7, portBase: 32290, budgetS: DEFAULT_BUDGET_S },
        (line) => lines.push(line),
      );
      assert.deepEqual(report.failures, []);
      assert.deepEqual(report.variants.map((v) => v.name), ['current', 'least-conn']);
      assert.equal(report.steps.length, 2);
      for (const s of report.steps) {
        assert.equal(s.errors, 0, JSON.stringify(s.statuses));
        assert.ok(s.cpuMsPerRequest && s.cpuMsPerRequest.total > 0, 'CPU per request measured');
      }
      assert.equal(report.summary.length, 2);
      assert.equal(report.summary[0].ratio.p99, 1);
      assert.ok(report.summary[1].ratio.cpuTotal !== null);
      assert.deepEqual(JSON.parse(fs.readFileSync(json, 'utf8')).summary, JSON.parse(JSON.stringify(report.summary)));
      assert.match(fs.readFileSync(markdown, 'utf8'), /## Ratios to the baseline/);
      // The generated nginx.conf the variant ran with is kept next to the report.
      assert.ok(fs.existsSync(path.join(path.dirname(json), path.basename(json, '.json'), 'nginx-least-conn.conf')));
      assert.ok(lines.some((l) => /least-conn\s+300\/s/.test(l)), lines.join('\n'));
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('nginx.conf variants', () => {
  const sources = repoSources();
  it('every generated nginx.conf passes nginx -t once adapted by the native stack', { skip: !fs.existsSync('/usr/sbin/nginx') && 'nginx is not installed (apt-get install -y nginx)' }, () => {
    const generated = EXPERIMENTS.flatMap((e) => variantsOf(e, sources).flatMap((v) => v.files.filter((f) => f.env === 'CREBITOS_NGINX_CONF')));
    assert.ok(generated.length >= 4, `${generated.length} nginx variants`);
    const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-'));
    try {
      for (const file of generated) {
        const conf = path.join(prefix, file.name);
        fs.writeFileSync(conf, nativeNginxConf(file.text, { socketDir: prefix, httpPort: 9999 }, prefix));
        const r = spawnSync('/usr/sbin/nginx', ['-t', '-q', '-p', prefix, '-c', conf, '-e', path.join(prefix, 'error.log'), '-g', `pid ${path.join(prefix, 'nginx.pid')};`], { encoding: 'utf8' });
        assert.equal(r.status, 0, `${file.name}: ${r.stderr}`);
      }
    } finally {
      fs.rmSync(prefix, { recursive: true, force: true });
    }
  });
});
