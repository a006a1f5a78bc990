// npm run k6-vs-node [-- --rounds N] [--quick] [--out DIR] [--port-base N]
// npm run k6-vs-node -- --table DIR
//
// Do the two generators of the official test agree? Each measurement starts a fresh native stack
// inside the envelope and sends the official test to it, once from the Node harness (npm run
// loadtest) and once from k6 (npm run k6), in ABBA order over the rounds so neither always goes
// first. Per generator it prints the median [min–max] over rounds of the requests, KO and
// consistency failures (which must match: 61,503 / 0 / 0), the latency percentiles, the
// generator's own CPU (CPU-seconds and average cores: k6 costs more, on the same 2 cores as the
// stack), and the stack's CPU. Each run's report lands in DIR/runs/ with an index; the table goes
// to DIR/k6-vs-node.md. `--table DIR` prints it again from the saved summaries.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StackClient } from '../../stack/client';
import { UsageError, numberOption, parseToolArgs, runCli } from '../lib/cli';
import { DEFAULT_REPORTS_DIR, REPO, commitText, machineInfo } from '../lib/provenance';
import { median } from '../lib/stats';
import { profileLabel } from '../lib/report';
import { fmtInt, fmtMs, isoId, toolOf, type RunSummary } from '../lib/summary';
import { k6Version, noK6Message } from '../official/k6-test';
import { benchStack, claimHome, markdownTable, textTable } from './bench';

const DEFAULT_PORT_BASE = 32600;
const GENERATORS = ['node', 'k6'] as const;
type Generator = (typeof GENERATORS)[number];
const SCRIPT_OF: Record<Generator, string> = {
  node: path.join(REPO, 'dist', 'loadtest', 'official', 'official-test.js'),
  k6: path.join(REPO, 'dist', 'loadtest', 'official', 'k6-test.js'),
};

const USAGE = `usage: npm run k6-vs-node -- [--rounds N] [--quick] [--out DIR] [--port-base N]
       npm run k6-vs-node -- --table DIR
  --rounds N      runs per generator, ABBA order, a fresh stack each (default 3; the official profile takes ~4.5 min a run)
  --quick         the quick profile (7,818 requests) instead of the official one
  --out DIR       where the runs and the table go (default reports/k6-vs-node-<timestamp>/)
  --port-base N   the stacks' HTTP port; PostgreSQL's is N + 30000 (default ${DEFAULT_PORT_BASE})
  --table DIR     print the table of DIR's runs again, measuring nothing`;

