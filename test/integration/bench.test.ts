// npm run bench end to end: a short experiment on real stacks (the pure parts are in test/bench.test.ts).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_BUDGET_S, runExperiment } from '../../loadtest/bench/bench';
import { findExperiment } from '../../loadtest/bench/bench-variants';

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
