// Crébitos API: one instance of the Rinha de Backend 2024/Q1 service.
//
// node:http with hand-rolled routing and body parsing; each request is one prepared call to a
// PostgreSQL function (procedures.sql) through libpq (pg-native). The database answers with the
// response body, so this file only routes, validates, forwards and copies bytes.
//
// Reading order. The contract: configuration, the two database calls and their statuses, body
// validation, routes and handlers, responses. Then the machinery: the connection pool, start-up,
// drain. Last, the byte-level JSON scanner behind body validation. Wire fields are Portuguese,
// as the contest defines them; everything else is English. The pure parts and the pool are
// exported for the tests.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/** Largest value an `integer` column holds: the cap for ids and for `valor`. */
export const MAX_INT4 = 2147483647;
/** `descricao` length in code points, as varchar(10) counts in a UTF8 database. */
export const MAX_DESCRIPTION = 10;
/** A valid body is under 100 bytes; this leaves room for whitespace and unknown keys. */
export const MAX_BODY_BYTES = 4096;

export interface Config {
  /** Unix socket to listen on; when empty, `port` on `host` is used instead. */
  socketPath: string;
  port: number;
  host: string;
  /** libpq connection string, e.g. "host=/run/crebitos port=5432 user=postgres dbname=postgres". */
  database: string;
  /** Connections per instance. Each request holds one for a single round trip. */
  poolSize: number;
  /**
   * Requests allowed to wait for a connection before new ones get 503: overload gets fast,
   * explicit refusals rather than a queue that only grows. Behind nginx (max_conns=128 per
   * instance) it is never reached; it bounds clients that connect to the socket directly.
   */
  maxQueue: number;
  /** A database call unanswered for this long means a dead connection: 503, and reconnect. */
  queryTimeoutMs: number;
  /** How long SIGTERM waits for in-flight requests before closing what is left. */
  drainMs: number;
  /** How long start-up keeps retrying a database that is not ready yet. */
  startupTimeoutMs: number;
  /** Requests the instance serves itself before listening, to warm the JIT (see warmUp). */
  warmUpRequests: number;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const int = (name: string, fallback: number, min: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };
  return {
    socketPath: env.SOCKET_PATH ?? '',
    port: int('PORT', 3000, 0),
    host: env.HOST || '0.0.0.0',
    database: env.DATABASE_URL || 'host=/var/run/postgresql user=postgres dbname=postgres',
    poolSize: int('POOL_SIZE', 3, 1),
    maxQueue: int('MAX_QUEUE', 256, 0),
    queryTimeoutMs: int('QUERY_TIMEOUT_MS', 2000, 100),
    drainMs: int('DRAIN_MS', 5000, 0),
    startupTimeoutMs: int('STARTUP_TIMEOUT_MS', 30000, 0),
    warmUpRequests: int('WARM_UP_REQUESTS', 4000, 0),
  };
}

// ---------------------------------------------------------------------------------------------
// The two database calls and their statuses
// ---------------------------------------------------------------------------------------------

/**
 * The only SQL this service sends after start-up, prepared on every connection. Input only
 * ever travels as parameters. Both functions return the response body PostgreSQL built.
 */
export const STATEMENTS = {
  transaction: { text: 'SELECT status, body FROM post_transaction($1, $2, $3, $4)', params: 4 },
  statement: { text: 'SELECT account_statement($1)', params: 1 },
} as const;
export type StatementName = keyof typeof STATEMENTS;

/** HTTP status for each post_transaction status (see procedures.sql). */
export const TRANSACTION_STATUS: Record<string, number> = {
  ok: 200,
  over_limit: 422,
  overflow: 422,
  no_account: 404,
};
const TRANSACTION_ERROR: Record<string, string> = {
  over_limit: 'debit would exceed the limit',
  overflow: 'credit would overflow the balance',
  no_account: 'client not found',
};

// ---------------------------------------------------------------------------------------------
// Body validation
// ---------------------------------------------------------------------------------------------

export interface Transaction {
  valor: number;
  tipo: 'c' | 'd';
  descricao: string;
}

/** Why a body was refused: 400 for bytes that are not JSON, 422 for JSON that is not a valid transaction. */
export interface Rejection {
  status: 400 | 413 | 422;
  error: string;
}

export const isRejection = (value: Transaction | Rejection): value is Rejection => 'status' in value;

/** Parses and validates a POST /clientes/:id/transacoes body. */
export function parseTransaction(body: Buffer): Transaction | Rejection {
  if (body.length > MAX_BODY_BYTES) return { status: 413, error: `body larger than ${MAX_BODY_BYTES} bytes` };
  // The scanner (last section) checks the syntax and leaves the last value of each known field
  // in valorKind/valorValue, tipoKind/tipoValue and descricaoKind/descricaoValue.
  const scanned = scanBody(body);
  if (scanned !== true) return scanned || { status: 422, error: 'body must be a JSON object' };
  if (valorKind !== Kind.Integer || valorValue === 0) {
    return { status: 422, error: `valor must be an integer from 1 to ${MAX_INT4}` };
  }
  if (tipoKind !== Kind.String || (tipoValue !== 'c' && tipoValue !== 'd')) {
    return { status: 422, error: 'tipo must be "c" or "d"' };
  }
  if (descricaoKind !== Kind.String) return { status: 422, error: 'descricao must be a string' };
  const problem = descriptionProblem(descricaoValue);
  if (problem) return { status: 422, error: problem };
  return { valor: valorValue, tipo: tipoValue, descricao: descricaoValue };
}

/**
 * Counts code points of a valid description: 1..10, no lone surrogates (not encodable in
 * UTF-8) and no NUL (PostgreSQL text cannot hold it). Returns an error message or ''.
 */
export function descriptionProblem(text: string): string {
  let points = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0) return 'descricao must not contain NUL';
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return 'descricao must be valid Unicode';
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return 'descricao must be valid Unicode';
    }
    points++;
  }
  if (points < 1 || points > MAX_DESCRIPTION) return `descricao must have 1 to ${MAX_DESCRIPTION} characters`;
  return '';
}

