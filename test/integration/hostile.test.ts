// Hostile input against a private stack: the whole corpus of
// loadtest/hostile/hostile-corpus.json through nginx and directly to api1, and a small seeded mutation fuzz
// through nginx. The full 100k fuzz is `node dist/loadtest/hostile/hostile.js fuzz`.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { loadCorpus, readStack, runHostile, runMutationFuzz, targetsOf, unexplainedChange } from '../../loadtest/hostile/hostile';
import { parseResponses } from '../../loadtest/lib/http';
import type { StackState } from '../../stack/state';
import { useStack } from '../helpers';

const stack = useStack('hostile', { httpPort: 24781, pgPort: 54781 });

/** The stack's state file: sockets, database conninfo and component pids. */
const info = (): StackState => readStack(stack.home);

test('the corpus is well formed: 200+ entries, every path has an exact expectation, differences are explained', () => {
  const corpus = loadCorpus();
  assert.ok(corpus.length >= 200, `${corpus.length} entries`);
  const names = new Set<string>();
  for (const e of corpus) {
    assert.ok(!names.has(e.name), `duplicate name ${e.name}`);
    names.add(e.name);
    assert.ok(e.encoding === 'utf8' || e.encoding === 'base64', `${e.name}: encoding`);
    for (const t of targetsOf(e)) assert.ok(Array.isArray(e.expect[t]), `${e.name}: no expectation for ${t}`);
    if (e.expect.nginx && e.expect.api && JSON.stringify(e.expect.nginx) !== JSON.stringify(e.expect.api)) assert.ok(e.why, `${e.name}: paths differ without a why`);
    if (e.valid) assert.ok(e.rows?.length || e.rowsByPath, `${e.name}: valid without rows`);
    else assert.ok(!e.rows && !e.rowsByPath, `${e.name}: rows on an invalid entry`);
  }
});

test('the checks can fail: response parsing and the books comparison', () => {
  const two = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  assert.deepEqual(parseResponses(two, true).responses.map((r) => r.status), [200, 400]);
  assert.deepEqual(parseResponses(two.subarray(0, 40), false).responses.map((r) => r.status), [200]);
  assert.deepEqual(parseResponses(Buffer.from('{"saldo":1}'), true).responses.map((r) => r.status), [0]);
  const before = { accounts: [{ id: 1, balance: 0, entries: 0 }], maxId: '0' };
  const after = { accounts: [{ id: 1, balance: 5, entries: 1 }], maxId: '1' };
  assert.equal(unexplainedChange(before, after, []).length, 2);
  assert.deepEqual(unexplainedChange(before, after, [{ account: 1, valor: 5, tipo: 'c', descricao: 'x' }]), []);
  assert.equal(unexplainedChange(before, after, [{ account: 1, valor: 5, tipo: 'd', descricao: 'x' }]).length, 1);
});

test('every hostile request gets its exact status, changes nothing unless valid, and the service stays up', { timeout: 120_000 }, async () => {
  const lines: string[] = [];
  const result = await runHostile({ stack: info(), log: (line) => lines.push(line) });
  const summary = lines.filter((l) => /^(FAIL|hostile:|audit_failures)/.test(l)).join('\n');
  assert.equal(result.entries, loadCorpus().length);
  assert.ok(result.sends > result.entries, 'both paths were exercised');
  assert.deepEqual(result.audit, [], 'audit_failures is empty');
  assert.deepEqual(
    result.failed.map((f) => `${f.name} via ${f.target}: ${f.problems.join('; ')}`),
    [],
    summary,
  );
  assert.ok(result.pass, summary);
  assert.deepEqual(stack.audit(), []);
});

test('mutation fuzz: 5,000 requests, no 5xx, no crash, every 200 in the ledger exactly once, clean audit', { timeout: 120_000 }, async () => {
  const lines: string[] = [];
  const result = await runMutationFuzz({ stack: info(), count: 5000, seed: 5, log: (line) => lines.push(line) });
  const summary = lines.join('\n');
  assert.equal(result.count, 5000);
  assert.equal(result.fiveXX, 0, summary);
  assert.equal(result.resets, 0, summary);
  assert.deepEqual(result.processProblems, [], summary);
  assert.deepEqual(result.reconcileProblems, [], summary);
  assert.deepEqual(result.audit, [], summary);
  assert.ok(result.ok > 100, `some mutated requests must still be valid and applied: ${summary}`);
  assert.equal(result.ledgerRows, result.ok, summary);
  assert.ok(result.pass, summary);
});
