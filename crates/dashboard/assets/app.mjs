// The dashboard: polls the REST API and /metrics, keeps a few minutes of scrapes, and renders
// tables and charts. Every string from the API goes into the page as text, never as markup.

import * as prom from './prom.mjs';
import { lineChart, sparkline } from './charts.mjs';

const POLL_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;
/** Charts span the time the page has been open, at least this much, at most WINDOW_MS. */
const MIN_SPAN_MS = 20 * 1000;
/** Rates and percentiles in the tables are over this much of the recent past. */
const RATE_WINDOW_MS = 10 * 1000;
const MAX_PANELS = 12;
const MAX_EVENTS = 50;

const SERVING = '/apis/serving.knative.dev/v1';
const EVENTING = '/apis/eventing.knative.dev/v1';
const SOURCES = {
  services: `${SERVING}/services`,
  revisions: `${SERVING}/revisions`,
  routes: `${SERVING}/routes`,
  brokers: `${EVENTING}/brokers`,
  triggers: `${EVENTING}/triggers`,
  events: '/api/v1/events',
  namespaces: '/api/v1/namespaces',
};

const state = {
  lists: Object.fromEntries(Object.keys(SOURCES).map((k) => [k, []])),
  errors: {},
  metricsError: null,
  /** [{t, summary, points}] oldest first, covering WINDOW_MS. */
  scrapes: [],
  /** "ns/revision" -> [[t, actual, desired]] */
  replicas: new Map(),
  namespace: '',
  paused: false,
  timer: null,
  started: null,
};

// ---- small DOM helpers ------------------------------------------------------------------

const $ = (sel) => document.querySelector(sel);

function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-') || k === 'title' || k === 'colspan' || k === 'role' || k.startsWith('aria-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** A cell with a `data-field` (what tests and people look for) holding `content`. */
const td = (field, content, cls) =>
  h('td', { 'data-field': field, class: cls }, typeof content === 'string' || typeof content === 'number' ? String(content) : content);

const emptyText = (source, what, hint = '') =>
  state.errors[source] ? `Cannot list ${what}: ${state.errors[source]}` : `No ${what} yet.${hint}`;

const swatch = (name) => h('i', { class: `swatch c-${colorOf(name)}` });

const muted = (text) => h('span', { class: 'muted', text });

/** Only http(s) URLs become links; anything else is shown as text. */
function link(url) {
  if (!url) return muted('—');
  return /^https?:\/\//i.test(url) ? h('a', { href: url, text: url, rel: 'noreferrer' }) : document.createTextNode(url);
}

/**
 * Makes `tbody` show one row per item, in order, reusing rows by key and replacing only the
 * cells whose markup changed (so focus and selection survive a poll).
 */
function syncRows(tbody, items, keyOf, cellsOf, empty) {
  const old = new Map([...tbody.rows].filter((r) => r.dataset.key).map((r) => [r.dataset.key, r]));
  const rows = [];
  for (const item of items) {
    const key = keyOf(item);
    let tr = old.get(key);
    old.delete(key);
    const cells = cellsOf(item);
    if (!tr) {
      tr = h('tr', { 'data-key': key }, cells);
    } else {
      cells.forEach((c, i) => {
        const cur = tr.cells[i];
        if (!cur) tr.append(c);
        else if (cur.outerHTML !== c.outerHTML) cur.replaceWith(c);
      });
      while (tr.cells.length > cells.length) tr.lastElementChild.remove();
    }
    rows.push(tr);
  }
  if (rows.length === 0) {
    const cur = tbody.rows[0];
    if (cur && !cur.dataset.key && cur.textContent === empty) return;
    rows.push(h('tr', { class: 'empty' }, h('td', { colspan: tbody.parentElement.tHead.rows[0].cells.length, text: empty })));
  }
  // Moving rows would take focus away from a link in them: only when the order changed.
  const same = rows.length === tbody.rows.length && rows.every((r, i) => tbody.rows[i] === r);
  if (!same) tbody.replaceChildren(...rows);
}

// ---- formatting -------------------------------------------------------------------------

function fmtRate(v) {
  if (!Number.isFinite(v)) return '—';
  if (v === 0) return '0';
  if (v < 0.1) return v.toFixed(2);
  if (v < 10) return v.toFixed(1);
  return Math.round(v).toLocaleString('en');
}

const fmtCount = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en') : '—');

