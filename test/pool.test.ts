// Unit tests of server.ts's connection pool, with a fake database client and mocked timers: no
// PostgreSQL, no sockets, no waiting. They cover opening (connect, prepare, warm-up), the
// bounded queue, the watchdog, losing connections and reconnecting with backoff, the start-up
// retry, the 503 the handler makes of Unavailable, and end().

import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as http from 'node:http';

import {
  Pool,
  RECONNECT_FIRST_MS,
  RECONNECT_MAX_MS,
  STARTUP_RETRY_MS,
  STATEMENTS,
  Unavailable,
  createHandler,
  errorBody,
  isTransientStartupError,
  startPool,
} from '../server';
import type { DatabaseClient, Done, PoolOptions, Rows, StatementName } from '../server';

// ---------------------------------------------------------------------------------------------
// A fake database
// ---------------------------------------------------------------------------------------------

const CONNINFO = 'host=/fake user=test dbname=test';

/** One session. Opening steps are answered on the next microtask; requests wait for answer(). */
class FakeClient implements DatabaseClient {
  /** Every call, in order, as text. */
  readonly calls: string[] = [];
  /** Requests sent after opening, waiting for answer() or fail(). */
  readonly held: { name: StatementName; params: string[]; done: Done }[] = [];
  ended = false;
  private opened = false;

  constructor(
    private readonly db: FakeDatabase,
    /** What the pool gave the factory: the client reports a broken connection through it. */
    readonly lose: (err: Error) => void,
  ) {}

  connect(conninfo: string, done: (err?: Error) => void): void {
    this.calls.push(`connect ${conninfo}`);
    this.db.connectedAt.push(Date.now());
    const err = this.db.onConnect(this);
    queueMicrotask(() => done(err));
  }

  prepare(name: string, text: string, nParams: number, done: (err?: Error) => void): void {
    this.calls.push(`prepare ${name} ${nParams} ${text}`);
    const err = this.db.onPrepare(name);
    queueMicrotask(() => done(err));
  }

  execute(name: StatementName, params: string[], done: Done): void {
    this.calls.push(`execute ${name} ${params.join(',')}`);
    if (this.opened) {
      this.held.push({ name, params, done });
      return;
    }
    const err = name === 'transaction' ? this.db.onWarmUp() : undefined;
    queueMicrotask(() => done(err, []));
  }

  query(text: string, done: (err?: Error) => void): void {
    this.calls.push(`query ${text}`);
    if (text === 'ROLLBACK') this.opened = true;
    const err = this.db.onQuery(text);
    queueMicrotask(() => done(err));
  }

  end(): void {
    this.ended = true;
  }

  /** Answers the oldest held request. */
  answer(rows: Rows = [['answer']]): void {
    const call = this.held.shift();
    assert.ok(call, 'a request is waiting on this client');
    call.done(undefined, rows);
  }

  fail(err: Error): void {
    const call = this.held.shift();
    assert.ok(call, 'a request is waiting on this client');
    call.done(err, []);
  }
}

class FakeDatabase {
  readonly clients: FakeClient[] = [];
  /** Date.now() of every connect, for the backoff. */
  readonly connectedAt: number[] = [];
  onConnect: (client: FakeClient) => Error | undefined = () => undefined;
  onPrepare: (name: string) => Error | undefined = () => undefined;
  onWarmUp: () => Error | undefined = () => undefined;
  onQuery: (text: string) => Error | undefined = () => undefined;

  readonly createClient = (lose: (err: Error) => void): DatabaseClient => {
    const client = new FakeClient(this, lose);
    this.clients.push(client);
    return client;
  };

