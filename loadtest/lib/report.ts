// The HTML report of a run (self-contained: inline CSS and SVG, no script, no CDN) and the
// reports index, the same for the Node generator's runs and k6's.
//   npm run report [-- --out DIR] [--rerender]   rebuilds DIR/index.html (default reports/) from
//                                                every DIR/*/summary.json, and with --rerender each report.html too
//   npm run report -- RUN_DIR...                 (re)builds a run directory's summary.json and report.html,
//                                                a k6 run's from its samples (k6-results.ts), and its parent's index

import * as fs from 'node:fs';
import * as path from 'node:path';
import { esc, logHistogram, timeChart, type Bar } from './charts';
import { DEFAULT_REPORTS_DIR } from './provenance';
import { HIGHER_BOUND_MS, LOWER_BOUND_MS } from './official-simulation';
import { distributionBucketBoundsMs } from './stats';
import { fmtBytes, fmtInt, fmtMs, fmtPct, fmtUsd, latencyTable, toolOf, usageCells, type RunSummary } from './summary';
import { K6_SAMPLES_FILE, summarizeK6RunDir } from './k6-results';
import { UsageError, parseToolArgs, runCli } from './cli';

// ---------------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------------

const STATUS_COLORS: Record<string, string> = {
  '200': '#2f9e44',
  '422': '#74c0fc',
  '404': '#adb5bd',
  '400': '#b197fc',
  error: '#212529',
};
const statusColor = (k: string): string => STATUS_COLORS[k] ?? (k.startsWith('5') ? '#e03131' : k.startsWith('4') ? '#f783ac' : '#fab005');

export const CSS = `
*{box-sizing:border-box}body{margin:0;padding:20px 24px;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#212529;background:#f1f3f5}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px}h3{font-size:14px;margin:0 0 2px}
.sub{color:#495057;margin-bottom:14px}.verdict{display:inline-block;padding:3px 12px;border-radius:4px;color:#fff;font-weight:700;margin-right:8px}
.pass{background:#2f9e44}.fail{background:#e03131}.invalid{background:#f08c00}.reasons{margin:6px 0 0 0;color:#c92a2a;font-weight:600}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px;margin:14px 0}.tile{background:#fff;border-radius:6px;padding:8px 12px;border-left:5px solid #adb5bd}
.tile .k{font-size:12px;color:#495057}.tile .v{font-size:20px;font-weight:700}.tile.good{border-color:#2f9e44}.tile.bad{border-color:#e03131}.tile.warn{border-color:#f08c00}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}.card{background:#fff;border-radius:6px;padding:10px 10px 4px}
.card p{margin:0 0 4px;color:#495057;font-size:12px}svg{width:100%;height:auto;display:block}
table{border-collapse:collapse;background:#fff;font-size:13px;margin-bottom:6px}th,td{padding:4px 9px;border-bottom:1px solid #e9ecef;text-align:right;white-space:nowrap}
th{background:#e9ecef}td:first-child,th:first-child{text-align:left}tr.total td{font-weight:700;border-top:2px solid #adb5bd}
td.l{text-align:left;white-space:normal}td.lw{text-align:left}.row{display:flex;flex-wrap:wrap;gap:8px 32px;align-items:flex-start}.ok{color:#2f9e44;font-weight:600}.ko{color:#e03131;font-weight:600}.muted{color:#868e96}
code{font-size:12px}`;

function tile(label: string, value: string, state: 'good' | 'bad' | 'warn' | '' = ''): string {
  return `<div class="tile ${state}"><div class="k">${esc(label)}</div><div class="v">${esc(value)}</div></div>`;
}

function htmlTable(rows: string[][], opts: { totalLast?: boolean; leftCols?: number[]; nowrapLeftCols?: number[] } = {}): string {
  const [head, ...body] = rows;
  const left = new Set(opts.leftCols ?? []);
  const leftNowrap = new Set(opts.nowrapLeftCols ?? []);
  const td = (c: string, i: number): string => `<td${left.has(i) ? ' class="l"' : leftNowrap.has(i) ? ' class="lw"' : ''}>${c}</td>`;
  return `<table><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr>${body
    .map((r, i) => `<tr${opts.totalLast && i === body.length - 1 ? ' class="total"' : ''}>${r.map(td).join('')}</tr>`)
    .join('')}</table>`;
}

