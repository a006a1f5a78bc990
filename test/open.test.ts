// The open-model generator (loadtest/open.ts): its pure parts (schedule, mix, request bytes,
// response framing), its outcomes against small misbehaving servers, and a short step against a
// real stack whose ledger must hold exactly the transactions the step saw acknowledged.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { arrivalCount, arrivalOffsetMs, measuredStep, mixSequence, prepareRequests, runStep, type StepResult } from '../loadtest/lib/open-model';
import { BODY_CHUNKED, BODY_UNTIL_CLOSE, formatRequest, isResponseComplete, parseResponseHead } from '../loadtest/lib/http';
import { kindOf, medianOf, percentiles } from '../loadtest/bench/hops';
import { seededRng, OFFICIAL_MIX, isOkStatus } from '../loadtest/lib/official-simulation';
import { LAG_LIMITS } from '../loadtest/lib/stats';
import type { StackState } from '../stack/state';
import { REPO, useStack } from './helpers';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('schedule and mix', () => {
  it('arrivals are the rate times the duration, evenly spaced', () => {
    assert.equal(arrivalCount(340, 20), 6800);
    assert.equal(arrivalCount(2500, 0.5), 1250);
    assert.equal(arrivalCount(0, 10), 0);
    assert.equal(arrivalOffsetMs(0, 500), 0);
    assert.equal(arrivalOffsetMs(1, 500), 2);
    assert.equal(arrivalOffsetMs(1000, 500), 2000);
  });

  it('a second of the official mix is exactly 220 debits, 110 credits and 10 statements', () => {
    const seq = mixSequence(OFFICIAL_MIX, 340);
    const counts = [0, 0, 0];
    for (const k of seq) counts[k]++;
    assert.deepEqual(counts, [220, 110, 10]);
  });

  it('every prefix of the sequence stays within one request of the mix', () => {
    const seq = mixSequence(OFFICIAL_MIX, 3400);
    const counts = [0, 0, 0];
    const weights = [220, 110, 10];
    for (let i = 0; i < seq.length; i++) {
      counts[seq[i]]++;
      for (let k = 0; k < 3; k++) assert.ok(Math.abs(counts[k] - ((i + 1) * weights[k]) / 340) < 1.0001, `prefix ${i + 1}, kind ${k}: ${counts[k]}`);
    }
  });

  it('other mixes, and invalid ones refused', () => {
    assert.deepEqual([...mixSequence({ debits: 0, credits: 1, statements: 0 }, 4)], [1, 1, 1, 1]);
    assert.deepEqual([...mixSequence({ debits: 1, credits: 1, statements: 0 }, 4)].sort(), [0, 0, 1, 1]);
    assert.throws(() => mixSequence({ debits: 0, credits: 0, statements: 0 }, 1), /invalid mix/);
    assert.throws(() => mixSequence({ debits: -1, credits: 1, statements: 0 }, 1), /invalid mix/);
  });
});

