// The open-model generator (loadtest/lib/open-model.ts): its pure parts (schedule, mix, request bytes,
// response framing), its outcomes against small misbehaving servers, and a short step against a
// real stack whose ledger must hold exactly the transactions the step saw acknowledged; and the per-step
// throttling and per-second readings that `npm run coldstart -- --load` prints.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { describe, it } from 'node:test';
import { arrivalCount, arrivalOffsetMs, componentSteps, mixSequence, prepareRequests, runStep } from '../loadtest/lib/open-model';
import { readRound, secondsOfLoad } from '../loadtest/bench/coldstart';
import { BODY_CHUNKED, BODY_UNTIL_CLOSE, formatRequest, isResponseComplete, parseResponseHead } from '../loadtest/lib/http';
import { kindOf, medianOf, percentiles } from '../loadtest/bench/hops';
import { seededRng, OFFICIAL_MIX, isOkStatus } from '../loadtest/lib/official-simulation';

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

describe('per-step and per-second readings', () => {
  it('componentSteps gives the throttling of the step, not since start, and leaves it out where cgroups could not tell', () => {
    const before = [{ name: 'api1', cpuSeconds: 10, peakMemoryBytes: 0, oomKills: 0, throttledPeriods: 25, throttledSeconds: 2.2 }, { name: 'db', cpuSeconds: 5, peakMemoryBytes: 0, oomKills: 0 }];
    const after = [{ name: 'api1', cpuSeconds: 13, peakMemoryBytes: 0, oomKills: 0, throttledPeriods: 28, throttledSeconds: 2.2514 }, { name: 'db', cpuSeconds: 6, peakMemoryBytes: 0, oomKills: 0 }];
    const [api, db] = componentSteps(before, after, 10, 1000);
    assert.equal(api.throttledPeriods, 3);
    assert.equal(api.throttledSeconds, 0.051);
    assert.equal(api.cpuUtil, 0.3);
    assert.equal(api.cpuMsPerRequest, 3);
    assert.equal('throttledPeriods' in db, false);
  });

  it('secondsOfLoad buckets by scheduled second, with p99 by rank and errors per second', () => {
    const outcomes = [
      ...Array.from({ length: 100 }, (_, i) => ({ scheduledS: i / 100, ms: i + 1, error: i === 99 })),
      { scheduledS: 2.5, ms: 7, error: false },
      { scheduledS: -0.001, ms: 4, error: false }, // a send scheduled a hair before t0 counts in second 0
    ];
    const seconds = secondsOfLoad(outcomes);
    assert.equal(seconds.length, 3);
    assert.deepEqual(seconds[0], { second: 0, requests: 101, errors: 1, p99Ms: 99, maxMs: 100 });
    assert.deepEqual(seconds[1], { second: 1, requests: 0, errors: 0, p99Ms: 0, maxMs: 0 });
    assert.deepEqual(seconds[2], { second: 2, requests: 1, errors: 0, p99Ms: 7, maxMs: 7 });
  });

  it("readRound reads a fresh step against the same stack's warm one: only a failure the warm step does not share is unreadiness", () => {
    assert.equal(readRound('PASS', 'FAIL'), 'ready');
    assert.equal(readRound('PASS', 'INVALID'), 'ready');
    assert.equal(readRound('FAIL', 'PASS'), 'not ready');
    assert.equal(readRound('FAIL', 'FAIL'), 'the rate fails warm too');
    assert.equal(readRound('FAIL', 'INVALID'), 'inconclusive');
    assert.equal(readRound('INVALID', 'PASS'), 'inconclusive');
  });
});
