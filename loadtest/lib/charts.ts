// Small inline-SVG charts for the HTML report: time series (linear or log y), stacked areas
// and a log-x histogram. No library, no script: a few KB of markup per chart.

export interface Series {
  name: string;
  color: string;
  values: (number | null)[];
  dash?: string;
  width?: number;
}

export interface Marker {
  x: number;
  label: string;
}

export interface HLine {
  y: number;
  label: string;
  color: string;
}

export interface TimeChart {
  xs: number[];
  series: Series[];
  yLabel: string;
  yLog?: boolean;
  markers?: Marker[];
  hlines?: HLine[];
  width?: number;
  height?: number;
  /** stack the series as areas (linear y only) */
  stacked?: boolean;
}

const W = 660;
const H = 270;
const M = { l: 58, r: 14, t: 30, b: 38 };
const FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif" font-size="11"';

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const f = (x: number): string => (Math.round(x * 10) / 10).toString();

/** 1, 2, 2.5 or 5 × 10^k just above `x`. */
function niceStep(x: number): number {
  if (!(x > 0)) return 1;
  const k = Math.floor(Math.log10(x));
  const base = 10 ** k;
  for (const m of [1, 2, 2.5, 5, 10]) if (m * base >= x) return m * base;
  return 10 * base;
}

export function linearTicks(max: number, count = 5): { max: number; ticks: number[] } {
  const step = niceStep((max > 0 ? max : 1) / count);
  const top = Math.max(step, Math.ceil((max > 0 ? max : 1) / step - 1e-9) * step);
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { max: top, ticks };
}

export function logRange(values: number[]): { lo: number; hi: number } {
  const positive = values.filter((v) => v > 0);
  if (positive.length === 0) return { lo: 0.1, hi: 10 };
  let lo = 10 ** Math.floor(Math.log10(Math.min(...positive)));
  let hi = 10 ** Math.ceil(Math.log10(Math.max(...positive)) + 1e-9);
  if (hi <= lo) hi = lo * 10;
  if (hi / lo < 100) lo = hi / 100;
  return { lo, hi };
}

function timeTicks(x0: number, x1: number): number[] {
  const span = x1 - x0;
  const step = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300].find((s) => span / s <= 10) ?? 600;
  const ticks: number[] = [];
  for (let v = Math.ceil(x0 / step) * step; v <= x1; v += step) ticks.push(v);
  return ticks;
}

export function fmtTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return `${+(v / 1000).toPrecision(3)}k`;
  if (Math.abs(v) >= 1) return `${+v.toPrecision(3)}`;
  return `${+v.toPrecision(2)}`;
}

/** The series' names across the top; with `width`, those that would run past it are left out. */
function legend(series: { name: string; color: string; dash?: string }[], width = Infinity): string {
  let x = M.l;
  const items: string[] = [];
  for (const s of series) {
    items.push(
      `<line x1="${x}" y1="14" x2="${x + 18}" y2="14" stroke="${s.color}" stroke-width="3"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>` +
        `<text x="${x + 23}" y="18">${esc(s.name)}</text>`,
    );
    x += 32 + s.name.length * 6.4;
    if (x > width - 60) break;
  }
  return items.join('');
}

