// The envelope applied on this machine with cgroup v1: one group per component with the
// compose file's CPU quota and memory limit, and what each group used.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { MiB, type ComponentName, type Envelope, type Limit, COMPONENTS } from './envelope';
import { nameHash } from './settings';

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
export function cgroupTag(home: string, httpPort: number): string {
  return `crebitos-${httpPort}-${nameHash(home).toString(36)}`;
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
export function rmdirWhenEmpty(dir: string): void {
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

export function readGroupUsage(name: string, group: CgroupPaths, limit?: Limit): Usage {
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

/** A size field of a live process's /proc/<pid>/status (VmHWM, VmRSS), in bytes; undefined once it has exited. */
function statusBytes(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number | undefined {
  if (!pid) return undefined;
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Peak RSS (VmHWM) of a live process, in bytes. */
export const peakRss = (pid: number | undefined): number | undefined => statusBytes(pid, 'VmHWM');

/** Current RSS (VmRSS) of a live process, in bytes. */
export const currentRss = (pid: number | undefined): number | undefined => statusBytes(pid, 'VmRSS');

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