function fmtPct(v) {
  if (!Number.isFinite(v)) return '—';
  if (v === 0) return '0%';
  return v < 1 ? `${v.toFixed(2)}%` : `${v.toFixed(1)}%`;
}

function fmtMs(v) {
  if (!Number.isFinite(v)) return '—';
  if (v === 0) return '0';
  if (v >= 10000) return `${Math.round(v / 1000)} s`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)} s`;
  if (v >= 10) return `${Math.round(v)} ms`;
  if (v >= 1) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

/** kubectl's age: 45s, 3m12s, 5h4m, 6d. */
function age(ts, now = Date.now()) {
  const t = Date.parse(ts);
  if (Number.isNaN(t)) return '—';
  let s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  s %= 60;
  if (m < 10) return `${m}m${s}s`;
  if (m < 180) return `${m}m`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h${m % 60 ? `${m % 60}m` : ''}`;
  return `${Math.floor(hrs / 24)}d`;
}

// ---- Kubernetes objects -----------------------------------------------------------------

const nsOf = (o) => o?.metadata?.namespace || '';
const nameOf = (o) => o?.metadata?.name || '';
const keyOf = (o) => `${nsOf(o)}/${nameOf(o)}`;
const inNamespace = (o) => !state.namespace || nsOf(o) === state.namespace;
const svcOf = (o) => o?.metadata?.labels?.['serving.knative.dev/service'] || '';
const byKey = (a, b) => keyOf(a).localeCompare(keyOf(b));

function condition(obj, type = 'Ready') {
  return (obj?.status?.conditions || []).find((c) => c.type === type) || null;
}

/** A readiness badge: Ready, Not ready (with the reason) or Unknown. */
function readiness(obj) {
  const c = condition(obj);
  let cls = 'unknown';
  let text = 'Unknown';
  if (c?.status === 'True') { cls = 'ok'; text = 'Ready'; }
  else if (c?.status === 'False') { cls = 'bad'; text = 'Not ready'; }
  else if (c) { cls = 'pending'; text = 'Pending'; }
  const title = c ? [c.reason, c.message].filter(Boolean).join(': ') : 'no Ready condition yet';
  const cell = h('span', { class: 'ready' }, h('span', { class: `badge ${cls}`, text, title: title || undefined }));
  if (c && c.status !== 'True' && c.reason) cell.append(h('span', { class: 'reason', text: c.reason, title: c.message || undefined }));
  return cell;
}

const isReady = (o) => condition(o)?.status === 'True';

/**
 * A revision's color slot (0..5), the same everywhere: consecutive revisions of a
 * configuration (`hello-00001`, `hello-00002`) get different colors.
 */
function colorOf(name) {
  const [, base, n] = /^(.*?)(?:-(\d+))?$/.exec(name);
  let x = 0;
  for (const ch of base) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return (x + Number(n || 0)) % 6;
}

/** The traffic targets of a Service: its Route's status (the authority), else its own. */
function trafficOf(svc) {
  const route = state.lists.routes.find((r) => keyOf(r) === keyOf(svc));
  const fromRoute = route?.status?.traffic;
  return (fromRoute && fromRoute.length ? fromRoute : svc?.status?.traffic) || [];
}

/** Percent of its Service's traffic a revision gets. */
function revisionTraffic(rev) {
  const svc = state.lists.services.find((s) => nsOf(s) === nsOf(rev) && nameOf(s) === svcOf(rev));
  const route = svc ? null : state.lists.routes.find((r) => nsOf(r) === nsOf(rev) && nameOf(r) === rev.metadata?.labels?.['serving.knative.dev/route']);
  const targets = svc ? trafficOf(svc) : route?.status?.traffic || [];
  const pct = targets.filter((t) => t.revisionName === nameOf(rev)).reduce((a, t) => a + (t.percent || 0), 0);
  return targets.length ? pct : null;
}