/** A time-series chart: x in seconds, one polyline (or stacked area) per series. */
export function timeChart(c: TimeChart): string {
  const width = c.width ?? W;
  const height = c.height ?? H;
  const pw = width - M.l - M.r;
  const ph = height - M.t - M.b;
  const x0 = c.xs.length ? Math.min(...c.xs) : 0;
  const x1 = c.xs.length ? Math.max(...c.xs, x0 + 1) : 1;
  const sx = (x: number): number => M.l + ((x - x0) / (x1 - x0)) * pw;

  // Stacked: replace values by cumulative sums.
  const stacks: number[][] = [];
  if (c.stacked) {
    const acc = c.xs.map(() => 0);
    for (const s of c.series) {
      s.values.forEach((v, i) => (acc[i] += v ?? 0));
      stacks.push([...acc]);
    }
  }
  const all = c.stacked ? (stacks[stacks.length - 1] ?? []) : c.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const hl = c.hlines ?? [];
  let sy: (y: number) => number;
  let yTicks: number[];
  let yTickLabel = fmtTick;
  if (c.yLog) {
    const { lo, hi } = logRange([...all, ...hl.map((h) => h.y)]);
    const l0 = Math.log10(lo);
    const l1 = Math.log10(hi);
    sy = (y: number) => M.t + ph - ((Math.log10(Math.max(lo, y)) - l0) / (l1 - l0)) * ph;
    yTicks = [];
    for (let k = Math.round(l0); k <= Math.round(l1); k++) {
      for (const m of l1 - l0 <= 3 ? [1, 2, 5] : [1]) {
        const v = m * 10 ** k;
        if (v >= lo * 0.999 && v <= hi * 1.001) yTicks.push(v);
      }
    }
    yTickLabel = (v) => fmtTick(v);
  } else {
    const { max, ticks } = linearTicks(Math.max(0, ...all, ...hl.map((h) => h.y)));
    sy = (y: number) => M.t + ph - (y / max) * ph;
    yTicks = ticks;
  }

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ${FONT}>`);
  out.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" fill="#fff" stroke="#ced4da"/>`);
  for (const v of yTicks) {
    const y = f(sy(v));
    out.push(`<line x1="${M.l}" y1="${y}" x2="${M.l + pw}" y2="${y}" stroke="#eef0f2"/><text x="${M.l - 5}" y="${f(sy(v) + 4)}" text-anchor="end" fill="#495057">${yTickLabel(v)}</text>`);
  }
  for (const v of timeTicks(x0, x1)) {
    const x = f(sx(v));
    out.push(`<line x1="${x}" y1="${M.t + ph}" x2="${x}" y2="${M.t + ph + 4}" stroke="#868e96"/><text x="${x}" y="${M.t + ph + 16}" text-anchor="middle" fill="#495057">${v}</text>`);
  }
  out.push(`<text x="${M.l + pw / 2}" y="${height - 4}" text-anchor="middle" fill="#495057">seconds since the run started</text>`);
  out.push(`<text transform="translate(13 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#495057">${esc(c.yLabel)}</text>`);
  for (const m of c.markers ?? []) {
    if (m.x < x0 || m.x > x1) continue;
    const x = f(sx(m.x));
    out.push(`<line x1="${x}" y1="${M.t}" x2="${x}" y2="${M.t + ph}" stroke="#495057" stroke-dasharray="3 3"/><text x="${f(sx(m.x) + 3)}" y="${M.t + 11}" fill="#495057">${esc(m.label)}</text>`);
  }
  if (c.stacked) {
    for (let si = c.series.length - 1; si >= 0; si--) {
      const top = stacks[si];
      const bottom = si > 0 ? stacks[si - 1] : c.xs.map(() => 0);
      if (top.every((v, i) => v === bottom[i])) continue;
      // step shape: each second is a flat segment [t, t+1)
      const pts: string[] = [];
      c.xs.forEach((x, i) => pts.push(`${f(sx(x))},${f(sy(top[i]))}`, `${f(sx(x + 1))},${f(sy(top[i]))}`));
      for (let i = c.xs.length - 1; i >= 0; i--) pts.push(`${f(sx(c.xs[i] + 1))},${f(sy(bottom[i]))}`, `${f(sx(c.xs[i]))},${f(sy(bottom[i]))}`);
      out.push(`<polygon points="${pts.join(' ')}" fill="${c.series[si].color}" stroke="none"/>`);
    }
  } else {
    for (const s of c.series) {
      let d = '';
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${f(sx(c.xs[i] + 0.5))},${f(sy(v))}`;
        pen = true;
      });
      if (d) out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.6}" stroke-linejoin="round"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    }
  }
  for (const h of hl) {
    const y = f(sy(h.y));
    out.push(`<line x1="${M.l}" y1="${y}" x2="${M.l + pw}" y2="${y}" stroke="${h.color}" stroke-width="1.5" stroke-dasharray="6 3"/><text x="${M.l + pw - 4}" y="${f(sy(h.y) - 4)}" text-anchor="end" fill="${h.color}">${esc(h.label)}</text>`);
  }
  out.push(legend(c.series, width));
  out.push('</svg>');
  return out.join('');
}

export interface Bar {
  lo: number;
  hi: number;
  segments: { value: number; color: string }[];
}

/** Histogram with a log x axis (bucket bounds) and a log y axis (counts). */
export function logHistogram(bars: Bar[], opts: { xLabel: string; yLabel: string; legend: { name: string; color: string }[]; vlines?: { x: number; label: string; color: string }[] }): string {
  const width = W;
  const height = H;
  const pw = width - M.l - M.r;
  const ph = height - M.t - M.b;
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ${FONT}>`];
  out.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" fill="#fff" stroke="#ced4da"/>`);
  if (bars.length === 0) {
    out.push(`<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`);
    return out.join('');
  }
  const xr = logRange([bars[0].lo, bars[bars.length - 1].hi, ...(opts.vlines ?? []).map((v) => v.x)]);
  const lx0 = Math.log10(xr.lo);
  const lx1 = Math.log10(xr.hi);
  const sx = (x: number): number => M.l + ((Math.log10(x) - lx0) / (lx1 - lx0)) * pw;
  const totals = bars.map((b) => b.segments.reduce((a, s) => a + s.value, 0));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(10, ...totals)) + 1e-9);
  const sy = (y: number): number => M.t + ph - (Math.log10(Math.max(1, y) * 10) / Math.log10(yMax * 10)) * ph; // y=1 sits one decade above the floor
  for (let v = 1; v <= yMax; v *= 10) {
    out.push(`<line x1="${M.l}" y1="${f(sy(v))}" x2="${M.l + pw}" y2="${f(sy(v))}" stroke="#eef0f2"/><text x="${M.l - 5}" y="${f(sy(v) + 4)}" text-anchor="end" fill="#495057">${fmtTick(v)}</text>`);
  }
  for (let k = Math.round(lx0); k <= Math.round(lx1); k++) {
    const v = 10 ** k;
    out.push(`<line x1="${f(sx(v))}" y1="${M.t + ph}" x2="${f(sx(v))}" y2="${M.t + ph + 4}" stroke="#868e96"/><text x="${f(sx(v))}" y="${M.t + ph + 16}" text-anchor="middle" fill="#495057">${fmtTick(v)}</text>`);
  }
  const floor = M.t + ph;
  bars.forEach((b, i) => {
    let acc = 0;
    const x = sx(b.lo) + 0.5;
    const w = Math.max(1, sx(b.hi) - sx(b.lo) - 1);
    for (const s of b.segments) {
      if (s.value <= 0) continue;
      const yTop = sy(acc + s.value);
      const yBottom = acc === 0 ? floor : sy(acc);
      out.push(`<rect x="${f(x)}" y="${f(yTop)}" width="${f(w)}" height="${f(Math.max(0.5, yBottom - yTop))}" fill="${s.color}"><title>${fmtTick(b.lo)}-${fmtTick(b.hi)} ms: ${totals[i]}</title></rect>`);
      acc += s.value;
    }
  });
  for (const v of opts.vlines ?? []) {
    out.push(`<line x1="${f(sx(v.x))}" y1="${M.t}" x2="${f(sx(v.x))}" y2="${M.t + ph}" stroke="${v.color}" stroke-width="1.5" stroke-dasharray="6 3"/><text x="${f(sx(v.x) - 4)}" y="${M.t + 12}" text-anchor="end" fill="${v.color}">${esc(v.label)}</text>`);
  }
  out.push(`<text x="${M.l + pw / 2}" y="${height - 4}" text-anchor="middle" fill="#495057">${esc(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(13 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#495057">${esc(opts.yLabel)}</text>`);
  out.push(legend(opts.legend, width));
  out.push('</svg>');
  return out.join('');
}

