// capacity.html: a self-contained page (inline CSS and SVG, as report.ts's) for one
// npm run capacity invocation: headline numbers, latency and CPU against the offered rate,
// and every step of every run.

import { esc, xyChart } from '../lib/charts';
import { median } from '../lib/stats';
import type { CapacitySummary, DbTarget, JudgedStep, LoadTarget, PgbenchStep, Spread } from './capacity-rules';
import { CSS, formatEnvelope } from '../lib/report';

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

const COMPONENT_COLORS: Record<string, string> = { db: '#1c7ed6', api1: '#2f9e44', api2: '#8ce99a', nginx: '#f08c00', generator: '#868e96' };

/** For each offered rate any run reached: the median over the runs that reached it. */
function medianByRate(target: LoadTarget, value: (s: JudgedStep) => number | undefined): [number, number][] {
  const byRate = new Map<number, number[]>();
  for (const run of target.runs) {
    for (const s of run.steps) {
      const v = value(s);
      if (v !== undefined) byRate.set(s.ratePerS, [...(byRate.get(s.ratePerS) ?? []), v]);
    }
  }
  return [...byRate.entries()].map(([rate, vs]) => [rate, median(vs)]);
}

const fmt = (x: number | null | undefined, digits = 2): string => (x === null || x === undefined ? '–' : x.toFixed(digits));
const int = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
const mb = (b: number | undefined): string => (b === undefined ? '–' : (b / 2 ** 20).toFixed(1));
const spreadText = (s: Spread | undefined, unit: string): string =>
  !s || s.median === null ? 'not measured' : `${int(s.median)} ${unit} [${int(s.min)}–${int(s.max)}]`;

function tile(label: string, value: string, note = ''): string {
  return `<div class="tile"><div class="k">${esc(label)}</div><div class="v">${esc(value)}</div>${note ? `<div class="k">${esc(note)}</div>` : ''}</div>`;
}

const verdictCell = (v: string | undefined, reasons: string[] | undefined): string =>
  v === 'PASS' ? '<span class="ok">PASS</span>' : v === 'FAIL' ? `<span class="ko" title="${esc((reasons ?? []).join('; '))}">FAIL</span>` : v === 'INVALID' ? `<span class="ko" title="${esc((reasons ?? []).join('; '))}">INVALID</span>` : '–';