interface Options {
  rounds: number;
  quick: boolean;
  out: string | undefined;
  portBase: number;
  table: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const values = parseToolArgs({
    args: argv,
    options: {
      rounds: { type: 'string' },
      quick: { type: 'boolean' },
      out: { type: 'string' },
      'port-base': { type: 'string' },
      table: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }).values;
  if (values.help) throw new UsageError('');
  return {
    rounds: numberOption('rounds', values.rounds, 3, 1, true),
    quick: values.quick ?? false,
    out: values.out,
    portBase: numberOption('port-base', values['port-base'], DEFAULT_PORT_BASE, 1024, true),
    table: values.table,
  };
}

/** The ABBA order of the runs: node k6, k6 node, node k6 … */
export function runOrder(rounds: number): { round: number; generator: Generator }[] {
  const order: { round: number; generator: Generator }[] = [];
  for (let round = 1; round <= rounds; round++) {
    const pair: Generator[] = round % 2 === 1 ? ['node', 'k6'] : ['k6', 'node'];
    for (const generator of pair) order.push({ round, generator });
  }
  return order;
}

/** One run's figures, from its summary.json. */
export interface RunFigures {
  generator: Generator;
  requests: number;
  ko: number;
  consistency: number;
  p50: number;
  p75: number;
  p95: number;
  p99: number;
  max: number;
  generatorCpuS: number | undefined;
  generatorCores: number | undefined;
  stackCpuS: number | undefined;
  valid: boolean;
  pass: boolean;
}

export function figuresOf(s: RunSummary): RunFigures {
  const cpu = s.lag.generatorCpuSeconds;
  return {
    generator: toolOf(s),
    requests: s.total.count,
    ko: s.total.ko,
    consistency: s.payout.consistencyFailures,
    p50: s.total.p50Ms ?? NaN,
    p75: s.total.p75Ms ?? NaN,
    p95: s.total.p95Ms ?? NaN,
    p99: s.total.p99Ms ?? NaN,
    max: s.total.maxMs ?? NaN,
    generatorCpuS: cpu,
    generatorCores: cpu === undefined ? undefined : cpu / s.durationSeconds,
    stackCpuS: s.usage ? s.usage.reduce((a, u) => a + u.cpuSeconds, 0) : undefined,
    valid: s.lag.valid,
    pass: s.verdict.pass,
  };
}

const COLUMNS: { label: string; of: (f: RunFigures) => number | undefined; fmt: (x: number) => string }[] = [
  { label: 'requests', of: (f) => f.requests, fmt: (x) => fmtInt(x) },
  { label: 'KO', of: (f) => f.ko, fmt: (x) => fmtInt(x) },
  { label: 'consistency failures', of: (f) => f.consistency, fmt: (x) => fmtInt(x) },
  { label: 'p50 ms', of: (f) => f.p50, fmt: fmtMs },
  { label: 'p75 ms', of: (f) => f.p75, fmt: fmtMs },
  { label: 'p95 ms', of: (f) => f.p95, fmt: fmtMs },
  { label: 'p99 ms', of: (f) => f.p99, fmt: fmtMs },
  { label: 'max ms', of: (f) => f.max, fmt: fmtMs },
  { label: 'generator CPU s', of: (f) => f.generatorCpuS, fmt: (x) => x.toFixed(1) },
  { label: 'generator cores', of: (f) => f.generatorCores, fmt: (x) => x.toFixed(3) },
  { label: 'stack CPU s', of: (f) => f.stackCpuS, fmt: (x) => x.toFixed(1) },
];

/** Rows: one per figure; columns: each generator's median [min–max] over its runs. */
export function comparisonTable(runs: RunFigures[]): string[][] {
  const header = ['', ...GENERATORS.map((g) => `${g === 'k6' ? 'k6' : 'Node'} (${runs.filter((r) => r.generator === g).length} runs)`)];
  const rows = COLUMNS.map((c) => [
    c.label,
    ...GENERATORS.map((g) => {
      const xs = runs.filter((r) => r.generator === g).map(c.of).filter((x): x is number => x !== undefined && Number.isFinite(x));
      if (xs.length === 0) return '-';
      const lo = Math.min(...xs);
      const hi = Math.max(...xs);
      return lo === hi ? c.fmt(lo) : `${c.fmt(median(xs))} [${c.fmt(lo)}–${c.fmt(hi)}]`;
    }),
  ]);
  const verdicts = ['runs passed', ...GENERATORS.map((g) => `${runs.filter((r) => r.generator === g && r.pass).length} of ${runs.filter((r) => r.generator === g).length}`)];
  return [header, ...rows, verdicts];
}

/** Every run's summary under DIR/runs/, oldest first. */
export function savedRuns(dir: string): RunSummary[] {
  const runsDir = path.join(dir, 'runs');
  const out: RunSummary[] = [];
  for (const name of fs.existsSync(runsDir) ? fs.readdirSync(runsDir).sort() : []) {
    const file = path.join(runsDir, name, 'summary.json');
    if (!fs.existsSync(file)) continue;
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as RunSummary;
    if (s.version === 1) out.push(s);
  }
  return out;
}

function tableText(dir: string): { text: string; markdown: string } {
  const runs = savedRuns(dir);
  if (runs.length === 0) throw new UsageError(`${dir} holds no runs (runs/*/summary.json)`);
  const first = runs[0];
  const cells = comparisonTable(runs.map(figuresOf));
  const lines = [
    `${runs.length} runs, ${profileLabel(first.profile.name)} profile, ${first.startedAt} … ${runs[runs.length - 1].finishedAt}, commit ${commitText(first.git)}`,
    `host: ${first.machine.cpus} × ${first.machine.model}; median [min–max] per generator; the generator runs on the same cores as the stack`,
  ];
  return { text: `${lines.join('\n')}\n${textTable(cells)}`, markdown: `${lines.join('  \n')}\n\n${markdownTable(cells)}\n` };
}

/** Runs a generator's command against the stack; resolves with its report's directory, if it wrote one. */
function runGenerator(generator: Generator, stack: StackClient, runsDir: string, quick: boolean, logFile: string): Promise<{ status: number | null; reportDir: string | undefined }> {
  return new Promise((resolve, reject) => {
    const args = [SCRIPT_OF[generator], '--out', runsDir, ...(quick ? ['--quick'] : [])];
    // The generator finds the stack through its state file, as npm run loadtest finds npm run up's.
    const env = { ...process.env, CREBITOS_HOME: stack.home, HTTP_PORT: String(stack.httpPort), PG_PORT: String(stack.pgPort) };
    // A process group of its own, so that stopping this command stops the generator and its k6.
    const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    generatorGroup = child.pid;
    const log = fs.createWriteStream(logFile);
    let output = '';
    const take = (chunk: Buffer): void => {
      log.write(chunk);
      output += chunk.toString();
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('error', reject);
    child.once('exit', (status) => {
      generatorGroup = undefined;
      log.end();
      const report = /^report: (.+)$/m.exec(output)?.[1];
      resolve({ status, reportDir: report ? path.dirname(report.trim()) : undefined });
    });
  });
}

let current: StackClient | undefined;
/** The running generator's process group (the Node generator, or npm run k6 with its k6). */
let generatorGroup: number | undefined;

function stopEverything(): void {
  if (generatorGroup !== undefined) {
    try {
      process.kill(-generatorGroup, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  current?.downIfStarted();
}

async function main(o: Options): Promise<number> {
  if (o.table !== undefined) {
    console.log(tableText(path.resolve(o.table)).text);
    return 0;
  }
  const version = k6Version();
  if (version === undefined) {
    console.error(noK6Message('npm run k6-vs-node', 'this command compares k6 with the Node generator, so it needs both'));
    return 2;
  }
  for (const g of GENERATORS) if (!fs.existsSync(SCRIPT_OF[g])) throw new Error(`${SCRIPT_OF[g]} is missing: npm run build`);
  const started = new Date();
  const dir = path.resolve(o.out ?? path.join(DEFAULT_REPORTS_DIR, `k6-vs-node-${isoId(started)}`));
  const runsDir = path.join(dir, 'runs');
  const logsDir = path.join(dir, 'logs');
  fs.mkdirSync(runsDir, { recursive: true });
  fs.mkdirSync(logsDir, { recursive: true });
  const claim = claimHome(o.portBase, false);
  const m = machineInfo();
  console.log(`k6 against the Node generator: ${o.rounds} round(s) of ${o.quick ? 'the quick' : 'the official'} profile, ABBA, a fresh stack per run (port ${claim.portBase}); ${version}; host ${m.cpus} × ${m.model}; writing ${dir}`);
  let failures = 0;
  try {
    for (const { round, generator } of runOrder(o.rounds)) {
      const stack = benchStack(claim.home, claim.portBase, {});
      current = stack;
      await stack.up();
      const log = path.join(logsDir, `${generator}-${round}.log`);
      const { status, reportDir } = await runGenerator(generator, stack, runsDir, o.quick, log);
      stack.down();
      current = undefined;
      const summaryFile = reportDir && path.join(reportDir, 'summary.json');
      if (!summaryFile || !fs.existsSync(summaryFile)) {
        failures++;
        console.log(`round ${round} ${generator}: no report (exit status ${status}); see ${log}`);
        continue;
      }
      const f = figuresOf(JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as RunSummary);
      if (!f.pass) failures++;
      console.log(
        `round ${round} ${generator.padEnd(4)}: ${f.pass ? 'PASS' : f.valid ? 'FAIL' : 'INVALID'} ${fmtInt(f.requests)} requests, ${f.ko} KO, ${f.consistency} inconsistencies; p50 ${fmtMs(f.p50)} p99 ${fmtMs(f.p99)} max ${fmtMs(f.max)} ms; generator ${f.generatorCpuS?.toFixed(1) ?? '-'} CPU-s (${f.generatorCores?.toFixed(3) ?? '-'} cores), stack ${f.stackCpuS?.toFixed(1) ?? '-'} CPU-s`,
      );
    }
  } finally {
    current?.downIfStarted();
    claim.release();
  }
  const { text, markdown } = tableText(dir);
  const args = [...(o.rounds !== 3 ? ['--rounds', String(o.rounds)] : []), ...(o.quick ? ['--quick'] : [])];
  const command = `npm run k6-vs-node${args.length ? ` -- ${args.join(' ')}` : ''}`;
  fs.writeFileSync(path.join(dir, 'k6-vs-node.md'), `# k6 against the Node generator\n\n\`${command}\`\n\n${markdown}`);
  console.log(`\n${text}\n\ntable: ${path.join(dir, 'k6-vs-node.md')}; reports: ${path.join(runsDir, 'index.html')}`);
  return failures > 0 ? 1 : 0;
}

if (require.main === module) runCli({ name: 'k6-vs-node', usage: USAGE, parse: parseOptions, run: main, cleanup: stopEverything });
