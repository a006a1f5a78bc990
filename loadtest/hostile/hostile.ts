// Hostile input: a corpus of hostile requests kept as data, and a
// seeded mutation fuzz, both sent as raw bytes against a running stack.
//
//   node dist/loadtest/hostile/hostile.js hostile            # every entry of loadtest/hostile/hostile-corpus.json
//   node dist/loadtest/hostile/hostile.js fuzz --count 100000 --seed 42
//
// The stack is the one described by $CREBITOS_HOME/stack.json (default: .stack/ in the repo,
// i.e. the one `npm run up` starts on :9999). Exit status 0 only when every check passed.
//
// hostile: one fresh connection per entry and path (nginx over TCP, api1 over its unix socket);
// the exact status of every response, in order; the books (balance and ledger of every account)
// unchanged unless the entry is valid, and then changed by exactly the expected ledger rows; a
// GET /clientes/1/extrato answering 200 through nginx and directly after every entry; an empty
// audit_failures view at the end.
//
// fuzz: requests mutated from valid ones (body bytes, request line, headers, methods, paths, ids,
// Content-Length), through nginx on bounded keep-alive connections. Zero 5xx, the same API
// processes before and after with no unexpected exit in the stack log, an empty audit, and every
// 200 in the ledger exactly once (each request carries a unique descricao).

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { alive, readState, stateFilePath, type StackState } from '../../stack/state';
import type { Client } from 'pg';
import { pgConnect } from '../lib/database';
import { REPO } from '../lib/provenance';
import { parseResponses, type ParsedResponse } from '../lib/http';
import { seededRng } from '../lib/official-simulation';

const CORPUS_PATH = path.join(REPO, 'loadtest', 'hostile', 'hostile-corpus.json');

// ---------------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------------

export type Target = 'nginx' | 'api';

/** A ledger row an entry is expected to add, per path it is sent on. */
export interface ExpectedRow {
  account: number;
  valor: number;
  tipo: 'c' | 'd';
  descricao: string;
}

export interface CorpusEntry {
  name: string;
  category: string;
  /** The exact bytes sent, in `encoding`. */
  raw: string;
  encoding: 'utf8' | 'base64';
  /** Then `count` copies of the ASCII character `byte` inserted at byte offset `at` of raw (huge bodies and headers, kept small in the file). */
  fill?: { at: number; byte: string; count: number };
  /** Where it is sent; default both. */
  via?: 'both' | 'nginx' | 'api';
  /** Statuses of the responses, in order, for each path. [] means: no response within holdMs. */
  expect: { nginx?: number[]; api?: number[] };
  /** Why nginx and the API answer differently, when they do. */
  why?: string;
  /** True when the entry must change the books (then `rows` is exactly what it adds, per path). */
  valid: boolean;
  rows?: ExpectedRow[];
  /** When the paths differ (e.g. nginx drops a header the API would refuse): rows per path, overriding `rows`. */
  rowsByPath?: { nginx?: ExpectedRow[]; api?: ExpectedRow[] };
  /**
   * A known service bug this entry pins: `expect` records what happens today, `bug` what should
   * happen. Reported at the end so it is not forgotten; the entry fails (and must be updated) once fixed.
   */
  bug?: string;
  /** Paths on which the rows may or may not be added (all or nothing): only for a `bug` whose outcome is a race. */
  mayApply?: Target[];
  /**
   * After `raw`, keep writing this (utf8), even after the answer, until the server closes the
   * connection, bounded by streamMs / streamBytes. On the nginx path an answer announcing
   * `Connection: close` also counts as cut off: nginx then lingers (lingering_timeout, 5 s)
   * reading and discarding before it closes, which is too long to wait for in CI.
   */
  stream?: { chunk: string; streamMs: number; streamBytes: number };
  /** Keep the connection open this long without a response (a stalled body); the service is checked meanwhile. */
  holdMs?: number;
  note?: string;
}

export function loadCorpus(file = CORPUS_PATH): CorpusEntry[] {
  const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { entries: CorpusEntry[] };
  return data.entries;
}

function entryBytes(entry: CorpusEntry): Buffer {
  const raw = Buffer.from(entry.raw, entry.encoding === 'base64' ? 'base64' : 'utf8');
  if (!entry.fill) return raw;
  const { at, byte, count } = entry.fill;
  return Buffer.concat([raw.subarray(0, at), Buffer.alloc(count, byte.charCodeAt(0)), raw.subarray(at)]);
}

export function targetsOf(entry: CorpusEntry): Target[] {
  const via = entry.via ?? 'both';
  return via === 'both' ? ['nginx', 'api'] : [via];
}

// ---------------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------------

/** The state of the stack in `home` (npm run up's by default). */
export function readStack(home = process.env.CREBITOS_HOME || path.join(REPO, '.stack')): StackState {
  const state = readState(home);
  if (!state) throw new Error(`no stack state at ${stateFilePath(home)}; start one with npm run up`);
  return state;
}

export const apiSocket = (stack: StackState, name: 'api1' | 'api2' = 'api1'): string => path.join(stack.socketDir, `${name}.sock`);

function pidOf(stack: StackState, name: string): number | undefined {
  return stack.components.find((c) => c.name === name)?.pid;
}

// ---------------------------------------------------------------------------------------------
// Database access (one node-postgres connection; the runner is sequential)
// ---------------------------------------------------------------------------------------------

export class Books {
  private constructor(private readonly client: Client) {}

