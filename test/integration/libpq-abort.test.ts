// The libuv abort inside pg-native's addon (loadtest/chaos/libpq-abort-repro.ts):
// ending a connected client lets the addon's Connection, whose uv_poll_t libuv is still closing,
// be garbage collected. The repro forces the GC and the reuse of the freed memory at that moment,
// in child processes, against this stack's PostgreSQL.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SEQUENCES, runSequence } from '../../loadtest/chaos/libpq-abort-repro';
import { useStack } from '../helpers';

const stack = useStack('libpq-abort');

test('the repro still aborts plain pg-native (so the next test can fail): connect, query, end, then a GC before the close phase', () => {
  // If this starts passing, the addon was fixed upstream: keepUntilClosed in server.ts may go.
  const r = runSequence(stack.state.database, 'raw', 'connect-query-end');
  assert.equal(r.signal, 'SIGABRT', `raw pg-native: ${r.signal ?? `exit ${r.status}`}\n${r.stderr}`);
  assert.match(r.assertion ?? '', /uv__finish_close|UV_HANDLE_CLOSING/);
});

for (const [name, s] of Object.entries(SEQUENCES)) {
  test(`server.ts's database client survives ${name}: ${s.what}`, () => {
    const r = runSequence(stack.state.database, 'server', name);
    assert.ok(r.survived, `${r.signal ?? `exit ${r.status}`} ${r.assertion ?? ''}\n${r.stderr}`);
  });
}