// ---------------------------------------------------------------------------------------------
// Routes and handlers
// ---------------------------------------------------------------------------------------------

export type Route =
  | { name: 'transaction' | 'statement'; id: number }
  | { name: 'not_found' }
  | { name: 'method_not_allowed'; allow: string };

const PREFIX = '/clientes/';
const NOT_FOUND: Route = { name: 'not_found' };
const ONLY_POST: Route = { name: 'method_not_allowed', allow: 'POST' };
const ONLY_GET: Route = { name: 'method_not_allowed', allow: 'GET' };

/**
 * Matches `/clientes/{id}/transacoes` and `/clientes/{id}/extrato`, with an optional query
 * string. The id is canonical decimal (no sign, no leading zero) within the int4 range; any
 * other path is not found, so it never reaches the database.
 */
export function route(method: string, url: string): Route {
  if (!url.startsWith(PREFIX)) return NOT_FOUND;
  let i = PREFIX.length;
  const idStart = i;
  while (i < url.length && url.charCodeAt(i) >= DIGIT_0 && url.charCodeAt(i) <= DIGIT_9) i++;
  const digits = i - idStart;
  if (digits === 0 || digits > 10 || url.charCodeAt(idStart) === DIGIT_0) return NOT_FOUND;
  const id = Number(url.slice(idStart, i));
  if (id > MAX_INT4) return NOT_FOUND;
  const query = url.indexOf('?', i);
  const rest = query < 0 ? url.slice(i) : url.slice(i, query);
  if (rest === '/transacoes') return method === 'POST' ? { name: 'transaction', id } : ONLY_POST;
  if (rest === '/extrato') return method === 'GET' ? { name: 'statement', id } : ONLY_GET;
  return NOT_FOUND;
}

export function createHandler(pool: Pool, log: (message: string) => void = console.error) {
  // A bug must cost one request a 500, never the process: every entry point runs guarded,
  // including the database callbacks, which run outside the request's call stack.
  const guarded = (res: http.ServerResponse, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      log(`request failed: ${(err as Error).stack ?? err}`);
      sendError(res, 500, 'internal error');
    }
  };

  function transaction(res: http.ServerResponse, id: number, body: Buffer): void {
    const parsed = parseTransaction(body);
    if (isRejection(parsed)) return sendError(res, parsed.status, parsed.error);
    pool.execute('transaction', [String(id), String(parsed.valor), parsed.tipo, parsed.descricao], (err, rows) =>
      guarded(res, () => {
        if (err) return sendDatabaseError(res, err, log);
        const [status, responseBody] = rows[0] as [string, string | null];
        const code = TRANSACTION_STATUS[status];
        if (code === 200 && responseBody) return send(res, 200, responseBody);
        if (code) return sendError(res, code, TRANSACTION_ERROR[status]);
        sendDatabaseError(res, new Error(`unexpected transaction status ${status}`), log);
      }),
    );
  }

  function statement(res: http.ServerResponse, id: number): void {
    pool.execute('statement', [String(id)], (err, rows) =>
      guarded(res, () => {
        if (err) return sendDatabaseError(res, err, log);
        const body = rows[0]?.[0] as string | null;
        if (body) send(res, 200, body);
        else sendError(res, 404, 'client not found');
      }),
    );
  }

  return function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    guarded(res, () => {
      const matched = route(req.method ?? '', req.url ?? '');
      switch (matched.name) {
        case 'statement':
          // A GET body, if any, is drained and ignored by node:http.
          return statement(res, matched.id);
        case 'transaction':
          return readBody(req, res, (body) => guarded(res, () => transaction(res, matched.id, body)));
        case 'method_not_allowed':
          return sendError(res, 405, 'method not allowed', { Allow: matched.allow });
        default:
          return sendError(res, 404, 'not found');
      }
    });
  };
}

const EMPTY = Buffer.alloc(0);

/** Collects the body up to MAX_BODY_BYTES; a larger one gets 413 (see tooLarge). */
function readBody(req: http.IncomingMessage, res: http.ServerResponse, done: (body: Buffer) => void): void {
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_BODY_BYTES) return tooLarge(req, res, 0);
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  let size = 0;
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      return tooLarge(req, res, size);
    }
    if (!first) first = chunk;
    else (chunks ??= [first]).push(chunk);
  };
  const onEnd = (): void => done(chunks ? Buffer.concat(chunks, size) : (first ?? EMPTY));
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', () => res.destroy());
}

/** Bytes of an oversized body read and thrown away before giving up on the connection. */
const MAX_DISCARD_BYTES = 1024 * 1024;

/**
 * Answers 413 at once but keeps reading (and discarding) the rest of the body. Closing the
 * connection instead would break nginx's write of a body it is still streaming: it would log a
 * broken pipe, answer 502 and mark this instance as failed. Only an endless body is cut off.
 */
function tooLarge(req: http.IncomingMessage, res: http.ServerResponse, alreadyRead: number): void {
  let discarded = alreadyRead;
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > MAX_DISCARD_BYTES) req.destroy();
  });
  sendError(res, 413, `body larger than ${MAX_BODY_BYTES} bytes`);
}

/**
 * Node's own answer to unparseable HTTP (bad Content-Length, bad request line), in JSON like
 * ours. When the bad bytes follow a request pipelined on the same connection, that request's
 * answer is still being produced: it goes out first, then the 400, then the connection closes.
 */
function onClientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
  const body = errorBody('malformed HTTP request');
  const answer = (): void => {
    if (socket.writable) socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  };
  // node:http keeps the response being written on the socket (not a public field). If its
  // request arrived whole, the bad bytes belong to a later request: wait for that answer. If
  // not, the bad bytes are this request's own body (e.g. broken chunking): answer now.
  const pending = (socket as unknown as { _httpMessage?: http.ServerResponse | null })._httpMessage;
  if (pending && !pending.writableEnded && pending.req.complete) pending.once('finish', answer);
  else answer();
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/** JSON body for an error; the contest ignores 4xx bodies, people reading curl output do not. */
export function errorBody(message: string): string {
  return `{"error":${JSON.stringify(message)}}`;
}

