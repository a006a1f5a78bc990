// The native stack: the contest topology (PostgreSQL, two API instances, nginx on 9999) run as
// plain processes on this machine, for development, tests and load tests where Docker is absent.
//
//   node dist/stack.js start   foreground; Ctrl-C or SIGTERM stops everything it started
//   node dist/stack.js up      the same in the background; returns once the stack answers
//   node dist/stack.js down    stops what `up` started
//   node dist/stack.js status  what is running
//
// It reads procedures.sql, postgresql.conf and nginx.conf from the repository rather than
// repeating what they say; only paths and ports are changed for this machine.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDocument } from 'yaml';

export const REPO = path.resolve(__dirname, '..');
const PG_BIN = '/usr/lib/postgresql/15/bin';
const SERVER_JS = path.join(REPO, 'dist', 'server.js');
/** The directory nginx.conf names for the API sockets (a shared volume under docker compose). */
const COMPOSE_SOCKET_DIR = '/run/crebitos';
const CONTEST_PORT = 9999;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

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
  };
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

const isRoot = (): boolean => process.getuid?.() === 0;

/** True when every existing ancestor of `dir` can be traversed by any user. */
function reachableByOthers(dir: string): boolean {
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    try {
      if ((fs.statSync(current).mode & 0o001) === 0) return false;
    } catch {
      // not created yet: it will be created by us with open permissions
    }
    if (current === path.dirname(current)) return true;
  }
}

// ---------------------------------------------------------------------------------------------
// Prerequisites
// ---------------------------------------------------------------------------------------------

const REQUIRED = [
  { pkg: 'postgresql-15', present: () => fs.existsSync(path.join(PG_BIN, 'postgres')) },
  { pkg: 'libpq-dev', present: () => fs.existsSync('/usr/include/postgresql/libpq-fe.h') },
  { pkg: 'nginx', present: () => commandExists('nginx') },
];

