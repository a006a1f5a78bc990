// HTTP and database access shared by the load test (run.ts) and the chaos scenarios.

import * as http from 'node:http';
import { REQUEST_TIMEOUT_MS, USER_AGENT, type RequestSpec } from './simulation';

export interface Target {
  baseUrl: string;
  /** resolved once, as Gatling caches DNS: no lookup per request */
  address: string;
  family: number;
  port: number;
  hostHeader: string;
  basePath: string;
}

export interface Raw {
  status: number;
  body: string;
  error?: string;
}

export function transportError(err: NodeJS.ErrnoException): string {
  return `${err.code ?? err.name}: ${err.message}`;
}

/** One HTTP exchange. `agent: false` = a new TCP connection closed after the response. */
export function httpExchange(
  target: Target,
  spec: Pick<RequestSpec, 'method' | 'path' | 'body'>,
  agent: http.Agent | false,
  onDone: (r: Raw) => void,
  timeoutMs = REQUEST_TIMEOUT_MS,
): void {
  let settled = false;
  const done = (r: Raw): void => {
    if (settled) return;
    settled = true;
    onDone(r);
  };
  const headers: http.OutgoingHttpHeaders = { host: target.hostHeader, 'user-agent': USER_AGENT };
  if (spec.body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(spec.body);
  }
  const req = http.request({
    host: target.address,
    family: target.family,
    port: target.port,
    method: spec.method,
    path: target.basePath + spec.path,
    headers,
    agent,
    timeout: timeoutMs,
  });
  req.on('response', (res) => {
    res.setEncoding('utf8');
    let body = '';
    res.on('data', (chunk: string) => (body += chunk));
    res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    res.on('error', (err) => done({ status: res.statusCode ?? 0, body, error: transportError(err) }));
    res.on('aborted', () => done({ status: res.statusCode ?? 0, body, error: 'aborted: the connection closed before the body ended' }));
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error(`Request timeout to ${target.hostHeader} after ${timeoutMs} ms`), { code: 'TIMEOUT' })));
  req.on('error', (err) => done({ status: 0, body: '', error: transportError(err) }));
  req.end(spec.body);
}

interface PgClient {
  connect(conninfo: string, cb: (err?: Error) => void): void;
  query(text: string, cb: (err: Error | undefined, rows: Record<string, unknown>[]) => void): void;
  end(cb?: () => void): void;
}

/** Runs queries in order on one pg-native connection. */
export async function pgQueries(conninfo: string, queries: string[]): Promise<Record<string, unknown>[][]> {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const Client = require('pg-native') as new () => PgClient;
  const client = new Client();
  await new Promise<void>((resolve, reject) => client.connect(conninfo, (err) => (err ? reject(err) : resolve())));
  try {
    const results: Record<string, unknown>[][] = [];
    for (const q of queries) {
      results.push(await new Promise((resolve, reject) => client.query(q, (err, rows) => (err ? reject(err) : resolve(rows)))));
    }
    return results;
  } finally {
    await new Promise<void>((resolve) => client.end(() => resolve()));
  }
}

