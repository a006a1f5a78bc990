// The hostile corpus is well formed, and the checks of the hostile runner can fail (no stack: the
// runs against a stack are in test/integration/hostile.test.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadCorpus, targetsOf, unexplainedChange } from '../loadtest/hostile/hostile';
import { parseResponses } from '../loadtest/lib/http';

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
