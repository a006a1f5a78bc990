// npm run profile -- <credit|debit|statement|mixed> [--connections N | --rate R] [--duration S]
//                    [--cpu-prof] [--instance api1|api2] [--base-url URL]
//
// Drives one endpoint, or the official mix (220 débitos : 110 créditos : 10 extratos), through
// nginx with autocannon. Each request is generated per call, with the simulation's
// distributions (random client, valor 1..10000, 10 alphanumerics), and every response goes
// through the simulation's checks, so KOs and consistency failures are counted as in the load
// test. Unlike the load test, autocannon keeps its connections alive and is closed-model unless
// --rate is given: this is for finding hot spots, not for judging.
//
// --cpu-prof takes a CPU profile of one API instance with Node's own --cpu-prof: the run gets a
// native stack of its own whose APIs start under the flag, and stopping it (SIGTERM: the API
// drains and exits) writes the profile. It covers the instance's whole life, start-up included;
// select the load's stretch in the profiler's timeline.

import autocannon from 'autocannon';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { StackClient } from '../../stack/client';
import { alive, localStack } from '../../stack/state';
import { DEFAULT_REPORTS_DIR, REPO } from '../lib/provenance';
import { OFFICIAL_MIX, USER_AGENT, ResponseView, creditRequest, debitRequest, isConsistencyFailure, runChecks, statementRequest, type RequestSpec } from '../lib/official-simulation';

const MODES = ['credit', 'debit', 'statement', 'mixed'] as const;
type Mode = (typeof MODES)[number];

const USAGE = `usage: npm run profile -- <${MODES.join('|')}> [--connections N | --rate R] [--duration S] [--cpu-prof] [--instance api1|api2] [--base-url URL]
  --connections N  concurrent keep-alive connections (default 10, or 50 with --rate)
  --rate R         total requests per second (open-ish: autocannon's overallRate)
  --duration S     seconds (default 20)
  --cpu-prof       CPU profile of one API instance (default api1), on a stack of its own, written under reports/profiles/
  --base-url URL   default: the local stack's url (stack state), else http://localhost:9999`;

function generator(mode: Mode): () => RequestSpec {
  switch (mode) {
    case 'credit':
      return () => creditRequest();
    case 'debit':
      return () => debitRequest();
    case 'statement':
      return () => statementRequest();
    case 'mixed': {
      // The official proportions at every instant of the test.
      const { debits, credits, statements } = OFFICIAL_MIX;
      return () => {
        const r = Math.random() * (debits + credits + statements);
        return r < debits ? debitRequest() : r < debits + credits ? creditRequest() : statementRequest();
      };
    }
  }
}

interface Tallies {
  [group: string]: { count: number; statuses: Record<string, number>; ko: number; consistency: number; examples: Set<string> };
}

// ---------------------------------------------------------------------------------------------
// CPU profile of an API instance with node --cpu-prof
// ---------------------------------------------------------------------------------------------

/** Ports of the profiling stack, away from npm run up's (9999) and the tests'. */
const PROFILE_HTTP_PORT = 29970;

/** A stack whose APIs run under --cpu-prof, writing into a directory any user can write (as root the APIs run as nobody). */
async function startProfiledStack(): Promise<{ stack: StackClient; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crebitos-cpu-prof-'));
  fs.chmodSync(dir, 0o1777);
  const stack = new StackClient({
    home: path.join(REPO, '.stack-profile'),
    httpPort: PROFILE_HTTP_PORT,
    pgPort: PROFILE_HTTP_PORT + 30000,
    // 200 µs samples, five times Node's default, for short runs.
    env: { CREBITOS_API_NODE_FLAGS: `--cpu-prof --cpu-prof-interval=200 --cpu-prof-dir=${dir}` },
  });
  await stack.up();
  return { stack, dir };
}

