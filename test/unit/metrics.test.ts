// In a fleet one Prometheus scrapes every node: each series must say which node it came from.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readTotals } from '../../src/admin/totals.js';
import { Metrics } from '../../src/observability/metrics.js';

const probes = {
  cache: () => ({ bytes: 10, objects: 1 }),
  downloads: () => ({ inFlight: 0, followers: 0 }),
  upstreams: () => [{ name: 'docker.io', rateLimitRemaining: 90, rateLimitLimit: 100, circuitOpen: false }],
};

describe('metrics node label', () => {
  it('puts node="<name>" on every sample, counters, histograms, state gauges and process metrics alike', async () => {
    const metrics = new Metrics(probes, 'longshore-1');
    metrics.httpRequests.inc({ route: 'blob', method: 'GET', status: '200', cache: 'hit' });
    metrics.httpDuration.observe({ route: 'blob', cache: 'hit' }, 0.01);
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