function commandExists(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name} || test -x /usr/sbin/${name}`], { stdio: 'ignore' }).status === 0;
}

function nginxBinary(): string {
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

// ---------------------------------------------------------------------------------------------
// The envelope: docker-compose.yml's limits, applied with cgroup v1
// ---------------------------------------------------------------------------------------------

/** Native components, named after their docker-compose services. */
export const COMPONENTS = ['db', 'api1', 'api2', 'nginx'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

export interface Limit {
  cpus: number;
  memoryBytes: number;
}
export type Envelope = Record<ComponentName, Limit>;

/** The contest's budget for the sum over all services. */
export const BUDGET = { cpus: 1.5, memoryMB: 550 };

const MiB = 1024 * 1024;

/** Docker's memory notation ("100MB", "100m", "1g", bytes): binary units, as Docker reads them. */
export function parseMemory(value: unknown): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$/i.exec(String(value));
  if (!match) throw new Error(`cannot read memory limit ${JSON.stringify(value)}`);
  const unit = { '': 1, b: 1, k: 1024, m: MiB, g: 1024 * MiB }[match[2].toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  return Math.round(Number(match[1]) * unit);
}

/** Every service's deploy.resources.limits, with YAML merge keys resolved as compose does. */
export function readComposeLimits(file: string): Record<string, Limit> {
  return parseComposeLimits(fs.readFileSync(file, 'utf8'), file);
}

/** readComposeLimits of a compose file's text (`file` names it in errors). */
export function parseComposeLimits(text: string, file: string): Record<string, Limit> {
  const doc = parseDocument(text, { merge: true });
  if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
  const services = (doc.toJS() as { services?: Record<string, { deploy?: { resources?: { limits?: { cpus?: unknown; memory?: unknown } } } }> }).services;
  if (!services) throw new Error(`${file} has no services`);
  const limits: Record<string, Limit> = {};
  for (const [name, service] of Object.entries(services)) {
    const declared = service?.deploy?.resources?.limits;
    if (declared?.cpus === undefined || declared.memory === undefined) throw new Error(`${file}: service ${name} declares no deploy.resources.limits cpus and memory`);
    const cpus = Number(declared.cpus);
    if (!(cpus > 0)) throw new Error(`${file}: service ${name} has an invalid cpus limit ${JSON.stringify(declared.cpus)}`);
    limits[name] = { cpus, memoryBytes: parseMemory(declared.memory) };
  }
  return limits;
}

export function readEnvelope(file: string): Envelope {
  const limits = readComposeLimits(file);
  const envelope = {} as Envelope;
  for (const name of COMPONENTS) {
    if (!limits[name]) throw new Error(`${file} has no service named ${name}; the native stack runs ${COMPONENTS.join(', ')}`);
    envelope[name] = limits[name];
  }
  return envelope;
}

/** Problems with a compose file's limits against the contest budget; empty when it fits. */
export function budgetProblems(limits: Record<string, Limit>): string[] {
  const services = Object.values(limits);
  const cpus = Number(services.reduce((sum, l) => sum + l.cpus, 0).toFixed(3));
  const memoryMB = Number((services.reduce((sum, l) => sum + l.memoryBytes, 0) / MiB).toFixed(1));
  const problems: string[] = [];
  if (cpus > BUDGET.cpus) problems.push(`cpus add up to ${cpus}, over the ${BUDGET.cpus} budget by ${Number((cpus - BUDGET.cpus).toFixed(3))}`);
  if (memoryMB > BUDGET.memoryMB) problems.push(`memory adds up to ${memoryMB} MB, over the ${BUDGET.memoryMB} MB budget by ${Number((memoryMB - BUDGET.memoryMB).toFixed(1))} MB`);
  return problems;
}

export function describeEnvelope(envelope: Envelope): string {
  const parts = COMPONENTS.map((name) => `${name} ${envelope[name].cpus} CPU / ${envelope[name].memoryBytes / MiB} MB`);
  const cpus = COMPONENTS.reduce((sum, name) => sum + envelope[name].cpus, 0);
  const memory = COMPONENTS.reduce((sum, name) => sum + envelope[name].memoryBytes, 0) / MiB;
  return `${parts.join(', ')}; total ${Number(cpus.toFixed(3))} CPU / ${Number(memory.toFixed(1))} MB`;
}

export interface CgroupPaths {
  cpu: string;
  cpuacct: string;
  memory: string;
}

export interface Usage {
  name: string;
  cpuSeconds: number;
  peakMemoryBytes: number;
  oomKills: number;
  cpuLimit?: number;
  memoryLimitBytes?: number;
  /**
   * Peak RSS of the component's main process (VmHWM), for the single-process APIs. It counts
   * shared pages (the node binary, libraries) that the cgroup charges to whoever touched them first.
   */
  peakRssBytes?: number;
  /**
   * CFS periods (100 ms) in which the group used up its CPU quota, and the time its processes
   * then waited (cpu.stat). A throttled period stalls whatever the component was doing for the
   * rest of it: the usual cause of latency spikes of tens of milliseconds inside the envelope.
   */
  throttledPeriods?: number;
  throttledSeconds?: number;
}

/** Where each v1 controller is mounted and this process's own group in it. */
function cgroupBases(): CgroupPaths | string {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' '));
  const own = new Map<string, string>();
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers, group] = line.split(':');
    for (const controller of controllers.split(',')) own.set(controller, group);
  }
  const base = (controller: string): string | undefined => {
    const mount = mounts.find((m) => m[2] === 'cgroup' && m[3].split(',').includes(controller));
    return mount && own.has(controller) ? path.join(mount[1], own.get(controller)!) : undefined;
  };
  const cpu = base('cpu'), cpuacct = base('cpuacct'), memory = base('memory');
  if (!cpu || !cpuacct || !memory) return 'no cgroup v1 cpu, cpuacct and memory hierarchies (cgroup v2 is not supported yet)';
  for (const dir of [cpu, cpuacct, memory]) {
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch {
      return `${dir} is not writable (run as root)`;
    }
  }
  return { cpu, cpuacct, memory };
}

/** Names this stack's groups: two checkouts using the same port never share (or kill) them. */
function cgroupTag(home: string, httpPort: number): string {
  let hash = 0;
  for (const ch of home) hash = (Math.imul(hash, 31) + ch.charCodeAt(0)) >>> 0;
  return `crebitos-${httpPort}-${hash.toString(36)}`;
}

/** One group per component under crebitos-<port>-<home hash>/, limited as the compose file says. */
export class Cgroups {
  private constructor(
    private readonly roots: CgroupPaths,
    readonly groups: Record<string, CgroupPaths>,
  ) {}

  /** Returns undefined, after a warning, where cgroups cannot be used. */
  static create(tag: string, envelope: Envelope, warn: (line: string) => void): Cgroups | undefined {
    const bases = cgroupBases();
    if (typeof bases === 'string') {
      warn(`WARNING: cannot apply the envelope: ${bases}. Running WITHOUT limits.`);
      return undefined;
    }
    const roots = { cpu: path.join(bases.cpu, tag), cpuacct: path.join(bases.cpuacct, tag), memory: path.join(bases.memory, tag) };
    const groups: Record<string, CgroupPaths> = {};
    for (const name of COMPONENTS) groups[name] = { cpu: path.join(roots.cpu, name), cpuacct: path.join(roots.cpuacct, name), memory: path.join(roots.memory, name) };
    const cgroups = new Cgroups(roots, groups);
    try {
      cgroups.remove(true); // groups left by a run that was killed
      for (const name of COMPONENTS) {
        const group = groups[name];
        for (const dir of Object.values(group)) fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(group.cpu, 'cpu.cfs_period_us'), '100000');
        fs.writeFileSync(path.join(group.cpu, 'cpu.cfs_quota_us'), String(Math.round(envelope[name].cpus * 100000)));
        fs.writeFileSync(path.join(group.memory, 'memory.limit_in_bytes'), String(envelope[name].memoryBytes));
        // No swap beyond the limit, as on the contest host (which had none).
        const memsw = path.join(group.memory, 'memory.memsw.limit_in_bytes');
        if (fs.existsSync(memsw)) fs.writeFileSync(memsw, String(envelope[name].memoryBytes));
      }
    } catch (err) {
      warn(`WARNING: cannot apply the envelope: ${(err as Error).message}. Running WITHOUT limits.`);
      cgroups.remove(false);
      return undefined;
    }
    return cgroups;
  }

  /** Files a process writes its own pid to, before exec, to join the component's groups. */
  procsFiles(name: string): string[] {
    return Object.values(this.groups[name]).map((dir) => path.join(dir, 'cgroup.procs'));
  }

  usage(name: string, envelope?: Envelope): Usage {
    return readGroupUsage(name, this.groups[name], envelope?.[name as ComponentName]);
  }

  /** Removes the groups; with `killStragglers`, kills what is still inside first. */
  remove(killStragglers: boolean): void {
    for (const root of Object.values(this.roots)) {
      if (!fs.existsSync(root)) continue;
      for (const name of fs.readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory())) {
        const dir = path.join(root, name.name);
        if (killStragglers) {
          for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
            try {
              process.kill(Number(pid), 'SIGKILL');
            } catch {
              // already gone
            }
          }
        }
        rmdirWhenEmpty(dir);
      }
      rmdirWhenEmpty(root);
    }
  }
}

/** A cgroup can be removed only once its last process has been reaped, which takes a moment. */
function rmdirWhenEmpty(dir: string): void {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

function readNumber(file: string): number {
  return Number(fs.readFileSync(file, 'utf8').trim());
}

function readGroupUsage(name: string, group: CgroupPaths, limit?: Limit): Usage {
  const oom = /oom_kill (\d+)/.exec(fs.readFileSync(path.join(group.memory, 'memory.oom_control'), 'utf8'));
  return {
    name,
    cpuSeconds: readNumber(path.join(group.cpuacct, 'cpuacct.usage')) / 1e9,
    peakMemoryBytes: readNumber(path.join(group.memory, 'memory.max_usage_in_bytes')),
    oomKills: oom ? Number(oom[1]) : 0,
    ...readThrottling(group.cpu),
    cpuLimit: limit?.cpus,
    memoryLimitBytes: limit?.memoryBytes,
  };
}

function readThrottling(cpuGroup: string): Pick<Usage, 'throttledPeriods' | 'throttledSeconds'> {
  try {
    const stat = fs.readFileSync(path.join(cpuGroup, 'cpu.stat'), 'utf8');
    const field = (key: string): number => Number(new RegExp(`^${key} (\\d+)`, 'm').exec(stat)?.[1] ?? NaN);
    return { throttledPeriods: field('nr_throttled'), throttledSeconds: field('throttled_time') / 1e9 };
  } catch {
    return {};
  }
}

/** VmHWM of a live process, in bytes; undefined once it has exited. */
export function peakRss(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Live usage of a running stack's components (for load tests), or undefined without limits. */
export function readUsage(state: StackState): Usage[] | undefined {
  if (!state.cgroups) return undefined;
  try {
    return COMPONENTS.map((name) => {
      const usage = readGroupUsage(name, state.cgroups![name], state.envelope?.[name]);
      if (name.startsWith('api')) usage.peakRssBytes = peakRss(state.components.find((c) => c.name === name)?.pid);
      return usage;
    });
  } catch {
    return undefined;
  }
}

export function formatUsage(usage: Usage[]): string {
  const rows = usage.map((u) => {
    const memory = `${(u.peakMemoryBytes / MiB).toFixed(1)} MB`;
    const limit = u.memoryLimitBytes ? ` of ${u.memoryLimitBytes / MiB} MB` : '';
    const cpu = u.cpuLimit ? ` (limit ${u.cpuLimit} CPU)` : '';
    const oom = u.oomKills > 0 ? `  OOM kills: ${u.oomKills}` : '';
    const throttled = u.throttledPeriods ? `, CPU-throttled in ${u.throttledPeriods} periods (${u.throttledSeconds!.toFixed(2)} s waited)` : '';
    const rss = u.peakRssBytes ? `, peak RSS ${(u.peakRssBytes / MiB).toFixed(1)} MB` : '';
    return `  ${u.name.padEnd(6)} peak memory ${memory}${limit}${rss}, CPU ${u.cpuSeconds.toFixed(2)} s${cpu}${throttled}${oom}`;
  });
  return rows.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Components
// ---------------------------------------------------------------------------------------------

interface Component {
  name: string;
  child: ChildProcess;
  /** Starts the same process again (the restart policy below). */
  respawn: () => void;
  /** Signal that makes it stop cleanly: postgres' fast shutdown is SIGINT, nginx's graceful one SIGQUIT. */
  stopSignal: NodeJS.Signals;
  expectedExit: boolean;
}

export interface StackState {
  supervisorPid: number;
  ready: boolean;
  httpPort: number;
  url: string;
  socketDir: string;
  home: string;
  /** libpq connection string of the stack's database (for audits and psql). */
  database: string;
  pgPort: number;
  /** The limits read from the compose file, and the cgroups applying them (null: unconstrained). */
  envelope: Envelope | null;
  cgroups: Record<string, CgroupPaths> | null;
  components: { name: string; pid: number }[];
}

class Stack {
  private readonly components: Component[] = [];
  private stopping = false;
  private readonly logDir: string;
  private readonly stateFile: string;
  private ready = false;
  /** Unexpected exits per component, for the restart policy's backoff and give-up. */
  private readonly crashes = new Map<string, number[]>();
  private envelope: Envelope | undefined;
  private cgroups: Cgroups | undefined;
  private readonly oomSeen = new Map<string, number>();
  private oomWatch: NodeJS.Timeout | undefined;
  /** host:port of each API when CREBITOS_TRANSPORT puts nginx's hop on TCP. */
  private readonly apiAddresses: Record<string, string> = {};

  constructor(
    private readonly settings: StackSettings,
    private readonly log: (line: string) => void,
  ) {
    this.logDir = path.join(settings.home, 'logs');
    this.stateFile = stateFilePath(settings.home);
  }

  async start(): Promise<void> {
    const { socketDir, pgDir, httpPort } = this.settings;
    ensurePrerequisites(this.log);
    // Otherwise a stray nginx from another run could answer the readiness probe for us.
    await assertPortFree(httpPort);
    fs.mkdirSync(this.logDir, { recursive: true });
    this.applyEnvelope();
    // A fresh start every time: the contest's initial data, nothing left from a previous run.
    fs.rmSync(pgDir, { recursive: true, force: true });
    fs.mkdirSync(pgDir, { recursive: true });
    fs.mkdirSync(socketDir, { recursive: true });
    // Shared by postgres (its socket), the APIs (theirs) and nginx's workers (which connect).
    fs.chmodSync(socketDir, 0o1777);
    for (const stale of ['api1.sock', 'api2.sock']) fs.rmSync(path.join(socketDir, stale), { force: true });

    await this.startPostgres(pgDir);
    this.bailIfStopping();
    const { transport } = this.settings;
    const database = databaseConninfo(transport.db === 'tcp' ? { socketDir: '127.0.0.1', pgPort: this.settings.pgPort } : this.settings);
    // CREBITOS_API_SCRIPT runs another script as both APIs (npm run capacity's HTTP-only
    // baseline, loadtest/fixed-server.ts), in the same places, sockets and limits.
    const apiScript = process.env.CREBITOS_API_SCRIPT ? path.resolve(process.env.CREBITOS_API_SCRIPT) : SERVER_JS;
    // The APIs need no privilege: as root, they run as nobody, as the image runs them as node.
    const asNobody = isRoot() && reachableByOthers(apiScript) ? { uid: 65534, gid: 65534 } : {};
    await Promise.all(
      ['api1', 'api2'].map(async (name) => {
        const socketPath = path.join(socketDir, `${name}.sock`);
        const env: NodeJS.ProcessEnv = { ...process.env, INSTANCE_NAME: name, SOCKET_PATH: socketPath, DATABASE_URL: database };
        let listener: { socketPath?: string; port?: number } = { socketPath };
        if (transport.api === 'tcp') {
          // A free loopback port (picked now, so stacks side by side never collide) instead of the socket.
          const port = await freePort();
          Object.assign(env, { SOCKET_PATH: '', HOST: '127.0.0.1', PORT: String(port) });
          this.apiAddresses[name] = `127.0.0.1:${port}`;
          listener = { port };
        }
        if (this.settings.poolSize) env.POOL_SIZE = this.settings.poolSize;
        this.spawn(name, process.execPath, [apiScript], { env, ...asNobody }, 'SIGTERM');
        return this.waitFor(name, () => httpStatus({ ...listener, path: '/clientes/1/extrato' }).then((s) => s === 200), 30_000);
      }),
    );
    this.bailIfStopping();
    await this.startNginx();
    await this.waitFor('nginx', () => httpStatus({ port: httpPort, path: '/clientes/1/extrato' }).then((s) => s === 200), 15_000);
    this.ready = true;
    this.writeState(true);
    this.log(`ready: GET http://localhost:${httpPort}/clientes/1/extrato answers 200 (logs in ${this.logDir})`);
  }

  /** A signal during start-up must not be followed by more components starting. */
  private bailIfStopping(): void {
    if (this.stopping) throw new Error('stopped during start-up');
  }

  private applyEnvelope(): void {
    const { composeFile, limits, httpPort } = this.settings;
    this.envelope = readEnvelope(composeFile);
    const relative = path.relative(process.cwd(), composeFile);
    const file = relative && !relative.startsWith('..') ? relative : composeFile;
    for (const problem of budgetProblems(readComposeLimits(composeFile))) this.log(`WARNING: ${file}: ${problem}`);
    if (!limits) {
      this.log(`running WITHOUT limits (--no-limits); ${file} would give: ${describeEnvelope(this.envelope)}`);
      return;
    }
    this.cgroups = Cgroups.create(cgroupTag(this.settings.home, httpPort), this.envelope, this.log);
    if (!this.cgroups) return;
    this.log(`envelope from ${file}: ${describeEnvelope(this.envelope)}`);
    this.oomWatch = setInterval(() => this.checkOom(), 1000);
    this.oomWatch.unref();
  }

  /** Reports, by name, a component whose group hit its memory limit and lost a process to the OOM killer. */
  private checkOom(): boolean {
    if (!this.cgroups || !this.envelope) return false;
    let found = false;
    for (const name of COMPONENTS) {
      let kills: number;
      try {
        kills = this.cgroups.usage(name).oomKills;
      } catch {
        continue;
      }
      const seen = this.oomSeen.get(name) ?? 0;
      if (kills > seen) {
        this.oomSeen.set(name, kills);
        this.log(`${name} exceeded its memory limit (${this.envelope[name].memoryBytes / MiB} MB): the kernel OOM killer killed ${kills - seen} of its processes`);
        found = true;
      }
    }
    return found;
  }

  private async startPostgres(pgDir: string): Promise<void> {
    const { socketDir, pgPort } = this.settings;
    const data = path.join(pgDir, 'data');
    const asPostgres: { uid?: number; gid?: number } = isRoot() ? postgresIds() : {};
    if (asPostgres.uid !== undefined) fs.chownSync(pgDir, asPostgres.uid, asPostgres.gid!);
    this.run(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], asPostgres);
    // The repository's settings, included rather than copied.
    for (const file of this.settings.pgSettings) {
      if (!fs.existsSync(file)) throw new Error(`PostgreSQL settings file ${file} does not exist`);
      fs.appendFileSync(path.join(data, 'postgresql.conf'), `\ninclude '${file.replace(/'/g, "''")}'\n`);
    }
    // Unix socket only: nothing here needs TCP, and ports stay free for other stacks; loopback
    // too when CREBITOS_TRANSPORT puts the APIs' hop on TCP.
    const listen = this.settings.transport.db === 'tcp' ? '127.0.0.1' : '';
    this.spawn(
      'db',
      path.join(PG_BIN, 'postgres'),
      ['-D', data, '-k', socketDir, '-p', String(pgPort), '-c', `listen_addresses=${listen}`, '-c', 'unix_socket_permissions=0777'],
      asPostgres,
      'SIGINT',
    );
    // As postgres: pg_isready's default role (root here) would leave a FATAL line in db.log.
    await this.waitFor('db', () => Promise.resolve(this.run(path.join(PG_BIN, 'pg_isready'), ['-q', '-h', socketDir, '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres'], {}, true)), 30_000);
    const scripts = [path.join(REPO, 'procedures.sql'), ...(this.settings.sqlOverlay ? [this.settings.sqlOverlay] : [])];
    for (const script of scripts) {
      this.run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres', '-f', script], {});
    }
    const settings = this.settings.pgSettings.map((f) => path.relative(REPO, f) || f).join(' + ');
    const loaded = scripts.map((f) => path.relative(REPO, f) || f).join(' + ');
    this.log(`db: cluster initialised with ${settings}, ${loaded} loaded (socket ${socketDir}, port ${pgPort}${listen ? ` and ${listen}` : ''})`);
  }

  private async startNginx(): Promise<void> {
    const prefix = path.join(this.settings.home, 'nginx');
    fs.mkdirSync(prefix, { recursive: true });
    const conf = path.join(prefix, 'nginx.conf');
    const apis = this.settings.transport.api === 'tcp' ? this.apiAddresses : undefined;
    fs.writeFileSync(conf, nativeNginxConf(fs.readFileSync(this.settings.nginxConf, 'utf8'), this.settings, prefix, apis));
    const args = ['-p', prefix, '-c', conf, '-e', path.join(this.logDir, 'nginx-error.log'), '-g', `daemon off; pid ${nginxQuote(path.join(prefix, 'nginx.pid'))};`];
    this.run(nginxBinary(), ['-t', '-q', ...args], {});
    this.spawn('nginx', nginxBinary(), args, {}, 'SIGQUIT');
  }

  /** Runs a short command to completion; throws with its output unless `probe` is set. */
  private run(cmd: string, args: string[], ids: { uid?: number; gid?: number }, probe = false): boolean {
    const result = spawnSync(cmd, args, { ...ids, encoding: 'utf8', cwd: os.tmpdir() });
    if (result.status === 0) return true;
    if (probe) return false;
    throw new Error(`${path.basename(cmd)} failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
  }

  private spawn(name: string, cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number }, stopSignal: NodeJS.Signals): void {
    const logFile = fs.openSync(path.join(this.logDir, `${name}.log`), 'a');
    let child: ChildProcess;
    if (this.cgroups) {
      // The process joins its groups before exec, so everything it forks is limited too.
      // Writing cgroup.procs needs root, so privileges are dropped afterwards with setpriv.
      const { uid, gid, ...rest } = options;
      const target = uid === undefined ? [cmd, ...args] : ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', cmd, ...args];
      const join = 'for f in $CREBITOS_CGROUP_PROCS; do echo $$ > "$f" || exit 97; done; exec "$@"';
      const env = { ...(rest.env ?? process.env), CREBITOS_CGROUP_PROCS: this.cgroups.procsFiles(name).join(' ') };
      child = spawn('/bin/sh', ['-c', join, name, ...target], { ...rest, env, cwd: os.tmpdir(), stdio: ['ignore', logFile, logFile], detached: true });
    } else {
      // Own process group (detached): a Ctrl-C in the terminal reaches only the supervisor, which
      // stops the components in order; and a leftover group can be killed whole.
      child = spawn(cmd, args, { ...options, cwd: os.tmpdir(), stdio: ['ignore', logFile, logFile], detached: true });
    }
    fs.closeSync(logFile);
    const respawn = (): void => this.spawn(name, cmd, args, options, stopSignal);
    const component: Component = { name, child, respawn, stopSignal, expectedExit: false };
    this.components.push(component);
    child.on('exit', (code, signal) => {
      if (component.expectedExit || this.stopping) return;
      this.checkOom();
      this.log(`${name} exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`}); last log lines:\n${tail(path.join(this.logDir, `${name}.log`))}`);
      if (this.ready) this.restartLater(component);
      this.writeState(this.ready);
    });
    this.writeState(this.ready);
  }

  /**
   * After start-up, a component that dies is started again, as docker compose's
   * `restart: unless-stopped` does: an API rejoins nginx's upstream, PostgreSQL restarts on its
   * data directory (crash recovery included) and the APIs reconnect. Backoff doubles from 0.5 s;
   * after 10 crashes within a minute the component is left down.
   */
  private restartLater(component: Component): void {
    const now = Date.now();
    const recent = (this.crashes.get(component.name) ?? []).filter((t) => now - t < 60_000);
    recent.push(now);
    this.crashes.set(component.name, recent);
    if (recent.length > 10) {
      this.log(`${component.name} crashed ${recent.length} times within a minute; leaving it down`);
      return;
    }
    const delay = Math.min(500 * 2 ** (recent.length - 1), 8000);
    this.log(`restarting ${component.name} in ${delay} ms`);
    setTimeout(() => {
      if (this.stopping) return;
      this.components.splice(this.components.indexOf(component), 1);
      component.respawn();
      this.log(`${component.name} restarted (pid ${this.components[this.components.length - 1].child.pid})`);
    }, delay);
  }

  private async waitFor(name: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const component = this.components.find((c) => c.name === name);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (component && (component.child.exitCode !== null || component.child.signalCode !== null)) {
        const oom = this.checkOom() ? ' after exceeding its memory limit' : '';
        throw new Error(`${name} exited during start-up${oom}; last log lines:\n${tail(path.join(this.logDir, `${name}.log`))}`);
      }
      if (await check().catch(() => false)) return;
      await sleep(50);
    }
    throw new Error(`${name} was not ready after ${timeoutMs / 1000} s; see ${path.join(this.logDir, `${name}.log`)}`);
  }

  /** Stops the edge first so no request arrives at a stopping API, and the database last. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.oomWatch) clearInterval(this.oomWatch);
    const rss = new Map(this.components.map((c) => [c.name, peakRss(c.child.pid)]));
    for (const name of ['nginx', 'api2', 'api1', 'db']) {
      const component = this.components.find((c) => c.name === name);
      if (component) await stopChild(component);
    }
    if (this.cgroups) {
      const usage = COMPONENTS.map((name) => ({ ...this.cgroups!.usage(name, this.envelope), peakRssBytes: name.startsWith('api') ? rss.get(name) : undefined }));
      fs.writeFileSync(usageFilePath(this.settings.home), JSON.stringify(usage, null, 2));
      this.log(`resources used since start:\n${formatUsage(usage)}`);
      this.cgroups.remove(true);
    }
    fs.rmSync(this.stateFile, { force: true });
    this.log('stopped');
  }

  private writeState(ready: boolean): void {
    const state: StackState = {
      supervisorPid: process.pid,
      ready,
      httpPort: this.settings.httpPort,
      url: `http://localhost:${this.settings.httpPort}`,
      socketDir: this.settings.socketDir,
      home: this.settings.home,
      database: databaseConninfo(this.settings),
      pgPort: this.settings.pgPort,
      envelope: this.cgroups ? this.envelope! : null,
      cgroups: this.cgroups ? this.cgroups.groups : null,
      components: this.components.filter((c) => c.child.exitCode === null && c.child.signalCode === null).map((c) => ({ name: c.name, pid: c.child.pid! })),
    };
    fs.mkdirSync(path.dirname(this.stateFile), { recursive: true });
    fs.writeFileSync(this.stateFile, JSON.stringify(state, null, 2));
  }
}

async function stopChild(component: Component): Promise<void> {
  const { child } = component;
  if (child.exitCode !== null || child.signalCode !== null) return;
  component.expectedExit = true;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(component.stopSignal);
  const timedOut = await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)]);
  if (timedOut) killGroup(child.pid!);
  await exited;
  // Whatever the component forked and left behind (e.g. nginx workers of a killed master).
  killGroup(child.pid!);
}

/** SIGKILL to a component's whole process group (each is spawned detached, as its leader). */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is already gone
  }
}