  get open(): FakeClient[] {
    return this.clients.filter((c) => !c.ended);
  }
  /** The open clients with a request waiting. */
  get busy(): FakeClient[] {
    return this.open.filter((c) => c.held.length > 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Lets queued microtasks and promise chains run (setImmediate is not mocked). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Moves the mocked clock forward in 10 ms steps, letting the fake answer between steps. */
async function advance(ms: number): Promise<void> {
  await settle(); // timers the code is about to set start from now, not from the first step
  for (let left = ms; left > 0; left -= 10) {
    mock.timers.tick(Math.min(10, left));
    await settle();
  }
}

interface Outcome {
  calls: number;
  err?: Error;
  rows?: Rows;
}

/** Records what a request's callback got, and how many times it was called. */
function request(pool: Pool, params = ['1']): Outcome {
  const outcome: Outcome = { calls: 0 };
  pool.execute('statement', params, (err, rows) => {
    outcome.calls++;
    outcome.err = err;
    outcome.rows = rows;
  });
  return outcome;
}

function assertUnavailable(outcome: Outcome, message: string): void {
  assert.equal(outcome.calls, 1, 'answered once');
  assert.ok(outcome.err instanceof Unavailable, `Unavailable, got ${outcome.err}`);
  assert.equal(outcome.err.message, message);
}

const CONNECTION_CLOSED = 'server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally';

let db: FakeDatabase;
let logged: string[];
let pools: Pool[];

function makePool(options: Partial<PoolOptions> = {}): Pool {
  const pool = new Pool({ conninfo: CONNINFO, size: 1, maxQueue: 4, queryTimeoutMs: 1000, log: (m) => logged.push(m), createClient: db.createClient, ...options });
  pools.push(pool);
  return pool;
}

async function startedPool(options: Partial<PoolOptions> = {}): Promise<Pool> {
  const pool = makePool(options);
  await pool.start();
  return pool;
}

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  db = new FakeDatabase();
  logged = [];
  pools = [];
});

afterEach(() => {
  for (const pool of pools) pool.end();
  mock.timers.reset();
});

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

describe('Pool: opening connections', () => {
  test('each connection connects, prepares both calls, and warms them inside a rolled-back transaction', async () => {
    await startedPool({ size: 2 });
    assert.equal(db.clients.length, 2);
    for (const client of db.clients) {
      assert.deepEqual(client.calls, [
        `connect ${CONNINFO}`,
        `prepare transaction 4 ${STATEMENTS.transaction.text}`,
        `prepare statement 1 ${STATEMENTS.statement.text}`,
        'execute statement 1',
        'query BEGIN',
        'execute transaction 1,1,c,warm-up',
        'query ROLLBACK',
      ]);
      assert.equal(client.ended, false);
    }
  });

  test('a prepare failure fails start(), closes the client, and a later start() opens it', async () => {
    db.onPrepare = (name) => (name === 'statement' ? new Error('function account_statement(integer) does not exist') : undefined);
    const pool = makePool();
    await assert.rejects(pool.start(), /account_statement\(integer\) does not exist/);
    assert.equal(db.clients.length, 1);
    assert.ok(db.clients[0].ended, 'the failed client is closed');
    assert.ok(!db.clients[0].calls.some((c) => c.startsWith('execute')), 'nothing runs after the failed prepare');
    assertUnavailable(request(pool), 'database unavailable');

    db.onPrepare = () => undefined;
    await pool.start();
    const outcome = request(pool);
    db.clients[1].answer([['{}']]);
    assert.deepEqual(outcome, { calls: 1, err: undefined, rows: [['{}']] });
  });

  test('a failed warm-up call is still rolled back, and start() rejects with its error, not the rollback', async () => {
    db.onWarmUp = () => new Error('function post_transaction(integer, integer, character, character varying) does not exist');
    db.onQuery = (text) => (text === 'ROLLBACK' ? new Error('WARNING:  there is no transaction in progress') : undefined);
    const pool = makePool();
    await assert.rejects(pool.start(), /post_transaction.*does not exist/);
    assert.deepEqual(db.clients[0].calls.slice(-3), ['query BEGIN', 'execute transaction 1,1,c,warm-up', 'query ROLLBACK']);
    assert.ok(db.clients[0].ended);
  });

  test('a failed ROLLBACK after a good warm-up fails the open: the session must not stay inside a transaction', async () => {
    db.onQuery = (text) => (text === 'ROLLBACK' ? new Error('server closed the connection unexpectedly') : undefined);
    await assert.rejects(makePool().start(), /server closed the connection/);
    assert.ok(db.clients[0].ended);
  });

  test('a partial start keeps the connections that opened; the next start() opens only the missing ones', async () => {
    db.onConnect = () => (db.clients.length === 2 ? new Error('could not connect to server: Connection refused') : undefined);
    const pool = makePool({ size: 3 });
    await assert.rejects(pool.start(), /Connection refused/);
    assert.equal(db.open.length, 2);
    const served = request(pool);
    assert.equal(db.busy.length, 1, 'the live connections serve meanwhile');
    db.busy[0].answer();
    assert.equal(served.err, undefined);

    await pool.start();
    assert.equal(db.clients.length, 4, 'one new client, not three');
    assert.equal(db.open.length, 3);
  });

  test('a connection lost while opening fails start() once; its late callbacks are ignored', async () => {
    db.onConnect = (client) => {
      // The socket breaks right after connect: the client reports it before answering.
      queueMicrotask(() => client.lose(new Error(CONNECTION_CLOSED)));
      return undefined;
    };
    const pool = makePool();
    await assert.rejects(pool.start(), /server closed the connection/);
    await settle();
    assert.deepEqual(db.clients[0].calls, [`connect ${CONNINFO}`], 'no prepare after the loss');
    assert.ok(db.clients[0].ended);
    assertUnavailable(request(pool), 'database unavailable');
    await advance(RECONNECT_FIRST_MS * 4);
    assert.equal(db.clients.length, 1, 'a failed start is retried by startPool, not by the reconnect loop');
  });
});

// ---------------------------------------------------------------------------------------------
// Serving and the queue
// ---------------------------------------------------------------------------------------------

describe('Pool: requests and the queue', () => {
  test('each request takes a free connection and gets its rows; an ordinary query error goes to the caller and keeps the connection', async () => {
    const pool = await startedPool({ size: 2 });
    const a = request(pool, ['1']);
    const b = request(pool, ['2']);
    assert.equal(db.busy.length, 2, 'one request per connection');
    db.busy[0].answer([['a']]);
    db.busy[0].fail(new Error('division by zero'));
    assert.equal(a.calls + b.calls, 2);
    const outcomes = [a, b];
    assert.ok(outcomes.some((o) => o.err === undefined && o.rows?.[0][0] === 'a'));
    const failed = outcomes.find((o) => o.err);
    assert.ok(failed?.err && !(failed.err instanceof Unavailable) && failed.err.message === 'division by zero', 'not a 503');
    assert.equal(db.open.length, 2, 'the connection is kept');
    assert.equal(logged.length, 0);
  });

  test('past MAX_QUEUE waiting requests, new ones fail at once; the queue is served in order', async () => {
    const pool = await startedPool({ size: 1, maxQueue: 2 });
    const first = request(pool, ['1']);
    const second = request(pool, ['2']);
    const third = request(pool, ['3']);
    const refused = request(pool, ['4']);
    assertUnavailable(refused, 'too many requests queued');
    assert.equal(second.calls + third.calls, 0, 'the queued requests wait');

    const client = db.clients[0];
    client.answer();
    assert.equal(first.calls, 1);
    assert.deepEqual(client.held.map((h) => h.params), [['2']], 'the oldest queued request goes next');
    assert.equal(request(pool, ['5']).calls, 0, 'a queue slot freed up');
    client.answer();
    client.answer();
    client.answer();
    assert.deepEqual([second.calls, third.calls], [1, 1]);
    assert.equal(client.calls.at(-1), 'execute statement 5');
  });

  test('MAX_QUEUE=0: a request that finds no free connection fails at once', async () => {
    const pool = await startedPool({ size: 1, maxQueue: 0 });
    request(pool);
    assertUnavailable(request(pool), 'too many requests queued');
  });

  test('a pool with no live connection fails requests at once instead of queueing them', () => {
    const pool = makePool({ maxQueue: 100 });
    assertUnavailable(request(pool), 'database unavailable');
    assert.equal(db.clients.length, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Losing connections: the watchdog, broken sockets, reconnecting with backoff
// ---------------------------------------------------------------------------------------------

describe('Pool: lost connections', () => {
  test('the watchdog fails a call unanswered past QUERY_TIMEOUT_MS and replaces its connection', async () => {
    const pool = await startedPool({ queryTimeoutMs: 1000 });
    const stuck = request(pool);
    const old = db.clients[0];
    await advance(1000);
    assert.equal(stuck.calls, 0, 'not before the timeout');
    await advance(500); // the check runs every min(500, timeout) ms
    assertUnavailable(stuck, 'database connection lost');
    assert.ok(old.ended, 'the stuck connection is closed');
    assert.match(logged[0], /^database connection lost: no answer from the database after 1[0-9]{3} ms$/);

    await advance(RECONNECT_FIRST_MS);
    assert.equal(db.open.length, 1);
    assert.notEqual(db.open[0], old, 'a new connection replaces it');
    assert.equal(logged[1], 'database connection restored (1/1)');

    old.answer([['late']]); // the old session answers after all
    assert.equal(stuck.calls, 1, 'a late answer is not delivered twice');
    const next = request(pool);
    db.open[0].answer([['new']]);
    assert.deepEqual(next.rows, [['new']]);
  });

  test('the watchdog leaves calls that are answered in time alone', async () => {
    const pool = await startedPool({ queryTimeoutMs: 1000 });
    for (let i = 0; i < 5; i++) {
      const outcome = request(pool);
      await advance(900);
      db.clients[0].answer();
      assert.equal(outcome.err, undefined);
    }
    assert.equal(db.clients.length, 1);
    assert.deepEqual(logged, []);
  });

  test('a connection that breaks fails its call with Unavailable; the queue fails only when no connection is left', async () => {
    const pool = await startedPool({ size: 2, maxQueue: 4 });
    const [a, b] = [request(pool), request(pool)];
    const [q1, q2] = [request(pool), request(pool)];
    const [first, second] = db.busy;

    first.lose(new Error(CONNECTION_CLOSED));
    const lostOne = [a, b].find((o) => o.calls === 1)!;
    assertUnavailable(lostOne, 'database connection lost');
    assert.equal(q1.calls + q2.calls, 0, 'the other connection will serve the queue');

    second.fail(new Error('terminating connection due to administrator command')); // the same, reported by the call itself
    assertUnavailable([a, b].find((o) => o !== lostOne)!, 'database connection lost');
    assertUnavailable(q1, 'database unavailable');
    assertUnavailable(q2, 'database unavailable');
    assert.equal(db.open.length, 0);
    assertUnavailable(request(pool), 'database unavailable');
  });

  test('an idle connection that breaks is dropped: requests wait for the live one rather than go to it', async () => {
    const pool = await startedPool({ size: 2 });
    const [broken, live] = db.clients;
    broken.lose(new Error(CONNECTION_CLOSED));
    assert.ok(broken.ended);
    const outcomes = [request(pool), request(pool), request(pool)];
    assert.equal(broken.held.length, 0, 'nothing is sent to the broken connection');
    for (let i = 0; i < 3; i++) live.answer();
    assert.deepEqual(outcomes.map((o) => [o.calls, o.err]), Array(3).fill([1, undefined]));
  });

  test('reconnecting backs off from RECONNECT_FIRST_MS, doubling up to RECONNECT_MAX_MS, and starts over after a success', async () => {
    const pool = await startedPool();
    db.onConnect = () => new Error('could not connect to server: No such file or directory');
    const lostAt = Date.now();
    db.clients[0].lose(new Error(CONNECTION_CLOSED));
    await advance(12_000);
    const gaps = db.connectedAt.slice(1).map((t, i, all) => t - (i === 0 ? lostAt : all[i - 1]));
    const expected = [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000];
    assert.equal(RECONNECT_FIRST_MS, expected[0]);
    assert.equal(RECONNECT_MAX_MS, 2000);
    assert.deepEqual(gaps.slice(0, expected.length), expected);
    assertUnavailable(request(pool), 'database unavailable');

    db.onConnect = () => undefined; // the database is back
    await advance(RECONNECT_MAX_MS);
    assert.equal(db.open.length, 1);
    assert.equal(logged.at(-1), 'database connection restored (1/1)');
    const served = request(pool);
    db.open[0].answer();
    assert.equal(served.err, undefined);

    const before = db.clients.length;
    db.open[0].lose(new Error(CONNECTION_CLOSED));
    await advance(RECONNECT_FIRST_MS);
    assert.equal(db.clients.length, before + 1, 'the next loss is retried after RECONNECT_FIRST_MS again');
  });

  test('one reconnect per lost connection: the pool never opens more than its size', async () => {
    const pool = await startedPool({ size: 3 });
    for (const client of db.open) client.lose(new Error(CONNECTION_CLOSED));
    await advance(1000);
    assert.equal(db.open.length, 3);
    assert.equal(db.clients.length, 6);
    assert.equal(logged.filter((m) => m.startsWith('database connection restored')).length, 3);
    assert.ok(logged.includes('database connection restored (3/3)'));
    request(pool);
    assert.equal(db.busy.length, 1);
  });

  test('a reconnect still pending when start() has filled the pool opens nothing', async () => {
    const pool = await startedPool();
    db.clients[0].lose(new Error(CONNECTION_CLOSED));
    await pool.start();
    assert.equal(db.open.length, 1);
    await advance(RECONNECT_FIRST_MS * 2);
    assert.equal(db.clients.length, 2, 'the lost one and the one start() opened');
    assert.ok(!logged.some((m) => m.startsWith('database connection restored')));
  });
});

// ---------------------------------------------------------------------------------------------
// Start-up: the database down at start vs later
// ---------------------------------------------------------------------------------------------

describe('startPool', () => {
  test('retries a database that is not ready yet every STARTUP_RETRY_MS, logging why', async () => {
    let refusals = 3;
    db.onConnect = () => (refusals-- > 0 ? new Error('could not connect to server: Connection refused\n\tIs the server running locally?') : undefined);
    const pool = makePool();
    const started = startPool(pool, 30_000, (m) => logged.push(m));
    await advance(STARTUP_RETRY_MS * 3);
    await started;
    assert.deepEqual(db.connectedAt, [0, 500, 1000, 1500]);
    assert.deepEqual(logged, Array(3).fill('database not ready (could not connect to server: Connection refused); retrying'));
    assert.equal(db.open.length, 1);
  });

  test('gives up after its timeout with the last error', async () => {
    db.onConnect = () => new Error('the database system is starting up');
    const pool = makePool();
    const started = startPool(pool, 1200, () => {});
    const failed = assert.rejects(started, /starting up/);
    await advance(2000);
    await failed;
    assert.deepEqual(db.connectedAt, [0, 500, 1000, 1500], 'the attempt past the deadline is the last');
  });

  test('fails at once on what retrying cannot fix', async () => {
    db.onConnect = () => new Error('FATAL:  password authentication failed for user "postgres"');
    const pool = makePool();
    await assert.rejects(startPool(pool, 30_000, (m) => logged.push(m)), /password authentication failed/);
    assert.equal(db.clients.length, 1);
    assert.deepEqual(logged, []);
  });

  test('isTransientStartupError: not there yet, starting, recovering or without procedures.sql is retried; bad conninfo or credentials are not', () => {
    for (const message of [
      'could not connect to server: No such file or directory',
      'connection to server on socket "/run/x/.s.PGSQL.5432" failed: Connection refused',
      'FATAL:  the database system is starting up',
      'FATAL:  the database system is in recovery mode',
      'function post_transaction(integer, integer, character, character varying) does not exist',
      CONNECTION_CLOSED,
    ]) {
      assert.ok(isTransientStartupError(new Error(message)), message);
    }
    for (const message of ['missing "=" after "nonsense" in connection info string', 'FATAL:  password authentication failed for user "x"', 'FATAL:  role "x" is not permitted to log in']) {
      assert.ok(!isTransientStartupError(new Error(message)), message);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The handler's side: Unavailable is a 503
// ---------------------------------------------------------------------------------------------

interface Sent {
  status: number;
  headers: http.OutgoingHttpHeaders;
  body: string;
}

/** Runs the handler on a GET with stand-ins for the request and the response. */
function get(handler: http.RequestListener, url: string): Sent[] {
  const sent: Sent[] = [];
  let status = 0;
  let headers: http.OutgoingHttpHeaders = {};
  const res = {
    headersSent: false,
    destroyed: false,
    writeHead(s: number, h: http.OutgoingHttpHeaders) {
      status = s;
      headers = h;
      this.headersSent = true;
    },
    end(body: string) {
      sent.push({ status, headers, body });
    },
  };
  handler({ method: 'GET', url, headers: {} } as http.IncomingMessage, res as unknown as http.ServerResponse);
  return sent;
}

describe('createHandler with the pool', () => {
  test('Unavailable becomes 503 with Retry-After; another database error is a logged 500 that hides its text', async () => {
    const pool = makePool({ size: 1, maxQueue: 0 });
    const handlerLog: string[] = [];
    const handler = createHandler(pool, (m) => handlerLog.push(m));
    const unavailable = get(handler, '/clientes/1/extrato');
    assert.deepEqual(unavailable, [
      {
        status: 503,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(errorBody('service unavailable, try again')), 'Retry-After': '1' },
        body: errorBody('service unavailable, try again'),
      },
    ]);
    assert.deepEqual(handlerLog, [], 'a 503 is not logged per request');

    await pool.start();
    const failed = get(handler, '/clientes/1/extrato');
    assert.equal(failed.length, 0, 'waiting for the database');
    assert.equal(get(handler, '/clientes/2/extrato')[0].status, 503, 'past MAX_QUEUE=0');
    db.clients[0].fail(new Error('ERROR:  secret detail'));
    assert.equal(failed[0].status, 500);
    assert.equal(failed[0].body, errorBody('internal error'));
    assert.deepEqual(handlerLog, ['database error: ERROR:  secret detail']);

    const served = get(handler, '/clientes/1/extrato');
    db.clients[0].answer([['{"saldo" : {}}']]);
    assert.deepEqual([served[0].status, served[0].body], [200, '{"saldo" : {}}']);
  });
});

// ---------------------------------------------------------------------------------------------
// end()
// ---------------------------------------------------------------------------------------------

describe('Pool: end', () => {
  test('closes idle connections at once, and a busy one once its call is answered', async () => {
    const pool = await startedPool({ size: 3 });
    const inFlight = request(pool);
    const [busy] = db.busy;
    pool.end();
    assert.deepEqual(db.clients.map((c) => c.ended), db.clients.map((c) => c !== busy), 'the idle ones are closed');
    busy.answer([['done']]);
    assert.deepEqual(inFlight, { calls: 1, err: undefined, rows: [['done']] }, 'the call in flight gets its answer');
    assert.ok(busy.ended, 'then its connection is closed');
    assertUnavailable(request(pool), 'database unavailable');
  });

  test('queued requests fail with "shutting down"; no reconnect afterwards', async () => {
    const pool = await startedPool({ size: 1, maxQueue: 4 });
    request(pool);
    const queued = [request(pool), request(pool)];
    pool.end();
    for (const outcome of queued) assertUnavailable(outcome, 'shutting down');
    db.clients[0].lose(new Error(CONNECTION_CLOSED));
    await advance(RECONNECT_MAX_MS * 2);
    assert.equal(db.clients.length, 1, 'no new connection after end');
  });

  test('a connection still opening at end() is closed when it opens, and start() rejects', async () => {
    const pool = makePool();
    const started = pool.start();
    pool.end();
    await assert.rejects(started, /pool closed/);
    assert.ok(db.clients[0].ended);
  });
});