/**
 * Set at SIGTERM (see drainOnSignals). Every response then carries `Connection: close`, so
 * nginx stops reusing this instance's keep-alive connections after their current request
 * instead of losing a request sent on a connection we are about to close.
 */
let draining = false;

function send(res: http.ServerResponse, status: number, body: string, extra?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...extra };
  if (draining) headers.Connection = 'close';
  res.writeHead(status, headers);
  res.end(body);
}

function sendError(res: http.ServerResponse, status: number, message: string, extra?: Record<string, string>): void {
  send(res, status, errorBody(message), extra);
}

/** Maps a database failure to a response: 503 when the pool cannot serve now; never exposes the error text. */
function sendDatabaseError(res: http.ServerResponse, err: Error, log: (m: string) => void): void {
  if (err instanceof Unavailable) return sendError(res, 503, 'service unavailable, try again', { 'Retry-After': '1' });
  log(`database error: ${err.message.trim()}`);
  sendError(res, 500, 'internal error');
}

// ---------------------------------------------------------------------------------------------
// The connection pool
// ---------------------------------------------------------------------------------------------

export type Rows = unknown[][];
export type Done = (err: Error | undefined, rows: Rows) => void;

/**
 * What the pool needs from one database session. It sends one call at a time. Each callback is
 * called at most once, and may never be called when the connection dies: the client then
 * reports the loss through the `lost` listener it was made with, or the watchdog notices.
 */
export interface DatabaseClient {
  connect(conninfo: string, done: (err?: Error) => void): void;
  prepare(name: string, text: string, nParams: number, done: (err?: Error) => void): void;
  execute(name: string, params: string[], done: (err: Error | undefined, rows: Rows) => void): void;
  /** A statement without parameters: the warm-up's BEGIN and ROLLBACK. */
  query(text: string, done: (err?: Error) => void): void;
  /** Closes the session, whatever state it is in. */
  end(): void;
}

/** Makes the client of one connection; `lost` is for a connection that breaks, busy or idle. */
export type ClientFactory = (lost: (err: Error) => void) => DatabaseClient;

// pg-native ships no types; this is the part of its API used here.
interface PgNativeClient extends DatabaseClient {
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'notification', listener: () => void): void;
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const PgNative = require('pg-native') as new (options: { arrayMode: boolean }) => PgNativeClient;

/** The real client: libpq through pg-native, rows as arrays. */
export const pgNativeClient: ClientFactory = (lost) => {
  const client = new PgNative({ arrayMode: true });
  let ended = false;
  // pg-native reports a broken socket only as an 'error' event; the pending callback is never
  // called.
  client.on('error', lost);
  return {
    connect: (conninfo, done) =>
      client.connect(conninfo, (err) => {
        // Listening for notifications keeps pg-native reading the socket while the connection
        // is idle, so a backend that was terminated or crashed is noticed at once, not by the
        // next request (which would otherwise wait for the watchdog).
        if (!err && !ended) client.on('notification', () => {});
        done(err);
      }),
    prepare: (name, text, nParams, done) => client.prepare(name, text, nParams, done),
    execute: (name, params, done) => client.execute(name, params, done),
    query: (text, done) => client.query(text, done),
    end: () => {
      ended = true;
      client.end();
      keepUntilClosed(client);
    },
  };
};

/**
 * Ended clients, kept reachable until libuv has closed their socket's poll handle. The libpq
 * addon's end() (Connection::Finish) calls uv_close() on the uv_poll_t that lives inside its
 * Connection object and, in the same call, lets the object be garbage collected. uv_close only
 * queues the handle; libuv finishes closing it in the last phase of the loop iteration. A GC before
 * that phase would delete the Connection, handle included, and libuv would then finish closing
 * freed memory: a process abort (`uv__finish_close: Assertion 'handle->flags & UV_HANDLE_CLOSING'
 * failed`) or a silent corruption, depending on what reused it (loadtest/chaos/libpq-abort-repro.ts
 * shows both paths, the pool's replacement of a lost connection included; docs/reliability.md).
 */
const closingClients = new Set<object>();

function keepUntilClosed(client: object): void {
  closingClients.add(client);
  // Two turns of the check phase: the first setImmediate may still run before this iteration's
  // close phase (end() from a timer or an I/O callback); one scheduled from the check phase runs
  // in the next iteration, after that close phase, whichever phase end() was called from (a handle
  // closed from a close callback is finished in the next iteration's close phase, which also
  // comes before the second check phase).
  setImmediate(() => setImmediate(() => closingClients.delete(client)));
}

/** Raised for requests the pool cannot serve now (answered 503): no live connection, a full queue, a lost connection. */
export class Unavailable extends Error {}

export interface PoolOptions {
  /** libpq connection string. */
  conninfo: string;
  /** Connections to keep open. */
  size: number;
  /** Requests allowed to wait for a connection; past it they fail at once with Unavailable. */
  maxQueue: number;
  /** A call unanswered this long fails with Unavailable and its connection is replaced. */
  queryTimeoutMs: number;
  log?: (message: string) => void;
  /** Default pgNativeClient. */
  createClient?: ClientFactory;
}

/** Delay before reopening a lost connection; it doubles after each failed attempt, up to the maximum. */
export const RECONNECT_FIRST_MS = 50;
export const RECONNECT_MAX_MS = 2000;

interface Job {
  name: StatementName;
  params: string[];
  done: Done;
}

class Connection {
  readonly client: DatabaseClient;
  /** The job whose result this connection is waiting for, and when it was sent. */
  job: Job | undefined;
  jobStarted = 0;
  /** Set while connecting, preparing and warming up: a failure then fails the open, not a job. */
  opening: ((err?: Error) => void) | undefined;
  dead = false;

  constructor(
    private readonly pool: Pool,
    createClient: ClientFactory,
  ) {
    this.client = createClient((err) => this.pool.lost(this, err));
  }

