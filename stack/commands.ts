// The native stack: the contest topology (PostgreSQL, two API instances, nginx on 9999) run as
// plain processes on this machine, for development, tests and load tests where Docker is absent.
//
//   node dist/stack/commands.js start   foreground; Ctrl-C or SIGTERM stops everything it started
//   node dist/stack/commands.js up      the same in the background; returns once the stack answers
//   node dist/stack/commands.js down    stops what `up` started
//   node dist/stack/commands.js status  what is running
//
// stack/ is the bottom layer of the harness: it imports nothing from loadtest/ or test/.
// Its files, lowest first: settings, envelope, cgroups, state, nginx-config, prerequisites,
// supervisor, commands (this CLI); client.ts is what the harness and the tests use to start a
// stack of their own for a run.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { rmdirWhenEmpty, formatUsage, type Usage } from './cgroups';
import { readSettings, type StackSettings } from './settings';
import { alive, readState, stateFilePath, usageFilePath, type StackState } from './state';
import { Stack, killGroup } from './supervisor';

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
    console.error(`usage: node dist/stack/commands.js <${Object.keys(commands).join('|')}>`);
    process.exit(2);
  }
  Promise.resolve()
    .then(() => run(readSettings(process.env, args), args))
    .catch((err: Error) => {
      console.error(`[stack] ${err.message}`);
      process.exit(1);
    });
}