  static async open(conninfo: string): Promise<Books> {
    return new Books(await pgConnect(conninfo));
  }

  private async rows(text: string, params?: unknown[]): Promise<Record<string, unknown>[]> {
    return (await this.client.query(text, params)).rows;
  }

  /** Balance and ledger size of every account, and the last ledger id. */
  async snapshot(): Promise<Snapshot> {
    const rows = await this.rows('SELECT a.id, a.balance, (SELECT count(*) FROM ledger l WHERE l.account_id = a.id) AS n FROM accounts a ORDER BY a.id');
    const maxId = (await this.rows('SELECT coalesce(max(id), 0) AS m FROM ledger'))[0].m;
    return {
      accounts: rows.map((r) => ({ id: Number(r.id), balance: Number(r.balance), entries: Number(r.n) })),
      maxId: String(maxId),
    };
  }

  /** Ledger rows after `afterId`, oldest first. */
  async rowsAfter(afterId: string): Promise<(ExpectedRow & { id: string })[]> {
    const rows = await this.rows('SELECT id, account_id, amount, kind, description FROM ledger WHERE id > $1::bigint ORDER BY id', [afterId]);
    return rows.map((r) => ({ id: String(r.id), account: Number(r.account_id), valor: Number(r.amount), tipo: r.kind as 'c' | 'd', descricao: String(r.description) }));
  }

  auditFailures(): Promise<Record<string, unknown>[]> {
    return this.rows('SELECT * FROM audit_failures');
  }

  /** Accounts whose balance is below -limit (the constraint forbids it; checked anyway). */
  belowLimit(): Promise<Record<string, unknown>[]> {
    return this.rows('SELECT id, balance, credit_limit FROM accounts WHERE balance < -credit_limit');
  }

  close(): Promise<void> {
    return this.client.end();
  }
}

export interface Snapshot {
  accounts: { id: number; balance: number; entries: number }[];
  maxId: string;
}

