// The supervisor: starts PostgreSQL, the two APIs and nginx as plain processes inside their
// cgroups, restarts a component that dies (as docker compose's restart policy does), and stops
// them in order. Run by commands.ts (`start`); nothing else imports it.
//
// It reads procedures.sql, postgresql.conf and nginx.conf from the repository rather than
// repeating what they say; only paths and ports are changed for this machine.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cgroups, cgroupTag, formatUsage, peakRss } from './cgroups';
import { COMPONENTS, MiB, budgetProblems, describeEnvelope, readComposeLimits, readEnvelope, type Envelope } from './envelope';
import { nativeNginxConf, nginxQuote } from './nginx-config';
import { ensurePrerequisites, nginxBinary } from './prerequisites';
import { PG_BIN, REPO, SERVER_JS, databaseConninfo, isRoot, reachableByOthers, type StackSettings } from './settings';
import { stateFilePath, usageFilePath, type StackState } from './state';

interface Component {
  name: string;
  child: ChildProcess;
  /** Starts the same process again (the restart policy below). */
  respawn: () => void;
  /** Signal that makes it stop cleanly: postgres' fast shutdown is SIGINT, nginx's graceful one SIGQUIT. */
  stopSignal: NodeJS.Signals;
  expectedExit: boolean;
}

export class Stack {
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
    // The APIs' sockets, and their warm-up sockets beside them, as a kill may have left them. Each
    // API removes its own too, but the directory is sticky (1777): a socket left by another user
    // (an API run as root before) only root may remove.
    for (const stale of fs.readdirSync(socketDir).filter((name) => /^api\d\.sock(\.warm-up)?$/.test(name))) fs.rmSync(path.join(socketDir, stale), { force: true });

    await this.startPostgres(pgDir);
    this.bailIfStopping();
    const { transport } = this.settings;
    const database = databaseConninfo(transport.db === 'tcp' ? { socketDir: '127.0.0.1', pgPort: this.settings.pgPort } : this.settings);
    // CREBITOS_API_SCRIPT runs another script as both APIs (npm run capacity's HTTP-only
    // baseline, loadtest/capacity/fixed-server.ts), in the same places, sockets and limits.
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
        this.spawn(name, process.execPath, [...this.settings.apiNodeFlags, apiScript], { env, ...asNobody }, 'SIGTERM');
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
   * after 10 crashes within a minute the component is left down. CREBITOS_RESTART_DELAY_MS
   * replaces both with a fixed delay (see settings.ts).
   */
  private restartLater(component: Component): void {
    const now = Date.now();
    const recent = (this.crashes.get(component.name) ?? []).filter((t) => now - t < 60_000);
    recent.push(now);
    this.crashes.set(component.name, recent);
    const fixed = this.settings.restartDelayMs;
    if (fixed === undefined && recent.length > 10) {
      this.log(`${component.name} crashed ${recent.length} times within a minute; leaving it down`);
      return;
    }
    const delay = fixed ?? Math.min(500 * 2 ** (recent.length - 1), 8000);
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
export function killGroup(pid: number): void {
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

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

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
