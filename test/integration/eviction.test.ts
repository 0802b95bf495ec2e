// Issue 4: a byte budget with image-aware LRU eviction, pins, in-use protection, crash recovery.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { request } from 'undici';
import type { ConfigInput } from '../../src/config/schema.js';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { filesOnDisk } from '../support/store.js';
import { waitFor } from '../support/wait.js';

const KB = 1000;
const pause = () => new Promise((r) => setTimeout(r, 15)); // distinct access times, not a timing assertion

describe('eviction', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  async function start(cache: NonNullable<ConfigInput['cache']>): Promise<void> {
    // protectRecent 0: these tests evict what they pulled a moment ago, to check the order of victims;
    // admission off: their blobs are large shares of small budgets (test/integration/cache-policy.test.ts).
    mirror = await startMirror({ cache: { minFreeSpace: 0, protectRecent: 0, admissionShare: 1, doorkeeperShare: 1, ...cache }, upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } } });
  }
  async function pull(digest: string): Promise<Buffer> {
    const reply = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(reply.status, 200);
    await waitFor(() => mirror.longshore.catalog.content(digest as `sha256:${string}`) !== undefined, { what: 'committed', timeoutMs: 30_000 });
    await pause();
    return reply.body;
  }
  const stored = (digest: string) => mirror.longshore.catalog.content(digest as `sha256:${string}`) !== undefined;

  beforeEach(async () => {
    fake = await FakeRegistry.start();
  });
  afterEach(async () => {
    await mirror.close();
    await fake.close();
  });

  it('evicts the least recently used content down to the low watermark, in order', async () => {
    await start({ maxSize: 1000 * KB, highWatermark: 0.9, lowWatermark: 0.8 });
    const [a, b, c, d, e] = Array.from({ length: 5 }, () => fake.addBlob(randomBytes(200 * KB)));
    for (const digest of [a, b, c, d]) await pull(digest!);
    await pull(a!); // a hit refreshes a's recency: b is now the oldest
    await pull(e!); // 1000 KB > 900 KB
    await mirror.longshore.evictor.run();
    assert.deepEqual([a, b, c, d, e].map((x) => stored(x!)), [true, false, true, true, true]);
    assert.equal(mirror.longshore.catalog.totals().bytes, 800 * KB);
    // the byte count matches the files on disk
    const files = await filesOnDisk(mirror.dataDir);
    assert.equal([...files.values()].reduce((x, y) => x + y, 0), mirror.longshore.catalog.totals().bytes);
    assert.equal(files.has(b!), false);
    // a request after eviction refetches and gets the right bytes
    fake.reset();
    const again = await get(`${mirror.url}/v2/library/x/blobs/${b}`);
    assert.equal(sha256(again.body), b);
    assert.equal(fake.count({ host: 'cdn' }), 1);
  });

  it('keeps the layers of an image whose index is still wanted, even when clients never ask for them', async () => {
    // image ≈ 301 KB, loose 150 KB, newest 300 KB: evicting the loose blob alone reaches the 700 KB target
    await start({ maxSize: 1000 * KB, highWatermark: 0.72, lowWatermark: 0.7 });
    const image = publishImage(fake, 'library/app', '1', 'docker', 150 * KB);
    const loose = fake.addBlob(randomBytes(150 * KB));
    await get(`${mirror.url}/v2/library/app/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    const amd64 = image.platforms['linux/amd64']!;
    await get(`${mirror.url}/v2/library/app/manifests/${amd64}`, { accept: ALL_MANIFEST_TYPES });
    const layers = JSON.parse(fake.manifests.get(amd64)!.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
    const imageBlobs = [layers.config.digest, ...layers.layers.map((l) => l.digest)];
    for (const digest of imageBlobs) await pull(digest);
    await pull(loose); // newer than the layers
    // a client re-pulls the image: it asks for the tag only (it has the layers); the layers stay wanted
    await get(`${mirror.url}/v2/library/app/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    await pause();
    await pull(fake.addBlob(randomBytes(300 * KB))); // over budget now
    await mirror.longshore.evictor.run();
    assert.equal(stored(loose), false, 'the loose blob is older than the image in use');
    for (const digest of imageBlobs) assert.equal(stored(digest), true, `${digest} belongs to a wanted image`);
  });

  it('never evicts pinned images or blobs being read, and reports what it could not evict', async () => {
    await start({ maxSize: 10_000 * KB, pins: ['library/pinned:1.*'] });
    const image = publishImage(fake, 'library/pinned', '1.0', 'docker', 100 * KB);
    await get(`${mirror.url}/v2/library/pinned/manifests/1.0`, { accept: ALL_MANIFEST_TYPES });
    const amd64 = image.platforms['linux/amd64']!;
    await get(`${mirror.url}/v2/library/pinned/manifests/${amd64}`, { accept: ALL_MANIFEST_TYPES });
    const doc = JSON.parse(fake.manifests.get(amd64)!.body.toString()) as { layers: Array<{ digest: string }> };
    for (const layer of doc.layers) await get(`${mirror.url}/v2/library/pinned/blobs/${layer.digest}`);
    const reading = fake.addBlob(randomBytes(4 * 1024 * 1024));
    const other = fake.addBlob(randomBytes(100 * KB));
    await pull(reading);
    await pull(other);
    // a client that reads nothing keeps `reading` open
    const stalled = await request(`${mirror.url}/v2/library/x/blobs/${reading}`);
    try {
      const result = await mirror.longshore.evictor.run(0);
      assert.ok(result.evicted >= 1);
      assert.equal(stored(other), false);
      assert.equal(stored(reading), true, 'a blob being streamed is not evicted under its reader');
      assert.equal(stored(image.index), true);
      assert.equal(stored(amd64), true);
      for (const layer of doc.layers) assert.equal(stored(layer.digest), true, 'pinned layers stay');
      assert.ok(mirror.logs().some((l) => l.msg === 'cache is over its budget; the rest is pinned or in use'));
    } finally {
      stalled.body.destroy();
    }
  });

  it('refetches a tag whose manifest was evicted', async () => {
    await start({ maxSize: 10_000 * KB });
    const image = publishImage(fake, 'library/gone', '1');
    await get(`${mirror.url}/v2/library/gone/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    await mirror.longshore.evictor.run(0);
    assert.equal(stored(image.index), false);
    fake.reset();
    const reply = await get(`${mirror.url}/v2/library/gone/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 200);
    assert.equal(sha256(reply.body), image.index);
    assert.equal(fake.count({ host: 'registry', method: 'GET', status: 200 }), 1);
  });
});