/** A TCP port on the loopback that nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Fails when something already listens on the port, naming the likely cause. */
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EADDRINUSE' ? `port ${port} is already in use (another stack? try npm run down, or set HTTP_PORT)` : `cannot use port ${port}: ${err.message}`)),
    );
    probe.listen(port, '0.0.0.0', () => probe.close(() => resolve()));
  });
}

export function databaseConninfo(settings: Pick<StackSettings, 'socketDir' | 'pgPort'>): string {
  // libpq's quoting: single quotes, with backslash escaping quotes and backslashes.
  const host = settings.socketDir.replace(/[\\']/g, (c) => `\\${c}`);
  return `host='${host}' port=${settings.pgPort} user=postgres dbname=postgres`;
}

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** A path as one nginx.conf parameter, whatever characters it holds. */
function nginxQuote(value: string): string {
  return `"${value.replace(/["\\$]/g, (c) => `\\${c}`)}"`;
}

/**
 * nginx.conf adapted to this machine: the API sockets' directory, the listening port, and
 * temporary paths under the stack's own prefix (the packaged defaults live in /var/lib/nginx).
 * With `apis` (CREBITOS_TRANSPORT), each API's socket is replaced by its host:port instead.
 */
export function nativeNginxConf(conf: string, settings: Pick<StackSettings, 'socketDir' | 'httpPort'>, prefix: string, apis?: Record<string, string>): string {
  if (!conf.includes(`unix:${COMPOSE_SOCKET_DIR}/`)) throw new Error(`nginx.conf no longer proxies to sockets in ${COMPOSE_SOCKET_DIR}; update stack.ts`);
  if (!new RegExp(`listen\\s+${CONTEST_PORT}\\b`).test(conf)) throw new Error(`nginx.conf no longer listens on ${CONTEST_PORT}; update stack.ts`);
  for (const [name, address] of Object.entries(apis ?? {})) {
    const socket = `unix:${COMPOSE_SOCKET_DIR}/${name}.sock`;
    if (!conf.includes(socket)) throw new Error(`nginx.conf has no upstream ${socket} to move to ${address}; update stack.ts`);
    conf = conf.split(socket).join(address);
  }
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `    ${kind}_temp_path ${nginxQuote(path.join(prefix, `${kind}_temp`))};`).join('\n');
  return conf
    .split(`unix:${COMPOSE_SOCKET_DIR}/`)
    .join(`unix:${settings.socketDir}/`)
    .replace(new RegExp(`listen(\\s+)${CONTEST_PORT}\\b`), `listen$1${settings.httpPort}`)
    .replace(/^http\s*\{/m, (open) => `${open}\n${temp}`);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
  } catch {
    return '    (no log)';
  }
}

/** Status code of one GET, over TCP on localhost or over a unix socket. */
export function httpStatus(target: { port?: number; socketPath?: string; path: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: target.port, socketPath: target.socketPath, path: target.path, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export function stateFilePath(home: string): string {
  return path.join(home, 'stack.json');
}

export function usageFilePath(home: string): string {
  return path.join(home, 'usage.json');
}

export function readState(home: string): StackState | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFilePath(home), 'utf8')) as StackState;
  } catch {
    return undefined;
  }
}

