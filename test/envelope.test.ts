// The contest envelope: docker-compose.yml is valid and within 1.5 CPU / 550 MB, and the native
// stack runs each component inside the cgroup limits the compose file declares.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { BUDGET, budgetProblems, parseMemory, readComposeLimits } from '../stack/envelope';
import { REPO } from './helpers';

const COMPOSE = path.join(REPO, 'docker-compose.yml');
const FIXTURES = path.join(REPO, 'test', 'fixtures');
const MiB = 1024 * 1024;

interface ComposeService {
  image?: string;
  ports?: string[];
  network_mode?: string;
  volumes?: string[];
  environment?: Record<string, string>;
  depends_on?: unknown;
  healthcheck?: unknown;
}
const composeDoc = (): { services: Record<string, ComposeService> } => parse(fs.readFileSync(COMPOSE, 'utf8'), { merge: true });

describe('docker-compose.yml', () => {
  test('validates with docker-compose config -q', (t) => {
    const probe = spawnSync('docker-compose', ['version'], { encoding: 'utf8' });
    if (probe.error) {
      // CI installs docker-compose v1 (.ci/run); a developer machine may not have it.
      if (process.env.CI) assert.fail('docker-compose is not installed; .ci/run should have installed it');
      return t.skip('docker-compose not installed (apt-get install -y docker-compose)');
    }
    const result = spawnSync('docker-compose', ['-f', COMPOSE, 'config', '-q'], { encoding: 'utf8', cwd: REPO });
    assert.equal(result.status, 0, `docker-compose config -q failed:\n${result.stderr}`);
    // And it does reject a broken file, so the check above means something.
    const broken = path.join(os.tmpdir(), `crebitos-broken-${process.pid}.yml`);
    fs.writeFileSync(broken, fs.readFileSync(COMPOSE, 'utf8').replace('services:', 'services:\n  bad:\n    imagee: nginx\n'));
    const rejected = spawnSync('docker-compose', ['-f', broken, 'config', '-q'], { encoding: 'utf8', cwd: REPO });
    fs.rmSync(broken);
    assert.notEqual(rejected.status, 0, 'docker-compose accepted an unknown key');
  });

  test('every service declares limits and the sums fit the budget', () => {
    const limits = readComposeLimits(COMPOSE);
    assert.deepEqual(Object.keys(limits).sort(), ['api1', 'api2', 'db', 'nginx']);
    const cpus = Object.values(limits).reduce((sum, l) => sum + l.cpus, 0);
    const memoryMB = Object.values(limits).reduce((sum, l) => sum + l.memoryBytes, 0) / MiB;
    assert.ok(cpus <= BUDGET.cpus + 1e-9, `cpus add up to ${cpus}`);
    assert.ok(memoryMB <= BUDGET.memoryMB, `memory adds up to ${memoryMB} MB`);
    assert.deepEqual(budgetProblems(limits), []);
  });

  test('limits are written in MB, as the contest asks', () => {
    const raw = parse(fs.readFileSync(COMPOSE, 'utf8'), { merge: true }) as { services: Record<string, { deploy: { resources: { limits: { memory: string } } } }> };
    for (const [name, service] of Object.entries(raw.services)) {
      assert.match(String(service.deploy.resources.limits.memory), /^\d+MB$/, `${name}'s memory limit`);
    }
  });

  test('exactly two API instances, from one image, each with its own socket', () => {
    const { services } = composeDoc();
    const apiImage = services.api1.image;
    const apis = Object.entries(services).filter(([, s]) => s.image === apiImage);
    assert.deepEqual(apis.map(([name]) => name).sort(), ['api1', 'api2']);
    assert.notEqual(services.api1.environment?.SOCKET_PATH, services.api2.environment?.SOCKET_PATH);
    const conf = fs.readFileSync(path.join(REPO, 'nginx.conf'), 'utf8');
    for (const [, api] of apis) assert.ok(conf.includes(`server unix:${api.environment!.SOCKET_PATH} `), `nginx.conf proxies to ${api.environment!.SOCKET_PATH}`);
  });

  test('nginx exposes 9999 and the APIs wait for a healthy database', () => {
    const { services } = composeDoc();
    const nginx = services.nginx;
    const published = nginx.network_mode === 'host' || (nginx.ports ?? []).some((p) => /^(\d+\.\d+\.\d+\.\d+:)?9999:9999$/.test(String(p)));
    assert.ok(published, 'nginx publishes 9999 (host network or a 9999:9999 port mapping)');
    assert.match(fs.readFileSync(path.join(REPO, 'nginx.conf'), 'utf8'), /listen\s+9999\b/);
    assert.ok(services.db.healthcheck, 'db has a healthcheck');
    for (const api of ['api1', 'api2']) assert.deepEqual(services[api].depends_on, { db: { condition: 'service_healthy' } });
  });

  test('every file it mounts exists in the repository', () => {
    const { services } = composeDoc();
    const mounted = Object.values(services).flatMap((s) => (s.volumes ?? []).map(String).filter((v) => v.startsWith('./')).map((v) => v.split(':')[0]));
    assert.ok(mounted.length >= 3, `expected nginx.conf, procedures.sql and postgresql.conf to be mounted, got ${mounted.join(', ')}`);
    for (const file of mounted) assert.ok(fs.statSync(path.join(REPO, file)).isFile(), `${file} is mounted but missing`);
  });

  test('an over-budget compose file is rejected with the overage named', () => {
    const problems = budgetProblems(readComposeLimits(path.join(FIXTURES, 'over-budget.compose.yml')));
    assert.deepEqual(problems, ['cpus add up to 1.7, over the 1.5 budget by 0.2', 'memory adds up to 600 MB, over the 550 MB budget by 50 MB']);
  });

  test('a service without limits is rejected by name', () => {
    assert.throws(() => readComposeLimits(path.join(FIXTURES, 'no-limits.compose.yml')), /service cache declares no deploy\.resources\.limits/);
  });

  test('memory notation is read as Docker reads it', () => {
    assert.equal(parseMemory('100MB'), 100 * MiB);
    assert.equal(parseMemory('100m'), 100 * MiB);
    assert.equal(parseMemory('1g'), 1024 * MiB);
    assert.equal(parseMemory('512k'), 512 * 1024);
    assert.equal(parseMemory(1048576), MiB);
    assert.throws(() => parseMemory('lots'), /cannot read memory limit/);
  });
});



