// npm run hops -- [--gaps 20,2] [--requests 300] [--rounds 2] [--json FILE]
//
// Where one request's time goes, hop by hop, on the running stack (npm run up). It sends one
// request at a time, with a fixed idle gap before each, along three paths:
//   db     the transaction call straight to PostgreSQL over its unix socket, through the
//          APIs' own connection pool (server.ts's Pool, one connection, the same prepared call)
//   api    HTTP to api1's unix socket, a new connection per request (Node + the database)
//   nginx  HTTP to the stack's port, a new TCP connection per request (the official client)
// Each path contains the one before it, so the differences of the medians are what Node adds
// (api - db) and what the edge adds (nginx - api; it includes TCP instead of a unix socket on
// the client's leg).
//
// Why the gaps: the official test's ramp offers 1 to 340 req/s, so most of its requests reach
// an idle stack. A long gap (20 ms: 50 req/s) shows what an idle stack costs, a short one (2 ms)
// a busy one. Paths and gaps alternate within each round, so drift on the machine spreads over
// all of them (even rounds run them in reverse order); every figure is the median over rounds.
//
// Requests are credits and debits of 1 on client 5 in turn, so its balance ends where it began
// (with an even --requests, when every request succeeds; a run that stops on an error may leave
// it 1 off) but its ledger grows: measure on a stack you will not use for an official run (npm
// run loadtest wants a fresh one anyway). The "db" path's figures include this process's own
// wake-up, as every path's do.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from '../../server';
import { alive as isAlive, localStack } from '../../stack/state';
import { median, nearestRank } from '../lib/stats';
import { httpExchange, localTarget, socketTarget, type Target } from '../lib/http';

const USAGE = `usage: npm run hops -- [--gaps MS,MS,...] [--requests N] [--rounds N] [--json FILE]
  --gaps      idle milliseconds before each request (default 20,2)
  --requests  requests per path, gap and round (default 300, even)
  --rounds    rounds; each runs every gap and path once (default 2)
  --json      also write the results to FILE`;

const PATHS = ['db', 'api', 'nginx'] as const;
type PathName = (typeof PATHS)[number];

const CLIENT = 5;
const DESCRIPTION = 'hops';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

/** Nearest-rank percentiles of one series, in ms. */
export function percentiles(samples: number[]): Percentiles {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: nearestRank(s, 0.5), p90: nearestRank(s, 0.9), p99: nearestRank(s, 0.99) };
}

/** Median over rounds of each percentile. */
export function medianOf(rounds: Percentiles[]): Percentiles {
  return { p50: median(rounds.map((r) => r.p50)), p90: median(rounds.map((r) => r.p90)), p99: median(rounds.map((r) => r.p99)) };
}

/** Request i's kind: credits and debits alternate, so an even count leaves the balance as it was. */
export const kindOf = (i: number): 'c' | 'd' => (i % 2 === 0 ? 'c' : 'd');

type Send = (i: number) => Promise<void>;

/** The APIs' pool with one connection: prepared, warmed, and failing a stuck call after 5 s. */
async function databasePath(conninfo: string): Promise<{ send: Send; close: () => void }> {
  const pool = new Pool({ conninfo, size: 1, maxQueue: 1, queryTimeoutMs: 5000, log: (message) => console.error(`[hops] ${message}`) });
  await pool.start();
  const send: Send = (i) =>
    new Promise((resolve, reject) =>
      pool.execute('transaction', [String(CLIENT), '1', kindOf(i), DESCRIPTION], (err, rows) => {
        if (err) return reject(err);
        if (rows[0]?.[0] !== 'ok') return reject(new Error(`the database answered ${JSON.stringify(rows)}`));
        resolve();
      }),
    );
  return { send, close: () => pool.end() };
}

function httpPath(target: Target): Send {
  return (i) =>
    new Promise((resolve, reject) => {
      const body = `{"valor":1,"tipo":"${kindOf(i)}","descricao":"${DESCRIPTION}"}`;
      httpExchange(target, { method: 'POST', path: `/clientes/${CLIENT}/transacoes`, body }, false, (r) => (r.status === 200 && !r.error ? resolve() : reject(new Error(r.error ?? `HTTP ${r.status}`))), 5000);
    });
}

/** One request at a time, `gapMs` of idleness before each; latency of each, ms. */
async function series(send: Send, gapMs: number, requests: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < requests; i++) {
    await sleep(gapMs);
    const t0 = performance.now();
    await send(i);
    out.push(performance.now() - t0);
  }
  return out;
}