function trafficBar(svc) {
  const targets = trafficOf(svc).filter((t) => (t.percent || 0) > 0 || t.tag);
  if (!targets.length) return muted('—');
  const label = targets.map((t) => `${t.revisionName || 'latest'} ${t.percent || 0}%${t.tag ? ` (tag ${t.tag})` : ''}`).join(', ');
  const bar = h('div', { class: 'split', role: 'img', 'aria-label': `Traffic: ${label}` });
  for (const t of targets) {
    if (!(t.percent > 0)) continue;
    const seg = h('span', { class: `seg c-${colorOf(t.revisionName || '')}`, title: `${t.revisionName} ${t.percent}%` });
    seg.style.width = `${t.percent}%`;
    bar.append(seg);
  }
  const legend = h('ul', { class: 'split-legend' });
  for (const t of targets) {
    legend.append(h('li', {},
      swatch(t.revisionName || ''),
      `${t.revisionName || 'latest'} `,
      h('b', { text: `${t.percent || 0}%` }),
      t.tag ? h('span', { class: 'tag', text: t.tag, title: t.url || undefined }) : null));
  }
  return h('div', { class: 'traffic' }, bar, legend);
}

// ---- metrics over time ------------------------------------------------------------------

function sumRevisions(list) {
  const out = { requests: 0, errors: 0, buckets: new Map() };
  for (const r of list) {
    if (!r) continue;
    out.requests += r.requests;
    out.errors += r.errors;
    for (const [le, v] of r.buckets) out.buckets.set(le, (out.buckets.get(le) || 0) + v);
  }
  return out;
}

/** Rate, error share and percentiles between two summaries of requests, `seconds` apart. */
function windowStats(now, before, seconds) {
  if (!now || !before) return null;
  const dReq = prom.counterDelta(now.requests, before.requests);
  const dErr = prom.counterDelta(now.errors, before.errors);
  const buckets = prom.bucketDelta(now.buckets, before.buckets);
  return {
    rps: seconds > 0 ? dReq / seconds : null,
    errorPct: dReq > 0 ? (100 * dErr) / dReq : null,
    p50: prom.quantile(0.5, buckets),
    p95: prom.quantile(0.95, buckets),
    p99: prom.quantile(0.99, buckets),
  };
}

const EMPTY_REV = { requests: 0, errors: 0, buckets: new Map() };

/** Per-object points between the newest scrape and the one before, kept on the scrape. */
function pointsBetween(prev, cur) {
  const dt = (cur.t - prev.t) / 1000;
  const revisions = new Map();
  for (const [k, r] of cur.summary.revisions) {
    revisions.set(k, windowStats(r, prev.summary.revisions.get(k) || EMPTY_REV, dt));
  }
  const events = new Map();
  for (const kind of ['brokers', 'triggers']) {
    for (const [k, o] of cur.summary[kind]) {
      const p = prev.summary[kind].get(k);
      events.set(`${kind}:${k}`, prom.rate(o.events, p ? p.events : 0, dt));
    }
  }
  return { revisions, events };
}

/** The scrape closest to `ms` before the newest (at least one poll back), or null. */
function scrapeBefore(ms) {
  const n = state.scrapes.length;
  if (n < 2) return null;
  const newest = state.scrapes[n - 1];
  let pick = state.scrapes[n - 2];
  for (let i = n - 2; i >= 0; i--) {
    if (newest.t - state.scrapes[i].t > ms) break;
    pick = state.scrapes[i];
  }
  return pick;
}

/** Table figures of a set of revision keys over RATE_WINDOW_MS, plus their totals. */
function recentStats(keys) {
  const newest = state.scrapes.at(-1);
  if (!newest) return null;
  const now = sumRevisions(keys.map((k) => newest.summary.revisions.get(k)));
  const old = scrapeBefore(RATE_WINDOW_MS);
  const stats = old
    ? windowStats(now, sumRevisions(keys.map((k) => old.summary.revisions.get(k))), (newest.t - old.t) / 1000)
    : { rps: null, errorPct: null, p50: null, p95: null, p99: null };
  return { ...stats, total: now.requests };
}

const metricsKnown = () => !state.metricsError && state.scrapes.length > 0 && state.scrapes.at(-1).summary.seen.requests;

function metricCell(field, value, fmt, known = metricsKnown()) {
  if (!known) return td(field, muted('no data'), 'num');
  // An error share worth a look stands out.
  const alarm = fmt === fmtPct && value >= 5 ? ' alarm' : '';
  return td(field, fmt(value), `num${alarm}`);
}

function series(key, pick) {
  return state.scrapes.filter((s) => s.points).map((s) => [s.t, pick(s.points.revisions.get(key))]);
}

// ---- rendering --------------------------------------------------------------------------

function revisionsOf(svc) {
  return state.lists.revisions.filter((r) => nsOf(r) === nsOf(svc) && svcOf(r) === nameOf(svc));
}