export function formatEnvelope(envelope: unknown): string {
  if (!envelope || typeof envelope !== 'object') return 'none recorded (no limits applied, or an older stack state)';
  const parts: string[] = [];
  let cpus = 0;
  let mem = 0;
  for (const [name, limit] of Object.entries(envelope as Record<string, unknown>)) {
    const l = limit as { cpus?: number; memoryBytes?: number };
    if (typeof l?.cpus === 'number' && typeof l?.memoryBytes === 'number') {
      parts.push(`${name} ${l.cpus} CPU / ${Math.round(l.memoryBytes / 2 ** 20)} MB`);
      cpus += l.cpus;
      mem += l.memoryBytes;
    } else {
      parts.push(`${name} ${JSON.stringify(limit)}`);
    }
  }
  return `${parts.join(', ')}${cpus ? `; total ${+cpus.toFixed(3)} CPU / ${Math.round(mem / 2 ** 20)} MB` : ''}`;
}

function charts(s: RunSummary): string {
  const pts = s.timeline.points;
  const xs = pts.map((p) => p.t);
  const loadStart = s.timeline.loadStartSecond;
  const markers = [
    { x: loadStart, label: 'load starts' },
    { x: loadStart + s.profile.rampSeconds, label: 'constant rate' },
  ];
  const latency = timeChart({
    xs,
    yLabel: 'response time (ms, log scale)',
    yLog: true,
    markers,
    hlines: [{ y: LOWER_BOUND_MS, label: `SLA ${LOWER_BOUND_MS} ms`, color: '#e03131' }],
    series: [
      { name: 'p50', color: '#2f9e44', values: pts.map((p) => p.p50) },
      { name: 'p95', color: '#1c7ed6', values: pts.map((p) => p.p95) },
      { name: 'p99', color: '#f08c00', values: pts.map((p) => p.p99) },
      { name: 'max', color: '#c92a2a', values: pts.map((p) => p.max), width: 1.1 },
    ],
  });
  const rates = timeChart({
    xs,
    yLabel: 'requests per second',
    markers,
    series: [
      { name: 'arrivals scheduled', color: '#868e96', values: pts.map((p) => p.scheduled), width: 3 },
      { name: 'requests started', color: '#1c7ed6', values: pts.map((p) => p.started), dash: '5 3' },
      { name: 'responses', color: '#2f9e44', values: pts.map((p) => p.responses), width: 1.2 },
      { name: 'KO', color: '#e03131', values: pts.map((p) => p.ko) },
    ],
  });
  const statusKeys = Object.keys(s.statuses).sort((a, b) => (s.statuses[b] ?? 0) - (s.statuses[a] ?? 0));
  const statuses = timeChart({
    xs,
    yLabel: 'responses per second',
    stacked: true,
    markers,
    series: statusKeys.map((k) => ({ name: k === 'error' ? 'no response' : `HTTP ${k}`, color: statusColor(k), values: pts.map((p) => p.statuses[k] ?? 0) })),
  });
  const lag = timeChart({
    xs,
    yLabel: 'generator lag (ms, log scale)',
    yLog: true,
    markers,
    hlines: [
      { y: s.lag.limits.p99Ms, label: `p99 limit ${s.lag.limits.p99Ms} ms`, color: '#f08c00' },
      { y: s.lag.limits.maxMs, label: `max limit ${s.lag.limits.maxMs} ms`, color: '#e03131' },
    ],
    series: [
      { name: 'lag p99', color: '#f08c00', values: pts.map((p) => p.lagP99) },
      { name: 'lag max', color: '#c92a2a', values: pts.map((p) => p.lagMax), width: 1.1 },
    ],
  });
  const inflight = timeChart({
    xs,
    yLabel: 'requests in flight (max per second)',
    markers,
    series: [{ name: 'in flight', color: '#7048e8', values: pts.map((p) => p.inflightMax) }],
  });
  const bars: Bar[] = [];
  const first = s.distribution.ok.findIndex((v, i) => v + s.distribution.ko[i] > 0);
  const last = s.distribution.ok.length - 1 - [...s.distribution.ok].reverse().findIndex((v, i) => v + s.distribution.ko[s.distribution.ok.length - 1 - i] > 0);
  if (first >= 0) {
    for (let k = first; k <= last; k++) {
      const [lo, hi] = distributionBucketBoundsMs(k);
      const zone = lo < LOWER_BOUND_MS ? '#2f9e44' : lo < HIGHER_BOUND_MS ? '#f08c00' : '#e03131';
      bars.push({ lo, hi, segments: [{ value: s.distribution.ok[k], color: zone }, { value: s.distribution.ko[k], color: '#212529' }] });
    }
  }
  const histogram = logHistogram(bars, {
    xLabel: 'response time (ms, log scale)',
    yLabel: 'requests (log scale)',
    legend: [
      { name: `OK < ${LOWER_BOUND_MS} ms`, color: '#2f9e44' },
      { name: `OK ${LOWER_BOUND_MS}-${HIGHER_BOUND_MS} ms`, color: '#f08c00' },
      { name: `OK >= ${HIGHER_BOUND_MS} ms`, color: '#e03131' },
      { name: 'KO', color: '#212529' },
    ],
    vlines: [{ x: LOWER_BOUND_MS, label: `${LOWER_BOUND_MS} ms`, color: '#e03131' }],
  });
  const card = (title: string, note: string, svg: string): string => `<div class="card"><h3>${esc(title)}</h3><p>${esc(note)}</p>${svg}</div>`;
  return `<div class="grid">
${card('Response time percentiles over time', 'All requests, by the second they started. Dashed red: the 250 ms SLA bound.', latency)}
${card('Arrivals and responses per second', `Open model: arrivals follow the schedule whatever the response times; started should sit on scheduled.${toolOf(s) === 'k6' ? " Scheduled is the official (Gatling) schedule; k6's own trails it by at most one arrival a second." : ''}`, rates)}
${card('Status codes over time', 'Responses per second by status (stacked). 422 = debit over the limit (expected for ~1/3 of debits).', statuses)}
${card('Response time distribution', `All ${fmtInt(s.total.count)} requests in log-spaced buckets (10 per decade); KO in black.`, histogram)}
${card('Generator lag over time', toolOf(s) === 'k6' ? `k6 reports no per-arrival lag (this chart stays empty); it dropped ${fmtInt(s.k6?.droppedIterations ?? 0)} arrival(s), and any dropped arrival makes the run INVALID.` : 'Actual minus scheduled start of each load arrival. Above the limits the run is INVALID.', lag)}
${card('Concurrency', 'Largest number of requests in flight during each second.', inflight)}
</div>`;
}

