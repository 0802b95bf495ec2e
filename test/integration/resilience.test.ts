// Issue 3: each byte fetched once, tags without burning rate limits, offline serving, resumption,
// fast failure. Upstream call counts are asserted, never wall-clock times.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, errorCode, get, raw } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, startMirrorOverFake, stopMirrorOverFake, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

function patterned(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('resuming a broken upstream stream', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => ({ upstreams: { 'docker.io': { url: fake.registryUrl, resumeAttempts: 2 } } }))));
  after(() => stopMirrorOverFake({ fake, mirror }));
  beforeEach(() => {
    fake.reset();
    fake.rangeSupport = true;
  });

  it('resumes with a Range request at the break and every client gets the right bytes', async () => {
    const content = patterned(5 * 1024 * 1024, 1);
    const digest = fake.addBlob(content);
    const cut = Math.floor(content.length * 0.6);
    fake.setBlobFault(digest, { kind: 'truncate', after: cut, times: 1 });
    const replies = await Promise.all([1, 2, 3].map(() => get(`${mirror.url}/v2/library/x/blobs/${digest}`)));
    for (const reply of replies) {
      assert.equal(reply.status, 200);
      assert.equal(sha256(reply.body), digest);
    }
    const ranged = fake.requests.filter((r) => r.host === 'cdn' && r.headers.range);
    assert.equal(ranged.length, 1);
    const offset = Number(/^bytes=(\d+)-$/.exec(String(ranged[0]!.headers.range))![1]);
    assert.ok(offset > 0 && offset <= cut, `resumed at ${offset}, cut at ${cut}`);
    assert.equal(fake.count({ host: 'cdn' }), 2, 'one GET and one resume, shared by all clients');
    assert.ok(mirror.logs().some((l) => l.msg === 'resuming blob download'));
    fake.reset();
    const warm = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(sha256(warm.body), digest);
    assert.equal(fake.requests.length, 0, 'the resumed blob was cached');
  });

  it('resumes from an upstream that ignores Range by skipping what it already has', async () => {
    fake.rangeSupport = false;
    const content = patterned(3 * 1024 * 1024, 2);
    const digest = fake.addBlob(content);
    fake.setBlobFault(digest, { kind: 'truncate', after: 1024 * 1024, times: 1 });
    const reply = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(reply.status, 200);
    assert.equal(sha256(reply.body), digest);
    assert.equal(fake.count({ host: 'cdn' }), 2);
  });

  it('gives up after the configured attempts: the client sees a broken transfer and nothing is cached', async () => {
    fake.rangeSupport = false; // every attempt starts over and breaks at the same place
    const content = patterned(2 * 1024 * 1024, 3);
    const digest = fake.addBlob(content);
    fake.setBlobFault(digest, { kind: 'truncate', after: 512 * 1024 });
    const reply = await raw(mirror.url, `/v2/library/x/blobs/${digest}`);
    assert.ok(reply.error || reply.body.length < content.length);
    assert.equal(fake.count({ host: 'cdn' }), 3, 'the first GET and two resumes');
    await waitFor(async () => (await readdir(join(mirror.dataDir, 'tmp'))).length === 0, { what: 'temp file removed', timeoutMs: 30_000 });
    fake.setBlobFault(digest, undefined);
    const next = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(sha256(next.body), digest, 'the next request starts afresh');
  });
});