/** Whether a process exists (signal 0 checks without sending anything). */
export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

const say = (line: string): void => console.log(`[stack] ${line}`);

async function commandStart(settings: StackSettings): Promise<void> {
  fs.rmSync(usageFilePath(settings.home), { force: true });
  const previous = readState(settings.home);
  if (previous && alive(previous.supervisorPid) && previous.supervisorPid !== process.pid) {
    throw new Error(`a stack is already running from ${settings.home} (pid ${previous.supervisorPid}); run npm run down first`);
  }
  if (previous) killLeftovers(previous);
  const stack = new Stack(settings, say);
  let signalled = false;
  const onSignal = (signal: string): void => {
    if (signalled) return;
    signalled = true;
    say(`${signal}: stopping`);
    stack.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  say(`starting in ${settings.home} (HTTP port ${settings.httpPort}, sockets in ${settings.socketDir})`);
  try {
    await stack.start();
  } catch (err) {
    say(`start-up failed: ${(err as Error).message}`);
    await stack.stop();
    process.exit(1);
  }
}

/** Kills components a crashed supervisor left behind, checking the pid still is what we started. */
function killLeftovers(state: StackState): void {
  for (const { name, pid } of state.components) {
    if (alive(pid)) {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!/postgres|nginx|server\.js|setpriv/.test(cmdline)) continue;
      say(`killing ${name} (pid ${pid}) left by a previous run`);
    }
    // Even with its leader gone, the group may hold orphans (nginx workers of a killed master).
    killGroup(pid);
  }
  // Anything else still inside the stack's cgroups (e.g. workers that changed group), then the groups.
  for (const group of Object.values(state.cgroups ?? {})) {
    for (const dir of Object.values(group)) {
      try {
        for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // group or process already gone
      }
      rmdirWhenEmpty(dir);
    }
  }
  for (const group of Object.values(state.cgroups ?? {})) for (const dir of Object.values(group)) rmdirWhenEmpty(path.dirname(dir));
  fs.rmSync(stateFilePath(state.home), { force: true });
}