/** The profile as people call it: `full` is the official test. */
export const profileLabel = (name: string): string => (name === 'full' ? 'official' : name);
const toolLabel = (s: Pick<RunSummary, 'tool'>): string => (toolOf(s) === 'k6' ? 'k6' : 'Node');

export function renderReport(s: RunSummary): string {
  const t = s.total;
  const verdictClass = s.verdict.pass ? 'pass' : s.verdict.valid ? 'fail' : 'invalid';
  const verdictText = s.verdict.pass ? 'PASS' : s.verdict.valid ? 'FAIL' : 'INVALID';
  const under = t.count ? (t.under250 / t.count) * 100 : 0;
  const auditState = s.audit.status === 'passed' ? 'good' : s.audit.status === 'skipped' ? 'warn' : 'bad';
  const tiles = [
    tile('requests / expected', `${fmtInt(t.count)} / ${fmtInt(s.profile.expectedRequests)}`, t.count === s.profile.expectedRequests ? 'good' : 'bad'),
    tile('KO', fmtInt(t.ko), t.ko === 0 ? 'good' : 'bad'),
    tile('p50 / p99 / max (ms)', `${fmtMs(t.p50Ms)} / ${fmtMs(t.p99Ms)} / ${fmtMs(t.maxMs)}`, (t.p99Ms ?? 0) < LOWER_BOUND_MS ? 'good' : 'bad'),
    tile(`OK and < ${LOWER_BOUND_MS} ms`, `${under.toFixed(2)}%`, under >= 98 ? 'good' : 'bad'),
    tile('consistency failures', fmtInt(s.payout.consistencyFailures), s.payout.consistencyFailures === 0 ? 'good' : 'bad'),
    tile('payout', fmtUsd(s.payout.payout), s.payout.payout === 100000 ? 'good' : 'bad'),
    toolOf(s) === 'k6'
      ? tile('k6 dropped arrivals', fmtInt(s.k6?.droppedIterations ?? 0), s.lag.valid ? 'good' : 'warn')
      : tile('generator lag p99 / max', `${fmtMs(s.lag.p99Ms)} / ${fmtMs(s.lag.maxMs)} ms`, s.lag.valid ? 'good' : 'warn'),
    tile('database audit', s.audit.status, auditState),
  ].join('');

  const errorsTable =
    s.errors.length === 0
      ? '<p class="ok">No KO.</p>'
      : htmlTable(
          [['error (first failed check)', 'requests', 'count', '% of KO'], ...s.errors.map((e) => [`${e.consistency ? '<b>[consistency]</b> ' : ''}${esc(e.message)}`, esc(e.groups.join(', ')), fmtInt(e.count), fmtPct(e.count, t.ko)])],
          { leftCols: [0, 1] },
        );

  const a = s.audit;
  let audit: string;
  if (a.status === 'skipped' || a.status === 'error') {
    audit = `<p class="${a.status === 'error' ? 'ko' : 'muted'}">${a.status.toUpperCase()}: ${esc(a.reason ?? '')}</p>`;
  } else {
    audit =
      `<p class="${a.status === 'passed' ? 'ok' : 'ko'}">${a.status === 'passed' ? 'Passed: audit_failures is empty; every balance equals its ledger replay, which never went below -limite.' : 'FAILED'}</p>` +
      `<p>Ledger entries written during the run: <b>${a.ledgerEntries ?? '-'}</b>; POSTs answered 200: <b>${a.postsOk ?? '-'}</b>${a.postsUnanswered ? ` (+${a.postsUnanswered} without a response)` : ''}.</p>` +
      (a.problems.length ? `<p class="ko">${a.problems.map(esc).join('<br>')}</p>` : '') +
      (a.failures.length ? `<h3>audit_failures</h3>${rowsTable(a.failures)}` : '') +
      `<h3>ledger_audit</h3>${rowsTable(a.ledger)}`;
  }

  const usage =
    s.usage && s.usage.length
      ? htmlTable([
          ['component', 'CPU s during the run', 'average cores', 'CPU limit', 'peak memory (cgroup)', 'memory limit', 'peak RSS (main process)', 'OOM kills', 'CPU-throttled 100 ms periods (time waited)'],
          ...s.usage.map((u) => usageCells(u).map(esc)),
        ])
      : '<p class="muted">Not available (a stack without limits, or a target that is not the local stack).</p>';

  const p = s.payout;
  const payoutTable = htmlTable([
    ['item', 'computation', 'USD'],
    [`SLA (OK and < ${LOWER_BOUND_MS} ms)`, `pct = round(${fmtInt(t.under250)} / ${fmtInt(t.count)} x 100, 2) = ${p.pct.toFixed(2)}%; max(0, (98 - pct) x 1000)`, p.slaPenalty.toFixed(2)],
    ['consistency', `${p.consistencyFailures} x 803.01 (ConsistenciaSaldoLimite + saldo.total checks)`, p.consistencyPenalty.toFixed(2)],
    ['payout', '100,000 - penalties', `<b>${p.payout.toFixed(2)}</b>`],
  ], { nowrapLeftCols: [1] });

  const distTable = htmlTable([
    ['response time', 'requests', '%'],
    [`t < ${LOWER_BOUND_MS} ms (OK)`, fmtInt(t.under250), fmtPct(t.under250, t.count)],
    [`${LOWER_BOUND_MS} ms <= t < ${HIGHER_BOUND_MS} ms (OK)`, fmtInt(t.from250to1200), fmtPct(t.from250to1200, t.count)],
    [`t >= ${HIGHER_BOUND_MS} ms (OK)`, fmtInt(t.over1200), fmtPct(t.over1200, t.count)],
    ['failed (KO)', fmtInt(t.failed), fmtPct(t.failed, t.count)],
  ]);
  const statusTable = htmlTable([['status', 'responses'], ...Object.entries(s.statuses).map(([k, v]) => [k === 'error' ? 'no response' : k, fmtInt(v)])]);

  const m = s.machine;
  const validity = s.lag.valid ? 'valid' : `<b class="ko">INVALID</b> (${esc(s.lag.reasons.join('; '))})`;
  const info = htmlTable(
    [
      ['', ''],
      ['run', `${esc(s.startedAt)} → ${esc(s.finishedAt)} (${s.durationSeconds.toFixed(1)} s)`],
      ['profile', `<b>${esc(s.profile.name)}</b>: ${esc(s.profile.description)}; ${Object.entries(s.profile.loadRequests).map(([g, n]) => `${esc(g)} ${fmtInt(n)}`).join(', ')} + 123 validações`],
      ['target', esc(s.target.baseUrl) + (s.target.stackHome ? ` (native stack in ${esc(s.target.stackHome)})` : '')],
      ['envelope', esc(formatEnvelope(s.target.envelope))],
      ['git commit', `<code>${esc(s.git.commit)}</code>${s.git.dirty ? ' <b>+ uncommitted changes</b>' : ' (clean)'}`],
      ['machine', `${m.cpus} CPUs, ${esc(m.model)}, ${fmtBytes(m.totalMemoryBytes)} RAM, ${esc(m.kernel)}, ${esc(m.platform)}`],
      ['node', esc(m.node)],
      ['load average', `${m.loadAverageStart.map((x) => x.toFixed(2)).join(' ')} at start, ${m.loadAverageEnd.map((x) => x.toFixed(2)).join(' ')} at the end`],
      ...(s.k6
        ? [
            [
              'k6',
              `${esc(s.k6.version)}, exit status ${s.k6.exitCode ?? 'not recorded'}; dropped arrivals ${fmtInt(s.k6.droppedIterations)}; thresholds failed: ${s.k6.failedThresholds.length ? esc(s.k6.failedThresholds.join('; ')) : 'none'}; requests read from <code>${esc(s.k6.samplesFile)}</code> (start = sample time − response time)`,
            ],
          ]
        : []),
      [
        `generator (${toolOf(s)})`,
        `${
          s.k6
            ? `${validity} (k6 reports no per-arrival lag)`
            : `lag p50 ${fmtMs(s.lag.p50Ms)} / p99 ${fmtMs(s.lag.p99Ms)} / p99.9 ${fmtMs(s.lag.p999Ms)} / max ${fmtMs(s.lag.maxMs)} ms over ${fmtInt(s.lag.count)} arrivals (limits: p99 <= ${s.lag.limits.p99Ms} ms, max <= ${s.lag.limits.maxMs} ms): ${validity}; event-loop delay p99 ${fmtMs(s.lag.eventLoopDelayP99Ms)} / max ${fmtMs(s.lag.eventLoopDelayMaxMs)} ms`
        }${s.lag.generatorCpuSeconds === undefined ? '' : `; generator CPU ${s.lag.generatorCpuSeconds.toFixed(1)} s (${((s.lag.generatorCpuSeconds / s.durationSeconds) * 100).toFixed(0)}% of one core)`}`,
      ],
    ],
    { leftCols: [1] },
  );

  const rows = latencyTable(s).map((r) => r.map(esc));
  const phases = htmlTable([
    ['phase', 'starts at (s)', 'requests', 'KO', 'duration (ms)'],
    ...s.phases.map((ph) => [esc(ph.name), ((ph.atMs ?? 0) / 1000).toFixed(3), String(ph.requests), ph.ko ? `<span class="ko">${ph.ko}</span>` : '0', ph.ms.toFixed(0)]),
  ]);

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Crébitos load test ${esc(s.id)} (${esc(profileLabel(s.profile.name))}, ${toolLabel(s)}) ${verdictText}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>${CSS}</style></head><body>
<h1><span class="verdict ${verdictClass}">${verdictText}</span>Crébitos load test, ${esc(profileLabel(s.profile.name))} profile, ${toolLabel(s)}</h1>
<div class="sub">${esc(s.startedAt)} · ${esc(s.target.baseUrl)} · commit <code>${esc(s.git.commit)}</code>${s.git.dirty ? ' (dirty)' : ''} · ${m.cpus} CPUs · <a href="../index.html">all runs</a></div>
${s.verdict.reasons.length ? `<div class="reasons">${s.verdict.reasons.map(esc).join('<br>')}</div>` : ''}
<div class="tiles">${tiles}</div>
${charts(s)}
<h2>Requests (Gatling-style; times in ms)</h2>
${htmlTable(rows, { totalLast: true })}
<div class="row"><div><h2>Response time distribution</h2>${distTable}</div><div><h2>Contest payout (docs/contest.md)</h2>${payoutTable}</div><div><h2>Status codes</h2>${statusTable}</div></div>
<h2>Errors</h2>
${errorsTable}
<h2>Validation phases</h2>
${phases}
<h2>Database audit</h2>
${audit}
<h2>Resource usage</h2>
${usage}
<h2>Run</h2>
${info}
<p class="muted">${
    toolOf(s) === 'k6'
      ? "Requests sent by k6 running loadtest/official/rinha.k6.js, read from its --out json samples by loadtest/lib/k6-results.ts. Response time = Gatling's clock: k6's blocked + connecting + TLS + http_req_duration (a new TCP connection for each load request)."
      : 'Requests sent by loadtest/official/official-test.ts. Response time = from the start of the request (a new TCP connection for each load request) to the end of the response body.'
  } Percentiles from HDR histograms (3 significant digits; per-second series with 2).</p>
</body></html>
`;
}

function rowsTable(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '<p class="muted">(no rows)</p>';
  const cols = Object.keys(rows[0]);
  return htmlTable([cols.map(esc), ...rows.map((r) => cols.map((c) => esc(String(r[c] ?? ''))))]);
}

// ---------------------------------------------------------------------------------------------
// Index of all runs
// ---------------------------------------------------------------------------------------------

interface IndexEntry {
  dir: string;
  summary: RunSummary;
}

/**
 * The reports under `root` whose folder holds `file` and whose JSON `accept`s, newest first:
 * `root`'s own folders and, below a folder without it, up to three levels more (as deep as
 * reports/curated/k6-vs-node-<date>/runs/<run>/).
 */
function findReports<T extends { startedAt: string }>(root: string, file: string, accept: (json: T) => boolean): { dir: string; summary: T }[] {
  const entries: { dir: string; summary: T }[] = [];
  const visit = (dir: string, depth: number): void => {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const d of names.filter((n) => n.isDirectory())) {
      const sub = path.join(dir, d.name);
      if (fs.existsSync(path.join(sub, file))) {
        try {
          const summary = JSON.parse(fs.readFileSync(path.join(sub, file), 'utf8')) as T;
          if (accept(summary)) entries.push({ dir: path.relative(root, sub), summary });
        } catch {
          // not one of ours, or half-written
        }
      } else if (depth < 3) {
        visit(sub, depth + 1);
      }
    }
  };
  visit(root, 0);
  return entries.sort((x, y) => y.summary.startedAt.localeCompare(x.summary.startedAt));
}

const findRuns = (root: string): IndexEntry[] => findReports<RunSummary>(root, 'summary.json', (s) => s.version === 1);

/** What the index reads of an npm run capacity report (capacity.json; capacity/capacity.ts writes the whole). */
export interface CapacityIndexFields {
  version: 1;
  kind: 'capacity';
  startedAt: string;
  git: { commit: string; dirty: boolean };
  options: { runs: number; stepSeconds: number };
  api?: { capacity: Range };
  http?: { capacity: Range };
  db?: { fullSpeedTps: Range };
  fractions: { ofHttp: number | null };
}
type Range = { median: number | null; min: number | null; max: number | null };

/** npm run capacity's reports (capacity-<timestamp>/capacity.json), newest first. */
const findCapacityRuns = (root: string): { dir: string; summary: CapacityIndexFields }[] =>
  findReports<CapacityIndexFields>(root, 'capacity.json', (s) => s.kind === 'capacity' && s.version === 1);

function capacityIndex(entries: { dir: string; summary: CapacityIndexFields }[]): string {
  const cell = (x: { median: number | null; min: number | null; max: number | null } | undefined): string =>
    !x || x.median === null ? '–' : `${fmtInt(Math.round(x.median))} <span class="muted">[${fmtInt(Math.round(x.min!))}–${fmtInt(Math.round(x.max!))}]</span>`;
  const rows = entries.map(({ dir, summary: s }) => [
    `<a href="${dir.split(path.sep).map(encodeURIComponent).join('/')}/capacity.html">${esc(s.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</a>`,
    `<code>${esc(s.git.commit)}</code>${s.git.dirty ? '*' : ''}`,
    `${s.options.runs} × ${s.options.stepSeconds} s`,
    cell(s.api?.capacity),
    cell(s.http?.capacity),
    cell(s.db?.fullSpeedTps),
    s.fractions.ofHttp === null ? '–' : s.fractions.ofHttp.toFixed(2),
  ]);
  const header = ['date (UTC)', 'commit', 'runs × step', 'capacity req/s', 'HTTP only req/s', 'DB only tps', 'ours / HTTP only'];
  return `<h2>Capacity (npm run capacity)</h2>
<div class="sub">Highest offered rate with p99 ≤ 10 ms, zero errors and valid generator lag; median [min–max] over runs.</div>
${htmlTable([header, ...rows])}`;
}

export function renderIndex(entries: IndexEntry[], capacity: { dir: string; summary: CapacityIndexFields }[] = []): string {
  const hrefOf = (dir: string): string => `${dir.split(path.sep).map(encodeURIComponent).join('/')}/report.html`;
  const when = (s: RunSummary): string => s.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const resultOf = (s: RunSummary): string =>
    s.verdict.pass ? '<span class="ok">PASS</span>' : `<span class="ko" title="${esc(s.verdict.reasons.join('; '))}">${s.verdict.valid ? 'FAIL' : 'INVALID'}</span>`;
  const rows = entries.map(({ dir, summary: s }) => {
    const t = s.total;
    return [
      `<a href="${hrefOf(dir)}">${esc(when(s))}</a>`,
      `<code>${esc(s.git.commit)}</code>${s.git.dirty ? '*' : ''}`,
      toolLabel(s),
      esc(profileLabel(s.profile.name)),
      resultOf(s),
      fmtInt(t.count),
      t.ko ? `<span class="ko">${fmtInt(t.ko)}</span>` : '0',
      s.payout.consistencyFailures ? `<span class="ko">${s.payout.consistencyFailures}</span>` : '0',
      fmtPct(t.under250, t.count),
      fmtMs(t.p50Ms),
      fmtMs(t.p99Ms),
      fmtMs(t.maxMs),
      toolOf(s) === 'k6' ? `dropped ${fmtInt(s.k6?.droppedIterations ?? 0)}` : `${fmtMs(s.lag.p99Ms)} / ${fmtMs(s.lag.maxMs)}`,
      s.lag.generatorCpuSeconds === undefined ? '-' : (s.lag.generatorCpuSeconds / s.durationSeconds).toFixed(2),
      esc(s.audit.status),
    ];
  });
  const header = ['date (UTC)', 'commit', 'tool', 'profile', 'verdict', 'requests', 'KO', 'inconsistencies', `OK &lt; ${LOWER_BOUND_MS} ms`, 'p50 ms', 'p99 ms', 'max ms', 'lag p99 / max ms (Node), dropped arrivals (k6)', 'generator cores', 'audit'];
  const latest = entries[0];
  const latestLine = latest
    ? `<p><b>latest run</b>: <a href="${hrefOf(latest.dir)}">${esc(when(latest.summary))}</a>, ${toolLabel(latest.summary)}, ${esc(profileLabel(latest.summary.profile.name))} profile: ${resultOf(latest.summary)}, ${fmtInt(latest.summary.total.count)} requests, ${fmtInt(latest.summary.total.ko)} KO, p99 ${fmtMs(latest.summary.total.p99Ms)} ms, max ${fmtMs(latest.summary.total.maxMs)} ms</p>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Crébitos load-test reports</title><style>${CSS}</style></head><body>
<h1>Crébitos load-test reports</h1>
${latestLine}
<div class="sub">${entries.length} run(s), newest first, by either generator: the Node harness (npm run loadtest) or k6 (npm run k6). * = uncommitted changes. "OK &lt; 250 ms" is the share of all requests that were OK and under 250 ms (the contest's SLA metric); inconsistencies are the contest's penalised checks; generator cores = the load generator's own CPU over the run.</div>
${entries.length ? htmlTable([header, ...rows]) : '<p>No runs yet: npm run loadtest -- --quick</p>'}
${capacity.length ? capacityIndex(capacity) : ''}
</body></html>
`;
}

export function writeIndex(root: string): string {
  fs.mkdirSync(root, { recursive: true });
  const file = path.join(root, 'index.html');
  fs.writeFileSync(file, renderIndex(findRuns(root), findCapacityRuns(root)));
  return file;
}

/** Writes summary.json and report.html in `dir` (made when missing), then regenerates <root>/index.html. */
export function writeReportIn(dir: string, summary: RunSummary, root: string): { dir: string; report: string; index: string } {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'summary.json'), `${JSON.stringify(summary, null, 1)}\n`);
  const report = path.join(dir, 'report.html');
  fs.writeFileSync(report, renderReport(summary));
  return { dir, report, index: writeIndex(root) };
}

/** A new directory for a run under `root`: <root>/<id>, or <id>-2, -3 … when taken. */
export function newRunDir(root: string, id: string): string {
  let dir = path.join(root, id);
  for (let n = 2; fs.existsSync(dir); n++) dir = path.join(root, `${id}-${n}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes <root>/<id>/summary.json and report.html, then regenerates <root>/index.html. */
export function writeRunReport(summary: RunSummary, root: string): { dir: string; report: string; index: string } {
  return writeReportIn(newRunDir(root, summary.id), summary, root);
}

const REPORT_USAGE = `usage: npm run report -- [--out DIR] [--rerender] [RUN_DIR...]
  (no RUN_DIR)   rebuild DIR/index.html (default reports/) from every run's summary.json
  --rerender     and re-render every run's report.html
  RUN_DIR...     rebuild these runs' summary.json and report.html (a k6 run's from its ${K6_SAMPLES_FILE}, e.g. after
                 k6 run --out json=RUN_DIR/${K6_SAMPLES_FILE} with K6_OUT_DIR=RUN_DIR), then their parent's index (or --out's)`;

/** npm run report: the index, re-rendered reports, or run directories turned into reports. */
async function reportCommand(o: { out?: string; rerender: boolean; runDirs: string[] }): Promise<number> {
  const root = path.resolve(o.out ?? DEFAULT_REPORTS_DIR);
  if (o.runDirs.length === 0) {
    if (o.rerender) {
      for (const { dir, summary } of findRuns(root)) {
        try {
          fs.writeFileSync(path.join(root, dir, 'report.html'), renderReport(summary));
        } catch (err) {
          console.error(`${dir}: cannot re-render (${(err as Error).message}); left as it was`);
        }
      }
    }
    console.log(writeIndex(root));
    return 0;
  }
  let failed = 0;
  for (const given of o.runDirs) {
    const dir = path.resolve(given);
    try {
      const summary = fs.existsSync(path.join(dir, K6_SAMPLES_FILE)) ? await summarizeK6RunDir(dir) : (JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) as RunSummary);
      const written = writeReportIn(dir, summary, o.out === undefined ? path.dirname(dir) : root);
      console.log(`${written.report} (${toolLabel(summary)}, ${summary.verdict.pass ? 'PASS' : `FAIL: ${summary.verdict.reasons.join('; ')}`})`);
      console.log(`index: ${written.index}`);
    } catch (err) {
      failed++;
      console.error(`${given}: ${(err as Error).message}`);
    }
  }
  return failed ? 1 : 0;
}

if (require.main === module) {
  runCli({
    name: 'report',
    usage: REPORT_USAGE,
    parse: (argv) => {
      const parsed = parseToolArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, rerender: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } });
      if (parsed.values.help) throw new UsageError('');
      return { out: parsed.values.out, rerender: parsed.values.rerender ?? false, runDirs: parsed.positionals };
    },
    run: reportCommand,
  });
}