// ---------------------------------------------------------------------------------------------
// An x-y chart: offered rate on x, one polyline with dots per series
// ---------------------------------------------------------------------------------------------

export interface XySeries {
  name: string;
  color: string;
  points: [number, number][];
  dash?: string;
  width?: number;
  /** drawn but left out of the legend (e.g. one thin line per run) */
  hideInLegend?: boolean;
}

export interface XyChart {
  series: XySeries[];
  xLabel: string;
  yLabel: string;
  yLog?: boolean;
  hlines?: { y: number; label: string; color: string }[];
}

/** Taller than the time charts: the capacity page shows fewer of them. */
const XY_H = 300;

export function xyChart(c: XyChart): string {
  const pw = W - M.l - M.r;
  const ph = XY_H - M.t - M.b;
  const xs = c.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = c.series.flatMap((s) => s.points.map((p) => p[1]));
  const hl = c.hlines ?? [];
  const xAxis = linearTicks(Math.max(1, ...xs));
  const sx = (x: number): number => M.l + (x / xAxis.max) * pw;
  let sy: (y: number) => number;
  let yTicks: number[];
  if (c.yLog) {
    const { lo, hi } = logRange([...ys, ...hl.map((h) => h.y)]);
    const l0 = Math.log10(lo);
    const l1 = Math.log10(hi);
    sy = (y) => M.t + ph - ((Math.log10(Math.max(lo, y)) - l0) / (l1 - l0)) * ph;
    yTicks = [];
    for (let k = Math.round(l0); k <= Math.round(l1); k++) for (const m of l1 - l0 <= 3 ? [1, 2, 5] : [1]) if (m * 10 ** k >= lo * 0.999 && m * 10 ** k <= hi * 1.001) yTicks.push(m * 10 ** k);
  } else {
    const { max, ticks } = linearTicks(Math.max(0, ...ys, ...hl.map((h) => h.y)));
    sy = (y) => M.t + ph - (y / max) * ph;
    yTicks = ticks;
  }
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${XY_H}" width="${W}" height="${XY_H}" ${FONT}>`];
  out.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" fill="#fff" stroke="#ced4da"/>`);
  for (const v of yTicks) {
    out.push(`<line x1="${M.l}" y1="${f(sy(v))}" x2="${M.l + pw}" y2="${f(sy(v))}" stroke="#eef0f2"/><text x="${M.l - 5}" y="${f(sy(v) + 4)}" text-anchor="end" fill="#495057">${fmtTick(v)}</text>`);
  }
  for (const v of xAxis.ticks) {
    out.push(`<line x1="${f(sx(v))}" y1="${M.t + ph}" x2="${f(sx(v))}" y2="${M.t + ph + 4}" stroke="#868e96"/><text x="${f(sx(v))}" y="${M.t + ph + 16}" text-anchor="middle" fill="#495057">${fmtTick(v)}</text>`);
  }
  out.push(`<text x="${M.l + pw / 2}" y="${XY_H - 4}" text-anchor="middle" fill="#495057">${esc(c.xLabel)}</text>`);
  out.push(`<text transform="translate(13 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#495057">${esc(c.yLabel)}</text>`);
  for (const h of hl) {
    out.push(`<line x1="${M.l}" y1="${f(sy(h.y))}" x2="${M.l + pw}" y2="${f(sy(h.y))}" stroke="${h.color}" stroke-width="1.2" stroke-dasharray="6 3"/><text x="${M.l + pw - 4}" y="${f(sy(h.y) - 4)}" text-anchor="end" fill="${h.color}">${esc(h.label)}</text>`);
  }
  for (const s of c.series) {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (pts.length === 0) continue;
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${f(sx(p[0]))},${f(sy(p[1]))}`).join('');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.8}" stroke-linejoin="round"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    for (const p of pts) out.push(`<circle cx="${f(sx(p[0]))}" cy="${f(sy(p[1]))}" r="${(s.width ?? 1.8) + 0.8}" fill="${s.color}"/>`);
  }
  out.push(legend(c.series.filter((s) => !s.hideInLegend)));
  out.push('</svg>');
  return out.join('');
}