async function commandUp(settings: StackSettings, args: string[]): Promise<void> {
  const previous = readState(settings.home);
  if (previous && alive(previous.supervisorPid)) {
    throw new Error(`a stack is already running from ${settings.home} (pid ${previous.supervisorPid}); run npm run down first`);
  }
  fs.mkdirSync(path.join(settings.home, 'logs'), { recursive: true });
  const logPath = path.join(settings.home, 'logs', 'stack.log');
  fs.writeFileSync(logPath, '');
  const out = fs.openSync(logPath, 'a');
  const supervisor = spawn(process.execPath, [__filename, 'start', ...args], { detached: true, stdio: ['ignore', out, out], env: process.env });
  fs.closeSync(out);
  supervisor.unref();
  // Follow the supervisor's log so progress (and any apt install) is visible.
  let shown = 0;
  const follow = (): void => {
    const text = fs.readFileSync(logPath, 'utf8');
    if (text.length > shown) process.stdout.write(text.slice(shown));
    shown = text.length;
  };
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    follow();
    const state = readState(settings.home);
    if (state?.ready && state.supervisorPid === supervisor.pid) return;
    if (supervisor.exitCode !== null || !alive(supervisor.pid!)) {
      follow();
      throw new Error(`the stack failed to start; see ${logPath}`);
    }
    await sleep(100);
  }
  throw new Error(`the stack was not ready after 300 s; see ${logPath}`);
}

