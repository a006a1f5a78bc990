// Where PostgreSQL's CPU goes, by process role: the backends that serve the APIs' calls, and the
// auxiliary processes (WAL writer, checkpointer, background writer, autovacuum) whose cost is
// fixed per second rather than per request. Read from /proc: the postmaster's children, each
// named by its title ("postgres: walwriter"), with utime + stime in clock ticks.

import * as fs from 'node:fs';

export const PG_ROLES = ['backends', 'walwriter', 'checkpointer', 'bgwriter', 'autovacuum', 'postmaster', 'other'] as const;
export type PgRole = (typeof PG_ROLES)[number];

/** CPU-seconds so far per role, summed over the live processes of that role. */
export type PgRoleCpu = Record<PgRole, number>;

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const TICKS_PER_S = 100;

/** The role of a postmaster's child, from its process title. */
export function roleOf(title: string): PgRole {
  if (/^postgres: walwriter/.test(title)) return 'walwriter';
  if (/^postgres: checkpointer/.test(title)) return 'checkpointer';
  if (/^postgres: background writer/.test(title)) return 'bgwriter';
  if (/^postgres: autovacuum/.test(title)) return 'autovacuum';
  // "postgres: <user> <database> [local] idle", or "… 127.0.0.1(40312) idle": a client's backend.
  if (/^postgres: \S+ \S+ (\[local\]|[0-9a-f.:]+\(\d+\))/.test(title)) return 'backends';
  return 'other';
}

/**
 * Two fields of a /proc/<pid>/stat line, numbered as proc(5) does, added and in seconds. The
 * command name (field 2) may hold spaces and parentheses, so fields are counted from its last ')'.
 */
function ticksOfStat(stat: string, a: number, b: number): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state).
  return (Number(fields[a - 3]) + Number(fields[b - 3])) / TICKS_PER_S;
}

/** utime + stime of a /proc/<pid>/stat line, in seconds (fields 14 and 15). */
export function cpuSecondsOfStat(stat: string): number {
  return ticksOfStat(stat, 14, 15);
}

/**
 * cutime + cstime of a /proc/<pid>/stat line, in seconds (fields 16 and 17): the CPU of the
 * process's children that have exited and been waited for. Read on this process before and after
 * a child runs, the difference is that child's whole CPU, however short its life.
 */
export function waitedChildrenCpuSecondsOfStat(stat: string): number {
  return ticksOfStat(stat, 16, 17);
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * CPU so far of the postmaster and of each of its live children, by role (null: not readable
 * here). A backend that
 * exited between two readings takes its CPU with it, so compare readings of a stack whose
 * connections live as long as the measurement (the APIs' pools do).
 */
export function readPgRoleCpu(postmasterPid: number): PgRoleCpu | null {
  const cpu = Object.fromEntries(PG_ROLES.map((r) => [r, 0])) as PgRoleCpu;
  const own = readText(`/proc/${postmasterPid}/stat`);
  // Without the children list (a kernel without CONFIG_PROC_CHILDREN) there is nothing to split.
  const children = readText(`/proc/${postmasterPid}/task/${postmasterPid}/children`);
  if (own === undefined || children === undefined) return null;
  cpu.postmaster = cpuSecondsOfStat(own);
  for (const pid of children.split(/\s+/).filter(Boolean)) {
    const stat = readText(`/proc/${pid}/stat`);
    const title = readText(`/proc/${pid}/cmdline`)?.replace(/\0+$/, '').replace(/\0/g, ' ');
    if (stat && title !== undefined) cpu[roleOf(title)] += cpuSecondsOfStat(stat);
  }
  return cpu;
}

/** CPU ms per request of each role between two readings (0 requests: all 0). */
export function roleMsPerRequest(before: PgRoleCpu, after: PgRoleCpu, requests: number): PgRoleCpu {
  return Object.fromEntries(PG_ROLES.map((r) => [r, requests > 0 ? Math.round(((Math.max(0, after[r] - before[r]) * 1000) / requests) * 1000) / 1000 : 0])) as PgRoleCpu;
}
