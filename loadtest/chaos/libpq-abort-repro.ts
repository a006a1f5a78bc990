// libpq-abort-repro: the process abort inside pg-native's addon, made
// deterministic.
//
//   node dist/loadtest/chaos/libpq-abort-repro.js --database "<libpq conninfo>" [--client server|raw] [--sequence NAME]
//
// The abort: `uv__finish_close: Assertion 'handle->flags & UV_HANDLE_CLOSING' failed`. libpq's
// addon (node_modules/libpq/src/connection.cc) keeps the connection's uv_poll_t inside its
// Connection object. Connection::Finish (pg-native's end()) calls uv_close() on it without a close
// callback and, in the same call, Unref()s the object, which makes its JavaScript wrapper weak. uv_close only queues
// the handle: libuv finishes closing it in the last phase of the current loop iteration. If a
// garbage collection runs before that phase and nothing in JavaScript still holds the client, the
// wrapper's weak callback deletes the Connection, handle included: libuv then finishes closing
// freed memory. Whatever reuses that memory first decides what happens; another connection's
// handle initialised there (uv_poll_init clears the flags) gives exactly the assertion above.
// The harness's old pgQueries (connect, query, end(cb), and on to the next call from end's
// setImmediate callback, before the close phase) met it when a GC happened to fall there.
//
// Each sequence below ends a connected client in a way pg-native or server.ts can (after a query,
// during a query, while the notification poll is active, after the server terminated the session,
// after a failed connect on the same client, and the pool's own replacement of a lost
// connection), drops it, and then forces what the abort needs: a full GC on a clean stack (a
// setImmediate, still before the close phase) and a new connection opened synchronously, whose
// addon object takes the freed memory. Each runs in a child process, so an abort is observed, not
// suffered. With `--client raw` the sequences use pg-native directly; with `--client server` they
// use server.ts's client (pgNativeClient), which keeps an ended client reachable until libuv has
// closed its handle. Exit status: 0 when every sequence survived, 1 when one aborted.

import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Pool, pgNativeClient, type ClientFactory, type DatabaseClient } from '../../server';
import { pgQueries } from '../lib/database';

interface PgNative {
  connect(conninfo: string, done: (err?: Error) => void): void;
  connectSync(conninfo: string): void;
  query(text: string, done: (err?: Error) => void): void;
  on(event: 'error' | 'notification', listener: (err: Error) => void): void;
  end(): void;
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const PgNative = require('pg-native') as new () => PgNative;

export type ClientKind = 'raw' | 'server';

const ignore = (): void => {};

/** pg-native itself behind server.ts's DatabaseClient shape (only the calls the sequences make), plus its notification poll. */
const rawClient = (lost: (err: Error) => void): DatabaseClient & { poll(): void } => {
  const client = new PgNative();
  client.on('error', lost);
  return {
    poll: () => client.on('notification', ignore),
    connect: (conninfo, done) => client.connect(conninfo, done),
    query: (text, done) => client.query(text, done),
    prepare: () => {
      throw new Error('not used by the repro');
    },
    execute: () => {
      throw new Error('not used by the repro');
    },
    end: () => client.end(),
  };
};

const factories: Record<ClientKind, ClientFactory> = { raw: rawClient, server: pgNativeClient };

/** Names the repro's sessions, so it terminates only its own (the database may be a stack's). */
const APPLICATION = 'libpq-abort-repro';
const TERMINATE_OURS = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${APPLICATION}'`;

interface Context {
  /** for the harness's own queries (node-postgres) */
  database: string;
  /** for the pg-native sessions under test */
  conninfo: string;
  client: ClientKind;
}

/**
 * What turns a freed-while-closing handle into the abort, deterministically: from a setImmediate
 * (a clean stack, and still before this iteration's close phase, as long as end() was called from
 * a timer or an I/O callback), a full GC, then a new connection opened synchronously, whose
 * Connection has the size of the one just deleted and takes its memory.
 */
function collectThenReuse(ctx: Context, then: () => void): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  setImmediate(() => {
    gc();
    const probe = new PgNative();
    probe.connectSync(ctx.conninfo);
    // The close phase comes next; when it does not abort, a later timer ends the probe.
    setTimeout(() => {
      probe.end();
      then();
    }, 20);
  });
}

const call = (fn: (done: (err?: Error) => void) => void): Promise<void> => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));

/**
 * A client under test, held only here: the sequences' async frames stay suspended across awaits
 * and would otherwise keep it reachable, which is exactly what hides the bug.
 */
interface Held {
  client?: DatabaseClient;
}

const hold = (ctx: Context, lost: (err: Error) => void = ignore): Held => ({ client: factories[ctx.client](lost) });

/** Ends the client (from a timer or an I/O callback, never from the check phase), lets go of it, and forces the GC and the reuse. */
function endThenCollect(ctx: Context, held: Held): Promise<void> {
  return new Promise((resolve) => {
    held.client!.end();
    held.client = undefined;
    collectThenReuse(ctx, resolve);
  });
}

/** A client under test, connected. */
async function connected(ctx: Context): Promise<Held> {
  const held = hold(ctx);
  await call((d) => held.client!.connect(ctx.conninfo, d));
  return held;
}

/** endThenCollect from a timer, as the pool's watchdog would end a client. */
const endLater = (ctx: Context, held: Held, ms: number): Promise<void> => new Promise((resolve) => setTimeout(() => void endThenCollect(ctx, held).then(resolve), ms));