async function commandDown(settings: StackSettings): Promise<void> {
  const state = readState(settings.home);
  if (!state) {
    say(`no stack running from ${settings.home}`);
    return;
  }
  if (alive(state.supervisorPid)) {
    process.kill(state.supervisorPid, 'SIGTERM');
    const deadline = Date.now() + 60_000;
    while (alive(state.supervisorPid) && Date.now() < deadline) await sleep(100);
  }
  const left = state.components.filter((c) => alive(c.pid));
  killLeftovers(state);
  fs.rmSync(stateFilePath(settings.home), { force: true });
  say(left.length > 0 ? `stopped (killed leftovers: ${left.map((c) => c.name).join(', ')})` : 'stopped');
  try {
    const usage = JSON.parse(fs.readFileSync(usageFilePath(settings.home), 'utf8')) as Usage[];
    say(`resources used since start:\n${formatUsage(usage)}`);
  } catch {
    // ran without limits: nothing was measured
  }
}

function commandStatus(settings: StackSettings): void {
  const state = readState(settings.home);
  if (!state || !alive(state.supervisorPid)) {
    say(`no stack running from ${settings.home}`);
    process.exitCode = 1;
    return;
  }
  say(`${state.ready ? 'ready' : 'starting'} at ${state.url} (supervisor pid ${state.supervisorPid})`);
  for (const c of state.components) say(`  ${c.name.padEnd(8)} pid ${c.pid} ${alive(c.pid) ? 'running' : 'DEAD'}`);
}

if (require.main === module) {
  const command = process.argv[2] ?? 'start';
  const args = process.argv.slice(3);
  const commands: Record<string, (s: StackSettings, args: string[]) => Promise<void> | void> = {
    start: commandStart,
    up: commandUp,
    down: commandDown,
    status: commandStatus,
  };
  const run = commands[command];
  if (!run) {
    console.error(`usage: node dist/stack.js <${Object.keys(commands).join('|')}>`);
    process.exit(2);
  }
  Promise.resolve()
    .then(() => run(readSettings(process.env, args), args))
    .catch((err: Error) => {
      console.error(`[stack] ${err.message}`);
      process.exit(1);
    });
}
