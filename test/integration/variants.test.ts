// The configurations npm run bench compares must all be correct, or their ratios mean nothing.
// Each variant that changes what the service computes (the SQL overlays of loadtest/bench/variants/)
// or how the stack is wired (CREBITOS_TRANSPORT=tcp) runs on its own
// fresh stack, one after another:
//  - the same sequence of requests as the repository's configuration, with the same statuses
//    and the same bodies byte for byte (timestamps masked): limits, boundaries, overflow,
//    unknown clients, escapes, the last-10 window;
//  - concurrent debits on one account through both instances: exactly as many succeed as the
//    limit allows, each saw a different balance, and the books balance (audit_failures).
// Any of these configurations can also run the whole integration suite, e.g.
//   CREBITOS_SQL=loadtest/bench/variants/lock-advisory.sql node --test dist/test/integration/integration.test.js

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { LIMITS, TestStack, range } from '../helpers';

interface Exchange {
  request: string;
  status: number;
  body: string;
}

/** Timestamps differ from run to run; everything else must not. */
const maskTimes = (body: string): string => body.replace(/"(data_extrato|realizada_em)" : "[^"]*"/g, '"$1" : "T"');

/** A deterministic sequence on a fresh database; the answers, in order. */
async function sequence(stack: TestStack): Promise<Exchange[]> {
  const out: Exchange[] = [];
  const send = async (method: 'GET' | 'POST', urlPath: string, body?: string): Promise<void> => {
    const res = await stack.request(method, urlPath, body);
    out.push({ request: `${method} ${urlPath} ${body ?? ''}`, status: res.status, body: maskTimes(res.text) });
  };
  const post = (id: number, valor: number, tipo: string, descricao: string): Promise<void> =>
    send('POST', `/clientes/${id}/transacoes`, JSON.stringify({ valor, tipo, descricao }));
  for (const id of [1, 2, 3, 4, 5]) await send('GET', `/clientes/${id}/extrato`);
  // Client 1: escapes and non-ASCII in descricao, then down to exactly -limite, then one more.
  await post(1, 1000, 'c', 'a"b\\é\u0001/');
  await post(1, 500, 'd', 'x/y');
  await post(1, 100500, 'd', 'limite');
  await post(1, 1, 'd', 'um a mais');
  // Client 2: a refused debit changes nothing; the limit itself is allowed.
  await post(2, 80001, 'd', 'demais');
  await post(2, 80000, 'd', 'tudo');
  await post(2, 1, 'c', 'volta');
  // Client 4: a credit that fills the int4 balance, then one that would overflow it.
  await post(4, 2147483647, 'c', 'cheio');
  await post(4, 1, 'c', 'estouro');
  // Client 3: more than ten entries, so the statement shows only the newest ten.
  for (const i of range(12)) await post(3, 1 + i, i % 3 === 0 ? 'd' : 'c', `🎉 ${i}`);
  // Unknown client, and bodies refused before the database.
  await post(6, 1, 'c', 'ninguem');
  await send('GET', '/clientes/6/extrato');
  await send('POST', '/clientes/1/transacoes', '{"valor": 1.5, "tipo": "c", "descricao": "x"}');
  await send('POST', '/clientes/1/transacoes', '{"valor": 1,');
  for (const id of [1, 2, 3, 4, 5]) await send('GET', `/clientes/${id}/extrato`);
  return out;
}

/**
 * 100 debits of 6000 at once on client 5 (limit 500000, balance 0), on new connections so both
 * instances serve them, with statements in between: 83 fit.
 */
