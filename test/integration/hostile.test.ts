// Hostile input against a private stack: the whole corpus of
// loadtest/hostile/hostile-corpus.json through nginx and directly to api1, and a small seeded mutation fuzz
// through nginx. The full 100k fuzz is `node dist/loadtest/hostile/hostile.js fuzz`. The corpus's
// own checks and the parsing are in test/hostile.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadCorpus, readStack, runHostile, runMutationFuzz } from '../../loadtest/hostile/hostile';
import type { StackState } from '../../stack/state';
import { useStack } from '../helpers';

const stack = useStack('hostile', { httpPort: 24781, pgPort: 54781 });

/** The stack's state file: sockets, database conninfo and component pids. */
const info = (): StackState => readStack(stack.home);

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
