// The stack client: how the tests, the chaos scenarios, bench, capacity, ageing and coldstart start
// a native stack of their own for a run and stop it afterwards, through `commands.js up/down`
// with their own CREBITOS_HOME and ports, so runs side by side never share (or stop) a stack.
// It also reads what they need of the running stack: its state, pids, sockets and logs.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO, nameHash } from './settings';
import { alive, readState, stateFilePath, type StackState } from './state';
import { httpStatus } from './supervisor';

const COMMANDS_JS = path.join(__dirname, 'commands.js');

export interface StackClientOptions {
  /** CREBITOS_HOME: data, sockets, logs and state of this stack (a git-ignored .stack-* directory). */
  home: string;
  httpPort: number;
  pgPort: number;
  /** Added to this process's environment; an undefined value removes the variable. */
  env?: Record<string, string | undefined>;
}

export class StackClient {
  readonly home: string;
  readonly httpPort: number;
  readonly pgPort: number;
  private readonly env: NodeJS.ProcessEnv;
  /** What `up` printed: the supervisor's start-up log. */
  upOutput = '';
  private current: StackState | undefined;
  private started = false;
  /** A stack left running by a crashed caller would hold its ports: stop it when this process exits. */
  private readonly stopOnExit = (): void => {
    const pid = this.current?.supervisorPid;
    if (pid && alive(pid)) process.kill(pid, 'SIGTERM');
  };

  constructor(options: StackClientOptions) {
    this.home = options.home;
    this.httpPort = options.httpPort;
    this.pgPort = options.pgPort;
    // The caller's node flags (test runner, profiler) are not for the stack, unless given explicitly.
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_OPTIONS;
    for (const [key, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) delete env[key];
      else env[key] = value;
    }
    this.env = { ...env, CREBITOS_HOME: this.home, HTTP_PORT: String(this.httpPort), PG_PORT: String(this.pgPort) };
  }

  /**
   * `commands.js up` with this stack's environment, asynchronously so the caller's timers keep
   * running; a stack left in this home by an earlier run is stopped first. Resolves with the
   * state once the stack answers; rejects with the supervisor's output when it does not start.
   */
  async up(timeoutMs = 300_000): Promise<StackState> {
    if (!fs.existsSync(COMMANDS_JS)) throw new Error(`${COMMANDS_JS} is missing: run npm run build`);
    if (fs.existsSync(stateFilePath(this.home))) this.down();
    this.started = true;
    process.once('exit', this.stopOnExit);
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [COMMANDS_JS, 'up'], { cwd: REPO, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`the stack in ${this.home} exited before ready (${signal === 'SIGTERM' ? `not ready after ${timeoutMs / 1000} s` : `exit ${code}`}); output:\n${out.trimEnd()}`));
      });
    }).catch((err: Error) => {
      this.down();
      throw err;
    });
    this.upOutput = output;
    const state = readState(this.home);
    if (!state) throw new Error(`no stack state in ${this.home} after up:\n${output}`);
    this.current = state;
    return state;
  }

  /** `commands.js down`: stops the supervisor and whatever it left; returns what it printed. */
  down(): string {
    const r = spawnSync(process.execPath, [COMMANDS_JS, 'down'], { cwd: REPO, env: this.env, encoding: 'utf8', timeout: 120_000 });
    this.started = false;
    process.removeListener('exit', this.stopOnExit);
    return `${r.stdout ?? ''}${r.stderr ?? ''}`;
  }

  downIfStarted(): void {
    if (this.started) this.down();
  }

  /** The state file as it is now (the supervisor rewrites it when a component restarts). */
  refresh(): StackState {
    const state = readState(this.home);
    if (!state) throw new Error(`no stack running from ${this.home}`);
    this.current = state;
    return state;
  }

  /** The state as last read. */
  get state(): StackState {
    return this.current ?? this.refresh();
  }

  pid(name: string): number {
    return this.refresh().components.find((c) => c.name === name)?.pid ?? 0;
  }

  /** The unix socket of one API instance, to bypass nginx. */
  apiSocket(name: 'api1' | 'api2'): string {
    return path.join(this.state.socketDir, `${name}.sock`);
  }

  /** The supervisor's log (stack.log, written by `up`). */
  stackLog(): string {
    return readOr(path.join(this.home, 'logs', 'stack.log'));
  }

  componentLog(name: string): string {
    return readOr(path.join(this.home, 'logs', `${name}.log`));
  }

  /**
   * Bytes each API process has written so far (/proc/<pid>/io wchar). An idle instance writes
   * nothing, so a counter that moved across a request proves that instance served it.
   */
  apiWrites(pids: { api1: number; api2: number } = { api1: this.pid('api1'), api2: this.pid('api2') }): { api1: number; api2: number } {
    const wchar = (pid: number): number => Number(/^wchar:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
    return { api1: wchar(pids.api1), api2: wchar(pids.api2) };
  }

  /**
   * Waits until the state shows a new live pid for the component and, for an API, until it answers
   * on its socket (the killed instance's socket file outlives it).
   */
  async waitForRestart(name: string, oldPid: number, timeoutMs = 20_000): Promise<{ pid: number; ms: number }> {
    const t0 = performance.now();
    while (performance.now() - t0 < timeoutMs) {
      let pid = 0;
      try {
        pid = this.pid(name);
      } catch {
        // stack.json being rewritten
      }
      const serving = async (): Promise<boolean> =>
        !name.startsWith('api') || (await httpStatus({ socketPath: this.apiSocket(name as 'api1' | 'api2'), path: '/clientes/1/extrato' }).then((s) => s === 200, () => false));
      if (pid && pid !== oldPid && alive(pid) && (await serving())) return { pid, ms: performance.now() - t0 };
      await sleep(50);
    }
    throw new Error(`${name} was not restarted within ${timeoutMs / 1000} s`);
  }

  /** All live pids of the database's processes (postmaster and its children). */
  dbProcesses(): number[] {
    const pm = this.pid('db');
    const r = spawnSync('pgrep', ['-P', String(pm)], { encoding: 'utf8' });
    return [pm, ...r.stdout.split('\n').filter(Boolean).map(Number)];
  }
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** A port offset in [0, modulo) derived from a name, so each test file or scenario gets its own ports. */
export function portOffset(name: string, modulo: number, seed = 0): number {
  return nameHash(name, seed) % modulo;
}
