// Issue 5: metrics that describe cache behaviour, health endpoints, request ids in upstream logs.
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { startMirrorOverFake, stopMirrorOverFake, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

/** Parses Prometheus text into "name{labels}" → value. */
async function scrape(mirror: TestMirror): Promise<Map<string, number>> {
  const reply = await get(`${mirror.url}/metrics`);
  assert.equal(reply.status, 200);
  assert.match(String(reply.headers['content-type']), /^text\/plain/);
  const out = new Map<string, number>();
  for (const line of reply.body.toString().split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

function sum(metrics: Map<string, number>, name: string, ...labels: string[]): number {
  let total = 0;
  for (const [key, value] of metrics) {
    if ((key === name || key.startsWith(`${name}{`)) && labels.every((l) => key.includes(l))) total += value;
  }
  return total;
}

describe('metrics', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake({ nodeName: 'node-7' })));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('counts a miss, a coalesced pull and a hit, with the bytes of each', async () => {
    const content = Buffer.alloc(2 * 1024 * 1024, 1);
    content.write('metrics');
    const digest = fake.addBlob(content);
    let release!: () => void;
    fake.setBlobFault(digest, { kind: 'hold', after: 1024, release: new Promise((r) => (release = r)) });
    const before = await scrape(mirror);
    const first = get(`${mirror.url}/v2/library/m/blobs/${digest}`);
    await waitFor(() => fake.count({ host: 'cdn' }) === 1);
    const during = await scrape(mirror);
    assert.equal(sum(during, 'longshore_downloads_in_flight'), 1);
    const second = get(`${mirror.url}/v2/library/m/blobs/${digest}`);
    await waitFor(async () => sum(await scrape(mirror), 'longshore_download_followers') === 2);
    release();
    for (const reply of await Promise.all([first, second])) assert.equal(sha256(reply.body), digest);
    const hex = digest.slice(7);
    await waitFor(async () => (await get(`${mirror.url}/v2/library/m/blobs/${digest}`, {}, 'HEAD')).status === 200 && mirror.longshore.catalog.content(`sha256:${hex}`) !== undefined);
    const hit = await get(`${mirror.url}/v2/library/m/blobs/${digest}`);
    assert.equal(sha256(hit.body), digest);

    const after = await scrape(mirror);
    const delta = (name: string, ...labels: string[]) => sum(after, name, ...labels) - sum(before, name, ...labels);
    assert.equal(delta('longshore_http_requests_total', 'route="blob"', 'method="GET"', 'cache="miss"'), 1);
    assert.equal(delta('longshore_http_requests_total', 'route="blob"', 'method="GET"', 'cache="coalesced"'), 1);
    assert.equal(delta('longshore_http_requests_total', 'route="blob"', 'method="GET"', 'cache="hit"'), 1);
    assert.equal(delta('longshore_served_bytes_total', 'cache="miss"'), content.length);
    assert.equal(delta('longshore_served_bytes_total', 'cache="coalesced"'), content.length);
    assert.equal(delta('longshore_served_bytes_total', 'cache="hit"'), content.length);
    assert.equal(delta('longshore_upstream_bytes_total', 'upstream="docker.io"'), content.length, 'the upstream was read once');
    assert.equal(delta('longshore_blob_downloads_total', 'result="committed"'), 1);
    assert.equal(sum(after, 'longshore_downloads_in_flight'), 0);
    assert.ok(sum(after, 'longshore_cache_size_bytes') >= content.length);
    assert.ok(sum(after, 'longshore_cache_objects') >= 1);
    assert.ok(delta('longshore_upstream_requests_total', 'kind="blob"', 'status="307"') >= 1);
    assert.ok(sum(after, 'process_cpu_seconds_total') > 0, 'default process metrics are exported');
  });

  it('exports the upstream rate limit and circuit state', async () => {
    publishImage(fake, 'library/rl', '1');
    await get(`${mirror.url}/v2/library/rl/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    const m = await scrape(mirror);
    // Every series carries the node's name (nodeName), for a Prometheus that scrapes a whole fleet.
    assert.equal(m.get('longshore_upstream_ratelimit_remaining{upstream="docker.io",node="node-7"}'), fake.rateLimitRemaining);
    assert.equal(m.get('longshore_upstream_ratelimit_limit{upstream="docker.io",node="node-7"}'), 100);
    assert.equal(m.get('longshore_upstream_circuit_open{upstream="docker.io",node="node-7"}'), 0);
    assert.ok(sum(m, 'longshore_upstream_requests_total', 'kind="token"') >= 1);
  });

  it('propagates the request id into upstream request logs', async () => {
    publishImage(fake, 'library/rid', '1');
    await get(`${mirror.url}/v2/library/rid/manifests/1`, { accept: ALL_MANIFEST_TYPES, 'x-request-id': 'trace-42' });
    const upstreamLines = mirror.logs().filter((l) => l.msg === 'upstream request' && l.requestId === 'trace-42');
    assert.ok(upstreamLines.length >= 1);
    assert.equal(upstreamLines.every((l) => l.component === 'upstream'), true);
  });
});

describe('health', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake()));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('answers /healthz and /readyz', async () => {
    const health = await get(`${mirror.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(health.json(), { status: 'ok' });
    const ready = await get(`${mirror.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json(), { status: 'ready', checks: { database: 'ok', dataDir: 'ok' } });
  });

  it('reports not ready when the data directory is gone, and ready again when it is back', async () => {
    const tmp = join(mirror.dataDir, 'tmp');
    await rename(tmp, `${tmp}.away`);
    try {
      const ready = await get(`${mirror.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(ready.json<{ status: string }>().status, 'not ready');
      assert.match(ready.json<{ checks: { dataDir: string } }>().checks.dataDir, /not writable: ENOENT/);
    } finally {
      await rename(`${tmp}.away`, tmp);
    }
    assert.equal((await get(`${mirror.url}/readyz`)).status, 200);
  });
});
