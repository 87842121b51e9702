// Prometheus text for the dashboard: a tolerant parser, per-object summaries of wisp's
// Knative-named metrics, and rates and percentiles from the difference of two polls.
// Pure functions, no DOM: tests/dashboard/unit.test.mjs runs them under node.

/** Parses Prometheus text exposition into [{name, labels, value}]; bad lines are skipped. */
export function parse(text) {
  const out = [];
  for (const raw of String(text).split('\n')) {
    const line = raw.trim();
    if (line === '' || line[0] === '#') continue;
    const sample = parseLine(line);
    if (sample) out.push(sample);
  }
  return out;
}

function parseLine(line) {
  let i = 0;
  while (i < line.length && /[A-Za-z0-9_:]/.test(line[i])) i++;
  const name = line.slice(0, i);
  if (!name) return null;
  const labels = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') { i++; break; }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return null;
      const key = line.slice(i, eq).trim();
      let value = '';
      let j = eq + 2;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) {
          j++;
          value += line[j] === 'n' ? '\n' : line[j];
        } else {
          value += line[j];
        }
      }
      if (j >= line.length) return null;
      labels[key] = value;
      i = j + 1;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const value = parseValue(rest[0]);
  if (value === null) return null;
  return { name, labels, value };
}

function parseValue(s) {
  if (s === undefined || s === '') return null;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  return Number.isNaN(v) ? null : v;
}

/**
 * Whether sample name `name` is metric `base`: exactly, with the `_total` suffix some clients
 * add to counters, or behind a prefix (`wisp_revision_request_count`).
 */
export function isMetric(name, base) {
  const n = name.endsWith('_total') ? name.slice(0, -6) : name;
  return n === base || n.endsWith('_' + base);
}

const key = (ns, name) => `${ns || ''}/${name}`;

/** A histogram's buckets, summed over every other label: Map(le -> cumulative count). */
function addBucket(buckets, le, value) {
  const bound = le === '+Inf' ? Infinity : Number(le);
  if (Number.isNaN(bound)) return;
  buckets.set(bound, (buckets.get(bound) || 0) + value);
}

function revision(map, labels) {
  const k = key(labels.namespace_name, labels.revision_name);
  let r = map.get(k);
  if (!r) {
    r = {
      service: labels.service_name || '', requests: 0, errors: 0, buckets: new Map(),
      latencyCount: 0, latencySum: 0, desired: null, actual: null, panic: null,
      hasRequests: false, hasLatency: false,
    };
    map.set(k, r);
  }
  if (!r.service && labels.service_name) r.service = labels.service_name;
  return r;
}

function eventObject(map, k) {
  let o = map.get(k);
  if (!o) {
    o = { events: 0, failures: 0, deadLetters: 0, broker: '' };
    map.set(k, o);
  }
  return o;
}

const failed = (labels) =>
  /^[45]/.test(labels.response_code_class || labels.response_code || '');

/**
 * What the page shows of one scrape, by object:
 * `revisions`: Map("ns/revision" -> {requests, errors (5xx), buckets, latencyCount,
 *   latencySum, desired, actual, panic, service}),
 * `brokers` and `triggers`: Map("ns/name" -> {events, failures, deadLetters}),
 * and `seen`: which families were present at all (a missing one shows "no data").
 */
