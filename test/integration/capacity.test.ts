// npm run capacity end to end on real stacks (the pure parts are in test/capacity.test.ts).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { autoDbRates, type CapacitySummary } from '../../loadtest/capacity/capacity-rules';
import { REPO } from '../helpers';

describe('npm run capacity, end to end', () => {
  it('--quick --runs 1 with two tiny steps: every target measured, reports written, stacks stopped', { timeout: 120_000 }, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-e2e-'));
    const portBase = 31200;
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const r = spawnSync(
      process.execPath,
      [path.join(REPO, 'dist', 'loadtest', 'capacity', 'capacity.js'), '--quick', '--runs', '1', '--steps', '100,200', '--step-seconds', '2', '--pause-seconds', '0.5', '--out', out, '--port-base', String(portBase)],
      { cwd: REPO, env, encoding: 'utf8', timeout: 110_000 },
    );
    const output = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, output);
    // One progress line per step, then the summary.
    assert.match(output, /\[api 1\/1\] +100\/s .* (PASS|FAIL|INVALID)/);
    assert.match(output, /\[http 1\/1\] +200\/s /);
    assert.match(output, /\[db 1\/1\] +full speed +\d+ tps/);
    // Tiny steps on a shared machine: the HTTP-only baseline may pass no step (generator lag),
    // and then the fraction is explicitly not available rather than a division by zero.
    assert.match(output, /ours \/ HTTP only: +(\d|n\/a \(the baseline passed no step\))/);
    const dirs = fs.readdirSync(out).filter((d) => d.startsWith('capacity-'));
    assert.equal(dirs.length, 1);
    const s = JSON.parse(fs.readFileSync(path.join(out, dirs[0], 'capacity.json'), 'utf8')) as CapacitySummary;
    assert.equal(s.kind, 'capacity');
    for (const t of [s.api!, s.http!]) {
      assert.equal(t.runs.length, 1);
      assert.equal(t.runs[0].error, undefined);
      assert.deepEqual(t.runs[0].steps.map((x) => x.ratePerS), [100, 200]);
      for (const x of t.runs[0].steps) {
        assert.equal(x.sent, x.ratePerS * 2);
        assert.equal(x.errors, 0, JSON.stringify(x.statuses));
        assert.deepEqual(x.components.map((c) => c.name), ['db', 'api1', 'api2', 'nginx']);
        assert.ok(x.components.find((c) => c.name === 'nginx')!.cpuUtil > 0);
      }
      assert.ok([0, 100, 200].includes(t.runs[0].capacity));
    }
    const [ours, httpOnly] = [s.api!.capacity.median!, s.http!.capacity.median!];
    assert.equal(s.fractions.ofHttp, httpOnly > 0 ? Math.round((ours / httpOnly) * 1000) / 1000 : null);
    // The HTTP-only stack never touched the database; the real one did.
    const dbCpu = (t: typeof s.api) => t!.runs[0].steps[1].components.find((c) => c.name === 'db')!.cpuUtil;
    assert.ok(dbCpu(s.http) < 0.02, `http-only db CPU ${dbCpu(s.http)}`);
    assert.ok(dbCpu(s.api) > 0.02, `real db CPU ${dbCpu(s.api)}`);
    assert.ok(s.db!.runs[0].full!.tps > 300, JSON.stringify(s.db!.runs[0].full));
    assert.equal(s.db!.runs[0].full!.failed, 0);
    assert.ok(s.db!.runs[0].full!.db!.cpuUtil > 0.2, 'the database did the work');
    // --quick's automatic -R step: half the full speed just measured.
    assert.deepEqual(s.db!.runs[0].rated.map((x) => x.rate), autoDbRates(s.db!.runs[0].full!.tps, [0.5]));
    assert.ok(s.db!.runs[0].rated[0].tps > 0);
    assert.ok(fs.readFileSync(path.join(out, dirs[0], 'capacity.html'), 'utf8').includes('<svg'));
    assert.ok(fs.readFileSync(path.join(out, 'index.html'), 'utf8').includes(`${dirs[0]}/capacity.html`));
    for (const target of ['api', 'http', 'db']) {
      assert.ok(!fs.existsSync(path.join(REPO, `.stack-cap-${target}-${portBase}`, 'stack.json')), `${target} stack still running`);
    }
    fs.rmSync(out, { recursive: true });
  });
});