describe('request bytes', () => {
  it('a POST carries its exact Content-Length, the official User-Agent and Connection: close', () => {
    const body = '{"valor": 12, "tipo": "d", "descricao": "abcdefghij"}';
    const text = formatRequest({ method: 'POST', path: '/clientes/3/transacoes', body }, '127.0.0.1:9999');
    const [head, sent] = text.split('\r\n\r\n');
    assert.equal(sent, body);
    const lines = head.split('\r\n');
    assert.equal(lines[0], 'POST /clientes/3/transacoes HTTP/1.1');
    assert.ok(lines.includes('Host: 127.0.0.1:9999'));
    assert.ok(lines.includes('User-Agent: Agente do Caos - 2024/Q1'));
    assert.ok(lines.includes('Connection: close'));
    assert.ok(lines.includes(`Content-Length: ${body.length}`));
    const get = formatRequest({ method: 'GET', path: '/clientes/1/extrato' }, 'h');
    assert.ok(get.endsWith('\r\n\r\n'));
    assert.ok(!/content-length/i.test(get));
  });

  it('a step\'s requests follow the mix and the official ranges', () => {
    const n = 3400;
    const p = prepareRequests(OFFICIAL_MIX, n, seededRng(7), 'h');
    assert.equal(p.offsets.length, n + 1);
    assert.equal(p.offsets[n], p.bytes.length);
    const counts = [0, 0, 0];
    const ids = new Set<string>();
    for (let i = 0; i < n; i++) {
      counts[p.kinds[i]]++;
      const text = p.bytes.toString('latin1', p.offsets[i], p.offsets[i + 1]);
      const line = text.slice(0, text.indexOf('\r\n'));
      if (p.kinds[i] === 2) {
        const m = /^GET \/clientes\/(\d)\/extrato HTTP\/1\.1$/.exec(line);
        assert.ok(m, line);
        ids.add(m[1]);
        continue;
      }
      assert.match(line, /^POST \/clientes\/[1-5]\/transacoes HTTP\/1\.1$/);
      ids.add(line[15]);
      const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { valor: number; tipo: string; descricao: string };
      assert.equal(body.tipo, p.kinds[i] === 0 ? 'd' : 'c');
      assert.ok(Number.isInteger(body.valor) && body.valor >= 1 && body.valor <= 10000, String(body.valor));
      assert.match(body.descricao, /^[A-Za-z0-9]{10}$/);
    }
    assert.deepEqual(counts, [2200, 1100, 100]);
    assert.deepEqual([...ids].sort(), ['1', '2', '3', '4', '5']);
    // Same seed, same bytes.
    assert.ok(prepareRequests(OFFICIAL_MIX, n, seededRng(7), 'h').bytes.equals(p.bytes));
  });
});