export function summarize(samples) {
  const revisions = new Map();
  const brokers = new Map();
  const triggers = new Map();
  const seen = { requests: false, latency: false, autoscaler: false, events: false };
  for (const { name, labels, value } of samples) {
    if (!Number.isFinite(value)) continue;
    const base = name.endsWith('_total') ? name.slice(0, -6) : name;
    if (labels.revision_name !== undefined) {
      if (isMetric(name, 'revision_request_count')) {
        const r = revision(revisions, labels);
        r.requests += value;
        r.hasRequests = seen.requests = true;
        const code = labels.response_code_class || labels.response_code || '';
        if (code[0] === '5') r.errors += value;
      } else if (isMetric(name, 'revision_request_latencies_bucket')) {
        const r = revision(revisions, labels);
        addBucket(r.buckets, labels.le, value);
        r.hasLatency = seen.latency = true;
      } else if (isMetric(name, 'revision_request_latencies_count')) {
        revision(revisions, labels).latencyCount += value;
      } else if (isMetric(name, 'revision_request_latencies_sum')) {
        revision(revisions, labels).latencySum += value;
      } else if (isMetric(name, 'autoscaler_desired_pods')) {
        const r = revision(revisions, labels);
        r.desired = (r.desired || 0) + value;
        seen.autoscaler = true;
      } else if (isMetric(name, 'autoscaler_actual_pods')) {
        const r = revision(revisions, labels);
        r.actual = (r.actual || 0) + value;
        seen.autoscaler = true;
      } else if (isMetric(name, 'autoscaler_panic_mode')) {
        revision(revisions, labels).panic = value > 0;
      }
      continue;
    }
    const ns = labels.namespace_name || labels.namespace || '';
    const deadLetter = /dead_?letter/i.test(base);
    if (!deadLetter && !/event_count$/.test(base)) continue;
    seen.events = true;
    if (labels.trigger_name) {
      const t = eventObject(triggers, key(ns, labels.trigger_name));
      t.broker = labels.broker_name || t.broker;
      if (deadLetter) t.deadLetters += value;
      else {
        t.events += value;
        if (failed(labels)) t.failures += value;
      }
    }
    if (labels.broker_name) {
      const b = eventObject(brokers, key(ns, labels.broker_name));
      if (deadLetter) b.deadLetters += value;
      else if (!labels.trigger_name) {
        // Broker ingress: events accepted (or refused) by the broker itself.
        b.events += value;
        if (failed(labels)) b.failures += value;
      }
    }
  }
  return { revisions, brokers, triggers, seen };
}

/** How much a counter grew; a counter that went down was reset (a restart) and grew from 0. */
export function counterDelta(now, before) {
  if (before === undefined || before === null) return null;
  return now >= before ? now - before : now;
}

/** Per-second rate of a counter between two polls `seconds` apart, or null. */
export function rate(now, before, seconds) {
  const d = counterDelta(now, before);
  return d === null || !(seconds > 0) ? null : d / seconds;
}

/** The buckets that filled between two polls: Map(le -> cumulative count). */
export function bucketDelta(now, before) {
  const out = new Map();
  for (const [le, v] of now) {
    const b = before ? before.get(le) : undefined;
    out.set(le, b === undefined ? v : counterDelta(v, b));
  }
  return out;
}

/**
 * The q-quantile (0..1) of a histogram given as Map(le -> cumulative count), interpolated
 * linearly inside its bucket as Prometheus' histogram_quantile does; null without
 * observations. A quantile in the +Inf bucket is the highest finite bound.
 */
export function quantile(q, buckets) {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  if (bounds.length === 0) return null;
  // Cumulative counts must not decrease; a scrape taken mid-update may, so smooth it.
  const counts = [];
  for (const le of bounds) counts.push(Math.max(buckets.get(le), counts.at(-1) || 0));
  const total = counts.at(-1);
  if (!(total > 0)) return null;
  const rank = q * total;
  let i = counts.findIndex((c) => c >= rank);
  if (i < 0) i = counts.length - 1;
  if (bounds[i] === Infinity) {
    const finite = bounds.filter(Number.isFinite);
    return finite.length ? finite.at(-1) : null;
  }
  if (i === 0 && bounds[0] <= 0) return bounds[0];
  const lower = i === 0 ? 0 : bounds[i - 1];
  const below = i === 0 ? 0 : counts[i - 1];
  const inBucket = counts[i] - below;
  if (inBucket <= 0) return bounds[i];
  return lower + (bounds[i] - lower) * ((rank - below) / inBucket);
}