/** Differences between two snapshots that `rows` (the expected added rows) do not explain. */
export function unexplainedChange(before: Snapshot, after: Snapshot, rows: ExpectedRow[]): string[] {
  const problems: string[] = [];
  for (const a of before.accounts) {
    const b = after.accounts.find((x) => x.id === a.id);
    if (!b) {
      problems.push(`account ${a.id} vanished`);
      continue;
    }
    const mine = rows.filter((r) => r.account === a.id);
    const delta = mine.reduce((sum, r) => sum + (r.tipo === 'c' ? r.valor : -r.valor), 0);
    if (b.balance - a.balance !== delta) problems.push(`account ${a.id}: balance ${a.balance} -> ${b.balance} (expected change ${delta})`);
    if (b.entries - a.entries !== mine.length) problems.push(`account ${a.id}: ledger ${a.entries} -> ${b.entries} entries (expected +${mine.length})`);
  }
  if (after.accounts.length !== before.accounts.length) problems.push(`accounts ${before.accounts.length} -> ${after.accounts.length}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP: send exact bytes, parse every response that comes back
// ---------------------------------------------------------------------------------------------

export interface Exchange {
  statuses: number[];
  responses: ParsedResponse[];
  /** How the exchange ended. */
  ended: 'closed' | 'quiet' | 'timeout' | 'held' | 'reset';
  error?: string;
  garbage: boolean;
  ms: number;
}

export interface SendOptions {
  /** Stop waiting this long after the last expected response arrived (for unexpected extra ones). */
  quietMs?: number;
  /** Responses expected; once received, wait quietMs then finish. */
  expectCount?: number;
  /** Give up after this long. */
  timeoutMs?: number;
  holdMs?: number;
  /** Called while the connection is held open (e.g. to check the service meanwhile). */
  whileHeld?: () => Promise<void>;
  stream?: CorpusEntry['stream'];
  /** With stream: an answer announcing Connection: close ends the exchange (see CorpusEntry.stream). */
  streamAnnouncedCloseIsEnough?: boolean;
  /** The request is a HEAD: its response has no body whatever Content-Length says. */
  head?: boolean;
}

function connectTo(stack: StackState, target: Target): net.Socket {
  return target === 'nginx' ? net.connect({ host: '127.0.0.1', port: stack.httpPort }) : net.connect({ path: apiSocket(stack, 'api1') });
}

/** Sends `bytes` on a fresh connection and collects whatever comes back, time-bounded. */
function sendRaw(stack: StackState, target: Target, bytes: Buffer, options: SendOptions = {}): Promise<Exchange> {
  const started = Date.now();
  const quietMs = options.quietMs ?? 25;
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve) => {
    const socket = connectTo(stack, target);
    const chunks: Buffer[] = [];
    let done = false;
    let quietTimer: NodeJS.Timeout | undefined;
    let streamTimer: NodeJS.Timeout | undefined;
    let holdTimer: NodeJS.Timeout | undefined;
    const finish = (ended: Exchange['ended'], error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(quietTimer);
      clearTimeout(streamTimer);
      clearTimeout(holdTimer);
      const parsed = parseResponses(Buffer.concat(chunks), ended === 'closed' || ended === 'reset', options.head);
      socket.destroy();
      resolve({ statuses: parsed.responses.map((r) => r.status), responses: parsed.responses, ended, error, garbage: parsed.garbage, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const parsed = parseResponses(Buffer.concat(chunks), false, options.head);
      // A streamed endless body: wait for the server to cut the connection (or the time bound).
      if (options.stream && options.streamAnnouncedCloseIsEnough && parsed.responses.some((r) => /close/i.test(r.headers.connection ?? ''))) return finish('closed');
      if (options.expectCount !== undefined && parsed.responses.length >= options.expectCount && options.expectCount > 0 && !options.holdMs && !options.stream) {
        // A response that announced the close: wait for the close itself rather than a quiet period.
        const last = parsed.responses[parsed.responses.length - 1];
        // (bounded: nginx lingers on a connection whose body it refused)
        if (/close/i.test(last.headers.connection ?? '')) {
          clearTimeout(quietTimer);
          quietTimer = setTimeout(() => finish('quiet'), 300);
          return;
        }
        clearTimeout(quietTimer);
        quietTimer = setTimeout(() => finish('quiet'), quietMs);
      }
    });
    socket.on('end', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset after the server answered and closed (we were still writing) is the server
      // refusing the rest, not a failure; the responses already read stand.
      finish(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : 'closed', err.code ?? err.message);
    });
    socket.on('connect', () => {
      socket.write(bytes);
      if (options.stream) {
        const chunk = Buffer.from(options.stream.chunk, 'utf8');
        const until = Date.now() + options.stream.streamMs;
        let sent = 0;
        const pump = (): void => {
          if (done || socket.destroyed) return;
          // Keep streaming after the answer: the server must cut the endless body off itself.
          if (Date.now() > until || sent >= options.stream!.streamBytes) return;
          sent += chunk.length;
          if (socket.write(chunk)) streamTimer = setTimeout(pump, 0);
          else socket.once('drain', pump);
        };
        pump();
      }
      if (options.holdMs) {
        const holdMs = options.holdMs;
        void (async () => {
          const t0 = Date.now();
          if (options.whileHeld) await options.whileHeld().catch(() => {});
          holdTimer = setTimeout(() => finish('held'), Math.max(0, holdMs - (Date.now() - t0)));
        })();
      }
    });
  });
}

const HEALTH = Buffer.from('GET /clientes/1/extrato HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');

/** GET /clientes/1/extrato through nginx and directly to api1; returns problems. */
async function health(stack: StackState): Promise<string[]> {
  const problems: string[] = [];
  for (const target of ['nginx', 'api'] as Target[]) {
    const ex = await sendRaw(stack, target, HEALTH, { expectCount: 1, quietMs: 0, timeoutMs: 5000 });
    if (ex.statuses.length !== 1 || ex.statuses[0] !== 200) problems.push(`health via ${target}: ${JSON.stringify(ex.statuses)} (${ex.ended}${ex.error ? ` ${ex.error}` : ''})`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// hostile: the corpus
// ---------------------------------------------------------------------------------------------

export interface HostileOptions {
  stack?: StackState;
  corpus?: CorpusEntry[];
  /** Only entries whose name contains this. */
  filter?: string;
  log?: (line: string) => void;
  /** Print the observed statuses of every entry (to write or review the corpus). */
  explain?: boolean;
}

export interface EntryResult {
  name: string;
  category: string;
  target: Target;
  statuses: number[];
  expected: number[];
  ended: string;
  ms: number;
  problems: string[];
}

export interface HostileResult {
  pass: boolean;
  entries: number;
  sends: number;
  failed: EntryResult[];
  results: EntryResult[];
  byCategory: Record<string, number>;
  audit: Record<string, unknown>[];
  ms: number;
  /** Entries pinned to a known bug (see CorpusEntry.bug). */
  knownBugs: string[];
}

function sameStatuses(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

export async function runHostile(options: HostileOptions = {}): Promise<HostileResult> {
  const stack = options.stack ?? readStack();
  const corpus = (options.corpus ?? loadCorpus()).filter((e) => !options.filter || e.name.includes(options.filter));
  const log = options.log ?? ((line: string) => console.log(line));
  const books = await Books.open(stack.database);
  const started = Date.now();
  const results: EntryResult[] = [];
  const byCategory: Record<string, number> = {};
  let audit: Record<string, unknown>[] = [];
  const pidsBefore = { api1: pidOf(stack, 'api1'), api2: pidOf(stack, 'api2'), nginx: pidOf(stack, 'nginx') };
  try {
    const initial = await health(stack);
    if (initial.length) throw new Error(`the stack is not healthy before the corpus: ${initial.join('; ')}`);
    for (const entry of corpus) {
      byCategory[entry.category] = (byCategory[entry.category] ?? 0) + 1;
      const bytes = entryBytes(entry);
      for (const target of targetsOf(entry)) {
        const expected = entry.expect[target];
        const problems: string[] = [];
        if (!expected) problems.push(`corpus: no expected status for ${target}`);
        const before = await books.snapshot();
        let heldProblems: string[] = [];
        const exchange = sendRaw(stack, target, bytes, {
          expectCount: expected?.length,
          head: bytes.subarray(0, 5).toString('latin1') === 'HEAD ',
          holdMs: entry.holdMs,
          stream: entry.stream,
          streamAnnouncedCloseIsEnough: target === 'nginx',
          timeoutMs: Math.max(5000, (entry.holdMs ?? 0) + 3000, (entry.stream?.streamMs ?? 0) + 3000),
          // While a stalled request holds its connection, everyone else must still be served.
          whileHeld: async () => {
            heldProblems = (await health(stack)).map((p) => `while held: ${p}`);
          },
        });
        // An endless body is being streamed: others must be served meanwhile too.
        const during = entry.stream ? await health(stack) : [];
        const ex = await exchange;
        problems.push(...heldProblems, ...during.map((p) => `while streaming: ${p}`));
        if (expected && !sameStatuses(ex.statuses, expected)) {
          problems.push(`statuses ${JSON.stringify(ex.statuses)}, expected ${JSON.stringify(expected)} (${ex.ended}${ex.error ? ` ${ex.error}` : ''})`);
        }
        if (ex.garbage) problems.push('unparseable bytes in the response stream');
        if (entry.holdMs && expected?.length === 0 && ex.ended !== 'held') problems.push(`connection ${ex.ended} before ${entry.holdMs} ms (expected it held open)`);
        if (!entry.holdMs && expected?.length === 0 && ex.ended !== 'closed' && ex.ended !== 'reset') problems.push(`connection ${ex.ended} (expected the server to close it without answering)`);
        if (ex.ended === 'timeout') problems.push('timed out');
        if (entry.stream && ex.ended !== 'closed' && ex.ended !== 'reset') problems.push(`the endless body was not cut off (${ex.ended} after ${ex.ms} ms)`);
        // A 5xx is a failure unless the corpus expects exactly it and says why (nginx's 501 for
        // an unknown Transfer-Encoding, 505 for an unsupported HTTP version: what RFC 9112 asks).
        if (ex.statuses.some((s) => s >= 500 && !(expected?.includes(s) && entry.why))) problems.push('unexpected 5xx');
        // The books: exactly the expected rows, nothing else.
        // An entry whose outcome is a pinned race: the API may still commit after it answered.
        if (entry.mayApply?.includes(target)) await new Promise((r) => setTimeout(r, 300));
        const after = await books.snapshot();
        let rows = entry.valid ? entry.rowsByPath?.[target] ?? entry.rows ?? [] : [];
        if (entry.valid && !entry.rows?.length && !entry.rowsByPath) problems.push('corpus: a valid entry without rows');
        const added = await books.rowsAfter(before.maxId);
        // A race pinned by a known bug: nothing at all is also an acceptable outcome.
        if (entry.mayApply?.includes(target) && added.length === 0) rows = [];
        problems.push(...unexplainedChange(before, after, rows));
        // Compared as multisets: pipelined POSTs run concurrently in the API, so their ledger
        // order may differ from the order of their (in-order) answers.
        const canon = (rs: ExpectedRow[]): string => JSON.stringify(rs.map(({ account, valor, tipo, descricao }) => JSON.stringify({ account, valor, tipo, descricao })).sort());
        if (canon(added) !== canon(rows)) problems.push(`ledger rows added ${JSON.stringify(added)}, expected ${JSON.stringify(rows)}`);
        const result: EntryResult = { name: entry.name, category: entry.category, target, statuses: ex.statuses, expected: expected ?? [], ended: ex.ended, ms: ex.ms, problems };
        results.push(result);
        if (options.explain) log(`  ${entry.name} via ${target}: ${JSON.stringify(ex.statuses)} ${ex.ended} ${ex.ms} ms`);
      }
      const down = await health(stack);
      if (down.length) {
        const last = results[results.length - 1];
        last.problems.push(...down.map((p) => `after the entry: ${p}`));
      }
      // One table line per entry: verdict, name, and what each path answered.
      const mine = results.slice(-targetsOf(entry).length);
      const verdict = mine.some((r) => r.problems.length) ? 'FAIL' : 'PASS';
      log(`${verdict}  ${entry.name.padEnd(52)} ${mine.map((r) => `${r.target} ${JSON.stringify(r.statuses)}`).join('  ')}${entry.valid ? '  (valid)' : ''}${entry.bug ? '  (pins a known bug)' : ''}`);
    }
  } finally {
    try {
      audit = [...(await books.auditFailures()), ...(await books.belowLimit())];
    } catch (err) {
      audit = [{ error: (err as Error).message }];
    }
    await books.close();
  }
  const failed = results.filter((r) => r.problems.length > 0);
  const restarted = (['api1', 'api2', 'nginx'] as const).filter((n) => !alive(pidsBefore[n]));
  const pass = failed.length === 0 && audit.length === 0 && restarted.length === 0;
  // Summary table: one line per failed send, a count per category.
  const cats = Object.keys(byCategory).sort();
  log('');
  log('category                     entries  sends  pass  fail');
  for (const c of cats) {
    const rs = results.filter((r) => r.category === c);
    const bad = rs.filter((r) => r.problems.length).length;
    log(`${c.padEnd(28)} ${String(byCategory[c]).padStart(7)} ${String(rs.length).padStart(6)} ${String(rs.length - bad).padStart(5)} ${String(bad).padStart(5)}`);
  }
  for (const f of failed) log(`FAIL ${f.name} via ${f.target}: ${f.problems.join('; ')}`);
  const bugs = corpus.filter((e) => e.bug);
  for (const e of bugs) log(`KNOWN BUG pinned by ${e.name}: ${e.bug}`);
  if (restarted.length) log(`FAIL processes gone during the run: ${restarted.join(', ')}`);
  log(`audit_failures: ${audit.length === 0 ? 'empty' : JSON.stringify(audit)}`);
  const ms = Date.now() - started;
  log(`hostile: ${corpus.length} entries, ${results.length} sends, ${results.length - failed.length} passed, ${failed.length} failed in ${(ms / 1000).toFixed(1)} s: ${pass ? 'PASS' : 'FAIL'}`);
  return { pass, entries: corpus.length, sends: results.length, failed, results, byCategory, audit, ms, knownBugs: bugs.map((e) => e.name) };
}

// ---------------------------------------------------------------------------------------------
// fuzz: seeded mutations of valid requests
// ---------------------------------------------------------------------------------------------

export interface FuzzOptions {
  stack?: StackState;
  count?: number;
  seed?: number;
  connections?: number;
  /** Per-request bound: a request the server keeps waiting on (e.g. a Content-Length made larger) is abandoned after this. */
  requestTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface FuzzResult {
  pass: boolean;
  seed: number;
  count: number;
  ms: number;
  statuses: Record<string, number>;
  /** Requests abandoned without an answer (the server was waiting for bytes that never came). */
  unanswered: number;
  /** Connections that ended with an error (reset) while a request was in flight. */
  resets: number;
  fiveXX: number;
  /** nginx's own 505/501 pages for an unsupported HTTP version or Transfer-Encoding (not failures). */
  protocolRefusals: number;
  ok: number;
  ledgerRows: number;
  reconcileProblems: string[];
  audit: Record<string, unknown>[];
  processProblems: string[];
  byMutation: Record<string, number>;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

interface FuzzRequest {
  bytes: Buffer;
  /** Framing may be broken: use a connection of its own, closed after the answer. */
  fresh: boolean;
  mutation: string;
  head: boolean;
}

/**
 * Builds request number `n`: a valid request (a small credit or debit, or an extrato) with a
 * unique descricao, then mutated by one of several operators.
 */
function makeRequest(rand: () => number, n: number, tag: string): FuzzRequest {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  // descricao: the run's tag (2 chars) + n in base 36, padded: unique in the run, at most 10 chars.
  const descricao = `${tag}${n.toString(36).padStart(6, '0')}`;
  const id = int(1, 5);
  const tipo = rand() < 0.5 ? 'c' : 'd';
  const valor = int(1, 1000);
  const isGet = rand() < 0.15;
  let method = isGet ? 'GET' : 'POST';
  let urlPath = isGet ? `/clientes/${id}/extrato` : `/clientes/${id}/transacoes`;
  let body = isGet ? Buffer.alloc(0) : Buffer.from(JSON.stringify({ valor, tipo, descricao }));
  let headers: [string, string][] = [['Host', 'localhost'], ['Content-Type', 'application/json']];
  let version = 'HTTP/1.1';
  let fixLength = true;
  let fresh = false;
  const mutations: string[] = [];
  const ops = int(1, 3);
  for (let k = 0; k < ops; k++) {
    const op = rand();
    if (op < 0.4 && body.length > 0) {
      // body bytes: flip, set, insert, delete, duplicate a slice, or splice in an interesting token
      const b = Buffer.from(body);
      const sub = rand();
      const at = int(0, b.length - 1);
      if (sub < 0.25) {
        b[at] ^= 1 << int(0, 7);
        body = b;
        mutations.push('body-flip');
      } else if (sub < 0.45) {
        b[at] = pick([0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x2d, 0x2e, 0x30, 0x39, 0x65, 0x20, 0x0a, 0x80, 0xc3, 0xed, 0xff, int(0, 255)]);
        body = b;
        mutations.push('body-set');
      } else if (sub < 0.6) {
        body = Buffer.concat([b.subarray(0, at), b.subarray(at + int(1, 4))]);
        mutations.push('body-delete');
      } else if (sub < 0.75) {
        const token = pick(['-', '0', '.5', 'e9', '1', '99999999999', '"', '\\u0000', '\\ud800', '😀', 'null', '[]', '{}', ',', ' ', '\u0000', ',"valor":0', ',"tipo":"x"', ',"descricao":""', "'; DROP TABLE ledger;--"]);
        body = Buffer.concat([b.subarray(0, at), Buffer.from(token), b.subarray(at)]);
        mutations.push('body-insert');
      } else if (sub < 0.85) {
        const end = int(at, b.length);
        body = Buffer.concat([b.subarray(0, end), b.subarray(at, end), b.subarray(end)]);
        mutations.push('body-duplicate');
      } else {
        body = b.subarray(0, at);
        mutations.push('body-truncate');
      }
    } else if (op < 0.5) {
      // a field replaced by a wrong or borderline value
      const v = pick(['0', '-1', '1.5', '1e3', '2147483647', '2147483648', '9007199254740993', '"100"', 'null', 'true', '[]', '{}']);
      const t = pick(['"c"', '"d"', '"C"', '""', '"cd"', '1', 'null', '[]']);
      const d = pick([`"${descricao}"`, '""', '"12345678901"', '1', 'null', '"\\u0000"', '"\\ud800"', `"${descricao.slice(0, 8)}😀"`]);
      body = Buffer.from(`{"valor":${v},"tipo":${t},"descricao":${d}}`);
      method = 'POST';
      urlPath = `/clientes/${id}/transacoes`;
      mutations.push('fields');
    } else if (op < 0.6) {
      method = pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'FOO', 'get', 'POSTX', 'CONNECT']);
      if (method === 'HEAD' || method === 'CONNECT' || method === 'TRACE' || method === 'FOO' || method === 'get' || method === 'POSTX') fresh = true;
      mutations.push('method');
    } else if (op < 0.72) {
      const idText = pick([String(id), '0', '6', '-1', '+1', '01', '2147483647', '2147483648', '99999999999', 'a', '1a', '%31', '1.0', '', ' ']);
      urlPath = pick([
        `/clientes/${idText}/transacoes`,
        `/clientes/${idText}/extrato`,
        `/clientes/${idText}/extrato/`,
        `//clientes/${idText}/transacoes`,
        `/clientes/${idText}/transacoes?x=${n}`,
        `/clientes/${idText}%2Ftransacoes`,
        `/clientes/${idText}/../${id}/transacoes`,
        `/clientes/${idText}/TRANSACOES`,
      ]);
      if (idText === ' ') fresh = true;
      mutations.push('path');
    } else if (op < 0.82) {
      // Content-Length: missing, smaller, larger, duplicated, garbage; or chunked framing
      fixLength = false;
      fresh = true;
      const sub = int(0, 6);
      const len = body.length;
      if (sub === 0) headers.push(['Content-Length', String(Math.max(0, len - int(1, 5)))]);
      else if (sub === 1) headers.push(['Content-Length', String(len + int(1, 5))]);
      else if (sub === 2) headers.push(['Content-Length', String(len)], ['Content-Length', String(len)]);
      else if (sub === 3) headers.push(['Content-Length', pick(['abc', '-1', '+5', '1e2', '99999999999999999999', ' '])]);
      else if (sub === 4) {
        headers.push(['Transfer-Encoding', 'chunked']);
        const cut = int(0, len);
        body = Buffer.concat([Buffer.from(`${cut.toString(16)}\r\n`), body.subarray(0, cut), Buffer.from(`\r\n${(len - cut).toString(16)}\r\n`), body.subarray(cut), Buffer.from('\r\n0\r\n\r\n')]);
      } else if (sub === 5) {
        headers.push(['Transfer-Encoding', 'chunked'], ['Content-Length', String(len)]);
      } else headers.push(['Content-Length', String(len)]);
      mutations.push('length');
    } else if (op < 0.92) {
      // header bytes
      fresh = true;
      const sub = int(0, 5);
      if (sub === 0) headers = headers.filter(([h]) => h !== 'Host');
      else if (sub === 1) headers.push(['X-Long', 'a'.repeat(int(100, 9000))]);
      else if (sub === 2) headers.push([pick(['Bad Header', 'X:Y', '', 'X\u0000']), 'v']);
      else if (sub === 3) headers.push(['X-Ctl', pick(['a\u0000b', 'a\rb', '\u007f', 'é'])]);
      else if (sub === 4) headers.push(['Expect', '100-continue']);
      else headers.push(['Host', 'other']);
      mutations.push('headers');
    } else {
      // request line bytes
      fresh = true;
      const sub = int(0, 4);
      if (sub === 0) version = pick(['HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/11', 'http/1.1', 'HTTP/1.1 ']);
      else if (sub === 1) urlPath = urlPath + pick([' ', '\t', '#x', '?%', '%', '%zz', '\u0000']);
      else if (sub === 2) urlPath = `http://localhost${urlPath}`;
      else if (sub === 3) method = method + ' ';
      else urlPath = urlPath.replace('/', '');
      mutations.push('request-line');
    }
  }
  if (fixLength && method !== 'GET' && method !== 'HEAD') headers.push(['Content-Length', String(body.length)]);
  else if (fixLength && body.length > 0) headers.push(['Content-Length', String(body.length)]);
  const head = `${method} ${urlPath} ${version}\r\n${headers.map(([h, v]) => `${h}: ${v}\r\n`).join('')}\r\n`;
  return { bytes: Buffer.concat([Buffer.from(head, 'utf8'), body]), fresh, mutation: mutations.join('+'), head: method === 'HEAD' };
}