async function concurrentDebits(stack: TestStack): Promise<void> {
  const limit = LIMITS[5];
  const valor = 6000;
  const [debits, statements] = await Promise.all([
    Promise.all(range(100).map((i) => stack.request('POST', '/clientes/5/transacoes', { valor, tipo: 'd', descricao: `c${i}` }, { agent: false }))),
    Promise.all(range(20).map(() => stack.request('GET', '/clientes/5/extrato', undefined, { agent: false }))),
  ]);
  const fit = Math.floor(limit / valor);
  const ok = debits.filter((r) => r.status === 200);
  assert.equal(ok.length, fit, `statuses: ${JSON.stringify(debits.map((r) => r.status))}`);
  assert.equal(debits.filter((r) => r.status === 422).length, debits.length - fit);
  // Serialised: every acknowledged debit saw a different balance, one step below the last.
  const saldos = ok.map((r) => r.json.saldo as number).sort((a, b) => b - a);
  assert.deepEqual(saldos, range(fit).map((k) => -valor * (k + 1)));
  for (const s of statements) {
    assert.equal(s.status, 200, s.text);
    assert.ok(s.json.saldo.total >= -limit && s.json.saldo.total <= 0, s.text);
    assert.ok(s.json.ultimas_transacoes.length <= 10);
  }
  // ledger_audit's balance is accounts.balance in the repository and the newest entry's in
  // balance-in-ledger.sql, which leaves accounts.balance at 0.
  assert.deepEqual(stack.psql('SELECT balance, entries FROM ledger_audit WHERE id = 5'), [[String(-valor * fit), String(fit)]]);
  assert.deepEqual(stack.audit(), []);
}

const apiLog = (stack: TestStack): string => fs.readFileSync(path.join(stack.home, 'logs', 'api1.log'), 'utf8');

const VARIANTS: { name: string; env: Record<string, string>; check?: (stack: TestStack) => void }[] = [
  { name: 'lock-for-update', env: { CREBITOS_SQL: 'loadtest/bench/variants/lock-for-update.sql' } },
  { name: 'lock-advisory', env: { CREBITOS_SQL: 'loadtest/bench/variants/lock-advisory.sql' } },
  {
    name: 'balance-in-ledger',
    env: { CREBITOS_SQL: 'loadtest/bench/variants/balance-in-ledger.sql' },
    check: (stack) => {
      // The overlay really was applied: the ledger stores the balance after each entry.
      assert.deepEqual(stack.psql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'ledger'::regclass AND attname = 'balance'"), [['integer']]);
    },
  },
  {
    name: 'tcp',
    env: { CREBITOS_TRANSPORT: 'tcp' },
    check: (stack) => {
      // Both hops really are TCP: the APIs' sessions come from 127.0.0.1, nginx proxies to ports.
      const sessions = stack.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND client_addr = '127.0.0.1'");
      assert.ok(Number(sessions[0][0]) >= 2, `TCP sessions: ${sessions[0][0]}`);
      assert.match(apiLog(stack), /listening on 127\.0\.0\.1:\d+/);
      assert.match(fs.readFileSync(path.join(stack.home, 'nginx', 'nginx.conf'), 'utf8'), /server 127\.0\.0\.1:\d+/);
    },
  },
];

/** Variables that would change the stack under test, whatever the caller's environment holds. */
const CLEAR = { CREBITOS_SQL: '', CREBITOS_TRANSPORT: '', CREBITOS_NGINX_CONF: '', POOL_SIZE: '' };

async function withStack<T>(name: string, env: Record<string, string>, fn: (stack: TestStack) => Promise<T>): Promise<T> {
  const stack = new TestStack(`variant-${name}`, { env: { ...CLEAR, ...env } });
  try {
    await stack.start();
    return await fn(stack);
  } finally {
    await stack.stop();
  }
}

describe('bench variants give the same answers as the repository configuration', { timeout: 300_000 }, () => {
  let expected: Exchange[] | undefined;

  it('the repository configuration: the reference answers, and concurrent debits', async () => {
    expected = await withStack('base', {}, async (stack) => {
      const answers = await sequence(stack);
      await concurrentDebits(stack);
      return answers;
    });
    // The sequence exercises what it claims to.
    const statuses = expected.map((e) => e.status);
    for (const status of [200, 400, 404, 422]) assert.ok(statuses.includes(status), `the sequence has a ${status}`);
    const last3 = JSON.parse(expected.filter((e) => e.request.startsWith('GET /clientes/3/')).at(-1)!.body);
    assert.equal(last3.ultimas_transacoes.length, 10);
  });

  for (const v of VARIANTS) {
    it(`${v.name}: same statuses and bodies, concurrent debits exact`, async () => {
      assert.ok(expected, 'the reference answers were recorded');
      await withStack(v.name, v.env, async (stack) => {
        v.check?.(stack);
        const answers = await sequence(stack);
        for (let i = 0; i < expected!.length; i++) assert.deepEqual(answers[i], expected![i], `request ${i}: ${expected![i].request}`);
        await concurrentDebits(stack);
      });
    });
  }
});