function renderServices() {
  const services = state.lists.services.filter(inNamespace).sort(byKey);
  syncRows($('#services-table tbody'), services, keyOf, (svc) => {
    const stats = recentStats(revisionsOf(svc).map(keyOf));
    const latest = svc.status?.latestReadyRevisionName;
    return [
      td('name', h('strong', { text: nameOf(svc) })),
      td('namespace', nsOf(svc)),
      td('url', link(svc.status?.url)),
      td('ready', readiness(svc)),
      td('latest', latest ? h('span', { class: 'rev' }, swatch(latest), latest) : muted('—')),
      td('traffic', trafficBar(svc)),
      metricCell('rps', stats?.rps, fmtRate),
      metricCell('errors', stats?.errorPct, fmtPct),
      td('age', age(svc.metadata?.creationTimestamp), 'num'),
    ];
  }, emptyText('services', 'Services', ' Create one with “wisp service create” or “kubectl apply”.'));
}

function replicaNow(rev) {
  const m = state.scrapes.at(-1)?.summary.revisions.get(keyOf(rev));
  const actual = m?.actual ?? rev.status?.actualReplicas ?? null;
  const desired = m?.desired ?? rev.status?.desiredReplicas ?? null;
  return { actual, desired };
}

function sortedRevisions() {
  return state.lists.revisions.filter(inNamespace).sort((a, b) => {
    return nsOf(a).localeCompare(nsOf(b)) || svcOf(a).localeCompare(svcOf(b)) || nameOf(b).localeCompare(nameOf(a));
  });
}

function renderRevisions(view) {
  const latency = metricsKnown() && state.scrapes.at(-1).summary.seen.latency;
  syncRows($('#revisions-table tbody'), sortedRevisions(), keyOf, (rev) => {
    const k = keyOf(rev);
    const stats = recentStats([k]);
    const { actual, desired } = replicaNow(rev);
    const hist = state.replicas.get(k) || [];
    const pct = revisionTraffic(rev);
    const svc = svcOf(rev);
    const replicas = actual === null ? muted('—') : `${actual}${desired !== null && desired !== actual ? ` → ${desired}` : ''}`;
    return [
      td('name', h('span', { class: 'rev' }, swatch(nameOf(rev)), h('strong', { text: nameOf(rev) }))),
      td('service', svc ? `${svc}` : muted('—')),
      td('ready', readiness(rev)),
      td('traffic', pct === null ? muted('—') : `${pct}%`, 'num'),
      td('replicas', replicas, 'num'),
      td('replica-history', sparkline(hist, {
        ...view, color: colorOf(nameOf(rev)),
        label: `Replicas of ${nameOf(rev)} over time, now ${actual ?? 'unknown'}`,
      })),
      metricCell('rps', stats?.rps, fmtRate),
      metricCell('requests', stats?.total, fmtCount),
      metricCell('errors', stats?.errorPct, fmtPct),
      metricCell('p50', stats?.p50, fmtMs, latency),
      metricCell('p95', stats?.p95, fmtMs, latency),
      metricCell('p99', stats?.p99, fmtMs, latency),
      td('age', age(rev.metadata?.creationTimestamp), 'num'),
    ];
  }, emptyText('revisions', 'Revisions'));
}