/** What the service would store for `bytes` if it answered 200: account and the parsed body. */
function decodeSent(bytes: Buffer): ExpectedRow | undefined {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const line = bytes.toString('latin1', 0, bytes.indexOf('\r\n'));
  const m = /\/clientes\/(\d+)\//.exec(line);
  if (!m) return undefined;
  let body = bytes.subarray(headEnd + 4);
  const head = bytes.toString('latin1', 0, headEnd);
  if (/transfer-encoding:\s*chunked/i.test(head)) {
    const parts: Buffer[] = [];
    let p = 0;
    for (;;) {
      const e = body.indexOf('\r\n', p);
      if (e < 0) break;
      const size = parseInt(body.toString('latin1', p, e), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(e + 2, e + 2 + size));
      p = e + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else {
    const cl = /content-length:\s*(\d+)/i.exec(head);
    if (cl) body = body.subarray(0, Number(cl[1]));
  }
  try {
    const json = JSON.parse(body.toString('utf8'));
    return { account: Number(m[1]), valor: json.valor, tipo: json.tipo, descricao: json.descricao };
  } catch {
    return undefined;
  }
}

function stackLogTail(stack: StackState): string {
  try {
    return fs.readFileSync(path.join(stack.home, 'logs', 'stack.log'), 'utf8');
  } catch {
    return '';
  }
}

function apiLogs(stack: StackState): string {
  let text = '';
  for (const name of ['api1', 'api2']) {
    try {
      text += fs.readFileSync(path.join(stack.home, 'logs', `${name}.log`), 'utf8');
    } catch {
      /* absent */
    }
  }
  return text;
}

export async function runMutationFuzz(options: FuzzOptions = {}): Promise<FuzzResult> {
  const stack = options.stack ?? readStack();
  const count = options.count ?? 100_000;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const connections = options.connections ?? 32;
  const requestTimeoutMs = options.requestTimeoutMs ?? 1000;
  const log = options.log ?? ((line: string) => console.log(line));
  const rand = seededRng(seed);
  // Two characters of the seed make this run's descricao values unique across runs too.
  const tag = ALPHABET[seed % 36] + ALPHABET[Math.floor(seed / 36) % 36];
  log(`fuzz: ${count} requests, seed ${seed}, ${connections} connections, through nginx on :${stack.httpPort}`);

  const books = await Books.open(stack.database);
  const before = await books.snapshot();
  const pids = { api1: pidOf(stack, 'api1'), api2: pidOf(stack, 'api2'), nginx: pidOf(stack, 'nginx') };
  const logBefore = stackLogTail(stack).length;
  const apiLogBefore = apiLogs(stack).length;

  const statuses: Record<string, number> = {};
  const byMutation: Record<string, number> = {};
  let unanswered = 0;
  let resets = 0;
  let protocolRefusals = 0;
  const hung: string[] = [];
  const answered200: ExpectedRow[] = [];
  const maybe: ExpectedRow[] = [];
  let next = 0;
  const started = Date.now();
  let lastReport = started;

  // One worker per connection: send a request, wait for its answer, reuse the connection unless
  // the request may have broken framing, the server closed, or the answer said Connection: close.
  async function worker(): Promise<void> {
    let socket: net.Socket | undefined;
    let buffered = Buffer.alloc(0);
    let waiter: (() => void) | undefined;
    let closed = true;
    const open = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: stack.httpPort });
        s.setNoDelay(true);
        socket = s;
        buffered = Buffer.alloc(0);
        closed = false;
        s.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          waiter?.();
        });
        const onGone = (): void => {
          if (socket === s) closed = true;
          waiter?.();
        };
        s.on('close', onGone);
        s.on('end', onGone);
        s.on('error', (err: NodeJS.ErrnoException) => {
          if (socket === s) (s as net.Socket & { lastError?: string }).lastError = err.code ?? err.message;
          onGone();
        });
        s.once('connect', () => resolve());
        s.once('error', reject);
      });
    while (next < count) {
      const n = next++;
      const req = makeRequest(rand, n, tag);
      for (const m of req.mutation.split('+')) byMutation[m] = (byMutation[m] ?? 0) + 1;
      if (!socket || closed || req.fresh) {
        socket?.destroy();
        await open().catch(() => {});
      }
      const s = socket!;
      s.write(req.bytes);
      const deadline = Date.now() + requestTimeoutMs;
      let response: ParsedResponse | undefined;
      for (;;) {
        const parsed = parseResponses(buffered, closed, req.head);
        // Interim 100 Continue: skip to the final response.
        const finals = parsed.responses.filter((r) => r.status >= 200);
        if (finals.length > 0) {
          response = finals[0];
          break;
        }
        if (closed || Date.now() >= deadline) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
          waiter = () => {
            clearTimeout(t);
            resolve();
          };
        });
        waiter = undefined;
      }
      const sent = decodeSent(req.bytes);
      if (response) {
        statuses[response.status] = (statuses[response.status] ?? 0) + 1;
        // nginx's own protocol refusals, as RFC 9112 asks: 505 for an HTTP version it does not
        // speak (a mutated "HTTP/2.0"), 501 for a Transfer-Encoding it does not implement. They
        // are its built-in HTML pages; every other 5xx (the API's JSON 500/503, nginx's JSON
        // 502/504 pages) is a failure.
        if ((response.status === 505 || response.status === 501) && /text\/html/.test(response.headers['content-type'] ?? '')) protocolRefusals++;
        if (response.status === 200 && sent && req.bytes.includes('/transacoes')) answered200.push(sent);
        const keep = !req.fresh && !closed && !/close/i.test(response.headers.connection ?? '');
        if (!keep) {
          s.destroy();
          socket = undefined;
        } else buffered = Buffer.alloc(0);
      } else {
        const err = (s as net.Socket & { lastError?: string }).lastError;
        if (err && (err === 'ECONNRESET' || err === 'EPIPE')) resets++;
        else unanswered++;
        // Only a request whose framing was mutated (Content-Length, headers, request line) may
        // leave the server waiting for bytes; any other unanswered request is a hang.
        if (!/length|headers|request-line/.test(req.mutation)) hung.push(`${req.mutation}: ${JSON.stringify(req.bytes.toString('latin1').slice(0, 200))}`);
        statuses[closed ? 'closed' : 'none'] = (statuses[closed ? 'closed' : 'none'] ?? 0) + 1;
        if (sent) maybe.push(sent);
        s.destroy();
        socket = undefined;
      }
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        log(`  ${n + 1} sent, ${((Date.now() - started) / 1000).toFixed(0)} s, statuses ${JSON.stringify(statuses)}`);
      }
    }
    socket?.destroy();
  }
  await Promise.all(Array.from({ length: connections }, () => worker()));
  const ms = Date.now() - started;
  // Let requests the server may still be finishing settle before reading the ledger.
  await new Promise((r) => setTimeout(r, 500));

  // Reconciliation: the ledger rows added during the run are exactly the 200s, plus possibly
  // some of the unanswered requests (which may or may not have been applied).
  const added = await books.rowsAfter(before.maxId);
  const key = (r: ExpectedRow): string => `${r.account}|${r.valor}|${r.tipo}|${r.descricao}`;
  const want = new Map<string, number>();
  for (const r of answered200) want.set(key(r), (want.get(key(r)) ?? 0) + 1);
  const maybeKeys = new Map<string, number>();
  for (const r of maybe) maybeKeys.set(key(r), (maybeKeys.get(key(r)) ?? 0) + 1);
  const reconcileProblems: string[] = [];
  const have = new Map<string, number>();
  for (const r of added) have.set(key(r), (have.get(key(r)) ?? 0) + 1);
  for (const [k, n] of want) {
    const h = have.get(k) ?? 0;
    if (h < n) reconcileProblems.push(`answered 200 but ${h === 0 ? 'missing from' : `only ${h}x in`} the ledger: ${k} (${n}x)`);
  }
  for (const [k, h] of have) {
    const extra = h - (want.get(k) ?? 0);
    if (extra > 0 && extra > (maybeKeys.get(k) ?? 0)) reconcileProblems.push(`in the ledger ${h}x but answered 200 ${want.get(k) ?? 0}x: ${k}`);
  }
  const audit = [...(await books.auditFailures()), ...(await books.belowLimit())];
  await books.close();

  const processProblems: string[] = [];
  const now = (() => {
    try {
      return readStack(stack.home);
    } catch {
      return undefined;
    }
  })();
  for (const name of ['api1', 'api2', 'nginx'] as const) {
    if (!alive(pids[name])) processProblems.push(`${name} (pid ${pids[name]}) is gone`);
    else if (now && pidOf(now, name) !== pids[name]) processProblems.push(`${name} pid changed ${pids[name]} -> ${pidOf(now, name)}`);
  }
  const newLog = stackLogTail(stack).slice(logBefore);
  if (/exited unexpectedly|exceeded its memory limit|restarted/.test(newLog)) processProblems.push(`stack log: ${newLog.trim().split('\n').slice(0, 5).join(' | ')}`);
  const newApiLog = apiLogs(stack).slice(apiLogBefore);
  if (/request failed|database error|uncaught|FATAL/i.test(newApiLog)) processProblems.push(`API log: ${newApiLog.trim().split('\n').slice(0, 5).join(' | ')}`);
  const healthProblems = await health(stack);
  processProblems.push(...healthProblems);

  const fiveXX = Object.entries(statuses).filter(([s]) => Number(s) >= 500).reduce((sum, [, n]) => sum + n, 0) - protocolRefusals;
  if (hung.length) processProblems.push(`${hung.length} requests with intact framing got no answer, e.g. ${hung.slice(0, 3).join(' | ')}`);
  const pass = fiveXX === 0 && resets === 0 && reconcileProblems.length === 0 && audit.length === 0 && processProblems.length === 0;
  log(`fuzz: seed ${seed}, ${count} requests in ${(ms / 1000).toFixed(1)} s (${Math.round(count / (ms / 1000))}/s)`);
  log(`  statuses: ${Object.entries(statuses).map(([s, n]) => `${s}: ${n}`).join(', ')}`);
  log(`  mutations: ${Object.entries(byMutation).map(([s, n]) => `${s}: ${n}`).join(', ')}`);
  log(`  5xx: ${fiveXX} (not counting ${protocolRefusals} protocol refusals by nginx itself: 505 HTTP Version Not Supported / 501 Not Implemented), resets: ${resets}, unanswered (abandoned after ${requestTimeoutMs} ms): ${unanswered}`);
  log(`  ledger: ${added.length} rows added, ${answered200.length} answered 200; reconciliation ${reconcileProblems.length === 0 ? 'exact' : `FAILED: ${reconcileProblems.slice(0, 5).join('; ')}`}`);
  log(`  processes: ${processProblems.length === 0 ? 'api1, api2 and nginx are the same processes, no unexpected exit' : processProblems.join('; ')}`);
  log(`  audit_failures: ${audit.length === 0 ? 'empty' : JSON.stringify(audit)}`);
  log(`fuzz: ${pass ? 'PASS' : 'FAIL'}`);
  return {
    pass,
    seed,
    count,
    ms,
    statuses,
    unanswered,
    resets,
    fiveXX,
    protocolRefusals,
    ok: answered200.length,
    ledgerRows: added.length,
    reconcileProblems,
    audit,
    processProblems,
    byMutation,
  };
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

function flag(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

async function cli(args: string[]): Promise<number> {
  const mode = args[0];
  if (mode === 'hostile') {
    const result = await runHostile({ filter: flag(args, '--filter'), explain: args.includes('--explain') });
    return result.pass ? 0 : 1;
  }
  if (mode === 'fuzz') {
    const count = flag(args, '--count');
    const seed = flag(args, '--seed');
    const result = await runMutationFuzz({
      count: count ? Number(count) : undefined,
      seed: seed ? Number(seed) : undefined,
      connections: flag(args, '--connections') ? Number(flag(args, '--connections')) : undefined,
    });
    return result.pass ? 0 : 1;
  }
  console.error('usage: node dist/loadtest/hostile/hostile.js <hostile|fuzz> [--count N] [--seed S] [--connections C] [--filter NAME] [--explain]');
  console.error('  the stack: $CREBITOS_HOME/stack.json (default .stack/), nginx on its HTTP port');
  return 2;
}

if (require.main === module) {
  cli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(`hostile: ${err.stack ?? err.message}`);
      process.exit(2);
    },
  );
}
