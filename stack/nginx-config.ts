// nginx.conf as the native stack runs it: the repository's file with only paths and the port
// changed for this machine.

import * as path from 'node:path';
import { CONTEST_PORT, type StackSettings } from './settings';

/** The directory nginx.conf names for the API sockets (a shared volume under docker compose). */
const COMPOSE_SOCKET_DIR = '/run/crebitos';

/** A path as one nginx.conf parameter, whatever characters it holds. */
export function nginxQuote(value: string): string {
  return `"${value.replace(/["\\$]/g, (c) => `\\${c}`)}"`;
}

/**
 * nginx.conf adapted to this machine: the API sockets' directory, the listening port, and
 * temporary paths under the stack's own prefix (the packaged defaults live in /var/lib/nginx).
 * With `apis` (CREBITOS_TRANSPORT), each API's socket is replaced by its host:port instead.
 */
export function nativeNginxConf(conf: string, settings: Pick<StackSettings, 'socketDir' | 'httpPort'>, prefix: string, apis?: Record<string, string>): string {
  if (!conf.includes(`unix:${COMPOSE_SOCKET_DIR}/`)) throw new Error(`nginx.conf no longer proxies to sockets in ${COMPOSE_SOCKET_DIR}; update stack/nginx-config.ts`);
  if (!new RegExp(`listen\\s+${CONTEST_PORT}\\b`).test(conf)) throw new Error(`nginx.conf no longer listens on ${CONTEST_PORT}; update stack/nginx-config.ts`);
  for (const [name, address] of Object.entries(apis ?? {})) {
    const socket = `unix:${COMPOSE_SOCKET_DIR}/${name}.sock`;
    if (!conf.includes(socket)) throw new Error(`nginx.conf has no upstream ${socket} to move to ${address}; update stack/nginx-config.ts`);
    conf = conf.split(socket).join(address);
  }
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `    ${kind}_temp_path ${nginxQuote(path.join(prefix, `${kind}_temp`))};`).join('\n');
  return conf
    .split(`unix:${COMPOSE_SOCKET_DIR}/`)
    .join(`unix:${settings.socketDir}/`)
    .replace(new RegExp(`listen(\\s+)${CONTEST_PORT}\\b`), `listen$1${settings.httpPort}`)
    .replace(/^http\s*\{/m, (open) => `${open}\n${temp}`);
}