function renderTraffic(view) {
  const grid = $('#traffic-grid');
  const newest = state.scrapes.at(-1);
  // Revisions that take traffic or have ever been asked something, busiest first.
  const candidates = sortedRevisions()
    .map((rev, i) => ({ rev, i, k: keyOf(rev), stats: recentStats([keyOf(rev)]), pct: revisionTraffic(rev) }))
    .filter(({ k, pct }) => (pct || 0) > 0 || (newest?.summary.revisions.get(k)?.requests || 0) > 0)
    .sort((a, b) => (b.stats?.rps || 0) - (a.stats?.rps || 0))
    .slice(0, MAX_PANELS)
    .sort((a, b) => a.i - b.i);
  const note = state.metricsError
    ? `No metrics: ${state.metricsError}. Replicas come from the Revisions' status.`
    : newest && !newest.summary.seen.requests
      ? 'No request metrics at /metrics yet: the charts show "no data" until there are.'
      : `Rates between two polls, over the last ${view.windowMs < 90000 ? `${Math.round(view.windowMs / 1000)} s` : `${Math.round(view.windowMs / 60000)} min`}.`;
  $('#traffic-note').textContent = note;
  const empty = state.metricsError || !newest?.summary.seen.requests ? 'no data' : 'no requests yet';
  const panels = candidates.map(({ rev, k, pct }) => {
    const svc = svcOf(rev);
    const hist = state.replicas.get(k) || [];
    return h('article', { class: 'rev-panel', 'data-key': k, 'aria-label': `Revision ${nameOf(rev)}` },
      h('header', {},
        h('h3', {}, swatch(nameOf(rev)), nameOf(rev)),
        h('p', { class: 'muted', text: [svc && `service ${svc}`, nsOf(rev), pct !== null && `${pct}% of traffic`].filter(Boolean).join(' · ') })),
      h('div', { class: 'charts' },
        lineChart({ ...view, title: 'Requests/s', format: fmtRate, empty, series: [
          { label: 'all', color: 0, points: series(k, (p) => p?.rps ?? null) },
          { label: '5xx', color: 'bad', points: series(k, (p) => (p && p.errorPct !== null ? (p.rps * p.errorPct) / 100 : p ? 0 : null)) },
        ] }),
        lineChart({ ...view, title: 'Error rate (5xx)', format: fmtPct, empty, series: [
          { label: '5xx', color: 'bad', points: series(k, (p) => p?.errorPct ?? null) },
        ] }),
        lineChart({ ...view, title: 'Latency', format: fmtMs, empty, series: [
          { label: 'p50', color: 2, points: series(k, (p) => p?.p50 ?? null) },
          { label: 'p95', color: 1, points: series(k, (p) => p?.p95 ?? null) },
          { label: 'p99', color: 3, points: series(k, (p) => p?.p99 ?? null) },
        ] }),
        lineChart({ ...view, title: 'Replicas', format: fmtCount, empty: 'no data', series: [
          { label: 'actual', color: 0, points: hist },
          { label: 'desired', color: 4, dashed: true, points: hist.map(([t, , d]) => [t, d]) },
        ] })));
  });
  if (!panels.length) {
    panels.push(h('p', { class: 'empty-note', text: 'No revision takes traffic yet.' }));
  }
  grid.replaceChildren(...panels);
}

function eventSeries(id) {
  return state.scrapes.filter((s) => s.points).map((s) => [s.t, s.points.events.get(id) ?? null]);
}

function eventRate(kind, k) {
  const newest = state.scrapes.at(-1);
  const old = scrapeBefore(RATE_WINDOW_MS);
  if (!newest || !old) return null;
  const a = newest.summary[kind].get(k);
  const b = old.summary[kind].get(k);
  return prom.rate(a ? a.events : 0, b ? b.events : 0, (newest.t - old.t) / 1000);
}

const eventsKnown = () => !state.metricsError && state.scrapes.length > 0 && state.scrapes.at(-1).summary.seen.events;

function renderEventing(view) {
  const summary = state.scrapes.at(-1)?.summary;
  const brokers = state.lists.brokers.filter(inNamespace).sort(byKey);
  syncRows($('#brokers-table tbody'), brokers, keyOf, (b) => {
    const m = summary?.brokers.get(keyOf(b));
    const known = eventsKnown();
    return [
      td('name', h('strong', { text: nameOf(b) })),
      td('namespace', nsOf(b)),
      td('url', link(b.status?.address?.url)),
      td('ready', readiness(b)),
      metricCell('rate', eventRate('brokers', keyOf(b)), fmtRate, known),
      td('history', sparkline(eventSeries(`brokers:${keyOf(b)}`), { ...view, color: 2, label: `Events per second into ${nameOf(b)}` })),
      metricCell('events', m?.events ?? 0, fmtCount, known),
      metricCell('refused', m?.failures ?? 0, fmtCount, known),
      metricCell('dead-letters', m?.deadLetters ?? 0, fmtCount, known),
      td('age', age(b.metadata?.creationTimestamp), 'num'),
    ];
  }, emptyText('brokers', 'Brokers'));

  const triggers = state.lists.triggers.filter(inNamespace).sort(byKey);
  syncRows($('#triggers-table tbody'), triggers, keyOf, (t) => {
    const m = summary?.triggers.get(keyOf(t));
    const known = eventsKnown();
    const attrs = Object.entries(t.spec?.filter?.attributes || {}).map(([k, v]) => `${k}=${v}`);
    const dialects = (t.spec?.filters || []).map((f) => Object.keys(f)[0]).filter(Boolean);
    const filter = [...attrs, ...dialects.map((d) => `${d}…`)].join(', ');
    const dead = m?.deadLetters ?? 0;
    return [
      td('name', h('strong', { text: nameOf(t) })),
      td('broker', t.spec?.broker || '—'),
      td('filter', filter ? h('code', { text: filter, title: JSON.stringify(t.spec?.filters || t.spec?.filter || {}) }) : muted('all events')),
      td('subscriber', h('div', { class: 'stack' }, link(t.status?.subscriberUri),
        t.status?.deadLetterSinkUri ? h('small', { class: 'muted' }, 'dead letters → ', link(t.status.deadLetterSinkUri)) : null)),
      td('ready', readiness(t)),
      metricCell('rate', eventRate('triggers', keyOf(t)), fmtRate, known),
      td('history', sparkline(eventSeries(`triggers:${keyOf(t)}`), { ...view, color: 4, label: `Deliveries per second of ${nameOf(t)}` })),
      metricCell('failed', m?.failures ?? 0, fmtCount, known),
      known ? td('dead-letters', dead > 0 ? h('span', { class: 'badge bad', text: fmtCount(dead) }) : '0', 'num') : td('dead-letters', muted('no data'), 'num'),
    ];
  }, emptyText('triggers', 'Triggers'));

  $('#eventing-note').textContent = state.metricsError
    ? `No event metrics: ${state.metricsError}.`
    : summary && !summary.seen.events ? 'No event metrics at /metrics yet.' : 'Rates over the last 10 s.';
}