/** Stops the stack (each API writes its profile as it exits) and keeps the instance's profile as `file`. */
function stopProfiledStack(profiled: { stack: StackClient; dir: string }, pid: number, file: string): void {
  profiled.stack.down();
  const written = fs.readdirSync(profiled.dir).find((name) => name.endsWith('.cpuprofile') && name.split('.').includes(String(pid)));
  if (!written) throw new Error(`the API (pid ${pid}) wrote no profile in ${profiled.dir}`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.copyFileSync(path.join(profiled.dir, written), file);
  fs.rmSync(profiled.dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      connections: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string', default: '20' },
      'cpu-prof': { type: 'boolean', default: false },
      instance: { type: 'string', default: 'api1' },
      'base-url': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const mode = positionals[0] as Mode;
  if (values.help || !MODES.includes(mode) || positionals.length !== 1) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(n > 0)) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const rate = num('rate', values.rate);
  const connections = num('connections', values.connections) ?? (rate ? 50 : 10);
  const duration = num('duration', values.duration)!;
  if (values['cpu-prof'] && values['base-url']) throw new Error('--cpu-prof runs a stack of its own; it takes no --base-url');
  if (!['api1', 'api2'].includes(values.instance!)) throw new Error(`--instance must be api1 or api2, got ${values.instance}`);
  let profiling: { stack: StackClient; dir: string; pid: number } | undefined;
  if (values['cpu-prof']) {
    const profiled = await startProfiledStack();
    profiling = { ...profiled, pid: profiled.stack.pid(values.instance!) };
    console.log(`CPU profiling ${values.instance} (pid ${profiling.pid}) with node --cpu-prof, on a stack of its own at ${profiled.stack.state.url}`);
  }
  const { state } = localStack();
  const url = profiling?.stack.state.url ?? values['base-url'] ?? (state && alive(state.supervisorPid) ? state.url : 'http://localhost:9999');

  const next = generator(mode);
  const tallies: Tallies = {};
  console.log(`${mode}: ${url}, ${connections} keep-alive connection(s)${rate ? `, ${rate} req/s in all` : ' as fast as they go'}, ${duration} s`);
  let result: autocannon.Result;
  let profileFile: string | undefined;
  try {
    result = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url,
          connections,
          duration,
          overallRate: rate,
          headers: { 'user-agent': USER_AGENT },
          requests: [
            {
              setupRequest: (req, context) => {
                const spec = next();
                (context as { spec?: RequestSpec }).spec = spec;
                const headers = { ...req.headers, ...(spec.body ? { 'content-type': 'application/json' } : {}) };
                return { ...req, method: spec.method, path: spec.path, body: spec.body ?? '', headers };
              },
              onResponse: (status, body, context) => {
                const spec = (context as { spec?: RequestSpec }).spec;
                if (!spec) return;
                const failure = runChecks(spec.checks, new ResponseView(status, body), new Map());
                const t = (tallies[spec.group] ??= { count: 0, statuses: {}, ko: 0, consistency: 0, examples: new Set() });
                t.count++;
                t.statuses[status] = (t.statuses[status] ?? 0) + 1;
                if (failure !== undefined) {
                  t.ko++;
                  if (isConsistencyFailure(failure)) t.consistency++;
                  if (t.examples.size < 3) t.examples.add(failure);
                }
              },
            },
          ],
        },
        (err, res) => (err ? reject(err) : resolve(res)),
      );
      autocannon.track(instance, { renderProgressBar: process.stdout.isTTY === true, renderResultsTable: false, renderLatencyTable: false });
    });
  } finally {
    if (profiling) {
      profileFile = path.join(DEFAULT_REPORTS_DIR, 'profiles', `${new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}-${values.instance}-${mode}.cpuprofile`);
      stopProfiledStack(profiling, profiling.pid, profileFile);
    }
  }
  console.log(autocannon.printResult(result));
  let ko = 0;
  for (const [group, t] of Object.entries(tallies)) {
    ko += t.ko;
    const statuses = Object.entries(t.statuses).map(([s, n]) => `${s}: ${n}`).join(', ');
    console.log(`${group.padEnd(9)} ${String(t.count).padStart(7)} responses (${statuses}); KO ${t.ko}, consistency failures ${t.consistency}`);
    for (const e of t.examples) console.log(`          e.g. ${e}`);
  }
  if (result.errors || result.timeouts) console.log(`transport errors ${result.errors}, timeouts ${result.timeouts}`);
  if (profileFile) {
    console.log(`\nCPU profile of ${values.instance} written to ${profileFile}`);
    console.log('  open it in Chrome DevTools (Performance tab > "Load profile...") or drop it on https://www.speedscope.app');
  }
  return ko + result.errors + result.timeouts > 0 ? 1 : 0;
}

if (require.main === module) {
  main()
    .then((code) => process.exit(code))
    .catch((err: Error) => {
      console.error(`profile: ${err.message}`);
      process.exit(2);
    });
}