  /**
   * Connects, prepares every statement, and runs each once so the first real request finds
   * its plans cached. One call at a time, hence the chain of steps.
   */
  open(conninfo: string, done: (err?: Error) => void): void {
    this.opening = done;
    const steps: ((next: (err?: Error) => void) => void)[] = [
      (next) => this.client.connect(conninfo, next),
      ...(Object.keys(STATEMENTS) as StatementName[]).map(
        (name) => (next: (err?: Error) => void) => this.client.prepare(name, STATEMENTS[name].text, STATEMENTS[name].params, next),
      ),
      (next) => this.client.execute('statement', ['1'], (err) => next(err)),
      // plpgsql plans its statements on a session's first call. Call it inside a transaction
      // that is rolled back, so nothing changes (the ledger's identity skips one value).
      (next) => this.client.query('BEGIN', next),
      (next) => this.client.execute('transaction', ['1', '1', 'c', 'warm-up'], (err) => this.client.query('ROLLBACK', (rollbackErr) => next(err ?? rollbackErr))),
    ];
    const step = (err?: Error): void => {
      if (this.opening !== done) return; // already failed by a lost connection
      const next = steps.shift();
      if (err || !next) {
        this.opening = undefined;
        return done(err && toError(err));
      }
      next(step);
    };
    step();
  }

  run(job: Job): void {
    this.job = job;
    this.jobStarted = Date.now();
    this.client.execute(job.name, job.params, (err, rows) => this.finish(job, err && toError(err), rows));
  }

  private finish(job: Job, error: Error | undefined, rows: Rows): void {
    if (this.job !== job) return; // already failed as lost, by the client or the watchdog
    if (error && isConnectionError(error)) return this.pool.lost(this, error);
    this.job = undefined;
    try {
      job.done(error, rows);
    } finally {
      this.pool.release(this);
    }
  }
}

/** pg-native reports some failures as plain strings. */
function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** libpq's wording when the server went away (shutdown, crash, network) rather than a query failing. */
function isConnectionError(err: Error): boolean {
  return /terminating connection|server closed the connection|no connection to the server|connection to server|could not send data|could not receive data|Unable to set non-blocking/i.test(
    err.message,
  );
}

/**
 * Errors worth retrying at start-up: the server is not there yet, is starting or recovering,
 * or has not loaded procedures.sql yet. A malformed conninfo or a wrong user is not retried.
 */
export function isTransientStartupError(err: Error): boolean {
  return (
    isConnectionError(err) ||
    /could not connect|No such file or directory|Connection refused|starting up|shutting down|recovery mode|does not exist/i.test(err.message)
  );
}

/**
 * A fixed number of connections, each with the statements prepared. A request holds one for a
 * single call; when all are busy it waits in a bounded queue. Lost connections are replaced in
 * the background, with backoff, while the others keep serving.
 */
export class Pool {
  private readonly conninfo: string;
  private readonly size: number;
  private readonly maxQueue: number;
  private readonly queryTimeoutMs: number;
  private readonly log: (message: string) => void;
  private readonly createClient: ClientFactory;

  private readonly idle: Connection[] = [];
  private readonly queue: Job[] = [];
  private live = 0;
  private closed = false;
  private reconnectDelay = RECONNECT_FIRST_MS;

  private readonly busyConnections = new Set<Connection>();
  private readonly watchdog: NodeJS.Timeout;

  constructor(options: PoolOptions) {
    this.conninfo = options.conninfo;
    this.size = options.size;
    this.maxQueue = options.maxQueue;
    this.queryTimeoutMs = options.queryTimeoutMs;
    this.log = options.log ?? (() => {});
    this.createClient = options.createClient ?? pgNativeClient;
    // pg-native does not always report a connection that died: when the server goes away while
    // a query is being sent, neither the callback nor an 'error' event ever comes. One timer for
    // the whole pool, rather than one per request, turns that into a fast 503 and a reconnect
    // instead of a hung request.
    this.watchdog = setInterval(() => this.expireStuck(), Math.min(500, this.queryTimeoutMs));
    this.watchdog.unref();
  }

  private expireStuck(): void {
    const now = Date.now();
    for (const conn of this.busyConnections) {
      if (conn.job && now - conn.jobStarted > this.queryTimeoutMs) this.lost(conn, new Error(`no answer from the database after ${now - conn.jobStarted} ms`));
    }
  }

