// Issue 5: the read-only admin API (/api/v1/) and the dashboard's static files.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RecentPull } from '../../src/admin/recent-pulls.js';
import type { Summary } from '../../src/admin/summary.js';
import type { RepositoryUsage, TagUsage } from '../../src/admin/top-content.js';
import type { CounterSample } from '../../src/admin/totals.js';
import type { Digest } from '../../src/registry/reference.js';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, errorCode, get } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { startMirror, startMirrorOverFake, stopMirrorOverFake, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

describe('admin API', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  const password = 'pa55-never-shown';

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => ({ upstreams: { 'docker.io': { url: fake.registryUrl, username: 'mirror', password } } }))));
  after(() => stopMirrorOverFake({ fake, mirror }));

  const api = async <T>(path: string): Promise<T> => {
    const reply = await get(`${mirror.url}/api/v1/${path}`);
    assert.equal(reply.status, 200, `${path}: ${reply.body.toString()}`);
    assert.match(String(reply.headers['content-type']), /^application\/json/);
    assert.equal(reply.headers['cache-control'], 'no-store');
    return reply.json<T>();
  };

  it('summarises the cache, totals by outcome, and upstream health without credentials', async () => {
    const empty = await api<Summary>('summary');
    assert.deepEqual(empty.cache, { bytes: 0, objects: 0, maxBytes: null });
    assert.equal(empty.totals.hitRatio, null);

    const image = publishImage(fake, 'library/sum', '1');
    const indexSize = fake.manifests.get(image.index)!.body.length;
    const [layer, layerBytes] = [...image.blobs].find(([, bytes]) => bytes.length > 1000)!;
    for (let i = 0; i < 2; i++) {
      assert.equal((await get(`${mirror.url}/v2/library/sum/manifests/1`, { accept: ALL_MANIFEST_TYPES })).status, 200);
      assert.equal(sha256((await get(`${mirror.url}/v2/library/sum/blobs/${layer}`)).body), layer);
      // The download is recorded just after its last byte went out.
      await waitFor(() => mirror.longshore.catalog.content(layer as Digest) !== undefined);
    }

    const summary = await api<Summary>('summary');
    assert.deepEqual(summary.cache, { bytes: indexSize + layerBytes.length, objects: 2, maxBytes: null });
    assert.equal(summary.totals.requests.miss, 2);
    assert.equal(summary.totals.requests.hit, 2);
    assert.equal(summary.totals.hits, 2);
    assert.equal(summary.totals.misses, 2);
    assert.equal(summary.totals.hitRatio, 0.5);
    assert.equal(summary.totals.bytesServedFromCache, indexSize + layerBytes.length);
    assert.equal(summary.totals.bytesServedFromUpstream, indexSize + layerBytes.length);
    assert.equal(summary.totals.bytesFromUpstream, indexSize + layerBytes.length);
    assert.deepEqual(summary.downloads, { inFlight: 0, followers: 0 });
    assert.equal(summary.upstreams.length, 1);
    const [upstream] = summary.upstreams;
    assert.deepEqual({ ...upstream, rateLimit: { ...upstream!.rateLimit, observedAt: 'x' } }, {
      name: 'docker.io',
      url: new URL(fake.registryUrl).origin,
      offline: false,
      circuit: 'closed',
      rateLimit: { limit: 100, remaining: fake.rateLimitRemaining, observedAt: 'x' },
    });
    assert.ok(!Number.isNaN(Date.parse(upstream!.rateLimit!.observedAt)));
    assert.ok(!JSON.stringify(summary).includes(password));
    assert.ok(!mirror.rawLogs().includes(password), 'the password never reaches the log');
  });

  it('lists recent manifest requests, newest first, and no blob requests', async () => {
    const image = publishImage(fake, 'library/recent', 'v2');
    await get(`${mirror.url}/v2/library/recent/manifests/v2`, { accept: ALL_MANIFEST_TYPES });
    await get(`${mirror.url}/v2/library/recent/manifests/${image.index}`, { accept: ALL_MANIFEST_TYPES });
    await get(`${mirror.url}/v2/library/recent/manifests/missing`, { accept: ALL_MANIFEST_TYPES });
    await get(`${mirror.url}/v2/library/recent/blobs/${[...image.blobs.keys()][0]}`);

    const { pulls } = await api<{ pulls: RecentPull[] }>('recent?limit=3');
    assert.deepEqual(pulls.map((p) => [p.repository, p.reference, p.digest, p.cache, p.status]), [
      ['library/recent', 'missing', null, null, 404],
      ['library/recent', image.index, image.index, 'hit', 200],
      ['library/recent', 'v2', image.index, 'miss', 200],
    ]);
    assert.equal(pulls[2]!.upstream, 'docker.io');
    assert.equal(pulls[2]!.method, 'GET');
    assert.ok(Date.parse(pulls[0]!.time) >= Date.parse(pulls[2]!.time));
  });

  it('ranks repositories by pulls and by size, and tags by pulls', async () => {
    const busy = publishImage(fake, 'library/busy', 'stable', 'docker', 1024);
    const big = fake.addBlob(randomBytes(512 * 1024));
    fake.addManifest('library/big', 'application/vnd.docker.distribution.manifest.v2+json', { schemaVersion: 2, layers: [{ digest: big }] }, 'huge');
    for (let i = 0; i < 5; i++) await get(`${mirror.url}/v2/library/busy/manifests/stable`, { accept: ALL_MANIFEST_TYPES });
    await get(`${mirror.url}/v2/library/big/manifests/huge`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(sha256((await get(`${mirror.url}/v2/library/big/blobs/${big}`)).body), big);
    await waitFor(() => mirror.longshore.catalog.content(big as Digest) !== undefined);
    // Hits reach the catalog's tables when it flushes them (on a timer in production).
    mirror.longshore.catalog.flush();

    const byPulls = await api<{ by: string; repositories: RepositoryUsage[]; tags: TagUsage[] }>('top?by=pulls&limit=50');
    assert.equal(byPulls.by, 'pulls');
    const rank = (list: RepositoryUsage[], name: string) => list.findIndex((r) => r.repository === name);
    assert.ok(rank(byPulls.repositories, 'library/busy') >= 0 && rank(byPulls.repositories, 'library/busy') < rank(byPulls.repositories, 'library/big'));
    const busyRow = byPulls.repositories.find((r) => r.repository === 'library/busy')!;
    assert.ok(busyRow.pulls >= 5, `busy was pulled 5 times, got ${busyRow.pulls}`);
    assert.equal(busyRow.upstream, 'docker.io');
    const busyTag = byPulls.tags.find((t) => t.repository === 'library/busy' && t.tag === 'stable');
    assert.ok(busyTag && busyTag.pulls >= 5);
    assert.ok(byPulls.tags.indexOf(busyTag) < byPulls.tags.findIndex((t) => t.repository === 'library/big'));
    assert.equal(fake.manifests.has(busy.index), true);

    const bySize = await api<{ by: string; repositories: RepositoryUsage[]; tags?: unknown }>('top?by=size&limit=1');
    assert.equal(bySize.repositories.length, 1);
    assert.equal(bySize.repositories[0]!.repository, 'library/big');
    assert.ok(bySize.repositories[0]!.bytes > 512 * 1024);
    assert.equal(bySize.repositories[0]!.objects, 2);
    assert.equal(bySize.tags, undefined);
  });

  it('returns a time series ending with the counters now', async () => {
    const { intervalMs, points } = await api<{ intervalMs: number; points: CounterSample[] }>('timeseries');
    assert.equal(intervalMs, 10_000);
    assert.ok(points.length >= 2, 'the sample taken at start, and now');
    const summary = await api<Summary>('summary');
    const last = points.at(-1)!;
    assert.equal(last.hits, summary.totals.hits);
    assert.equal(last.misses, summary.totals.misses);
    assert.equal(last.bytesFromUpstream, summary.totals.bytesFromUpstream);
    assert.equal(points[0]!.hits, 0);
    assert.ok(points.every((p, i) => i === 0 || p.time >= points[i - 1]!.time));
  });

  it('rejects bad parameters with QUERY_INVALID and unknown paths with 404', async () => {
    for (const query of ['top?by=age', 'top?limit=0', 'top?limit=101', 'recent?limit=x', 'recent?limit=1&limit=2']) {
      const reply = await get(`${mirror.url}/api/v1/${query}`);
      assert.equal(reply.status, 400, query);
      assert.equal(errorCode(reply), 'QUERY_INVALID', query);
    }
    assert.equal((await get(`${mirror.url}/api/v1/secrets`)).status, 404);
  });
});

