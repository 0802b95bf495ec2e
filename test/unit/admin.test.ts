import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CounterHistory } from '../../src/admin/history.js';
import { RecentPulls, type PullRecord } from '../../src/admin/recent-pulls.js';
import { readTotals, type CounterSample } from '../../src/admin/totals.js';
import { Metrics } from '../../src/observability/metrics.js';

function pull(n: number): PullRecord {
  return { at: n, method: 'GET', upstream: 'docker.io', repository: `library/r${n}`, reference: 'latest', digest: null, cache: 'hit', status: 200, bytes: n };
}

function sample(n: number): CounterSample {
  return { time: n, hits: n, misses: 0, bytesServedFromCache: 0, bytesServedFromUpstream: 0, bytesFromUpstream: 0 };
}

describe('recent pulls', () => {
  it('keeps the newest entries up to its capacity, newest first', () => {
    const recent = new RecentPulls(3);
    assert.deepEqual(recent.list(), []);
    for (let n = 1; n <= 5; n++) recent.record(pull(n));
    assert.deepEqual(recent.list().map((p) => p.bytes), [5, 4, 3]);
    assert.deepEqual(recent.list(2).map((p) => p.bytes), [5, 4]);
    recent.record(pull(6));
    assert.deepEqual(recent.list().map((p) => p.bytes), [6, 5, 4]);
    // The time is recorded as a number and read as ISO 8601.
    assert.equal(recent.list(1)[0]!.time, new Date(6).toISOString());
    assert.ok(!('at' in recent.list(1)[0]!));
  });
});

describe('counter history', () => {
  it('keeps the last `capacity` samples, oldest first', async () => {
    let n = 0;
    const history = new CounterHistory(async () => sample(++n), 10_000, 4);
    for (let i = 0; i < 6; i++) await history.sample();
    assert.deepEqual(history.points().map((p) => p.hits), [3, 4, 5, 6]);
  });

  it('samples once at start and stops its timer', async () => {
    let reads = 0;
    const history = new CounterHistory(async () => sample(++reads), 60_000, 10);
    history.start();
    history.stop();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(history.points().length, 1);
  });
});

describe('totals', () => {
  it('sums requests and bytes by where the content came from', async () => {
    const metrics = new Metrics({ cache: () => ({ bytes: 0, objects: 0 }), downloads: () => ({ inFlight: 0, followers: 0 }), upstreams: () => [] });
    assert.equal((await readTotals(metrics)).hitRatio, null);
    const request = (cache: string, n = 1, bytes = 0) => {
      for (let i = 0; i < n; i++) metrics.requests.note('blob', 'GET', 200, cache, 0.01, i === 0 ? bytes : 0);
    };
    request('hit', 5, 700);
    request('revalidated');
    request('stale');
    request('miss', 2, 300);
    request('coalesced');
    request('none', 100, 5000);
    metrics.upstreamBytes.inc({ upstream: 'docker.io' }, 250);
    metrics.upstreamBytes.inc({ upstream: 'ghcr.io' }, 50);
    const totals = await readTotals(metrics, () => 42);
    assert.equal(totals.time, 42);
    assert.equal(totals.hits, 7);
    assert.equal(totals.misses, 3);
    assert.equal(totals.hitRatio, 0.7);
    assert.equal(totals.requests.hit, 5);
    assert.equal(totals.bytesServedFromCache, 700);
    assert.equal(totals.bytesServedFromUpstream, 300);
    assert.equal(totals.byteHitRatio, 0.7);
    assert.equal(totals.bytesFromUpstream, 300);
  });
});