export const SEQUENCES: Record<string, { what: string; serverOnly?: boolean; run: (ctx: Context) => Promise<void> }> = {
  'connect-query-end': {
    what: 'connect, query, end, six times (the old pgQueries loop)',
    run: async (ctx) => {
      for (let i = 0; i < 6; i++) {
        const held = await connected(ctx);
        await call((d) => held.client!.query('SELECT 1', d));
        await endLater(ctx, held, 0);
      }
    },
  },
  'end-during-query': {
    what: 'end() while a query is in flight (what the watchdog does to a stuck call)',
    run: async (ctx) => {
      const held = await connected(ctx);
      held.client!.query('SELECT pg_sleep(5)', ignore);
      await endLater(ctx, held, 50);
    },
  },
  'end-while-polling': {
    what: "end() of an idle client whose notification poll is active (server.ts's client listens)",
    run: async (ctx) => {
      const held = await connected(ctx);
      // server.ts's client starts the poll itself once connected.
      if (ctx.client === 'raw') (held.client as ReturnType<typeof rawClient>).poll();
      await endLater(ctx, held, 50);
    },
  },
  'end-after-terminate': {
    what: "end() from the 'error' of a session the server terminated (pg_terminate_backend)",
    run: async (ctx) => {
      let ended: Promise<void> | undefined;
      let held: Held = {};
      const lostOnce = new Promise<void>((resolve) => {
        held = hold(ctx, () => {
          if (ended) return;
          ended = endThenCollect(ctx, held);
          resolve();
        });
      });
      await call((d) => held.client!.connect(ctx.conninfo, d));
      // The raw client reads only while a query is pending: give it one the server will cut.
      if (ctx.client === 'raw') held.client!.query('SELECT pg_sleep(5)', ignore);
      await pgQueries(ctx.database, [TERMINATE_OURS]);
      await Promise.race([lostOnce, new Promise((_, reject) => setTimeout(() => reject(new Error('the terminated session was never reported')), 5000))]);
      await ended;
    },
  },
  'connect-failure-reuse': {
    what: 'a failed connect, then the same client object connected, queried and ended',
    run: async (ctx) => {
      const held = hold(ctx);
      await call((d) => held.client!.connect(`${ctx.conninfo} port=1`, d)).then(
        () => {
          throw new Error('connecting to port 1 succeeded');
        },
        () => undefined,
      );
      await call((d) => held.client!.connect(ctx.conninfo, d));
      await call((d) => held.client!.query('SELECT 1', d));
      await endLater(ctx, held, 0);
    },
  },
  'pool-lost': {
    what: "server.ts's Pool replacing a connection the server terminated (lost, then end()), a GC falling before the close phase",
    serverOnly: true, // the pool always uses server.ts's client
    run: async (ctx) => {
      let collected: Promise<void> | undefined;
      const pool = new Pool({
        conninfo: ctx.conninfo,
        size: 1,
        maxQueue: 1,
        queryTimeoutMs: 2000,
        // The pool's own client, with the forced GC and reuse after the pool's end() of it.
        createClient: (lost) => {
          const held: Held = { client: pgNativeClient(lost) };
          return {
            ...held.client!,
            end: () => {
              collected ??= endThenCollect(ctx, held);
            },
          };
        },
      });
      await pool.start();
      await pgQueries(ctx.database, [TERMINATE_OURS]);
      const deadline = Date.now() + 5000;
      while (!collected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      if (!collected) throw new Error('the pool never ended the terminated connection');
      await collected;
      pool.end();
    },
  },
};

export interface SequenceResult {
  sequence: string;
  client: ClientKind;
  status: number | null;
  signal: string | null;
  /** the libuv assertion, when the child aborted with one */
  assertion: string | null;
  survived: boolean;
  stderr: string;
}

/** Runs one sequence in a child process (node --expose-gc) and reports how it ended. */
export function runSequence(conninfo: string, client: ClientKind, sequence: string, script = __filename): SequenceResult {
  const r = spawnSync(process.execPath, ['--expose-gc', script, '--child', '--database', conninfo, '--client', client, '--sequence', sequence], { encoding: 'utf8', timeout: 60_000 });
  const stderr = r.stderr ?? '';
  return {
    sequence,
    client,
    status: r.status,
    signal: r.signal,
    assertion: /Assertion .*failed/.exec(stderr)?.[0] ?? null,
    survived: r.status === 0 && r.signal === null,
    stderr: stderr.trim(),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { database: { type: 'string' }, client: { type: 'string', default: 'server' }, sequence: { type: 'string' }, child: { type: 'boolean' } },
  });
  if (!values.database || !['raw', 'server'].includes(values.client!) || (values.sequence && !SEQUENCES[values.sequence])) {
    console.error(`usage: node --expose-gc libpq-abort-repro.js --database CONNINFO [--client server|raw] [--sequence ${Object.keys(SEQUENCES).join('|')}]`);
    return 2;
  }
  const client = values.client as ClientKind;
  if (values.child) {
    await SEQUENCES[values.sequence!].run({ database: values.database, conninfo: `${values.database} application_name=${APPLICATION}`, client });
    return 0;
  }
  let aborted = false;
  for (const name of values.sequence ? [values.sequence] : Object.keys(SEQUENCES).filter((n) => client === 'server' || !SEQUENCES[n].serverOnly)) {
    const r = runSequence(values.database, client, name);
    if (!r.survived) aborted = true;
    console.log(`${r.survived ? 'survived' : 'DIED    '}  ${client.padEnd(6)} ${name.padEnd(22)} ${r.signal ?? `exit ${r.status}`}${r.assertion ? `  ${r.assertion}` : ''}  (${SEQUENCES[name].what})`);
    if (!r.survived && !r.assertion && r.stderr) console.log(r.stderr.split('\n').slice(-5).join('\n'));
  }
  return aborted ? 1 : 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(2);
    },
  );
}
