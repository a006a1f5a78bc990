// npm run k6 [-- --quick] [--base-url URL] [--out DIR] [--database CONNINFO] [--allow-dirty]
//
// The official test sent by k6 (loadtest/official/rinha.k6.js) instead of the Node generator, as
// one of the harness's runs: the same target, readiness and freshness checks as `npm run
// loadtest` (prepareTarget), then `k6 run` with its per-request samples written to the run's
// directory (--out json), k6's own CPU, the same database audit and resource table, and the same
// report and index entry (loadtest/lib/k6-results.ts turns the samples into the Node run's records).
// It starts nothing but k6: the stack is whatever `npm run loadtest` would measure.
//
// Exit status: as npm run loadtest (0 pass; 1 KO, consistency or audit failure; 3 every check
// passed but the run is INVALID, here because k6 dropped arrivals), and 2 when it could not run,
// e.g. without a k6 on PATH.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readUsage } from '../../stack/state';
import { UsageError, runCli } from '../lib/cli';
import { K6_RUN_FILE, K6_SAMPLES_FILE, K6_SUMMARY_FILE, failedThresholds, k6RunSummary, readK6Samples, replayK6Run, type K6RunRecord } from '../lib/k6-results';
import { waitedChildrenCpuSecondsOfStat } from '../lib/pg-processes';
import { gitInfo, machineInfo, REPO } from '../lib/provenance';
import { newRunDir, writeReportIn } from '../lib/report';
import { exitStatusOf, formatSummary, isoId, usageDuring } from '../lib/summary';
import { audit, prepareTarget, readOptions, targetFacts, type Options } from './official-test';

/** The k6 script, and the binary this command looks for on PATH. */
export const K6_SCRIPT = path.join(REPO, 'loadtest', 'official', 'rinha.k6.js');
export const K6_BINARY = 'k6';

const USAGE = `usage: npm run k6 -- [--quick] [--base-url URL] [--out DIR] [--database CONNINFO] [--allow-dirty]
  runs ${path.relative(REPO, K6_SCRIPT)} under k6 (a '${K6_BINARY}' on PATH) against the stack npm run loadtest would measure
  --quick          ~1 minute profile: time x 1/4, peak rates x 1/2 (7,818 requests; PROFILE=quick for the script)
  --base-url URL   target (default: the local stack's url from its state file, else http://localhost:9999)
  --out DIR        reports root (default reports/): writes DIR/<timestamp>/ (k6's samples, summary and report) and DIR/index.html
  --database STR   libpq conninfo for the audit (default: the local stack's database)
  --allow-dirty    run even if the target's data is not freshly initialised`;

function parseK6Options(argv: string[]): Options {
  // The script draws its payloads with k6's Math.random, which cannot be seeded.
  if (argv.some((a) => a === '--seed' || a.startsWith('--seed='))) throw new UsageError('--seed is for npm run loadtest: k6 cannot seed the script\'s random payloads');
  return readOptions(argv);
}

/** k6's version line, or undefined when there is no k6 on PATH. */
export function k6Version(): string | undefined {
  const r = spawnSync(K6_BINARY, ['version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? undefined : r.stdout.trim();
}

/** What a command that needs k6 says when there is none: where k6 comes from, and what else may do. */
export function noK6Message(command: string, instead: string): string {
  return `${command}: no '${K6_BINARY}' on PATH. k6 is not an npm package; install it (https://grafana.com/docs/k6/latest/set-up/install-k6/) to run ${path.relative(REPO, K6_SCRIPT)}; ${instead}.`;
}

/** This process's waited-for children's CPU so far (k6's, once it has exited). */
const childrenCpuSeconds = (): number => waitedChildrenCpuSecondsOfStat(fs.readFileSync('/proc/self/stat', 'utf8'));

/** Runs k6 with its output on this terminal; resolves with its exit status. */
function runK6(args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(K6_BINARY, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    // Ctrl-C reaches k6 too (same process group); k6 then stops and still writes its summary.
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

async function main(options: Options): Promise<number> {
  const version = k6Version();
  if (version === undefined) {
    console.error(noK6Message('npm run k6', 'or use npm run loadtest, the same test on Node'));
    return 2;
  }
  const prepared = await prepareTarget(options);
  const { liveState } = prepared;
  const dir = newRunDir(options.out, isoId(new Date()));
  const samplesFile = path.join(dir, K6_SAMPLES_FILE);
  const git = gitInfo();
  const machine = machineInfo();
  const usageBefore = liveState ? readUsage(liveState) : undefined;
  const loadAverageStart = os.loadavg();
  const cpuBefore = childrenCpuSeconds();
  const wallStart = Date.now();
  console.log(`${version}: k6 run ${path.relative(REPO, K6_SCRIPT)} (${options.profile.name} profile), samples to ${path.relative(process.cwd(), samplesFile)}`);
  const exitCode = await runK6([
    'run',
    '--quiet',
    '--out', `json=${samplesFile}`,
    '-e', `BASE_URL=${prepared.baseUrl}`,
    '-e', `K6_OUT_DIR=${dir}`,
    '-e', `PROFILE=${options.profile.name}`,
    K6_SCRIPT,
  ]);
  const generatorCpuSeconds = childrenCpuSeconds() - cpuBefore;
  const wallSeconds = (Date.now() - wallStart) / 1000;
  const usageAfter = liveState ? readUsage(liveState) : undefined;
  const loadAverageEnd = os.loadavg();
  if (!fs.existsSync(samplesFile)) throw new Error(`k6 exited with status ${exitCode} and wrote no ${samplesFile}`);

  console.log(`k6 exited with status ${exitCode}; reading ${K6_SAMPLES_FILE} (${(fs.statSync(samplesFile).size / 2 ** 20).toFixed(0)} MB)`);
  const samples = await readK6Samples(samplesFile);
  if (samples.requests.length === 0) throw new Error(`k6 exited with status ${exitCode} and sent no request (no gatling_response_time sample in ${samplesFile}); its own output is above`);
  if (samples.unreadable > 0) console.log(`warning: ${samples.unreadable} sample line(s) could not be read`);
  const run = replayK6Run(samples.requests, options.profile);
  const record: K6RunRecord = {
    version: 1,
    profile: options.profile.name,
    target: targetFacts(prepared),
    git,
    machine: { ...machine, loadAverageStart, loadAverageEnd },
    generatorCpuSeconds,
    k6Version: version,
    exitCode,
    audit: await audit(prepared.database, prepared.auditSkipReason, prepared.entriesBefore, run.recorder),
    // The stack's CPU over k6's whole run (its start-up included), the span the generator's CPU covers.
    usage: usageDuring(usageBefore, usageAfter, wallSeconds),
  };
  fs.writeFileSync(path.join(dir, K6_RUN_FILE), `${JSON.stringify(record, null, 1)}\n`);
  let k6Summary: Parameters<typeof failedThresholds>[0] | undefined;
  try {
    k6Summary = JSON.parse(fs.readFileSync(path.join(dir, K6_SUMMARY_FILE), 'utf8'));
  } catch {
    console.log(`warning: k6 wrote no ${K6_SUMMARY_FILE} in ${dir}; its thresholds are not in the report`);
  }
  const summary = k6RunSummary(run, record, samples, k6Summary ? failedThresholds(k6Summary) : []);
  console.log(formatSummary(summary));
  const written = writeReportIn(dir, summary, options.out);
  console.log(`report: ${written.report}`);
  console.log(`index:  ${written.index}`);
  return exitStatusOf(summary);
}

if (require.main === module) runCli({ name: 'npm run k6', usage: USAGE, parse: parseK6Options, run: main });