const fmt = (ms: number): string => ms.toFixed(3).padStart(7);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gaps: { type: 'string', default: '20,2' },
      requests: { type: 'string', default: '300' },
      rounds: { type: 'string', default: '2' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return console.log(USAGE);
  const gaps = values.gaps.split(',').map(Number);
  const requests = Number(values.requests);
  const rounds = Number(values.rounds);
  if (gaps.some((g) => !Number.isInteger(g) || g < 0)) throw new Error(`--gaps: whole milliseconds, got ${values.gaps}\n${USAGE}`);
  if (!Number.isInteger(requests) || requests < 10 || requests % 2) throw new Error(`--requests: an even number, at least 10\n${USAGE}`);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: at least 1\n${USAGE}`);

  const { state, stateFile } = localStack();
  if (!state || !isAlive(state.supervisorPid) || !state.ready) throw new Error(`no running stack (${stateFile}); start one with npm run up`);
  const apiSocket = path.join(state.socketDir, 'api1.sock');
  if (!fs.existsSync(apiSocket)) throw new Error(`${apiSocket} does not exist: hops needs the APIs on unix sockets (CREBITOS_TRANSPORT unset)`);

  const db = await databasePath(state.database);
  const send: Record<PathName, Send> = {
    db: db.send,
    api: httpPath(socketTarget(apiSocket)),
    nginx: httpPath(localTarget(state.httpPort)),
  };
  const perRound: Record<string, Percentiles[]> = {};
  const minutes = (rounds * gaps.reduce((s, g) => s + g + 0.7, 0) * requests * PATHS.length) / 60_000;
  console.log(`[hops] ${state.url}: ${requests} requests per path and gap, gaps ${gaps.join(', ')} ms, ${rounds} round(s), about ${minutes.toFixed(1)} min`);
  const loadAverage = (): string => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const load0 = loadAverage();
  try {
    for (let round = 1; round <= rounds; round++) {
      // Even rounds run gaps and paths in reverse order, so neither always goes first.
      const inOrder = <T>(xs: readonly T[]): T[] => (round % 2 === 0 ? [...xs].reverse() : [...xs]);
      for (const gap of inOrder(gaps)) {
        for (const name of inOrder(PATHS)) {
          // An unmeasured credit and debit first: the path's code and connections are touched,
          // and the balance stays where it was.
          await send[name](0);
          await send[name](1);
          const p = percentiles(await series(send[name], gap, requests));
          (perRound[`${gap}/${name}`] ??= []).push(p);
          console.log(`[hops] round ${round}/${rounds}  gap ${String(gap).padStart(3)} ms  ${name.padEnd(5)}  p50 ${fmt(p.p50)}  p90 ${fmt(p.p90)}  p99 ${fmt(p.p99)} ms`);
        }
      }
    }
  } finally {
    db.close();
  }
  const load1 = loadAverage();

  const results = gaps.map((gap) => {
    const m = Object.fromEntries(PATHS.map((name) => [name, medianOf(perRound[`${gap}/${name}`])])) as Record<PathName, Percentiles>;
    return { gapMs: gap, ...m, nodeP50: m.api.p50 - m.db.p50, edgeP50: m.nginx.p50 - m.api.p50 };
  });
  console.log(`\nmedian over ${rounds} round(s), ms (load average ${load0} at start, ${load1} at end)`);
  console.log('gap ms   db p50 / p99        api p50 / p99       nginx p50 / p99     Node adds (p50)  edge adds (p50)');
  for (const r of results) {
    console.log(
      `${String(r.gapMs).padStart(6)}  ${fmt(r.db.p50)} / ${fmt(r.db.p99)}  ${fmt(r.api.p50)} / ${fmt(r.api.p99)}  ${fmt(r.nginx.p50)} / ${fmt(r.nginx.p99)}  ${fmt(r.nodeP50)}          ${fmt(r.edgeP50)}`,
    );
  }
  if (results.length > 1) {
    const [idle, busy] = [results[0], results[results.length - 1]];
    const ratio = (a: number, b: number): string => `x${(a / b).toFixed(2)}`;
    console.log(
      `\ngap ${idle.gapMs} ms against ${busy.gapMs} ms, p50: db ${ratio(idle.db.p50, busy.db.p50)}, api ${ratio(idle.api.p50, busy.api.p50)}, nginx ${ratio(idle.nginx.p50, busy.nginx.p50)}`,
    );
  }
  if (values.json) {
    fs.writeFileSync(values.json, JSON.stringify({ at: new Date().toISOString(), url: state.url, requests, rounds, loadAverage: { start: load0, end: load1 }, results, perRound }, null, 2) + '\n');
    console.log(`[hops] wrote ${values.json}`);
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(`hops: ${err.message}`);
    process.exit(1);
  });
}
