// Test helpers: a private native stack per test file, a small HTTP client and database access.
//
//   const stack = useStack('integration', { httpPort: 23101, pgPort: 53101 });
//   test('…', async () => { const res = await stack.request('GET', '/clientes/1/extrato'); … });
//
// useStack registers node:test before/after hooks: the stack client (stack/client.ts) starts a
// stack with its own CREBITOS_HOME (<repo>/.stack-test-<name>, git-ignored by `.stack-*/`), HTTP
// port and PostgreSQL port, so test files can run side by side, and stops it after the file's tests.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before } from 'node:test';
import { numberTexts, parseJson as parseWithSource, toPlain } from '../loadtest/lib/json-source';
import { CLIENTS } from '../loadtest/lib/official-simulation';
import type { StepResult } from '../loadtest/lib/open-model';
import { LAG_LIMITS } from '../loadtest/lib/stats';
import { StackClient, portOffset } from '../stack/client';
import { REPO } from '../stack/settings';
import { alive } from '../stack/state';

export { REPO };

/** The five clients of the contest and their limits. */
export const LIMITS: Readonly<Record<number, number>> = Object.fromEntries(CLIENTS.map((c) => [c.id, c.limite]));
export const CLIENT_IDS: readonly number[] = CLIENTS.map((c) => c.id);
export const MAX_INT4 = 2147483647;

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body's bytes as received. */
  raw: Buffer;
  /** The body decoded as UTF-8. */
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  /** Source text of every number in the body that is not an integer literal (e.g. "1.0", "1e3"). */
  nonIntegerNumbers: string[];
}

export interface RequestOptions {
  /** An agent you control; `false` for a fresh connection. Defaults to the stack's keep-alive agent. */
  agent?: http.Agent | false;
  headers?: Record<string, string>;
  /** Talk to this unix socket (e.g. one API instance) instead of the TCP port. */
  socketPath?: string;
  port?: number;
  host?: string;
  timeoutMs?: number;
}

const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/;

