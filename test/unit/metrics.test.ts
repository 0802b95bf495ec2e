// In a fleet one Prometheus scrapes every node: each series must say which node it came from.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readTotals } from '../../src/admin/totals.js';
import { Counter, Histogram, Registry } from 'prom-client';
import { Metrics } from '../../src/observability/metrics.js';

const probes = {
  cache: () => ({ bytes: 10, objects: 1 }),
  downloads: () => ({ inFlight: 0, followers: 0 }),
  upstreams: () => [{ name: 'docker.io', rateLimitRemaining: 90, rateLimitLimit: 100, circuitOpen: false }],
};

describe('metrics node label', () => {
  it('puts node="<name>" on every sample, counters, histograms, state gauges and process metrics alike', async () => {
    const metrics = new Metrics(probes, 'longshore-1');
    metrics.requests.note('blob', 'GET', 200, 'hit', 0.01, 512);
    metrics.upstreamBytes.inc({ upstream: 'docker.io' }, 5);
    const samples = (await metrics.registry.metrics()).split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    assert.ok(samples.length > 20);
    const unlabelled = samples.filter((line) => !/[{,]node="longshore-1"[,}]/.test(line));
    assert.deepEqual(unlabelled, []);
    for (const name of ['longshore_http_requests_total{', 'longshore_http_request_duration_seconds_bucket{', 'longshore_cache_size_bytes{', 'process_cpu_seconds_total{']) {
      assert.ok(samples.some((line) => line.startsWith(name)), `${name} is exported`);
    }
    // The admin API's totals read the same counters, whatever labels they carry.
    assert.equal((await readTotals(metrics)).hits, 1);
  });

  it('adds no node label when no name is given', async () => {
    const text = await new Metrics(probes).registry.metrics();
    assert.ok(!text.includes('node="'));
  });
});

/** Samples of a text exposition, each as "name{labels sorted} value", sorted (label order is free). */
function samples(text: string): string[] {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).map((line) => {
    const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(line)!;
    const labels = (m[2] ?? '').split(/,(?=[a-z_]+=")/).filter(Boolean).sort().join(',');
    return `${m[1]}{${labels}} ${m[3]}`;
  }).sort();
}

describe('request metrics', () => {
  // The tally replaces three prom-client updates per request; what a scrape shows must not change.
  it('exports exactly what prom-client\'s own counters and histogram export for the same requests', async () => {
    const requests: Array<[string, string, number, string, number, number]> = [
      ['manifest', 'GET', 200, 'hit', 0.0004, 1200],
      ['manifest', 'GET', 200, 'hit', 0.0005, 1200], // on a bound: counted in le="0.0005"
      ['manifest', 'HEAD', 200, 'hit', 0.002, 0],
      ['manifest', 'GET', 404, 'none', 0.03, 0],
      ['blob', 'GET', 200, 'miss', 12.5, 10_485_760],
      ['blob', 'GET', 200, 'miss', 75, 3], // beyond the largest bound: +Inf only
      ['blob', 'GET', 206, 'hit', 0.2, 4096],
      ['other', 'DELETE', 202, 'none', 0.001, 0],
    ];
    const metrics = new Metrics(probes, 'n1');
    for (const r of requests) metrics.requests.note(...r);

    const registry = new Registry();
    registry.setDefaultLabels({ node: 'n1' });
    const counter = new Counter({ name: 'longshore_http_requests_total', help: 'h', labelNames: ['route', 'method', 'status', 'cache'], registers: [registry] });
    const histogram = new Histogram({ name: 'longshore_http_request_duration_seconds', help: 'h', labelNames: ['route', 'cache'], buckets: [...metrics.requests.bounds], registers: [registry] });
    const served = new Counter({ name: 'longshore_served_bytes_total', help: 'h', labelNames: ['cache'], registers: [registry] });
    for (const [route, method, status, cache, seconds, bytes] of requests) {
      counter.inc({ route, method, status: String(status), cache });
      histogram.observe({ route, cache }, seconds);
      if (bytes > 0) served.inc({ cache }, bytes);
    }

    const ours = samples(await metrics.registry.metrics()).filter((line) => /^longshore_(http_|served_)/.test(line));
    const reference = samples(await registry.metrics());
    assert.ok(reference.length > 40);
    assert.deepEqual(ours, reference);
    // Scraping twice shows the same (cumulative) numbers.
    assert.deepEqual(samples(await metrics.registry.metrics()).filter((line) => /^longshore_(http_|served_)/.test(line)), reference);
    // And the JSON form (the dashboard's totals read it) agrees.
    assert.equal((await readTotals(metrics)).hits, 4);
  });
});

describe('log lines dropped', () => {
  it('exports what the log destination counted, and 0 without a count', async () => {
    let dropped = 7;
    const metrics = new Metrics({ ...probes, droppedLogLines: () => dropped });
    assert.match(await metrics.registry.metrics(), /^longshore_log_lines_dropped_total 7$/m);
    dropped = 9;
    assert.match(await metrics.registry.metrics(), /^longshore_log_lines_dropped_total 9$/m);
    assert.match(await new Metrics(probes).registry.metrics(), /^longshore_log_lines_dropped_total 0$/m);
  });
});
