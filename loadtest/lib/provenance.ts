// Where a measurement came from: the machine, the git commit, and where reports go.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { REPO } from '../../stack/settings';

export { REPO };
export const DEFAULT_REPORTS_DIR = path.join(REPO, 'reports');

/**
 * The CPU's family and model numbers, as /proc/cpuinfo gives them: hosts of one kind share a model
 * name ("Intel(R) Xeon(R) Processor", "AMD EPYC") across generations that differ in speed.
 */
function cpuGeneration(): string {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name: string): string | undefined => new RegExp(`^${name}\\s*: (\\d+)$`, 'm').exec(info)?.[1];
    const family = field('cpu family');
    const model = field('model');
    return family && model ? ` (family ${family} model ${model})` : '';
  } catch {
    return '';
  }
}

export function machineInfo(): { cpus: number; model: string; totalMemoryBytes: number; kernel: string; node: string; platform: string } {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: `${cpus[0]?.model.trim() ?? 'unknown'}${cpuGeneration()}`,
    totalMemoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    platform: `${os.platform()}/${os.arch()}`,
  };
}

/** A commit as the tools' text headers give it: "a1b2c3d", or "a1b2c3d (dirty)" with uncommitted tracked changes. */
export function commitText(git: { commit: string; dirty: boolean }): string {
  return `${git.commit}${git.dirty ? ' (dirty)' : ''}`;
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