function eventTime(e) {
  return e.lastTimestamp || e.eventTime || e.series?.lastObservedTime || e.firstTimestamp || e.metadata?.creationTimestamp || '';
}

function renderEvents(now) {
  const events = state.lists.events
    .filter(inNamespace)
    .map((e) => ({ e, t: Date.parse(eventTime(e)) || 0 }))
    .sort((a, b) => b.t - a.t)
    .slice(0, MAX_EVENTS)
    .map(({ e }) => e);
  syncRows($('#events-table tbody'), events, (e) => e.metadata?.uid || keyOf(e), (e) => {
    const obj = e.involvedObject || e.regarding || {};
    const type = e.type || 'Normal';
    return [
      td('last-seen', h('span', { text: age(eventTime(e), now), title: eventTime(e) }), 'num'),
      td('type', h('span', { class: `badge ${type === 'Warning' ? 'bad' : 'neutral'}`, text: type })),
      td('reason', e.reason || '—'),
      td('object', `${(obj.kind || '').toLowerCase()}/${obj.name || ''}`),
      td('message', e.message || e.note || ''),
      td('count', String(e.count || e.series?.count || 1), 'num'),
    ];
  }, emptyText('events', 'Events'));
}

function renderSummary() {
  const services = state.lists.services.filter(inNamespace);
  const revisions = state.lists.revisions.filter(inNamespace);
  const ready = (list) => [`${list.filter(isReady).length} / ${list.length} `, h('small', { text: 'ready' })];
  $('#sum-services').replaceChildren(...ready(services));
  $('#sum-revisions').replaceChildren(...ready(revisions));
  $('#sum-replicas').textContent = fmtCount(revisions.reduce((a, r) => a + (replicaNow(r).actual || 0), 0));
  const newest = state.scrapes.at(-1);
  const keys = newest ? [...newest.summary.revisions.keys()].filter((k) => !state.namespace || k.startsWith(`${state.namespace}/`)) : [];
  const stats = metricsKnown() ? recentStats(keys) : null;
  $('#sum-rps').textContent = stats ? fmtRate(stats.rps) : 'no data';
  $('#sum-errors').textContent = stats ? fmtPct(stats.errorPct) : 'no data';
  $('#sum-p95').textContent = stats ? fmtMs(stats.p95) : 'no data';
  const known = eventsKnown();
  let rate = 0;
  let dead = 0;
  for (const [k, b] of newest?.summary.brokers || []) {
    if (state.namespace && !k.startsWith(`${state.namespace}/`)) continue;
    rate += eventRate('brokers', k) || 0;
    dead += b.deadLetters;
  }
  $('#sum-events').textContent = known ? fmtRate(rate) : 'no data';
  $('#sum-dead').textContent = known ? fmtCount(dead) : 'no data';
  $('#sum-dead').classList.toggle('alert', dead > 0);
}

