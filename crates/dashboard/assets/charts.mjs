// Hand-drawn SVG charts: a line chart with a legend and a sparkline, both over a sliding time
// window. Points are [timeMs, value | null]; a null breaks the line (no data for that poll).

const SVG = 'http://www.w3.org/2000/svg';
const W = 300;

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The smallest 1, 2, 2.5 or 5 times a power of ten that is >= v (an axis maximum). */
export function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v * 0.999999) return m * p;
  return 10 * p;
}

/** SVG path data of `points` scaled into w x h; nulls and gaps of > 2.5 polls break it. */
function pathData(points, x, y, maxGap) {
  let d = '';
  let prev = null;
  for (const [t, v] of points) {
    if (v === null || v === undefined || !Number.isFinite(v)) { prev = null; continue; }
    const joined = prev !== null && t - prev <= maxGap;
    d += `${joined ? 'L' : 'M'}${x(t).toFixed(1)} ${y(v).toFixed(1)}`;
    prev = t;
  }
  return d;
}

function areaData(points, x, y, maxGap, height) {
  // Each run of joined points becomes a closed shape down to the axis.
  const runs = [];
  let run = [];
  let prev = null;
  for (const [t, v] of points) {
    if (v === null || v === undefined || !Number.isFinite(v)) { prev = null; continue; }
    if (prev === null || t - prev > maxGap) { if (run.length) runs.push(run); run = []; }
    run.push([x(t), y(v)]);
    prev = t;
  }
  if (run.length) runs.push(run);
  return runs
    .filter((r) => r.length > 1)
    .map((r) => `M${r[0][0].toFixed(1)} ${height}` + r.map(([a, b]) => `L${a.toFixed(1)} ${b.toFixed(1)}`).join('') + `L${r.at(-1)[0].toFixed(1)} ${height}Z`)
    .join('');
}

const latest = (points) => {
  for (let i = points.length - 1; i >= 0; i--) {
    const v = points[i][1];
    if (v !== null && v !== undefined && Number.isFinite(v)) return v;
  }
  return null;
};

/**
 * A chart as a <figure>: title, plot with a nice y-axis maximum, and a legend with each
 * series' latest value. `series`: [{label, color: 0..5 | 'bad', points, dashed?}];
 * `format(v)` writes values; `empty` is shown when no series has a point.
 */
export function lineChart({ title, series, now, windowMs, pollMs, format, empty = 'no data', height = 80 }) {
  const fig = h('figure', 'chart');
  const cap = h('figcaption', '', title);
  fig.append(cap);
  const plot = h('div', 'plot');
  const start = now - windowMs;
  const visible = series.map((s) => s.points.filter(([t]) => t >= start - pollMs));
  const max = niceCeil(Math.max(0, ...visible.flatMap((pts) => pts.map((p) => p[1]).filter(Number.isFinite))));
  const x = (t) => ((t - start) / windowMs) * W;
  const y = (v) => height - (Math.min(v, max) / max) * (height - 2) - 1;
  const box = svg('svg', { viewBox: `0 0 ${W} ${height}`, preserveAspectRatio: 'none', class: 'plot-svg' });
  for (const f of [0.5, 1]) {
    box.append(svg('line', { x1: 0, x2: W, y1: height - f * (height - 2) - 1, y2: height - f * (height - 2) - 1, class: 'grid', 'vector-effect': 'non-scaling-stroke' }));
  }
  box.append(svg('line', { x1: 0, x2: W, y1: height - 0.5, y2: height - 0.5, class: 'axis', 'vector-effect': 'non-scaling-stroke' }));
  const maxGap = pollMs * 2.5;
  let any = false;
  const summary = [];
  series.forEach((s, i) => {
    const pts = visible[i];
    const cls = `c-${s.color ?? i}`;
    if (i === 0 && !s.dashed) {
      const area = areaData(pts, x, y, maxGap, height);
      if (area) box.append(svg('path', { d: area, class: `area ${cls}` }));
    }
    const d = pathData(pts, x, y, maxGap);
    if (d) {
      any = true;
      box.append(svg('path', { d, class: `line ${cls}${s.dashed ? ' dashed' : ''}`, 'vector-effect': 'non-scaling-stroke' }));
    }
    const v = latest(pts);
    summary.push(`${s.label} ${v === null ? 'no data' : format(v)}`);
  });
  box.setAttribute('role', 'img');
  box.setAttribute('aria-label', `${title}, last ${Math.round(windowMs / 1000)} seconds: ${summary.join(', ')}`);
  plot.append(box);
  plot.append(h('span', 'tick tick-max', format(max)));
  plot.append(h('span', 'tick tick-min', format(0)));
  if (!any) plot.append(h('span', 'plot-empty', empty));
  fig.append(plot);
  const legend = h('ul', 'legend');
  series.forEach((s, i) => {
    const li = h('li');
    li.append(h('i', `swatch c-${s.color ?? i}${s.dashed ? ' dashed' : ''}`), `${s.label} `);
    const v = latest(visible[i]);
    li.append(h('b', v === null ? 'muted' : '', v === null ? '—' : format(v)));
    legend.append(li);
  });
  fig.append(legend);
  return fig;
}

/** A small trend line (an <svg> of 96 x 24 CSS pixels) with its latest point marked. */
export function sparkline(points, { now, windowMs, pollMs, color = 0, label, max: fixedMax }) {
  const w = 96;
  const hgt = 24;
  const start = now - windowMs;
  const pts = points.filter(([t]) => t >= start - pollMs);
  const values = pts.map((p) => p[1]).filter(Number.isFinite);
  const max = fixedMax ?? Math.max(1, ...values);
  const x = (t) => Math.max(0, ((t - start) / windowMs) * (w - 4)) + 1;
  const y = (v) => hgt - 2 - (Math.min(v, max) / max) * (hgt - 5);
  const box = svg('svg', { viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, class: 'spark' });
  box.setAttribute('role', 'img');
  box.setAttribute('aria-label', label);
  box.append(svg('line', { x1: 0, x2: w, y1: hgt - 1.5, y2: hgt - 1.5, class: 'axis' }));
  const maxGap = pollMs * 2.5;
  const area = areaData(pts, x, y, maxGap, hgt - 1.5);
  if (area) box.append(svg('path', { d: area, class: `area c-${color}` }));
  const d = pathData(pts, x, y, maxGap);
  if (d) box.append(svg('path', { d, class: `line c-${color}` }));
  const last = pts.length ? pts.at(-1) : null;
  if (last && Number.isFinite(last[1])) {
    box.append(svg('circle', { cx: x(last[0]), cy: y(last[1]), r: 2, class: `dot c-${color}` }));
  }
  return box;
}