/** Parses JSON and records numbers written as anything but an integer literal (e.g. "1.0", "1e3"). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function parseJson(text: string): { json: any; nonIntegerNumbers: string[] } {
  const value = parseWithSource(text);
  return { json: toPlain(value), nonIntegerNumbers: numberTexts(value).filter((source) => !INTEGER_LITERAL.test(source)) };
}

/** One HTTP request; resolves with the whole response, rejects on network errors and timeouts. */
export function request(
  method: string,
  urlPath: string,
  body?: string | Buffer | object,
  options: RequestOptions = {},
): Promise<HttpResponse> {
  const payload =
    body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const headers: Record<string, string> = { ...options.headers };
  if (payload !== undefined) {
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        method,
        path: urlPath,
        host: options.host ?? '127.0.0.1',
        port: options.socketPath ? undefined : options.port,
        socketPath: options.socketPath,
        agent: options.agent,
        headers,
        timeout: options.timeoutMs ?? 20_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = raw.toString('utf8');
          let json: unknown;
          let nonIntegerNumbers: string[] = [];
          try {
            ({ json, nonIntegerNumbers } = parseJson(text));
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, raw, text, json, nonIntegerNumbers });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no response after ${options.timeoutMs ?? 20_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Text that betrays an internal error: a stack frame, a source position, an exception or SQL error name. */
const LEAK = /\n\s+at |\bat [\w.<>$]+ \(|\.[jt]s:\d+|\b[A-Z]\w*Error:|\bERROR:|SQLSTATE|pg-native|libpq|plpgsql/;

/**
 * What every response of the service must satisfy: Content-Type application/json, a
 * Content-Length equal to the bytes received, a JSON body with integer-only numbers, and no
 * internal details in error bodies.
 */
export function checkWellFormed(res: HttpResponse, what = ''): string[] {
  const problems: string[] = [];
  if (res.headers['content-type'] !== 'application/json') problems.push(`Content-Type is ${JSON.stringify(res.headers['content-type'])}`);
  const length = res.headers['content-length'];
  if (length === undefined) problems.push('no Content-Length');
  else if (Number(length) !== res.raw.length) problems.push(`Content-Length ${length} but ${res.raw.length} bytes received`);
  if (res.headers['transfer-encoding'] !== undefined) problems.push(`Transfer-Encoding ${res.headers['transfer-encoding']}`);
  if (res.json === undefined) problems.push('body is not JSON');
  if (res.nonIntegerNumbers.length > 0) problems.push(`non-integer numbers ${res.nonIntegerNumbers.join(', ')}`);
  if (res.status >= 400 && LEAK.test(res.text)) problems.push('error body leaks internals');
  return problems.map((p) => `${what ? `${what}: ` : ''}${p} (status ${res.status}, body ${JSON.stringify(res.text)})`);
}

// ---------------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------------

export interface StackOptions {
  /** Defaults derive from the name: 20000-28999 and 50000-58999. */
  httpPort?: number;
  pgPort?: number;
  poolSize?: number;
  /** How long to wait for `ready:` (default 120 s; the first start may compile or install). */
  readyTimeoutMs?: number;
  env?: Record<string, string>;
}

/** A test file's stack: the stack client, plus an HTTP client and psql on it. */
export class TestStack extends StackClient {
  /** Filled by start() from the stack's state. */
  socketDir = '';
  pids: Record<string, number> = {};
  /** Keep-alive agent used by request() unless another agent is given. */
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(
    readonly name: string,
    private readonly options: StackOptions = {},
  ) {
    super({
      home: path.join(REPO, `.stack-test-${name}`),
      httpPort: options.httpPort ?? 20000 + portOffset(name, 9000),
      pgPort: options.pgPort ?? 50000 + portOffset(name, 9000),
      env: { ...options.env, POOL_SIZE: options.poolSize ? String(options.poolSize) : process.env.POOL_SIZE },
    });
  }

  /** Starts the stack; rejects with the supervisor's output when it is not ready in time. */
  async start(): Promise<void> {
    const state = await this.up(this.options.readyTimeoutMs ?? 120_000);
    this.socketDir = state.socketDir;
    this.pids = Object.fromEntries(state.components.map((c) => [c.name, c.pid]));
  }

  /** Stops the stack, and anything its supervisor failed to stop (it only stops what it started). */
  async stop(): Promise<void> {
    this.agent.destroy();
    this.down();
    for (const pid of Object.values(this.pids)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }

  /** Everything the supervisor printed so far. */
  get log(): string {
    return this.stackLog();
  }

  /** A request to nginx on this stack's HTTP port (or to `options.socketPath`). */
  request(method: string, urlPath: string, body?: string | Buffer | object, options: RequestOptions = {}): Promise<HttpResponse> {
    return request(method, urlPath, body, { agent: this.agent, port: this.httpPort, ...options });
  }

  /** Bytes each API process has written so far, of the pids this test knows (see StackClient.apiWrites). */
  override apiWrites(): { api1: number; api2: number } {
    return super.apiWrites({ api1: this.pids.api1, api2: this.pids.api2 });
  }

  private psqlArgs(): string[] {
    return ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', this.socketDir, '-p', String(this.pgPort), '-U', 'postgres', '-d', 'postgres'];
  }

  /**
   * Runs SQL and returns the rows of the last statement as arrays of strings (psql -A -t -F '|').
   * For values that may contain '|' or newlines use psqlJson.
   */
  psql(sql: string): string[][] {
    const out = this.runPsql(['-A', '-t', '-F', '|', '-c', sql]);
    return out
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => line.split('|'));
  }

  /** Rows of a SELECT as objects, transported as one JSON value: safe for any text. */
  psqlJson<T = Record<string, unknown>>(select: string): T[] {
    const out = this.runPsql(['-A', '-t', '-c', `SELECT coalesce(json_agg(q), '[]') FROM (${select}) q`]);
    return JSON.parse(out) as T[];
  }

  private runPsql(args: string[]): string {
    try {
      return execFileSync('psql', [...this.psqlArgs(), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`psql failed: ${e.stderr || e.message}`);
    }
  }

  /** Rows of the audit_failures view: empty when the books are straight. */
  audit(): Record<string, unknown>[] {
    return this.psqlJson('SELECT * FROM audit_failures ORDER BY id');
  }

  /** The initial data again: no ledger entries, every balance 0. */
  reset(): void {
    this.psql('TRUNCATE ledger; UPDATE accounts SET balance = 0');
  }
}

/** One stack for the calling test file, started before its tests and stopped after them. */
export function useStack(name: string, options: StackOptions = {}): TestStack {
  const stack = new TestStack(name, options);
  before(() => stack.start(), { timeout: (options.readyTimeoutMs ?? 120_000) + 30_000 });
  after(() => stack.stop(), { timeout: 90_000 });
  return stack;
}

export { alive };

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
export { setTimeout as sleep } from 'node:timers/promises';

/** Invariants every step result must satisfy. */
export function assertSane(r: StepResult): void {
  assert.equal(Object.values(r.statuses).reduce((a, b) => a + b, 0), r.sent, 'every request has exactly one outcome');
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
