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
// --cpu-prof takes a CPU profile of one API instance for the duration: SIGUSR1 makes the
// running Node process open its inspector on 127.0.0.1:9229, and a small CDP client (cdp.ts)
// starts and stops the V8 profiler; the inspector is closed again afterwards.

import autocannon from 'autocannon';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { CdpSession, inspectorTargets } from './cdp';
import { DEFAULT_REPORTS_DIR, isAlive, localStack } from './meta';
import { USER_AGENT, ResponseView, creditRequest, debitRequest, isConsistencyFailure, runChecks, statementRequest, type RequestSpec } from './simulation';

const MODES = ['credit', 'debit', 'statement', 'mixed'] as const;
type Mode = (typeof MODES)[number];

const USAGE = `usage: npm run profile -- <${MODES.join('|')}> [--connections N | --rate R] [--duration S] [--cpu-prof] [--instance api1|api2] [--base-url URL]
  --connections N  concurrent keep-alive connections (default 10, or 50 with --rate)
  --rate R         total requests per second (open-ish: autocannon's overallRate)
  --duration S     seconds (default 20)
  --cpu-prof       CPU profile of one API instance (default api1) for the duration, written under reports/profiles/
  --base-url URL   default: the local stack's url (stack state), else http://localhost:9999`;

function generator(mode: Mode): () => RequestSpec {
  switch (mode) {
    case 'credit':
      return () => creditRequest();
    case 'debit':
      return () => debitRequest();
    case 'statement':
      return () => statementRequest();
    case 'mixed':
      // The official proportions at every instant of the test: 220 : 110 : 10.
      return () => {
        const r = Math.random() * 340;
        return r < 220 ? debitRequest() : r < 330 ? creditRequest() : statementRequest();
      };
  }
}

interface Tallies {
  [group: string]: { count: number; statuses: Record<string, number>; ko: number; consistency: number; examples: Set<string> };
}

// ---------------------------------------------------------------------------------------------
// CPU profile of an API instance through its inspector
// ---------------------------------------------------------------------------------------------

const INSPECTOR_PORT = 9229;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startCpuProfile(instance: string): Promise<{ session: CdpSession; pid: number }> {
  const { state, stateFile } = localStack();
  if (!state || !isAlive(state.supervisorPid)) throw new Error(`--cpu-prof needs the native stack (npm run up); no running stack in ${stateFile}`);
  const component = state.components.find((c) => c.name === instance);
  if (!component) throw new Error(`no component ${instance} in ${stateFile} (have: ${state.components.map((c) => c.name).join(', ')})`);
  const cmdline = fs.readFileSync(`/proc/${component.pid}/cmdline`, 'utf8').split('\0').join(' ');
  if (!cmdline.includes('server.js')) throw new Error(`pid ${component.pid} (${instance}) is not the API (${cmdline})`);
  if (await inspectorTargets(INSPECTOR_PORT).then(() => true, () => false)) {
    throw new Error(`127.0.0.1:${INSPECTOR_PORT} already has an inspector listening (another process being debugged or profiled); close it and retry`);
  }
  process.kill(component.pid, 'SIGUSR1'); // Node opens its inspector on 127.0.0.1:9229
  let targets: { webSocketDebuggerUrl: string }[] = [];
  for (let i = 0; i < 50 && targets.length === 0; i++) {
    await sleep(100);
    targets = await inspectorTargets(INSPECTOR_PORT).catch(() => []);
  }
  if (targets.length === 0) throw new Error(`${instance} (pid ${component.pid}) did not open its inspector on ${INSPECTOR_PORT}; see its log in ${path.join(state.home, 'logs')}`);
  const session = await CdpSession.connect(targets[0].webSocketDebuggerUrl);
  const { result } = await session.send<{ result: { value: number } }>('Runtime.evaluate', { expression: 'process.pid', returnByValue: true });
  if (result.value !== component.pid) {
    session.close();
    throw new Error(`the inspector on ${INSPECTOR_PORT} belongs to pid ${result.value}, not ${instance} (pid ${component.pid})`);
  }
  await session.send('Profiler.enable');
  await session.send('Profiler.setSamplingInterval', { interval: 200 }); // µs
  await session.send('Profiler.start');
  return { session, pid: component.pid };
}

async function stopCpuProfile(session: CdpSession, file: string): Promise<void> {
  const { profile } = await session.send<{ profile: unknown }>('Profiler.stop');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(profile));
  await session.send('Profiler.disable').catch(() => undefined);
  // Close the inspector again once we have disconnected (inspector.close() waits for sessions to end).
  await session
    .send('Runtime.evaluate', { expression: "setTimeout(() => { try { process.mainModule.require('node:inspector').close(); } catch {} }, 200); 0" })
    .catch(() => undefined);
  session.close();
  for (let i = 0; i < 20; i++) {
    await sleep(100);
    if (!(await inspectorTargets(INSPECTOR_PORT).then(() => true, () => false))) return;
  }
  console.log(`warning: the inspector on 127.0.0.1:${INSPECTOR_PORT} is still open; it closes when the API restarts (npm run down/up)`);
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
  const { state } = localStack();
  const url = values['base-url'] ?? (state && isAlive(state.supervisorPid) ? state.url : 'http://localhost:9999');

  let profiling: { session: CdpSession; pid: number } | undefined;
  if (values['cpu-prof']) {
    profiling = await startCpuProfile(values.instance!);
    console.log(`CPU profiling ${values.instance} (pid ${profiling.pid}) through its inspector`);
  }

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
      await stopCpuProfile(profiling.session, profileFile);
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
