// The machine's prerequisites for the native stack: PostgreSQL 15, libpq's headers (for
// pg-native's addon) and nginx, installed with apt-get when run as root.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PG_BIN, REPO, SERVER_JS, isRoot } from './settings';

const REQUIRED = [
  { pkg: 'postgresql-15', present: () => fs.existsSync(path.join(PG_BIN, 'postgres')) },
  { pkg: 'libpq-dev', present: () => fs.existsSync('/usr/include/postgresql/libpq-fe.h') },
  { pkg: 'nginx', present: () => commandExists('nginx') },
];

function commandExists(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name} || test -x /usr/sbin/${name}`], { stdio: 'ignore' }).status === 0;
}

export function nginxBinary(): string {
  return fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
}

/** Installs missing apt packages as root; otherwise explains what to install. */
export function ensurePrerequisites(log: (line: string) => void): void {
  const missing = REQUIRED.filter((r) => !r.present()).map((r) => r.pkg);
  if (missing.length > 0) {
    if (!isRoot()) {
      throw new Error(`missing packages: ${missing.join(' ')}. Install them with: sudo apt-get install -y ${missing.join(' ')}`);
    }
    log(`installing ${missing.join(' ')} with apt-get (first run on this machine)`);
    const apt = (args: string[]): void => {
      const result = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      if (result.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${result.status})`);
    };
    apt(['update', '-qq']);
    apt(['install', '-y', '-qq', ...missing]);
  }
  // pg-native's addon is compiled by `npm ci` against libpq-dev; rebuild it if that was missing then.
  try {
    require('pg-native');
  } catch (err) {
    log(`the libpq addon does not load (${(err as Error).message.split('\n')[0]}); rebuilding it`);
    const result = spawnSync('npm', ['rebuild', 'libpq'], { cwd: REPO, stdio: 'inherit' });
    if (result.status !== 0) throw new Error('npm rebuild libpq failed; is libpq-dev installed?');
  }
  if (!fs.existsSync(SERVER_JS)) throw new Error(`${SERVER_JS} is missing: run npm run build`);
}