describe('coalescing tag resolution and retries', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => ({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h', retries: 2 } } }))));
  after(() => stopMirrorOverFake({ fake, mirror }));
  beforeEach(() => fake.reset());

  it('shares one upstream manifest lookup among concurrent requests for a tag', async () => {
    const image = publishImage(fake, 'library/node', '20');
    const replies = await Promise.all(Array.from({ length: 20 }, () => get(`${mirror.url}/v2/library/node/manifests/20`, { accept: ALL_MANIFEST_TYPES })));
    for (const reply of replies) assert.equal(reply.headers['docker-content-digest'], image.index);
    assert.equal(fake.count({ host: 'registry', method: 'HEAD', status: 200, path: '/v2/library/node/manifests/20' }), 1);
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: /^\/v2\/library\/node\/manifests\// }), 1);
    const outcomes = mirror.logs().filter((l) => l.msg === 'request' && l.path === '/v2/library/node/manifests/20').map((l) => l.cache);
    assert.equal(outcomes.filter((o) => o === 'miss').length, 1);
    assert.ok(outcomes.includes('coalesced'));
  });

  it('retries an idempotent request that failed with 503 before any byte reached the client', async () => {
    const image = publishImage(fake, 'library/retry', '1');
    await get(`${mirror.url}/v2/library/retry/manifests/1`, { accept: ALL_MANIFEST_TYPES }); // warms the token
    fake.reset();
    fake.forceStatus = 503;
    fake.forceCount = 1;
    const reply = await get(`${mirror.url}/v2/library/retry/manifests/${image.platforms['linux/amd64']}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 200);
    assert.equal(fake.count({ host: 'registry', status: 503 }), 1);
    assert.equal(fake.count({ host: 'registry', status: 200 }), 1);
  });
});

describe('offline mode', () => {
  let fake: FakeRegistry;
  let image: PublishedImage;
  let dataDir: string;
  let offline: TestMirror;

  before(async () => {
    fake = await FakeRegistry.start();
    image = publishImage(fake, 'library/alpine', '3.19');
    const online = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    await get(`${online.url}/v2/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES });
    await get(`${online.url}/v2/alpine/manifests/${image.platforms['linux/amd64']}`, { accept: ALL_MANIFEST_TYPES });
    for (const digest of image.blobs.keys()) await get(`${online.url}/v2/alpine/blobs/${digest}`);
    dataDir = online.dataDir;
    await waitFor(async () => (await readdir(join(dataDir, 'tmp'))).length === 0);
    await online.close({ keepData: true });
    offline = await startMirror({ offline: true, upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: 0 } } }, dataDir);
    fake.reset();
    fake.connections = 0;
  });
  after(async () => {
    await offline.close();
    await fake.close();
  });

  it('serves cached tags, manifests and blobs without ever connecting to the upstream', async () => {
    const tag = await get(`${offline.url}/v2/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(tag.status, 200);
    assert.equal(tag.headers['docker-content-digest'], image.index);
    const head = await get(`${offline.url}/v2/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES }, 'HEAD');
    assert.equal(head.status, 200);
    for (const [digest, content] of image.blobs) {
      const blob = await get(`${offline.url}/v2/alpine/blobs/${digest}`);
      assert.deepEqual(blob.body, content);
    }
    assert.equal(fake.connections, 0);
  });

  it('answers what is not cached with MANIFEST_UNKNOWN / BLOB_UNKNOWN saying the mirror is offline', async () => {
    const tag = await get(`${offline.url}/v2/alpine/manifests/edge`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(tag.status, 404);
    assert.equal(errorCode(tag), 'MANIFEST_UNKNOWN');
    assert.match(tag.json<{ errors: Array<{ message: string }> }>().errors[0]!.message, /offline/);
    const arm = await get(`${offline.url}/v2/alpine/manifests/${image.platforms['linux/arm64']}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(errorCode(arm), 'MANIFEST_UNKNOWN');
    const blob = await get(`${offline.url}/v2/alpine/blobs/sha256:${'e'.repeat(64)}`);
    assert.equal(blob.status, 404);
    assert.equal(errorCode(blob), 'BLOB_UNKNOWN');
    const headBlob = await get(`${offline.url}/v2/alpine/blobs/sha256:${'e'.repeat(64)}`, {}, 'HEAD');
    assert.equal(headBlob.status, 404);
    assert.equal(fake.connections, 0);
  });
});

describe('fast failure: circuit breaker', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let image: PublishedImage;

  before(async () => {
    fake = await FakeRegistry.start();
    image = publishImage(fake, 'library/busybox', '1');
    mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: 0, retries: 0, timeouts: { headers: '300ms' }, breaker: { failures: 2, cooldown: '400ms' } } },
    });
    const warm = await get(`${mirror.url}/v2/library/busybox/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(warm.status, 200);
  });
  after(async () => {
    fake.blackhole = false;
    await mirror.close();
    await fake.close();
  });

  it('opens after consecutive failures, serves cached tags stale without asking the blackholed upstream, then probes', async () => {
    const breaker = mirror.longshore.upstreams.get('docker.io')!.client.breaker;
    fake.blackhole = true;
    for (let i = 0; i < 2; i++) {
      const stale = await get(`${mirror.url}/v2/library/busybox/manifests/1`, { accept: ALL_MANIFEST_TYPES });
      assert.equal(stale.status, 200, 'served stale while the upstream does not answer');
      assert.equal(stale.headers['docker-content-digest'], image.index);
    }
    assert.equal(breaker.state, 'open');
    const connections = fake.connections;
    const requests = fake.requests.length;
    const fast = await get(`${mirror.url}/v2/library/busybox/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(fast.status, 200);
    assert.equal(fake.connections, connections, 'an open circuit sends nothing');
    assert.equal(fake.requests.length, requests);
    const cold = await get(`${mirror.url}/v2/library/busybox/manifests/never-cached`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(cold.status, 502);
    assert.match(cold.json<{ errors: Array<{ message: string }> }>().errors[0]!.message, /circuit open/);
    // after the cool-down one probe goes through; the upstream is back, so the circuit closes
    fake.blackhole = false;
    await new Promise((r) => setTimeout(r, 450));
    const probe = await get(`${mirror.url}/v2/library/busybox/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(probe.status, 200);
    assert.equal(breaker.state, 'closed');
  });
});

describe('clients that are slow or leave', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake()));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('does not let a client that reads nothing hold back the download others wait for', async () => {
    const content = patterned(24 * 1024 * 1024, 4);
    const digest = fake.addBlob(content);
    const { request } = await import('undici');
    // this client never reads its body: its socket buffers fill and stay full
    const stalled = await request(`${mirror.url}/v2/library/x/blobs/${digest}`);
    const reply = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(sha256(reply.body), digest);
    const hex = digest.slice(7);
    await waitFor(async () => (await readdir(join(mirror.dataDir, 'blobs', 'sha256', hex.slice(0, 2))).catch((): string[] => [])).includes(hex), { what: 'committed', timeoutMs: 30_000 });
    assert.equal(fake.count({ host: 'cdn' }), 1);
    stalled.body.destroy();
  });

  it('finishes a download into the cache when the client that started it disconnects', async () => {
    const content = patterned(8 * 1024 * 1024, 5);
    const digest = fake.addBlob(content);
    let release!: () => void;
    fake.setBlobFault(digest, { kind: 'hold', after: 1024 * 1024, release: new Promise((r) => (release = r)) });
    fake.reset();
    const controller = new AbortController();
    const { request } = await import('undici');
    const started = await request(`${mirror.url}/v2/library/x/blobs/${digest}`, { signal: controller.signal });
    assert.equal(started.statusCode, 200);
    controller.abort();
    await started.body.text().catch(() => undefined);
    release();
    const hex = digest.slice(7);
    await waitFor(async () => (await readdir(join(mirror.dataDir, 'blobs', 'sha256', hex.slice(0, 2))).catch((): string[] => [])).includes(hex), { what: 'committed', timeoutMs: 30_000 });
    fake.reset();
    const warm = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(sha256(warm.body), digest);
    assert.equal(fake.requests.length, 0);
  });

  it('records the upstream rate limit it was told', async () => {
    const image = publishImage(fake, 'library/limits', '1');
    await get(`${mirror.url}/v2/library/limits/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    const limit = mirror.longshore.upstreams.get('docker.io')!.client.rateLimit;
    assert.equal(limit?.limit, 100);
    assert.equal(limit?.remaining, fake.rateLimitRemaining);
    assert.ok(image.index);
  });
});
