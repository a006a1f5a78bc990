// The harness's own database access: audits, ledger counts and statistics on node-postgres.

import { Client, type ClientConfig } from 'pg';

/**
 * A libpq keyword/value conninfo (`host='/run/x' port=5432 user=postgres dbname=postgres`, as the
 * stack's state and --database give it) as node-postgres's client configuration. Values may be
 * single-quoted, with \\ and \' escapes, as libpq allows.
 */
function conninfoToConfig(conninfo: string): ClientConfig {
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
  const client = await pgConnect(conninfo);
  try {
    const results: Record<string, unknown>[][] = [];
    for (const q of queries) results.push((await client.query(q)).rows);
    return results;
  } finally {
    await client.end();
  }
}

/** One connected node-postgres client, for a caller that runs many queries over a while. */
export async function pgConnect(conninfo: string): Promise<Client> {
  const client = new Client(conninfoToConfig(conninfo));
  await client.connect();
  return client;
}
