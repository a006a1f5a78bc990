// Facts about where a run happened: machine, git commit, the native stack's state and usage.

import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as stackModule from '../stack';
import type { StackState } from '../stack';
import type { UsageRow } from './summary';

export const REPO = path.resolve(__dirname, '..', '..');
export const DEFAULT_REPORTS_DIR = path.join(REPO, 'reports');

export function machineInfo(): { cpus: number; model: string; totalMemoryBytes: number; kernel: string; node: string; platform: string } {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: cpus[0]?.model.trim() ?? 'unknown',
    totalMemoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    platform: `${os.platform()}/${os.arch()}`,
  };
}

export function gitInfo(): { commit: string; dirty: boolean } {
  const git = (args: string[]): string => execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const commit = git(['rev-parse', '--short', 'HEAD']);
    // Tracked changes only: untracked report files must not make every run "dirty".
    const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
    return { commit, dirty };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

/** The native stack's state (npm run up) for CREBITOS_HOME, or why there is none. */
export function localStack(): { state?: StackState; stateFile: string } {
  try {
    const settings = stackModule.readSettings();
    return { state: stackModule.readState(settings.home), stateFile: stackModule.stateFilePath(settings.home) };
  } catch (err) {
    return { stateFile: `(unreadable stack settings: ${(err as Error).message})` };
  }
}

export { alive as isAlive } from '../stack';

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0']);

/** True when two base URLs reach the same local listener. */
export function sameLocalEndpoint(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b);
    const port = (u: URL): string => u.port || (u.protocol === 'https:' ? '443' : '80');
    return LOCAL_HOSTS.has(x.hostname) && LOCAL_HOSTS.has(y.hostname) && port(x) === port(y);
  } catch {
    return false;
  }
}

export interface RawUsage {
  name: string;
  cpuSeconds: number;
  peakMemoryBytes: number;
  cpuLimit?: number;
  memoryLimitBytes?: number;
  oomKills?: number;
  peakRssBytes?: number;
  throttledPeriods?: number;
  throttledSeconds?: number;
}

/**
 * stack.ts's readUsage(state), when it exists (it is optional: older stack.ts versions lack it).
 * Returns undefined when absent or failing.
 */
export async function readStackUsage(state: StackState | undefined): Promise<RawUsage[] | undefined> {
  const fn = (stackModule as unknown as Record<string, unknown>).readUsage;
  if (typeof fn !== 'function' || !state) return undefined;
  try {
    const result = await (fn as (s: StackState) => RawUsage[] | undefined | Promise<RawUsage[] | undefined>)(state);
    return Array.isArray(result) ? result : undefined;
  } catch {
    return undefined;
  }
}

export const hasReadUsage = (): boolean => typeof (stackModule as unknown as Record<string, unknown>).readUsage === 'function';

/** CPU spent during the run: the difference of two readings (cpuSeconds is cumulative). */
export function usageDuring(before: RawUsage[] | undefined, after: RawUsage[] | undefined, seconds: number): UsageRow[] | undefined {
  if (!after) return undefined;
  return after.map((u) => {
    const b = before?.find((x) => x.name === u.name);
    const cpu = b ? Math.max(0, u.cpuSeconds - b.cpuSeconds) : u.cpuSeconds;
    return {
      name: u.name,
      cpuSeconds: cpu,
      cpuCores: b && seconds > 0 ? cpu / seconds : undefined,
      cpuLimit: u.cpuLimit,
      peakMemoryBytes: u.peakMemoryBytes,
      memoryLimitBytes: u.memoryLimitBytes,
      peakRssBytes: u.peakRssBytes,
      oomKills: u.oomKills === undefined ? undefined : Math.max(0, u.oomKills - (b?.oomKills ?? 0)),
      throttledPeriods: u.throttledPeriods === undefined ? undefined : u.throttledPeriods - (b?.throttledPeriods ?? 0),
      throttledSeconds: u.throttledSeconds === undefined ? undefined : u.throttledSeconds - (b?.throttledSeconds ?? 0),
    };
  });
}