describe('dashboard files', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake()));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('serves the page, its script and stylesheet from this origin only', async () => {
    const redirect = await get(`${mirror.url}/ui`);
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/ui/');
    const page = await get(`${mirror.url}/ui/`);
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    const html = page.body.toString();
    for (const [, asset] of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
      assert.doesNotMatch(asset!, /^(?:[a-z]+:)?\/\//i, `${asset} is not an external asset`);
    }
    const script = await get(`${mirror.url}/ui/dashboard.js`);
    assert.equal(script.status, 200);
    assert.match(String(script.headers['content-type']), /javascript/);
    assert.ok(!/innerHTML/.test(script.body.toString()), 'data is inserted as text');
    const style = await get(`${mirror.url}/ui/dashboard.css`);
    assert.equal(style.status, 200);
    assert.doesNotMatch(style.body.toString(), /@import|url\(\s*['"]?(?:https?:)?\/\//);
    assert.equal((await get(`${mirror.url}/ui/nothing-here.js`)).status, 404);
  });
});

describe('dashboard disabled', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake({ ui: { enabled: false } })));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('answers 404 on /ui/ and /api/v1/, and still serves the registry and metrics', async () => {
    assert.equal((await get(`${mirror.url}/ui/`)).status, 404);
    assert.equal((await get(`${mirror.url}/api/v1/summary`)).status, 404);
    assert.equal((await get(`${mirror.url}/v2/`)).status, 200);
    assert.equal((await get(`${mirror.url}/metrics`)).status, 200);
  });
});

describe('cache budget in the summary', () => {
  it('reports cache.maxSize as maxBytes', async () => {
    const fake = await FakeRegistry.start();
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } }, cache: { maxSize: '2GiB' } });
    try {
      const summary = (await get(`${mirror.url}/api/v1/summary`)).json<Summary>();
      assert.equal(summary.cache.maxBytes, 2 * 1024 ** 3);
    } finally {
      await mirror.close();
      await fake.close();
    }
  });
});