  /** Opens the missing connections (prepared and warm); rejects if any fails. */
  async start(): Promise<void> {
    const opened = await Promise.allSettled(Array.from({ length: this.size - this.live }, () => this.openOne()));
    const failure = opened.find((result) => result.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
  }

  private openOne(): Promise<void> {
    return new Promise((resolve, reject) => {
      const conn = new Connection(this, this.createClient);
      conn.open(this.conninfo, (err) => {
        if (err || this.closed) {
          conn.dead = true;
          conn.client.end();
          return reject(err ?? new Error('pool closed'));
        }
        this.live++;
        this.reconnectDelay = RECONNECT_FIRST_MS;
        this.release(conn);
        resolve();
      });
    });
  }

  execute(name: StatementName, params: string[], done: Done): void {
    const job: Job = { name, params, done };
    const conn = this.idle.pop();
    if (conn) return this.dispatch(conn, job);
    if (this.live === 0 || this.closed) return done(new Unavailable('database unavailable'), []);
    if (this.queue.length >= this.maxQueue) return done(new Unavailable('too many requests queued'), []);
    this.queue.push(job);
  }

  private dispatch(conn: Connection, job: Job): void {
    this.busyConnections.add(conn);
    conn.run(job);
  }

  /** A connection is free: it takes the oldest queued job, or waits idle. */
  release(conn: Connection): void {
    this.busyConnections.delete(conn);
    if (conn.dead) return;
    if (this.closed) {
      // A call that was in flight at end() has been answered; nothing else will use this one.
      conn.dead = true;
      conn.client.end();
      return;
    }
    const next = this.queue.shift();
    if (next) return this.dispatch(conn, next);
    this.idle.push(conn);
  }

  /** A connection broke (or stopped answering): fail what it held and replace it. */
  lost(conn: Connection, err: Error): void {
    if (conn.dead) return;
    if (conn.opening) {
      // Never counted as live: just fail the open (openOne ends the client).
      const failOpen = conn.opening;
      conn.opening = undefined;
      return failOpen(err);
    }
    conn.dead = true;
    this.live--;
    this.busyConnections.delete(conn);
    const idleAt = this.idle.indexOf(conn);
    if (idleAt >= 0) this.idle.splice(idleAt, 1);
    const job = conn.job;
    conn.job = undefined;
    conn.client.end();
    this.log(`database connection lost: ${err.message.trim()}`);
    if (job) job.done(new Unavailable('database connection lost'), []);
    if (this.live === 0) {
      // Nobody can serve the queue now; fail it fast rather than let it hang.
      for (const queued of this.queue.splice(0)) queued.done(new Unavailable('database unavailable'), []);
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
    setTimeout(() => {
      if (this.closed || this.live >= this.size) return;
      this.openOne().then(
        () => this.log(`database connection restored (${this.live}/${this.size})`),
        () => this.scheduleReconnect(),
      );
    }, delay).unref();
  }

  /** Fails the queue, closes idle connections now and busy ones once answered; no more reconnects. */
  end(): void {
    this.closed = true;
    clearInterval(this.watchdog);
    for (const job of this.queue.splice(0)) job.done(new Unavailable('shutting down'), []);
    for (const conn of this.idle.splice(0)) {
      conn.dead = true;
      conn.client.end();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Pause between start-up attempts while the database is not ready. */
export const STARTUP_RETRY_MS = 500;

/**
 * Opens the pool. Under docker compose the API may start while PostgreSQL is still starting or
 * loading procedures.sql: retry what can get better, for up to `timeoutMs`, and fail at once on
 * what cannot (a bad conninfo).
 */
export async function startPool(pool: Pool, timeoutMs: number, log: (message: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await pool.start();
    } catch (err) {
      if (!isTransientStartupError(err as Error) || Date.now() >= deadline) throw err;
      log(`database not ready (${(err as Error).message.trim().split('\n')[0]}); retrying`);
      await sleep(STARTUP_RETRY_MS);
    }
  }
}

/** An HTTP server as the service runs it: its timeouts and its answer to unparseable HTTP. */
function serviceServer(handler: http.RequestListener): http.Server {
  const server = http.createServer(handler);
  // Keep-alive from nginx should outlive nginx's own idle timeout, so the proxy, not us,
  // decides when an upstream connection closes (avoids a race on reused sockets).
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.on('clientError', onClientError);
  return server;
}

/** A listening server's errors are logged at most once per this many ms; the rest are counted. */
export const SERVER_ERROR_INTERVAL_MS = 1000;
/** More errors than this within one interval is a storm that this process cannot serve through. */
export const SERVER_ERROR_STORM = 100;

/**
 * After listen, a server emits 'error' when accepting a connection fails in a way libuv does not
 * absorb itself (out of file descriptors, when its spare-descriptor trick cannot help). Without a
 * listener that error would crash the process and every request in flight, so log it and go on:
 * the server keeps listening. At most one line per SERVER_ERROR_INTERVAL_MS, and the count of the
 * others when the interval ends. But libuv retries a failed accept at once, so an error that
 * persists comes back in a tight loop that starves the event loop; past SERVER_ERROR_STORM errors
 * in one interval, exit, and let the restart policy start a clean process.
 */
export function keepServingThroughErrors(server: net.Server, log: (message: string) => void, exit: () => void = () => process.exit(1)): void {
  let intervalStart = -Infinity;
  let inInterval = 0;
  let lastMessage = '';
  let countLater: NodeJS.Timeout | undefined;
  server.on('error', (err: Error) => {
    const now = Date.now();
    if (now - intervalStart >= SERVER_ERROR_INTERVAL_MS) {
      intervalStart = now;
      inInterval = 0;
    }
    inInterval++;
    lastMessage = err.message;
    if (inInterval > SERVER_ERROR_STORM) {
      log(`server error (${err.message}): over ${SERVER_ERROR_STORM} within ${SERVER_ERROR_INTERVAL_MS} ms; exiting for a restart`);
      exit();
    } else if (inInterval === 1) {
      log(`server error (${err.message}); still serving`);
    } else {
      countLater ??= setTimeout(() => {
        countLater = undefined;
        log(`server errors: ${inInterval - 1} more within ${SERVER_ERROR_INTERVAL_MS} ms, the last (${lastMessage}); still serving`);
      }, intervalStart + SERVER_ERROR_INTERVAL_MS - now).unref();
    }
  });
}

/** Listens, or rejects with the error that prevented it; no listener of its own is left behind. */
function listenOnce(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Longest unix socket path Linux binds (sun_path is 108 bytes with its NUL); Node cuts longer ones. */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Where the warm-up listens: the same kind of socket as the service's. A unix socket's connections
 * are other objects than TCP's all the way up node:http's stream code, so code optimised on one
 * deoptimises on the other (a TCP warm-up left 32 deoptimisations for the first 10 s of load on the
 * unix socket, one run with --trace-deopt). The warm-up is only an optimisation: when its socket
 * cannot be used (a path too long, a directory it may not write), it warms up on a loopback port.
 */
async function listenForWarmUp(server: http.Server, socketPath: string, log: (message: string) => void): Promise<{ socketPath: string } | { host: string; port: number }> {
  if (socketPath) {
    const path = `${socketPath}.warm-up`;
    try {
      if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) throw new Error(`the path is longer than ${MAX_SOCKET_PATH_BYTES} bytes`);
      // A warm-up cut short (a kill within its seconds) leaves the file behind.
      fs.rmSync(path, { force: true });
      await listenOnce(server, { path });
      return { socketPath: path };
    } catch (err) {
      log(`warm-up socket ${path} unusable (${(err as Error).message}); warming up on a loopback port instead`);
    }
  }
  await listenOnce(server, { port: 0, host: '127.0.0.1' });
  return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

/** The kind of the warm-up's i-th request, in a cycle of four: statement, valid, statement, refused. */
export function warmUpRequestKind(i: number): 'statement' | 'no_account' | 'refused' {
  return i % 2 === 0 ? 'statement' : i % 4 === 1 ? 'no_account' : 'refused';
}

/** "200 x2000, 404 x1000, 422 x1000": status counts in the order of the status, as the start-up log gives them. */
export function describeStatuses(counts: Map<number, number>): string {
  return [...counts].sort(([a], [b]) => a - b).map(([status, n]) => `${status || 'no answer'} x${n}`).join(', ');
}

/**
 * The official test opens with a burst (25 concurrent debits) that would otherwise meet
 * interpreted code: node:http's parser and writer, our routing, parsing and pool. Before the real
 * socket exists, the same handler serves `count` requests (WARM_UP_REQUESTS) on a private socket
 * of the same kind (see listenForWarmUp) so V8 has optimised the whole path, the database call
 * and the status it maps to included. None changes state. Statements are reads; half the
 * POSTs are valid transactions for an account that cannot exist (the largest id; only the five
 * seeded accounts do), which the procedure answers 'no_account' without writing; the other half
 * are refused by validation (a descricao of 11 characters). One request in seven comes on a
 * connection of its own (seven, prime to the kinds' cycle of four, so every kind does): when a
 * stall makes requests pile up, nginx opens new upstream connections by the dozen, and accepting
 * one should not be the code V8 has never seen.
 */
export async function warmUp(handler: http.RequestListener, count: number, socketPath: string, log: (message: string) => void): Promise<Map<number, number>> {
  /** How many warm-up requests got each status; 0 counts those that got no complete answer. */
  const answered = new Map<number, number>();
  if (count === 0) return answered;
  // Configured as the service's server is, so that its connections are built the same way.
  const server = serviceServer(handler);
  const where = await listenForWarmUp(server, socketPath, log);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const posts = {
    no_account: { path: `/clientes/${MAX_INT4}/transacoes`, body: '{"valor": 1000, "tipo": "d", "descricao": "aquecer"}' },
    refused: { path: '/clientes/1/transacoes', body: '{"valor": 1000, "tipo": "d", "descricao": "aquecimento"}' },
  };
  const one = (i: number): Promise<number> =>
    new Promise((resolve) => {
      const kind = warmUpRequestKind(i);
      const post = kind === 'statement' ? undefined : posts[kind];
      const headers = post ? { 'content-type': 'application/json', 'content-length': post.body.length } : {};
      const req = http.request({ ...where, agent: i % 7 === 6 ? false : agent, method: post ? 'POST' : 'GET', path: post ? post.path : '/clientes/1/extrato', headers }, (res) => {
        res.resume();
        // 'close' comes after 'end', and also when the response is cut short (then incomplete):
        // either way the warm-up goes on, so start-up cannot hang on one request.
        res.on('close', () => resolve(res.complete ? (res.statusCode ?? 0) : 0));
      });
      req.on('error', () => resolve(0));
      req.end(post?.body);
    });
  // Four at a time, like a few of nginx's connections: the pool's queue is exercised too.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const status = await one(next++);
      answered.set(status, (answered.get(status) ?? 0) + 1);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  agent.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return answered;
}

/** The service's server, listening on its unix socket or TCP port, its errors handled for good. */
export async function serve(handler: http.RequestListener, config: Pick<Config, 'socketPath' | 'port' | 'host'>, log: (message: string) => void): Promise<http.Server> {
  const server = serviceServer(handler);
  if (config.socketPath) {
    fs.rmSync(config.socketPath, { force: true });
    await listenOnce(server, { path: config.socketPath });
    // nginx's workers run as another user; they need write access to connect.
    fs.chmodSync(config.socketPath, 0o666);
  } else {
    await listenOnce(server, { port: config.port, host: config.host });
  }
  keepServingThroughErrors(server, log);
  return server;
}

export async function main(config: Config = readConfig()): Promise<void> {
  const name = process.env.INSTANCE_NAME || `api:${process.pid}`;
  const log = (message: string): void => console.error(`[${name}] ${message}`);

  const pool = new Pool({ conninfo: config.database, size: config.poolSize, maxQueue: config.maxQueue, queryTimeoutMs: config.queryTimeoutMs, log });
  await startPool(pool, config.startupTimeoutMs, log);
  const handler = createHandler(pool, log);
  const warmStarted = performance.now();
  const answered = await warmUp(handler, config.warmUpRequests, config.socketPath, log);
  const warmMs = Math.round(performance.now() - warmStarted);
  // The statuses tell whether the warm-up ran the paths it is there to warm (a database that
  // answered 503 throughout would not have).
  const statuses = describeStatuses(answered);

  const server = await serve(handler, config, log);
  const address = config.socketPath || `${config.host}:${(server.address() as AddressInfo).port}`;
  log(`listening on ${address} (pool ${config.poolSize}; warmed up with ${config.warmUpRequests} requests in ${warmMs} ms${statuses && `: ${statuses}`})`);

  drainOnSignals(server, pool, config, log);
}

// ---------------------------------------------------------------------------------------------
// Drain
// ---------------------------------------------------------------------------------------------

/** How long, after SIGTERM, idle keep-alive connections stay open to answer with Connection: close. */
const DRAIN_GRACE_MS = 1000;

/**
 * On SIGTERM or SIGINT: stop accepting (nginx's new connections fail and go to the other
 * instance), answer what arrives on open connections with Connection: close, then close the
 * idle ones and wait for the busy ones, up to DRAIN_MS; then exit.
 */
function drainOnSignals(server: http.Server, pool: Pool, config: Config, log: (message: string) => void): void {
  const stop = async (signal: string): Promise<void> => {
    if (draining) return;
    draining = true;
    log(`${signal}: draining`);
    if (config.socketPath) fs.rmSync(config.socketPath, { force: true });
    // net.Server's close, not http.Server's: the latter would also drop idle keep-alive
    // connections at once, racing with a request nginx may be sending on one of them.
    const closed = new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve()));
    const deadline = sleep(config.drainMs).then(() => false);
    await Promise.race([closed, sleep(Math.min(DRAIN_GRACE_MS, config.drainMs))]);
    server.closeIdleConnections();
    if (!(await Promise.race([closed.then(() => true), deadline]))) {
      log(`drain took longer than ${config.drainMs} ms; closing remaining connections`);
      server.closeAllConnections();
    }
    pool.end();
    log('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

// ---------------------------------------------------------------------------------------------
// The JSON scanner: body bytes to the three fields, in one pass
// ---------------------------------------------------------------------------------------------

// The parser walks the raw bytes once (RFC 8259). It keeps the last value of each of the three
// known fields (duplicate keys resolve like JSON.parse: the last one wins), checks every other
// value for syntax only, and never builds objects. Malformed input throws a SyntaxError, which
// scanBody turns into a 400. It is differentially fuzzed against JSON.parse (test/fuzz.test.ts).

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a, MINUS = 0x2d, PLUS = 0x2b, DOT = 0x2e;
const OPEN_BRACE = 0x7b, CLOSE_BRACE = 0x7d, OPEN_BRACKET = 0x5b, CLOSE_BRACKET = 0x5d;
const DIGIT_0 = 0x30, DIGIT_1 = 0x31, DIGIT_9 = 0x39, LOWER_E = 0x65, UPPER_E = 0x45;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const enum Field {
  Other,
  Valor,
  Tipo,
  Descricao,
}

/** What the parser keeps of a value: its kind and, for the fields we read, its content. */
const enum Kind {
  Missing,
  Integer, // an integer literal: no fraction, no exponent
  OtherNumber,
  String,
  Other, // true, false, null, object, array
}

let src: Buffer = EMPTY;
let pos = 0;
let lastStringPlain = true;
let lastInteger = 0; // set by readNumber: the integer literal when it is in 1..MAX_INT4, else 0

// Results of the current parse, one slot per known field.
let valorKind = Kind.Missing;
let valorValue = 0; // lastInteger of the last valor
let tipoKind = Kind.Missing;
let tipoValue = '';
let descricaoKind = Kind.Missing;
let descricaoValue = '';

function startParse(body: Buffer): void {
  src = body;
  pos = 0;
  valorKind = tipoKind = descricaoKind = Kind.Missing;
  valorValue = 0;
  tipoValue = descricaoValue = '';
}

function fail(what: string): never {
  throw new SyntaxError(pos < src.length ? `${what} at byte ${pos}` : `${what} at end of body`);
}

function skipWhitespace(): void {
  while (pos < src.length) {
    const c = src[pos];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
    pos++;
  }
}

function expect(byte: number, what: string): void {
  if (src[pos] !== byte) fail(`expected ${what}`);
  pos++;
}

/** Reads a string starting at its opening quote; returns it decoded, or '' when `keep` is false. */
function readString(keep: boolean): string {
  pos++; // opening quote
  const start = pos;
  let plain = true; // ASCII without escapes: the common case, decoded with one latin1 slice
  while (true) {
    if (pos >= src.length) fail('unterminated string');
    const c = src[pos];
    if (c === QUOTE) break;
    if (c < 0x20) fail('control character in string');
    if (c === BACKSLASH) {
      plain = false;
      pos += 2; // the escape is checked in decodeEscaped
    } else {
      if (c >= 0x80) plain = false;
      pos++;
    }
  }
  const end = pos;
  pos++; // closing quote
  lastStringPlain = plain;
  if (plain) return keep ? src.toString('latin1', start, end) : '';
  return decodeEscaped(start, end, keep);
}

function hexDigit(c: number): number {
  if (c >= DIGIT_0 && c <= DIGIT_9) return c - DIGIT_0;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** Decodes a string body with escapes or non-ASCII bytes; raw bytes must be valid UTF-8. */
function decodeEscaped(start: number, end: number, keep: boolean): string {
  let out = '';
  let runStart = start;
  const flushRun = (runEnd: number): void => {
    if (runEnd === runStart) return;
    let text: string;
    try {
      text = strictUtf8.decode(src.subarray(runStart, runEnd));
    } catch {
      pos = runStart;
      fail('invalid UTF-8 in string');
    }
    if (keep) out += text;
  };
  let i = start;
  while (i < end) {
    if (src[i] !== BACKSLASH) {
      i++;
      continue;
    }
    flushRun(i);
    const e = src[i + 1];
    let unit: number;
    switch (e) {
      case QUOTE: unit = 0x22; break;
      case BACKSLASH: unit = 0x5c; break;
      case 0x2f: unit = 0x2f; break; // '/'
      case 0x62: unit = 0x08; break; // 'b'
      case 0x66: unit = 0x0c; break; // 'f'
      case 0x6e: unit = 0x0a; break; // 'n'
      case 0x72: unit = 0x0d; break; // 'r'
      case 0x74: unit = 0x09; break; // 't'
      case 0x75: { // 'u' and four hex digits: one UTF-16 code unit, as JSON.parse reads it
        if (i + 6 > end) {
          pos = i;
          fail('truncated \\u escape');
        }
        unit = 0;
        for (let k = 2; k < 6; k++) {
          const digit = hexDigit(src[i + k]);
          if (digit < 0) {
            pos = i;
            fail('invalid \\u escape');
          }
          unit = unit * 16 + digit;
        }
        i += 4;
        break;
      }
      default:
        pos = i;
        fail('invalid escape');
    }
    if (keep) out += String.fromCharCode(unit);
    i += 2;
    runStart = i;
  }
  flushRun(end);
  return out;
}

/** Identifies a key; only keys written with escapes ("v\\u0061lor") are decoded. */
function readKey(): Field {
  const start = pos + 1;
  readString(false);
  const end = pos - 1;
  if (!lastStringPlain) {
    const name = decodeEscaped(start, end, true);
    return name === 'valor' ? Field.Valor : name === 'tipo' ? Field.Tipo : name === 'descricao' ? Field.Descricao : Field.Other;
  }
  const length = end - start;
  if (length === 5 && matches(start, 'valor')) return Field.Valor;
  if (length === 4 && matches(start, 'tipo')) return Field.Tipo;
  if (length === 9 && matches(start, 'descricao')) return Field.Descricao;
  return Field.Other;
}

function matches(start: number, name: string): boolean {
  for (let k = 0; k < name.length; k++) if (src[start + k] !== name.charCodeAt(k)) return false;
  return true;
}

/**
 * Reads a number literal. Returns Kind.Integer for an integer literal, setting lastInteger
 * (0 when outside 1..MAX_INT4), and Kind.OtherNumber for one with a fraction or exponent.
 */
function readNumber(): Kind {
  let negative = false;
  if (src[pos] === MINUS) {
    negative = true;
    pos++;
  }
  const digitsStart = pos;
  const first = src[pos];
  if (first === DIGIT_0) pos++;
  else if (first >= DIGIT_1 && first <= DIGIT_9) while (src[pos] >= DIGIT_0 && src[pos] <= DIGIT_9) pos++;
  else fail('invalid number');
  const digitsEnd = pos;
  let integer = true;
  if (src[pos] === DOT) {
    integer = false;
    pos++;
    if (!(src[pos] >= DIGIT_0 && src[pos] <= DIGIT_9)) fail('invalid number');
    while (src[pos] >= DIGIT_0 && src[pos] <= DIGIT_9) pos++;
  }
  if (src[pos] === LOWER_E || src[pos] === UPPER_E) {
    integer = false;
    pos++;
    if (src[pos] === PLUS || src[pos] === MINUS) pos++;
    if (!(src[pos] >= DIGIT_0 && src[pos] <= DIGIT_9)) fail('invalid number');
    while (src[pos] >= DIGIT_0 && src[pos] <= DIGIT_9) pos++;
  }
  if (!integer) return Kind.OtherNumber;
  lastInteger = 0;
  // Ten digits at most fit an int4; longer literals are out of range whatever they say.
  if (!negative && digitsEnd - digitsStart <= 10) {
    let value = 0;
    for (let i = digitsStart; i < digitsEnd; i++) value = value * 10 + (src[i] - DIGIT_0);
    if (value >= 1 && value <= MAX_INT4) lastInteger = value;
  }
  return Kind.Integer;
}

function readLiteral(word: string): void {
  for (let k = 0; k < word.length; k++) {
    if (src[pos + k] !== word.charCodeAt(k)) fail('invalid literal');
  }
  pos += word.length;
}

/** Reads any value, keeping it when `field` is one we need. Depth is bounded by MAX_BODY_BYTES. */
function readValue(field: Field): void {
  const c = src[pos];
  let kind: Kind;
  if (c === QUOTE) {
    const text = readString(field === Field.Tipo || field === Field.Descricao);
    if (field === Field.Tipo) tipoValue = text;
    else if (field === Field.Descricao) descricaoValue = text;
    kind = Kind.String;
  } else if (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) {
    kind = readNumber();
    if (field === Field.Valor) valorValue = lastInteger;
  } else if (c === OPEN_BRACE) {
    readObject(false);
    kind = Kind.Other;
  } else if (c === OPEN_BRACKET) {
    readArray();
    kind = Kind.Other;
  } else if (c === 0x74) {
    readLiteral('true');
    kind = Kind.Other;
  } else if (c === 0x66) {
    readLiteral('false');
    kind = Kind.Other;
  } else if (c === 0x6e) {
    readLiteral('null');
    kind = Kind.Other;
  } else {
    fail('expected a value');
  }
  if (field === Field.Valor) valorKind = kind;
  else if (field === Field.Tipo) tipoKind = kind;
  else if (field === Field.Descricao) descricaoKind = kind;
}

function readArray(): void {
  pos++; // '['
  skipWhitespace();
  if (src[pos] === CLOSE_BRACKET) {
    pos++;
    return;
  }
  while (true) {
    skipWhitespace();
    readValue(Field.Other);
    skipWhitespace();
    if (src[pos] === COMMA) {
      pos++;
      continue;
    }
    expect(CLOSE_BRACKET, "',' or ']'");
    return;
  }
}

/** Reads an object; only the top-level one (`top`) records the known fields. */
function readObject(top: boolean): void {
  pos++; // '{'
  skipWhitespace();
  if (src[pos] === CLOSE_BRACE) {
    pos++;
    return;
  }
  while (true) {
    skipWhitespace();
    if (src[pos] !== QUOTE) fail('expected a key');
    const field = top ? readKey() : (readString(false), Field.Other);
    skipWhitespace();
    expect(COLON, "':'");
    skipWhitespace();
    readValue(field);
    skipWhitespace();
    if (src[pos] === COMMA) {
      pos++;
      continue;
    }
    expect(CLOSE_BRACE, "',' or '}'");
    return;
  }
}

/**
 * Scans one JSON document, leaving the top-level object's known fields in the slots above.
 * Returns true for an object, false for another valid JSON value, a 400 for anything else.
 */
function scanBody(body: Buffer): Rejection | boolean {
  startParse(body);
  try {
    skipWhitespace();
    if (pos >= src.length) return { status: 400, error: 'empty body' };
    let object = false;
    if (src[pos] === OPEN_BRACE) {
      readObject(true);
      object = true;
    } else {
      readValue(Field.Other);
    }
    skipWhitespace();
    if (pos < src.length) fail('unexpected data after the JSON document');
    return object;
  } catch (err) {
    if (err instanceof SyntaxError) return { status: 400, error: `malformed JSON: ${err.message}` };
    throw err;
  } finally {
    src = EMPTY;
  }
}

// ---------------------------------------------------------------------------------------------
// Run as a program. Last, so that every declaration above is initialised before main runs.
// ---------------------------------------------------------------------------------------------

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(`start-up failed: ${err.message}`);
    process.exit(1);
  });
}
