// A running stack's state file (<CREBITOS_HOME>/stack.json), written by the supervisor and read
// by the CLI, the stack client and the load tests; and its live resource usage.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { peakRss, readGroupUsage, type CgroupPaths, type Usage } from './cgroups';
import { COMPONENTS, type Envelope } from './envelope';
import { readSettings } from './settings';

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

/** The state of the stack `npm run up` runs from CREBITOS_HOME, or why there is none. */
export function localStack(): { state?: StackState; stateFile: string } {
  try {
    const settings = readSettings();
    return { state: readState(settings.home), stateFile: stateFilePath(settings.home) };
  } catch (err) {
    return { stateFile: `(unreadable stack settings: ${(err as Error).message})` };
  }
}
