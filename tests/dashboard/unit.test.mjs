// The dashboard's pure functions (Prometheus parsing, summaries, rates, percentiles) under
// node's test runner: `node --test tests/dashboard/unit.test.mjs` (tests/tests/dashboard.rs runs it).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as prom from '../../crates/dashboard/assets/prom.mjs';
import { niceCeil } from '../../crates/dashboard/assets/charts.mjs';

const SCRAPE = `
# HELP revision_request_count The number of requests that are routed to queue-proxy
# TYPE revision_request_count counter
revision_request_count_total{namespace_name="default",service_name="hello",configuration_name="hello",revision_name="hello-00001",response_code="200",response_code_class="2xx"} 90
revision_request_count_total{namespace_name="default",service_name="hello",configuration_name="hello",revision_name="hello-00001",response_code="503",response_code_class="5xx"} 10
revision_request_count{namespace_name="prod",service_name="x",configuration_name="x",revision_name="x-00001",response_code="404",response_code_class="4xx"} 3 1700000000000
# TYPE revision_request_latencies histogram
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00001",response_code_class="2xx",le="5"} 50
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00001",response_code_class="2xx",le="10"} 80
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00001",response_code_class="2xx",le="+Inf"} 90
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00001",response_code_class="5xx",le="5"} 10
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00001",response_code_class="5xx",le="10"} 10
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00001",response_code_class="5xx",le="+Inf"} 10
revision_request_latencies_sum{namespace_name="default",revision_name="hello-00001",response_code_class="2xx"} 600
revision_request_latencies_count{namespace_name="default",revision_name="hello-00001",response_code_class="2xx"} 90
autoscaler_desired_pods{namespace_name="default",configuration_name="hello",revision_name="hello-00001"} 3
autoscaler_actual_pods{namespace_name="default",configuration_name="hello",revision_name="hello-00001"} 2
autoscaler_panic_mode{namespace_name="default",configuration_name="hello",revision_name="hello-00001"} 0
event_count_total{namespace_name="default",broker_name="default",event_type="order",response_code="202",response_code_class="2xx"} 7
event_count_total{namespace_name="default",broker_name="default",event_type="order",response_code="400",response_code_class="4xx"} 1
event_count_total{namespace_name="default",broker_name="default",trigger_name="t1",response_code="200",response_code_class="2xx"} 5
event_count_total{namespace_name="default",broker_name="default",trigger_name="t1",response_code="503",response_code_class="5xx"} 4
event_dead_letter_count_total{namespace_name="default",broker_name="default",trigger_name="t1"} 2
garbage line without value
weird{a="unterminated} 1
escaped{msg="a \\"quoted\\" \\\\ word\\n"} 1.5e3
`;

test('parses samples, labels with escapes, special values, and skips garbage', () => {
  const samples = prom.parse(SCRAPE);
  const escaped = samples.find((s) => s.name === 'escaped');
  assert.deepEqual(escaped.labels, { msg: 'a "quoted" \\ word\n' });
  assert.equal(escaped.value, 1500);
  assert.ok(!samples.some((s) => s.name === 'garbage' || s.name === 'weird'));
  const inf = prom.parse('x_bucket{le="+Inf"} +Inf\ny NaN\nz -Inf');
  assert.equal(inf[0].value, Infinity);
  assert.ok(Number.isNaN(inf[1].value));
  assert.equal(inf[2].value, -Infinity);
  assert.deepEqual(prom.parse(''), []);
});

test('metric names match with a _total suffix or a prefix, not by accident', () => {
  assert.ok(prom.isMetric('revision_request_count', 'revision_request_count'));
  assert.ok(prom.isMetric('revision_request_count_total', 'revision_request_count'));
  assert.ok(prom.isMetric('wisp_revision_request_count_total', 'revision_request_count'));
  assert.ok(!prom.isMetric('revision_request_latencies_count', 'revision_request_count'));
  assert.ok(!prom.isMetric('xrevision_request_count', 'revision_request_count'));
});

test('summarizes per revision, broker and trigger', () => {
  const s = prom.summarize(prom.parse(SCRAPE));
  assert.deepEqual(s.seen, { requests: true, latency: true, autoscaler: true, events: true });
  const r = s.revisions.get('default/hello-00001');
  assert.equal(r.requests, 100);
  assert.equal(r.errors, 10);
  assert.equal(r.service, 'hello');
  assert.deepEqual([...r.buckets], [[5, 60], [10, 90], [Infinity, 100]]);
  assert.equal(r.desired, 3);
  assert.equal(r.actual, 2);
  assert.equal(r.panic, false);
  assert.equal(s.revisions.get('prod/x-00001').errors, 0, '4xx is not an error');
  assert.deepEqual(s.brokers.get('default/default'), { events: 8, failures: 1, deadLetters: 2, broker: '' });
  assert.deepEqual(s.triggers.get('default/t1'), { events: 9, failures: 4, deadLetters: 2, broker: 'default' });
});

test('a scrape without the families says so instead of failing', () => {
  const s = prom.summarize(prom.parse('process_cpu_seconds_total 1\n'));
  assert.deepEqual(s.seen, { requests: false, latency: false, autoscaler: false, events: false });
  assert.equal(s.revisions.size, 0);
  assert.equal(prom.summarize([]).brokers.size, 0);
});

test('rates are counter deltas per second; a reset counts from zero', () => {
  assert.equal(prom.rate(30, 10, 2), 10);
  assert.equal(prom.rate(4, 10, 2), 2, 'reset: the new value is the increase');
  assert.equal(prom.rate(5, undefined, 2), null);
  assert.equal(prom.rate(5, 1, 0), null);
  assert.equal(prom.counterDelta(7, 7), 0);
});

test('quantiles interpolate inside the bucket as histogram_quantile does', () => {
  const b = new Map([[5, 60], [10, 90], [Infinity, 100]]);
  assert.equal(prom.quantile(0.5, b), 5 * (50 / 60));
  assert.equal(prom.quantile(0.75, b), 5 + 5 * ((75 - 60) / 30));
  assert.equal(prom.quantile(0.95, b), 10, 'in +Inf: the highest finite bound');
  assert.equal(prom.quantile(0.5, new Map()), null);
  assert.equal(prom.quantile(0.5, new Map([[5, 0], [Infinity, 0]])), null);
  // Out of order keys and a non-monotonic scrape are tolerated.
  const messy = new Map([[Infinity, 10], [1, 10], [0.5, 12]]);
  assert.equal(prom.quantile(0.5, messy), 0.5 * (6 / 12));
});

test('bucket deltas between two scrapes give the recent distribution', () => {
  const before = new Map([[5, 60], [10, 90], [Infinity, 100]]);
  const now = new Map([[5, 60], [10, 100], [Infinity, 120]]);
  const d = prom.bucketDelta(now, before);
  assert.deepEqual([...d], [[5, 0], [10, 10], [Infinity, 20]]);
  assert.equal(prom.quantile(0.5, d), 10, 'half of the new requests were over 10 ms');
  assert.deepEqual([...prom.bucketDelta(now, undefined)], [...now]);
});

test('axis maxima are round numbers', () => {
  assert.equal(niceCeil(0), 1);
  assert.equal(niceCeil(0.7), 1);
  assert.equal(niceCeil(3), 5);
  assert.equal(niceCeil(13), 20);
  assert.equal(niceCeil(20), 20);
  assert.equal(niceCeil(230), 250);
});
