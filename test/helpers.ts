// Test helpers: a private native stack per test file, a small HTTP client and database access.
//
//   const stack = useStack('integration', { httpPort: 23101, pgPort: 53101 });
//   test('…', async () => { const res = await stack.request('GET', '/clientes/1/extrato'); … });
//
// useStack registers node:test before/after hooks: `node dist/stack.js start` runs in the
// foreground with its own CREBITOS_HOME (<repo>/.stack-test-<name>, git-ignored by `.stack-*/`),
// HTTP port and PostgreSQL port, so test files can run side by side; it is stopped with SIGTERM
// and awaited after the file's tests.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before } from 'node:test';
import { alive } from '../stack';

/** The repository root (this file runs from <repo>/dist/test/). */
export const REPO = path.resolve(__dirname, '..', '..');
const STACK_JS = path.join(REPO, 'dist', 'stack.js');

/** The five clients of the contest and their limits. */
export const LIMITS: Readonly<Record<number, number>> = { 1: 100000, 2: 80000, 3: 1000000, 4: 10000000, 5: 500000 };
export const CLIENT_IDS = [1, 2, 3, 4, 5] as const;
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

/**
 * Parses JSON and records numbers written as anything but an integer literal. Uses the
 * reviver's `context.source` (node --harmony-json-parse-with-source); without the flag the
 * check falls back to the parsed value.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function parseJson(text: string): { json: any; nonIntegerNumbers: string[] } {
  const nonIntegerNumbers: string[] = [];
  const reviver = function (_key: string, value: unknown, context?: { source?: string }): unknown {
    if (typeof value === 'number') {
      const source = context?.source ?? String(value);
      if (!INTEGER_LITERAL.test(source)) nonIntegerNumbers.push(source);
    }
    return value;
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const json = JSON.parse(text, reviver as any);
  return { json, nonIntegerNumbers };
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

interface StackJson {
  socketDir: string;
  components: { name: string; pid: number }[];
}

function nameHash(name: string): number {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % 9000;
}

export class TestStack {
  readonly home: string;
  readonly httpPort: number;
  readonly pgPort: number;
  /** Filled by start() from $CREBITOS_HOME/stack.json. */
  socketDir = '';
  pids: Record<string, number> = {};
  /** Keep-alive agent used by request() unless another agent is given. */
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private child: ChildProcess | undefined;
  private output = '';
  private exited: Promise<void> | undefined;
  private readonly killOnExit = (): void => {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGTERM');
  };

  constructor(
    readonly name: string,
    private readonly options: StackOptions = {},
  ) {
    this.home = path.join(REPO, `.stack-test-${name}`);
    this.httpPort = options.httpPort ?? 20000 + nameHash(name);
    this.pgPort = options.pgPort ?? 50000 + nameHash(name);
  }

  /** Starts `node dist/stack.js start` and resolves once it prints `ready:`. */
  async start(): Promise<void> {
    if (!fs.existsSync(STACK_JS)) throw new Error(`${STACK_JS} is missing: run npx tsc -p .`);
    await this.stopLeftover();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.options.env,
      CREBITOS_HOME: this.home,
      HTTP_PORT: String(this.httpPort),
      PG_PORT: String(this.pgPort),
    };
    if (this.options.poolSize) env.POOL_SIZE = String(this.options.poolSize);
    // Test runner flags (--test, --harmony…) are not for the stack.
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [STACK_JS, 'start'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    process.once('exit', this.killOnExit);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const timeoutMs = this.options.readyTimeoutMs ?? 120_000;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const onData = (chunk: Buffer): void => {
        this.output += chunk.toString('utf8');
        if (/\bready:/.test(this.output)) finish();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('error', (err) => finish(new Error(`stack ${this.name} could not be spawned: ${err.message}`)));
      child.once('exit', (code, signal) =>
        finish(new Error(`stack ${this.name} exited before ready (${signal ?? `exit ${code}`}); output:\n${this.output}`)),
      );
      const timer = setTimeout(() => {
        finish(new Error(`stack ${this.name} not ready after ${timeoutMs / 1000} s; output so far:\n${this.output}`));
      }, timeoutMs);
    }).catch(async (err: Error) => {
      await this.stop();
      throw err;
    });
    const state = JSON.parse(fs.readFileSync(path.join(this.home, 'stack.json'), 'utf8')) as StackJson;
    this.socketDir = state.socketDir;
    this.pids = Object.fromEntries(state.components.map((c) => [c.name, c.pid]));
  }

  /**
   * A supervisor left running from this home by an earlier run that was killed before its
   * after() hook (e.g. Ctrl-C): stop it the way `stack.js down` would, by its recorded pid.
   */
  private async stopLeftover(): Promise<void> {
    let state: { supervisorPid?: number } | undefined;
    try {
      state = JSON.parse(fs.readFileSync(path.join(this.home, 'stack.json'), 'utf8'));
    } catch {
      return;
    }
    const pid = state?.supervisorPid;
    if (!pid || !alive(pid)) return;
    let cmdline = '';
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return;
    }
    if (!cmdline.includes('stack.js')) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 60_000;
    while (alive(pid) && Date.now() < deadline) await sleep(100);
  }

  /** SIGTERM to the supervisor and wait for it; kills leftovers if it does not finish in time. */
  async stop(): Promise<void> {
    this.agent.destroy();
    const child = this.child;
    if (!child) return;
    process.removeListener('exit', this.killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.exited!.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 60_000))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        child.kill('SIGKILL');
        await this.exited;
      }
    }
    // Anything the supervisor failed to stop (it only stops what it started).
    for (const pid of Object.values(this.pids)) if (alive(pid)) process.kill(pid, 'SIGKILL');
    this.child = undefined;
  }

  /** Everything the supervisor printed so far. */
  get log(): string {
    return this.output;
  }

  /** A request to nginx on this stack's HTTP port (or to `options.socketPath`). */
  request(method: string, urlPath: string, body?: string | Buffer | object, options: RequestOptions = {}): Promise<HttpResponse> {
    return request(method, urlPath, body, { agent: this.agent, port: this.httpPort, ...options });
  }

  /** The unix socket of one API instance, to bypass nginx. */
  apiSocket(name: 'api1' | 'api2'): string {
    return path.join(this.socketDir, `${name}.sock`);
  }

  /**
   * Bytes each API process has written so far (/proc/<pid>/io wchar). An idle instance writes
   * nothing, so a counter that moved across a request proves that instance served it.
   */
  apiWrites(): { api1: number; api2: number } {
    const wchar = (pid: number): number => Number(/^wchar:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
    return { api1: wchar(this.pids.api1), api2: wchar(this.pids.api2) };
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
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
