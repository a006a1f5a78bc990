// loadtest/official/rinha.k6.js under a real k6, through `npm run k6 -- --quick` (7,818 requests,
// about 70 s) against a stack of its own: the run passes with no network needed, and lands in the
// reports as a Node run would (summary, report, index entry), with the same audit. Skipped, naming
// the script, where there is no k6 on PATH (CI has none; the static checks are test/k6.test.ts).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { k6Version } from '../../loadtest/official/k6-test';
import type { RunSummary } from '../../loadtest/lib/summary';
import { REPO, useStack } from '../helpers';

const version = k6Version();
const skip = version === undefined ? "no 'k6' on PATH: loadtest/official/rinha.k6.js is not run under k6 here (install k6 to run it)" : false;

describe('loadtest/official/rinha.k6.js under k6 (npm run k6 -- --quick)', { skip }, () => {
  const stack = useStack('k6');

  it('passes the quick profile, audited, and its report and index entry are a Node run\'s with tool k6', { timeout: 240_000 }, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'k6-e2e-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, CREBITOS_HOME: stack.home, HTTP_PORT: String(stack.httpPort), PG_PORT: String(stack.pgPort) };
      delete env.NODE_OPTIONS;
      const r = spawnSync(process.execPath, [path.join(REPO, 'dist', 'loadtest', 'official', 'k6-test.js'), '--quick', '--out', out], { cwd: REPO, env, encoding: 'utf8', timeout: 230_000 });
      const output = `${r.stdout}${r.stderr}`;
      assert.equal(r.status, 0, output);
      assert.match(output, /█ k6 summary/, 'the script\'s own text summary');
      assert.match(output, /RESULT: PASS \(quick profile, 7,818 requests, 0 KO/);

      const [dir] = fs.readdirSync(out).filter((d) => fs.statSync(path.join(out, d)).isDirectory());
      const runDir = path.join(out, dir);
      for (const f of ['samples.json', 'k6-summary.json', 'k6-summary.txt', 'payout.json', 'k6-run.json', 'summary.json', 'report.html']) assert.ok(fs.existsSync(path.join(runDir, f)), f);
      const s = JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as RunSummary;
      assert.equal(s.tool, 'k6');
      assert.deepEqual([s.total.count, s.total.ko, s.payout.consistencyFailures, s.k6?.droppedIterations], [7818, 0, 0, 0]);
      assert.deepEqual(s.groups['validações'].count, 123);
      assert.equal(s.audit.status, 'passed', JSON.stringify(s.audit));
      assert.equal(s.audit.ledgerEntries, s.audit.postsOk, 'every POST answered 200 is in the ledger once');
      assert.ok((s.lag.generatorCpuSeconds ?? 0) > 1, `k6's CPU measured: ${s.lag.generatorCpuSeconds}`);
      assert.ok(s.usage?.some((u) => u.name === 'db' && u.cpuSeconds > 0), 'the stack\'s resource table');
      assert.deepEqual(s.phases.map((p) => p.requests), [25, 1, 25, 1, 70, 1, 7695]);
      assert.match(fs.readFileSync(path.join(runDir, 'report.html'), 'utf8'), /quick profile, k6<\/h1>/);
      assert.match(fs.readFileSync(path.join(out, 'index.html'), 'utf8'), /<b>latest run<\/b>: .*, k6, quick profile: <span class="ok">PASS<\/span>, 7,818 requests, 0 KO/);

      // npm run report -- DIR renders the same run again from its samples and record.
      fs.rmSync(path.join(runDir, 'summary.json'));
      const again = spawnSync(process.execPath, [path.join(REPO, 'dist', 'loadtest', 'lib', 'report.js'), runDir], { cwd: REPO, env, encoding: 'utf8', timeout: 60_000 });
      assert.equal(again.status, 0, `${again.stdout}${again.stderr}`);
      const s2 = JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as RunSummary;
      assert.deepEqual([s2.total, s2.audit, s2.lag.generatorCpuSeconds], [s.total, s.audit, s.lag.generatorCpuSeconds]);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
