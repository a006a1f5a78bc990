// HTTP and database access shared by the load test (run.ts) and the chaos scenarios.

import * as http from 'node:http';
import { Client, type ClientConfig } from 'pg';
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

/**
 * A libpq keyword/value conninfo (`host='/run/x' port=5432 user=postgres dbname=postgres`, as the
 * stack's state and --database give it) as node-postgres's client configuration. Values may be
 * single-quoted, with \\ and \' escapes, as libpq allows.
 */
export function conninfoToConfig(conninfo: string): ClientConfig {
  const fields: Record<string, string> = {};
  const pattern = /\s*([a-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|[^\s']+)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = pattern.exec(conninfo))) {
    fields[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
    end = pattern.lastIndex;
  }
  if (conninfo.slice(end).trim() !== '') throw new Error(`cannot read the conninfo ${JSON.stringify(conninfo)} near ${JSON.stringify(conninfo.slice(end))}`);
  const known = new Set(['host', 'port', 'user', 'dbname', 'password']);
  const unknown = Object.keys(fields).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new Error(`the conninfo ${JSON.stringify(conninfo)} has ${unknown.join(', ')}, which the harness does not pass on`);
  return { host: fields.host, port: fields.port === undefined ? undefined : Number(fields.port), user: fields.user, database: fields.dbname, password: fields.password };
}

/**
 * Runs queries in order on one connection of node-postgres (pure JavaScript). The harness's own
 * reads (audits, ledger counts, statistics) go through it rather than the APIs' native addon, so
 * a fault in the addon can never take a measurement down with it.
 */
export async function pgQueries(conninfo: string, queries: string[]): Promise<Record<string, unknown>[][]> {
  const client = new Client(conninfoToConfig(conninfo));
  await client.connect();
  try {
    const results: Record<string, unknown>[][] = [];
    for (const q of queries) results.push((await client.query(q)).rows);
    return results;
  } finally {
    await client.end();
  }
}