describe('crash recovery', () => {
  let fake: FakeRegistry;
  after(async () => fake?.close());

  it('reconciles rows without files and files without rows, and removes temp leftovers', async () => {
    fake = await FakeRegistry.start();
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    const kept = fake.addBlob(randomBytes(50 * KB));
    const lost = fake.addBlob(randomBytes(60 * KB));
    for (const digest of [kept, lost]) {
      await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
      await waitFor(() => mirror.longshore.catalog.content(digest as `sha256:${string}`) !== undefined);
    }
    const dataDir = mirror.dataDir;
    await mirror.close({ keepData: true });
    // what a kill -9 can leave: a row whose file is gone (mid-eviction), a verified file without a row
    // (between rename and insert), a corrupt file without a row, and a temp file
    const path = (digest: string) => join(dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
    await unlink(path(lost));
    const orphan = randomBytes(70 * KB);
    const orphanDigest = sha256(orphan);
    await mkdir(join(path(orphanDigest), '..'), { recursive: true });
    await writeFile(path(orphanDigest), orphan);
    const bogus = sha256('not these bytes');
    await mkdir(join(path(bogus), '..'), { recursive: true });
    await writeFile(path(bogus), 'something else');
    await writeFile(join(dataDir, 'tmp', 'partial-download'), randomBytes(1000));

    const restarted = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } }, dataDir);
    try {
      await restarted.longshore.reconciled; // it runs in the background while the mirror serves
      const catalog = restarted.longshore.catalog;
      assert.equal(catalog.content(lost as `sha256:${string}`), undefined);
      assert.equal(catalog.content(orphanDigest as `sha256:${string}`)?.size, orphan.length);
      assert.ok(catalog.content(kept as `sha256:${string}`));
      const files = await filesOnDisk(dataDir);
      assert.equal(files.has(bogus), false);
      assert.deepEqual(await readdir(join(dataDir, 'tmp')), []);
      assert.equal([...files.values()].reduce((x, y) => x + y, 0), catalog.totals().bytes);
      assert.ok(restarted.logs().some((l) => l.msg === 'reconciled the store with the catalog' && l.rowsRemoved === 1 && l.filesAdopted === 1 && l.filesRemoved === 1));
      fake.reset();
      const again = await get(`${restarted.url}/v2/library/x/blobs/${lost}`);
      assert.equal(sha256(again.body), lost);
      // An adopted file has no repository record: it is served under a name once that name's upstream
      // confirms it (a HEAD), and is not downloaded again.
      fake.addBlob(orphan);
      const adopted = await get(`${restarted.url}/v2/library/x/blobs/${orphanDigest}`);
      assert.deepEqual(adopted.body, orphan);
      assert.equal(fake.count({ host: 'registry', method: 'HEAD', path: `/v2/library/x/blobs/${orphanDigest}` }), 1);
      assert.equal(fake.count({ host: 'cdn' }), 1, 'only the lost blob was fetched again');
    } finally {
      await restarted.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
