// The envelope: docker-compose.yml's deploy.resources.limits read as the native stack applies
// them, and checked against the contest's budget (1.5 CPU and 550 MB over all services).

import * as fs from 'node:fs';
import { parseDocument } from 'yaml';

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

export const MiB = 1024 * 1024;

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
