// The native stack's settings: where it lives, its ports and sockets, and which of the
// repository's files it runs, from the environment (CREBITOS_HOME, HTTP_PORT, PG_PORT, ...).
// The lowest layer of stack/: it imports nothing of the project.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root (this file runs from <repo>/dist/stack/). */
export const REPO = path.resolve(__dirname, '..', '..');
export const PG_BIN = '/usr/lib/postgresql/15/bin';
export const SERVER_JS = path.join(REPO, 'dist', 'server.js');
/** The port nginx.conf listens on, as the contest requires. */
export const CONTEST_PORT = 9999;

export interface StackSettings {
  /** Everything the stack writes: data, sockets, logs, state. Git-ignored by default. */
  home: string;
  httpPort: number;
  pgPort: number;
  /** Unix sockets of PostgreSQL and both APIs. */
  socketDir: string;
  /** PostgreSQL's cluster, recreated at every start; owned by `postgres` when run as root. */
  pgDir: string;
  /** Passed to each API instance (see server.ts). */
  poolSize: string;
  /** The compose file whose deploy.resources.limits the native stack applies. */
  composeFile: string;
  /** False with --no-limits or CREBITOS_NO_LIMITS=1: run without cgroup limits, for comparison. */
  limits: boolean;
  /** PostgreSQL settings files, included in order: postgresql.conf, then PG_SETTINGS if given. */
  pgSettings: string[];
  /** The nginx.conf to adapt and run: the repository's, or CREBITOS_NGINX_CONF (a variant, e.g. from npm run bench). */
  nginxConf: string;
  /** CREBITOS_SQL: a SQL file run after procedures.sql, e.g. a variant that redefines post_transaction. */
  sqlOverlay: string | undefined;
  /**
   * CREBITOS_TRANSPORT, for measuring the sockets' worth: `unix` (default; both hops on unix
   * sockets, as in the contest), `tcp` (both hops on 127.0.0.1), `tcp-api` (nginx to the APIs
   * only) or `tcp-db` (the APIs to PostgreSQL only).
   */
  transport: { api: Transport; db: Transport };
  /** CREBITOS_API_NODE_FLAGS: node flags for both APIs, e.g. `--cpu-prof --cpu-prof-dir=DIR` (npm run profile). */
  apiNodeFlags: string[];
  /**
   * CREBITOS_RESTART_DELAY_MS: restart a component that died after this fixed delay, however
   * often it dies, instead of the default policy (backoff doubling from 0.5 s, left down after
   * 10 crashes within a minute). For fault scenarios that kill a component many times on purpose
   * (`npm run chaos -- pg-flap`), where the policy would otherwise measure its own backoff.
   */
  restartDelayMs: number | undefined;
}

export type Transport = 'unix' | 'tcp';
const TRANSPORTS: Record<string, StackSettings['transport']> = {
  unix: { api: 'unix', db: 'unix' },
  tcp: { api: 'tcp', db: 'tcp' },
  'tcp-api': { api: 'tcp', db: 'unix' },
  'tcp-db': { api: 'unix', db: 'tcp' },
};

export function readSettings(env: NodeJS.ProcessEnv = process.env, argv: string[] = []): StackSettings {
  const home = path.resolve(env.CREBITOS_HOME || path.join(REPO, '.stack'));
  const port = (name: string, fallback: number): number => {
    const value = Number(env[name] || fallback);
    if (!Number.isInteger(value) || value < 1 || value > 65535) throw new Error(`${name} must be a TCP port, got ${env[name]}`);
    return value;
  };
  const pgPort = port('PG_PORT', 54329);
  const transport = TRANSPORTS[env.CREBITOS_TRANSPORT || 'unix'];
  if (!transport) throw new Error(`CREBITOS_TRANSPORT must be one of ${Object.keys(TRANSPORTS).join(', ')}, got ${env.CREBITOS_TRANSPORT}`);
  return {
    home,
    httpPort: port('HTTP_PORT', CONTEST_PORT),
    pgPort,
    socketDir: path.resolve(env.SOCKET_DIR || defaultSocketDir(home, pgPort)),
    pgDir: isRoot() && !reachableByOthers(path.join(home, 'pg')) ? path.join(os.tmpdir(), `crebitos-pg-${pgPort}`) : path.join(home, 'pg'),
    poolSize: env.POOL_SIZE || '',
    composeFile: path.resolve(env.CREBITOS_COMPOSE || path.join(REPO, 'docker-compose.yml')),
    limits: !argv.includes('--no-limits') && env.CREBITOS_NO_LIMITS !== '1',
    pgSettings: [path.join(REPO, 'postgresql.conf'), ...(env.PG_SETTINGS ? [path.resolve(env.PG_SETTINGS)] : [])],
    nginxConf: path.resolve(env.CREBITOS_NGINX_CONF || path.join(REPO, 'nginx.conf')),
    sqlOverlay: env.CREBITOS_SQL ? path.resolve(env.CREBITOS_SQL) : undefined,
    transport,
    apiNodeFlags: (env.CREBITOS_API_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean),
    restartDelayMs: restartDelay(env.CREBITOS_RESTART_DELAY_MS),
  };
}

function restartDelay(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`CREBITOS_RESTART_DELAY_MS must be a whole number of milliseconds, got ${value}`);
  return ms;
}

/**
 * Unix socket paths are limited to 107 bytes, PostgreSQL's must be reachable by the `postgres`
 * user, and the directory is written into a libpq conninfo and nginx.conf; so a deep, private
 * (e.g. under /root) or oddly named checkout gets a short, plain one in /tmp.
 */
function defaultSocketDir(home: string, pgPort: number): string {
  const inHome = path.join(home, 'run');
  const longest = path.join(inHome, `.s.PGSQL.${pgPort}.lock`);
  if (longest.length <= 100 && /^[\w./-]+$/.test(inHome) && (!isRoot() || reachableByOthers(home))) return inHome;
  return path.join(os.tmpdir(), `crebitos-${pgPort}`);
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** True when every existing ancestor of `dir` can be traversed by any user. */
export function reachableByOthers(dir: string): boolean {
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    try {
      if ((fs.statSync(current).mode & 0o001) === 0) return false;
    } catch {
      // not created yet: it will be created by us with open permissions
    }
    if (current === path.dirname(current)) return true;
  }
}

export function databaseConninfo(settings: Pick<StackSettings, 'socketDir' | 'pgPort'>): string {
  // libpq's quoting: single quotes, with backslash escaping quotes and backslashes.
  const host = settings.socketDir.replace(/[\\']/g, (c) => `\\${c}`);
  return `host='${host}' port=${settings.pgPort} user=postgres dbname=postgres`;
}

/** A 32-bit hash of a name (31·h + c per character), for names and ports derived from it. */
export function nameHash(text: string, seed = 0): number {
  let h = seed;
  for (const ch of text) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
  return h;
}
