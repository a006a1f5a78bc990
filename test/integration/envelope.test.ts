// The native stack inside the envelope: cgroups with the compose file's numbers, and a component
// over its memory limit reported by name (root and cgroup v1; the compose file's own checks are in
// test/envelope.test.ts).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { type CgroupPaths } from '../../stack/cgroups';
import { COMPONENTS, readEnvelope } from '../../stack/envelope';
import { REPO, TestStack } from '../helpers';

const COMPOSE = path.join(REPO, 'docker-compose.yml');
const cgroupsWritable = process.getuid?.() === 0 && fs.existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us');

describe('the native stack inside the envelope', { skip: cgroupsWritable ? false : 'needs root and cgroup v1' }, () => {
  const stack = new TestStack('envelope');
  before(() => stack.start(), { timeout: 150_000 });
  after(() => stack.stop(), { timeout: 90_000 });

  test('prints the envelope it applied', () => {
    // The expected numbers come from the compose file itself (its only home), read here with the
    // yaml package rather than stack/envelope.ts's parser, so a stack that misreads it would fail.
    const services = (parse(fs.readFileSync(COMPOSE, 'utf8'), { merge: true }) as { services: unknown }).services as Record<string, { deploy: { resources: { limits: { cpus: string; memory: string } } } }>;
    const cpus = (name: string): number => Number(services[name].deploy.resources.limits.cpus);
    const mb = (name: string): number => parseInt(services[name].deploy.resources.limits.memory, 10);
    const part = (name: string): string => `${name} ${cpus(name)} CPU / ${mb(name)} MB`;
    const sum = (f: (name: string) => number): number => Number(COMPONENTS.reduce((t, name) => t + f(name), 0).toFixed(3));
    const line = `envelope from docker-compose.yml: ${COMPONENTS.map(part).join(', ')}; total ${sum(cpus)} CPU / ${sum(mb)} MB`;
    assert.ok(stack.log.includes(line), `expected "${line}" in:\n${stack.log}`);
  });

  test("each component's processes sit in groups with the compose file's numbers", () => {
    const state = stack.refresh();
    const envelope = readEnvelope(COMPOSE);
    assert.ok(state.cgroups, 'the state records the cgroups');
    for (const name of COMPONENTS) {
      const group: CgroupPaths = state.cgroups![name];
      const read = (dir: string, file: string): string => fs.readFileSync(path.join(dir, file), 'utf8').trim();
      assert.equal(Number(read(group.cpu, 'cpu.cfs_quota_us')) / Number(read(group.cpu, 'cpu.cfs_period_us')), envelope[name].cpus, `${name} cpu quota`);
      assert.equal(Number(read(group.memory, 'memory.limit_in_bytes')), envelope[name].memoryBytes, `${name} memory limit`);
      // The component's main process and everything it forked (postgres backends, nginx workers).
      const pid = stack.pids[name];
      assert.ok(pid, `${name} has a pid`);
      const members = read(group.cpu, 'cgroup.procs').split('\n').map(Number);
      assert.ok(members.includes(pid), `${name} (pid ${pid}) is in ${group.cpu}`);
      const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      for (const child of children) assert.ok(members.includes(child), `${name}'s child ${child} is in its group`);
      assert.deepEqual(read(group.memory, 'cgroup.procs').split('\n').map(Number).sort(), members.sort(), `${name}: same processes in the memory group`);
    }
    const db = state.cgroups!.db;
    assert.ok(fs.readFileSync(path.join(db.cpu, 'cgroup.procs'), 'utf8').trim().split('\n').length >= 4, 'postgres backends are limited with the postmaster');
  });
});

describe('a component over its memory limit', { skip: cgroupsWritable ? false : 'needs root and cgroup v1' }, () => {
  test('is reported by name and stops the start-up', async () => {
    // The real compose file with api2 squeezed to 12 MB: node cannot even start in that.
    const doc = parse(fs.readFileSync(COMPOSE, 'utf8'), { merge: true });
    doc.services.api2.deploy.resources.limits.memory = '12MB';
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crebitos-oom-'));
    const squeezed = path.join(dir, 'compose.yml');
    fs.writeFileSync(squeezed, stringify(doc));
    const stack = new TestStack('oom', { env: { CREBITOS_COMPOSE: squeezed }, readyTimeoutMs: 60_000 });
    try {
      await assert.rejects(stack.start(), /exited before ready/);
      assert.match(stack.log, /api2 exceeded its memory limit \(12 MB\): the kernel OOM killer killed \d+ of its processes/);
      assert.match(stack.log, /api2 +peak memory [\d.]+ MB of 12 MB.*OOM kills: [1-9]/);
      assert.doesNotMatch(stack.log, /api1 exceeded/);
    } finally {
      await stack.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