describe('response framing', () => {
  it('the head is parsed only once it has fully arrived', () => {
    assert.equal(parseResponseHead(b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n')), undefined);
    const text = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 25\r\n\r\n{"limite":1';
    assert.deepEqual(parseResponseHead(b(text)), { status: 200, bodyStart: text.indexOf('{'), length: 25 });
  });

  it('Content-Length is found whatever its case; chunked and close-delimited bodies are told apart', () => {
    assert.equal(parseResponseHead(b('HTTP/1.1 422 Unprocessable\r\ncOnTeNt-LeNgTh:  7 \r\n\r\n'))!.length, 7);
    assert.equal(parseResponseHead(b('HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n'))!.length, BODY_CHUNKED);
    assert.equal(parseResponseHead(b('HTTP/1.0 200 OK\r\nServer: x\r\n\r\nabc'))!.length, BODY_UNTIL_CLOSE);
    assert.equal(parseResponseHead(b('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n'))!.length, 0);
    // A header whose name merely ends in content-length is not Content-Length.
    assert.equal(parseResponseHead(b('HTTP/1.1 200 OK\r\nX-Content-Length: 5\r\n\r\n'))!.length, BODY_UNTIL_CLOSE);
  });

  it('a status line that is not HTTP gives status 0', () => {
    assert.equal(parseResponseHead(b('SSH-2.0-OpenSSH\r\n\r\n'))!.status, 0);
    assert.equal(parseResponseHead(b('HTTP/1.1 2000 OK\r\n\r\n'))!.status, 0);
  });

  it('completion: all Content-Length bytes, or the last chunk', () => {
    const full = b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
    const head = parseResponseHead(full)!;
    assert.equal(isResponseComplete(head, full.subarray(0, full.length - 1)), false);
    assert.equal(isResponseComplete(head, full), true);
    const chunked = b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    const ch = parseResponseHead(chunked)!;
    assert.equal(isResponseComplete(ch, chunked), false);
    assert.equal(isResponseComplete(ch, Buffer.concat([chunked, b('0\r\n\r\n')])), true);
    const untilClose = b('HTTP/1.0 200 OK\r\n\r\nabc');
    assert.equal(isResponseComplete(parseResponseHead(untilClose)!, untilClose), false);
  });

  it('a 422 is a valid answer to a debit only', () => {
    assert.equal(isOkStatus('débitos', 422), true);
    assert.equal(isOkStatus('créditos', 422), false);
    assert.equal(isOkStatus('extratos', 200), true);
    assert.equal(isOkStatus('débitos', 503), false);
  });
});

/** A TCP server on an ephemeral port that does `onConnection` with every connection. */
async function fakeServer(onConnection: (socket: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Reads one request head (and a body, by Content-Length) before answering. */
function onRequest(socket: net.Socket, answer: (socket: net.Socket) => void): void {
  let buf = '';
  socket.on('data', (chunk: Buffer) => {
    buf += chunk.toString('latin1');
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const length = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
    if (buf.length - end - 4 >= length) answer(socket);
  });
}

const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, x) => a + x, 0);

describe('outcomes against misbehaving servers', () => {
  it('a response split across writes, mid-header and mid-body, is complete only at its end', async () => {
    const server = await fakeServer((socket) =>
      onRequest(socket, (s) => {
        s.write('HTTP/1.1 200 OK\r\nContent-Le');
        setTimeout(() => s.write('ngth: 10\r\n\r\n01234'), 20);
        setTimeout(() => s.end('56789'), 40);
      }),
    );
    try {
      const r = await runStep({ port: server.port, ratePerS: 100, durationS: 0.3, seed: 1 });
      assert.equal(r.sent, 30);
      assert.equal(r.completed, 30);
      assert.deepEqual(r.statuses, { '200': 30 });
      assert.equal(r.errors, 0);
      // Completion waited for the last write, 40 ms after the first.
      assert.ok(r.latencyMs.p50 >= 35, `p50 ${r.latencyMs.p50}`);
    } finally {
      await server.close();
    }
  });

  it('no answer: every request times out after timeoutMs', async () => {
    const server = await fakeServer(() => undefined);
    try {
      const r = await runStep({ port: server.port, ratePerS: 50, durationS: 0.2, timeoutMs: 150, seed: 1 });
      assert.equal(r.sent, 10);
      assert.equal(r.completed, 0);
      assert.deepEqual(r.statuses, { timeout: 10 });
      assert.equal(r.errors, 10);
      assert.ok(r.latencyMs.p50 >= 150 && r.latencyMs.max < 400, JSON.stringify(r.latencyMs));
    } finally {
      await server.close();
    }
  });

  it('resets, early closes, close-delimited bodies and refused connections are told apart', async () => {
    let n = 0;
    const server = await fakeServer((socket) =>
      onRequest(socket, (s) => {
        const k = n++ % 4;
        if (k === 0) s.resetAndDestroy();
        else if (k === 1) s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut');
        else if (k === 2) s.end('HTTP/1.1 200 OK\r\n\r\n{"until":"close"}');
        else s.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}');
      }),
    );
    try {
      // One at a time (40 ms apart), so the server sees them in order.
      const r = await runStep({ port: server.port, ratePerS: 25, durationS: 0.32, seed: 1 });
      assert.equal(r.sent, 8);
      assert.deepEqual(r.statuses, { 'error:ECONNRESET': 2, 'error:EOF': 2, '200': 2, '503': 2 });
      assert.equal(r.completed, 4);
      assert.equal(r.errors, 6);
    } finally {
      await server.close();
    }
    const closed = await fakeServer(() => undefined);
    await closed.close();
    const refused = await runStep({ port: closed.port, ratePerS: 100, durationS: 0.1 });
    assert.deepEqual(refused.statuses, { 'error:ECONNREFUSED': 10 });
  });
});

/** Invariants every step result must satisfy. */
function assertSane(r: StepResult): void {
  assert.equal(sum(r.statuses), r.sent, 'every request has exactly one outcome');
  assert.equal(r.byKind.debits.sent + r.byKind.credits.sent + r.byKind.statements.sent, r.sent);
  const l = r.latencyMs;
  assert.ok(0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max * 1.001, JSON.stringify(l));
  assert.ok(l.mean > 0 && l.mean <= l.max);
  const g = r.lagMs;
  assert.ok(0 <= g.p50 && g.p50 <= g.p99 && g.p99 <= g.max * 1.001, JSON.stringify(g));
  assert.equal(r.lagValid, g.p99 <= LAG_LIMITS.p99Ms && g.max <= LAG_LIMITS.maxMs);
  assert.equal(r.lagValid, r.lagReasons.length === 0);
  assert.ok(r.wallS >= r.durationS * 0.99, `wall ${r.wallS}`);
  assert.ok(r.generatorCpuUtil > 0 && r.generatorCpuUtil < 2, String(r.generatorCpuUtil));
}

describe('against a real stack', () => {
  const stack = useStack('open');
  let state: StackState;
  before(() => {
    state = JSON.parse(fs.readFileSync(path.join(stack.home, 'stack.json'), 'utf8')) as StackState;
    stack.reset();
  });

  it('300 req/s for 3 s: every request answered, and the ledger holds exactly the acknowledged transactions', async () => {
    const r = await runStep({ port: stack.httpPort, ratePerS: 300, durationS: 3, seed: 42 });
    assertSane(r);
    assert.equal(r.sent, 900);
    assert.equal(r.completed, 900, JSON.stringify(r.statuses));
    assert.equal(r.errors, 0, JSON.stringify(r.statuses));
    assert.equal((r.statuses['200'] ?? 0) + (r.statuses['422'] ?? 0), 900);
    assert.deepEqual([r.byKind.debits.sent, r.byKind.credits.sent, r.byKind.statements.sent], [582, 291, 27]);
    assert.equal(r.byKind.statements.ok, 27);
    assert.equal(r.byKind.credits.ok, 291);
    assert.equal(r.achievedPerS, 300);
    // Each 200 to a POST is one ledger entry; a 422 changes nothing.
    const posts200 = r.byKind.debits.sent + r.byKind.credits.sent - (r.statuses['422'] ?? 0);
    assert.equal(Number(stack.psql('SELECT count(*) FROM ledger')[0][0]), posts200);
    assert.deepEqual(stack.audit(), []);
  });

  it('measuredStep: CPU and memory of each component during the step', async () => {
    const r = await measuredStep(state, { port: stack.httpPort, ratePerS: 200, durationS: 2, seed: 43 });
    assertSane(r);
    assert.equal(r.errors, 0, JSON.stringify(r.statuses));
    if (!state.cgroups) {
      assert.equal(r.usageMeasured, false);
      return;
    }
    assert.deepEqual(r.components.map((c) => c.name), ['db', 'api1', 'api2', 'nginx']);
    for (const c of r.components) {
      assert.ok(c.cpuUtil > 0 && c.cpuUtil <= (c.cpuLimit ?? 2) * 1.1, `${c.name} ${c.cpuUtil}`);
      assert.ok(c.cpuMsPerRequest > 0 && c.cpuMsPerRequest < 20, `${c.name} ${c.cpuMsPerRequest}`);
      assert.ok(c.peakMemoryBytes > 0 && c.peakMemoryBytes <= (c.memoryLimitBytes ?? Infinity));
      assert.equal(c.oomKills, 0);
    }
    for (const api of r.components.filter((c) => c.name.startsWith('api'))) {
      assert.ok(api.rssBytes! > 10 * 2 ** 20 && api.rssBytes! < 100 * 2 ** 20, `${api.name} rss ${api.rssBytes}`);
      assert.ok(api.peakRssBytes! >= api.rssBytes! * 0.9, `${api.name} peak ${api.peakRssBytes} rss ${api.rssBytes}`);
    }
    // The two instances share the load round-robin.
    const [a1, a2] = r.components.filter((c) => c.name.startsWith('api')).map((c) => c.cpuUtil);
    assert.ok(Math.min(a1, a2) > 0.4 * Math.max(a1, a2), `api cpu ${a1} vs ${a2}`);
  });

  it('npm run hops: every path measured, and client 5 left as it was', () => {
    const balance = (): string => stack.psql('SELECT balance FROM accounts WHERE id = 5')[0][0];
    const entries = (): number => Number(stack.psql('SELECT count(*) FROM ledger WHERE account_id = 5')[0][0]);
    const [before, entriesBefore] = [balance(), entries()];
    const json = path.join(stack.home, 'hops.json');
    const env: NodeJS.ProcessEnv = { ...process.env, CREBITOS_HOME: stack.home, HTTP_PORT: String(stack.httpPort), PG_PORT: String(stack.pgPort) };
    delete env.NODE_OPTIONS;
    const run = spawnSync(process.execPath, ['dist/loadtest/hops.js', '--gaps', '3,1', '--requests', '10', '--rounds', '1', '--json', json], { cwd: REPO, env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /gap 3 ms against 1 ms, p50: db x[\d.]+, api x[\d.]+, nginx x[\d.]+/);
    type P = { p50: number; p90: number; p99: number };
    const out = JSON.parse(fs.readFileSync(json, 'utf8')) as {
      results: { gapMs: number; db: P; api: P; nginx: P; nodeP50: number; edgeP50: number }[];
      perRound: Record<string, P[]>;
    };
    assert.deepEqual(out.results.map((r) => r.gapMs), [3, 1]);
    for (const r of out.results) {
      for (const p of [r.db, r.api, r.nginx]) assert.ok(p.p50 > 0 && p.p50 < 1000 && p.p50 <= p.p90 && p.p90 <= p.p99, JSON.stringify(r));
      // One round: each gap's figures are that gap's own series, and the hop shares their differences.
      for (const name of ['db', 'api', 'nginx'] as const) assert.deepEqual(r[name], out.perRound[`${r.gapMs}/${name}`][0]);
      assert.equal(r.nodeP50, r.api.p50 - r.db.p50);
      assert.equal(r.edgeP50, r.nginx.p50 - r.api.p50);
    }
    // 3 paths x 2 gaps x (2 unmeasured + 10 measured) transactions, credits and debits of 1 in turn.
    assert.equal(entries() - entriesBefore, 3 * 2 * 12);
    assert.equal(balance(), before);
    assert.deepEqual(stack.audit(), []);
  });

  it('hops refuses bad options and a stack that is not running', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, CREBITOS_HOME: path.join(stack.home, 'nothing-here') };
    delete env.NODE_OPTIONS;
    const hops = (...args: string[]) => spawnSync(process.execPath, ['dist/loadtest/hops.js', ...args], { cwd: REPO, env, encoding: 'utf8', timeout: 30_000 });
    const odd = hops('--requests', '11');
    assert.equal(odd.status, 1);
    assert.match(odd.stderr, /--requests: an even number/);
    const down = hops();
    assert.equal(down.status, 1);
    assert.match(down.stderr, /no running stack .*npm run up/);
  });
});

describe('hops arithmetic', () => {
  it('nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1, unsorted on purpose
    assert.deepEqual(percentiles(xs), { p50: 50, p90: 90, p99: 99 });
    assert.deepEqual(percentiles([7]), { p50: 7, p90: 7, p99: 7 });
  });

  it('medians over rounds, per percentile', () => {
    const r = medianOf([{ p50: 1, p90: 5, p99: 9 }, { p50: 3, p90: 4, p99: 20 }, { p50: 2, p90: 6, p99: 10 }]);
    assert.deepEqual(r, { p50: 2, p90: 5, p99: 10 });
    // Two rounds (the default): the mean of the two.
    assert.deepEqual(medianOf([{ p50: 1, p90: 4, p99: 8 }, { p50: 2, p90: 6, p99: 12 }]), { p50: 1.5, p90: 5, p99: 10 });
  });

  it('credits and debits alternate, starting with a credit', () => {
    assert.deepEqual([0, 1, 2, 3].map(kindOf), ['c', 'd', 'c', 'd']);
  });
});