function loadCharts(t: LoadTarget, p99Ms: number): string {
  const latency = xyChart({
    xLabel: 'offered rate (req/s)',
    yLabel: 'response time (ms, log scale)',
    yLog: true,
    hlines: [{ y: p99Ms, label: `target p99 ${p99Ms} ms`, color: '#e03131' }],
    series: [
      ...t.runs.map((r) => ({ name: `p99 run ${r.run}`, color: '#ffc078', width: 1, hideInLegend: true, points: r.steps.map((s) => [s.ratePerS, s.latencyMs.p99] as [number, number]) })),
      { name: 'p50', color: '#2f9e44', points: medianByRate(t, (s) => s.latencyMs.p50) },
      { name: 'p99', color: '#f08c00', points: medianByRate(t, (s) => s.latencyMs.p99) },
      { name: 'max', color: '#c92a2a', points: medianByRate(t, (s) => s.latencyMs.max), width: 1.2 },
    ],
  });
  const names = [...new Set(t.runs.flatMap((r) => r.steps.flatMap((s) => s.components.map((c) => c.name))))];
  const limits = new Map<string, number>();
  for (const r of t.runs) for (const s of r.steps) for (const c of s.components) if (c.cpuLimit) limits.set(c.name, c.cpuLimit);
  const cpu = xyChart({
    xLabel: 'offered rate (req/s)',
    yLabel: 'CPU (cores)',
    hlines: [...new Set(limits.values())].map((l) => ({ y: l, label: `limit ${l} (${[...limits].filter(([, v]) => v === l).map(([n]) => n).join(', ')})`, color: '#adb5bd' })),
    series: [
      ...names.map((n) => ({ name: n, color: COMPONENT_COLORS[n] ?? '#7048e8', points: medianByRate(t, (s) => s.components.find((c) => c.name === n)?.cpuUtil) })),
      { name: 'generator', color: COMPONENT_COLORS.generator, dash: '5 3', points: medianByRate(t, (s) => s.generatorCpuUtil) },
    ],
  });
  const card = (title: string, note: string, svg: string): string => `<div class="card"><h3>${esc(title)}</h3><p>${esc(note)}</p>${svg}</div>`;
  return `<div class="grid">
${card('Latency against offered rate', `Median over runs of each step's p50, p99 and max; thin orange: p99 of each run. Dashed red: the ${p99Ms} ms target.`, latency)}
${card('CPU per component against offered rate', 'Median over runs of CPU-seconds per second from each cgroup; dashed grey: the generator (this process), which shares the two cores.', cpu)}
</div>`;
}

function loadTable(t: LoadTarget): string {
  const names = [...new Set(t.runs.flatMap((r) => r.steps.flatMap((s) => s.components.map((c) => c.name))))];
  const head = ['run', 'offered /s', 'verdict', 'sent', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'statuses', 'lag p99 / max ms', ...names.map((n) => `${n} CPU`), 'gen CPU', 'CPU ms/req', ...names.map((n) => `${n} peak MB`), 'API RSS MB'];
  const rows = t.runs.flatMap((r) =>
    r.steps.map((s) => [
      String(r.run),
      int(s.ratePerS),
      verdictCell(s.verdict, s.reasons),
      int(s.sent),
      fmt(s.latencyMs.p50),
      fmt(s.latencyMs.p99),
      fmt(s.latencyMs.p999),
      fmt(s.latencyMs.max, 1),
      s.errors ? `<span class="ko">${int(s.errors)}</span>` : '0',
      esc(Object.entries(s.statuses).map(([k, n]) => `${k}: ${n}`).join(', ')),
      `${fmt(s.lagMs.p99, 1)} / ${fmt(s.lagMs.max, 1)}`,
      ...names.map((n) => fmt(s.components.find((c) => c.name === n)?.cpuUtil)),
      fmt(s.generatorCpuUtil),
      fmt(s.components.reduce((a, c) => a + c.cpuMsPerRequest, 0), 3),
      ...names.map((n) => mb(s.components.find((c) => c.name === n)?.peakMemoryBytes)),
      s.components.filter((c) => c.rssBytes).map((c) => mb(c.rssBytes)).join(' / ') || '–',
    ]),
  );
  const runs = t.runs
    .map((r) => `<li>run ${r.run}: <b>${int(r.capacity)} req/s</b>${r.failedBelow.length ? `; failed below it: ${r.failedBelow.join(', ')}` : ''}${r.stopped ? `; ${esc(r.stopped)}` : ''}${r.error ? `; <span class="ko">${esc(r.error.split('\n')[0])}</span>` : ''}; idle API RSS ${Object.values(r.idleRssBytes).map(mb).join(' / ')} MB</li>`)
    .join('');
  return `<ul>${runs}</ul>${table([head, ...rows])}`;
}

function table(rows: string[][]): string {
  const [head, ...body] = rows;
  return `<div style="overflow-x:auto"><table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${body.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</table></div>`;
}

function dbSection(t: DbTarget): string {
  const row = (run: number, s: PgbenchStep): string[] => [
    String(run),
    s.rate === null ? 'full speed' : int(s.rate),
    verdictCell(s.verdict, s.reasons),
    String(s.clients),
    int(s.tps),
    int(s.transactions),
    String(s.failed),
    fmt(s.latencyMs.p50, 3),
    fmt(s.latencyMs.p99, 3),
    fmt(s.latencyMs.max, 1),
    s.lagMs ? `${fmt(s.lagMs.mean, 3)} / ${fmt(s.lagMs.max, 1)}` : '–',
    fmt(s.db?.cpuUtil),
    fmt(s.db?.cpuMsPerRequest, 3),
    Object.entries(s.byScript).map(([k, v]) => `${k} ${fmt(v.p99, 2)}`).join(', '),
  ];
  const head = ['run', '-R rate', 'verdict', 'clients', 'tps', 'transactions', 'failed', 'p50 ms', 'p99 ms', 'max ms', 'lag mean / max ms', 'db CPU', 'db CPU ms/tx', 'p99 by script (ms)'];
  const rows = t.runs.flatMap((r) => [...(r.full ? [row(r.run, r.full)] : []), ...r.rated.map((s) => row(r.run, s))]);
  const errors = t.runs.filter((r) => r.error).map((r) => `<li class="ko">run ${r.run}: ${esc(r.error!.split('\n')[0])}</li>`).join('');
  return `${errors ? `<ul>${errors}</ul>` : ''}${table([head, ...rows])}`;
}

export function renderCapacityReport(s: CapacitySummary): string {
  const f = s.fractions;
  const frac = (x: number | null): string => (x === null ? '–' : x.toFixed(3));
  const tiles = [
    s.api ? tile('Crébitos capacity (median [min–max])', spreadText(s.api.capacity, 'req/s'), `runs: ${s.api.capacity.values.join(', ')}`) : '',
    s.http ? tile('HTTP-only baseline', spreadText(s.http.capacity, 'req/s'), `runs: ${s.http.capacity.values.join(', ')}`) : '',
    s.db ? tile('Database only, full speed', spreadText(s.db.fullSpeedTps, 'tps'), `runs: ${s.db.fullSpeedTps.values.map((v) => Math.round(v)).join(', ')}`) : '',
    s.db && s.db.capacity.median !== null ? tile(`Database only, p99 ≤ ${s.criteria.p99Ms} ms`, spreadText(s.db.capacity, 'tps')) : '',
    f.ofHttp !== null ? tile('ours / HTTP only', frac(f.ofHttp)) : '',
    f.ofDbFullSpeed !== null ? tile('ours / database full speed', frac(f.ofDbFullSpeed)) : '',
    f.ofDbCapacity !== null ? tile(`ours / database at p99 ≤ ${s.criteria.p99Ms} ms`, frac(f.ofDbCapacity)) : '',
  ].join('');
  const sections = [s.api, s.http]
    .filter((t): t is LoadTarget => t !== undefined)
    .map((t) => `<h2>${esc(t.title)}</h2>${loadCharts(t, s.criteria.p99Ms)}${loadTable(t)}`)
    .join('\n');
  const env = Object.entries(s.environment).map(([k, v]) => `${k}=${v}`).join(' ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Crébitos capacity ${esc(s.startedAt)}</title><style>${CSS}</style></head><body>
<h1>Crébitos capacity</h1>
<div class="sub">${esc(s.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))} · commit <code>${esc(s.git.commit)}</code>${s.git.dirty ? ' (uncommitted changes)' : ''} · ${esc(`${s.machine.cpus} × ${s.machine.model}`)}, ${esc(s.machine.kernel)}, node ${esc(s.machine.node)}<br>
envelope: ${esc(formatEnvelope(s.envelope))}${env ? ` · ${esc(env)}` : ''}<br>
${s.options.runs} run(s) per target; steps ${esc(s.options.steps.join(', '))} req/s, ${s.options.stepSeconds} s each; official mix (220 : 110 : 10), a new TCP connection per request, per-request timeout ${s.options.timeoutMs} ms.
Capacity = the highest offered rate whose step had p99 ≤ ${s.criteria.p99Ms} ms, zero errors and a valid generator lag (p99 ≤ ${s.criteria.lag.p99Ms} ms, max ≤ ${s.criteria.lag.maxMs} ms); INVALID steps neither pass nor fail.
The generator runs on the same two cores as the stack: its own CPU is charted and its lag judged.</div>
<div class="tiles">${tiles}</div>
${sections}
${s.db ? `<h2>${esc(s.db.title)}</h2><p class="sub">pgbench -M prepared over the unix socket, the same function calls as server.ts weighted 220 : 110 : 10; the APIs and nginx are up but idle. Under -R the latency counts from the scheduled start (it includes waiting for a free client).</p>${dbSection(s.db)}` : ''}
</body></html>
`;
}