function renderNamespaces() {
  const select = $('#namespace');
  const names = new Set(['default', ...state.lists.namespaces.map(nameOf)]);
  for (const list of Object.values(state.lists)) for (const o of list) if (nsOf(o)) names.add(nsOf(o));
  const want = ['', ...[...names].sort()];
  const have = [...select.options].map((o) => o.value);
  if (want.join('\n') === have.join('\n')) return;
  select.replaceChildren(...want.map((n) => h('option', { value: n, text: n || 'All namespaces', selected: n === state.namespace })));
}

function renderStatus() {
  const status = $('#status');
  const failures = Object.entries(state.errors).filter(([, v]) => v);
  let cls = 'live';
  let text = `Live · updated ${new Date().toLocaleTimeString('en-GB')}`;
  if (state.paused) { cls = 'paused'; text = 'Paused'; }
  else if (failures.length === Object.keys(SOURCES).length) { cls = 'down'; text = `API unreachable: ${failures[0][1]}; retrying`; }
  else if (failures.length) { cls = 'warn'; text = `Partly loaded (${failures.map(([k]) => k).join(', ')} failed) · ${new Date().toLocaleTimeString('en-GB')}`; }
  status.className = `status ${cls}`;
  $('#status-text').textContent = text;
}

function render() {
  const now = Date.now();
  const view = { now, pollMs: POLL_MS, windowMs: Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - (state.started ?? now))) };
  renderNamespaces();
  renderStatus();
  renderSummary();
  renderServices();
  renderRevisions(view);
  renderTraffic(view);
  renderEventing(view);
  renderEvents(now);
}

// ---- polling ----------------------------------------------------------------------------

async function fetchText(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    const r = await fetch(path, { headers: { Accept: path === '/metrics' ? 'text/plain' : 'application/json' }, signal: ctl.signal, cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return await r.text();
  } catch (e) {
    throw new Error(e.name === 'AbortError' ? 'timed out' : e.message || String(e));
  } finally {
    clearTimeout(timer);
  }
}

async function poll() {
  const names = Object.keys(SOURCES);
  const results = await Promise.allSettled([...names.map((n) => fetchText(SOURCES[n]).then(JSON.parse)), fetchText('/metrics')]);
  const t = Date.now();
  state.started ??= t;
  names.forEach((n, i) => {
    const r = results[i];
    if (r.status === 'fulfilled') {
      state.lists[n] = Array.isArray(r.value?.items) ? r.value.items : [];
      state.errors[n] = null;
    } else {
      state.errors[n] = r.reason.message;
    }
  });
  const metrics = results.at(-1);
  if (metrics.status === 'fulfilled') {
    state.metricsError = null;
    const scrape = { t, summary: prom.summarize(prom.parse(metrics.value)), points: null };
    const prev = state.scrapes.at(-1);
    if (prev) scrape.points = pointsBetween(prev, scrape);
    state.scrapes.push(scrape);
  } else {
    state.metricsError = `/metrics answered ${metrics.reason.message}`;
  }
  while (state.scrapes.length && t - state.scrapes[0].t > WINDOW_MS + 2 * POLL_MS) state.scrapes.shift();
  // Replicas over time: the autoscaler's gauges when served, else the Revision's status.
  const live = new Set();
  for (const rev of state.lists.revisions) {
    const k = keyOf(rev);
    live.add(k);
    const { actual, desired } = replicaNow(rev);
    const hist = state.replicas.get(k) || [];
    hist.push([t, actual, desired]);
    while (hist.length && t - hist[0][0] > WINDOW_MS + 2 * POLL_MS) hist.shift();
    state.replicas.set(k, hist);
  }
  for (const k of [...state.replicas.keys()]) if (!live.has(k)) state.replicas.delete(k);
}

async function loop() {
  state.timer = null;
  if (state.paused) return;
  try {
    await poll();
  } finally {
    render();
    if (!state.paused) state.timer = setTimeout(loop, POLL_MS);
  }
}

$('#namespace').addEventListener('change', (e) => {
  state.namespace = e.target.value;
  render();
});

$('#pause').addEventListener('click', (e) => {
  state.paused = !state.paused;
  e.target.setAttribute('aria-pressed', String(state.paused));
  e.target.textContent = state.paused ? 'Resume' : 'Pause';
  if (state.paused) {
    clearTimeout(state.timer);
    state.timer = null;
    renderStatus();
  } else {
    loop();
  }
});

loop();
