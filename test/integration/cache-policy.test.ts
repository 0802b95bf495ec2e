// Issue 20: with a 200 MiB budget, hot images survive one pull of a 1 GiB layer, which is streamed to its
// client without being cached; the hot images are then served with no upstream request at all.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

const MB = 1_000_000;
const MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const CONFIG = 'application/vnd.docker.container.image.v1+json';

/** A single-platform image of the given layers; returns its blob digests. */
function image(fake: FakeRegistry, repository: string, tag: string, layers: Buffer[]): string[] {
  const blob = (content: Buffer) => {
    const digest = fake.addBlob(content);
    fake.grant(repository, digest);
    return { digest, size: content.length };
  };
  const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', repository })));
  const entries = layers.map(blob);
  fake.addManifest(repository, MANIFEST, { schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: CONFIG, ...config }, layers: entries.map((l) => ({ mediaType: LAYER, ...l })) }, tag);
  return [config.digest, ...entries.map((l) => l.digest)];
}

describe('cache policy: admission and a hot working set', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let alpine: string[];
  let node: string[];
  let huge: string;

  before(async () => {
    fake = await FakeRegistry.start();
    alpine = image(fake, 'library/alpine', '3.19', [randomBytes(3 * MB)]);
    node = image(fake, 'library/node', '20', Array.from({ length: 4 }, () => randomBytes(37.5 * MB)));
    // 1 GiB that costs no random generation: one repeated byte
    [, huge] = image(fake, 'library/huge', '1', [Buffer.alloc(1024 ** 3, 7)]) as [string, string];
    mirror = await startMirror({ cache: { maxSize: '200MiB', minFreeSpace: 0 }, upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } } });
  });
  after(async () => {
    await mirror?.close();
    await fake?.close();
  });

  async function pull(repository: string, tag: string, blobs: string[]): Promise<void> {
    const manifest = await get(`${mirror.url}/v2/${repository}/manifests/${tag}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(manifest.status, 200);
    for (const digest of blobs) {
      const reply = await get(`${mirror.url}/v2/${repository}/blobs/${digest}`);
      assert.equal(reply.status, 200);
      assert.equal(sha256(reply.body), digest);
    }
  }
  const stored = (digest: string) => mirror.longshore.catalog.content(digest as `sha256:${string}`) !== undefined;

  it('caches the hot images (a large layer on its second request), streams the 1 GiB layer uncached, and keeps serving the hot images from cache', async () => {
    await pull('library/alpine', '3.19', alpine);
    await pull('library/node', '20', node);
    // the doorkeeper: layers over 1 % of the budget are cached when asked for a second time
    assert.equal(stored(node[1]!), false, 'a 37.5 MB layer asked for once is streamed through');
    assert.equal(stored(alpine[1]!), false, 'so is a 3 MB one');
    await pull('library/alpine', '3.19', alpine);
    await pull('library/node', '20', node);
    await waitFor(() => [...alpine, ...node].every(stored), { what: 'the hot images are cached', timeoutMs: 30_000 });
    const before = mirror.longshore.catalog.totals();

    // One pull of an image with a 1 GiB layer: five times the budget.
    const manifest = await get(`${mirror.url}/v2/library/huge/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(manifest.status, 200);
    const reply = await request(`${mirror.url}/v2/library/huge/blobs/${huge}`);
    assert.equal(reply.statusCode, 200);
    const hash = createHash('sha256');
    let received = 0;
    for await (const chunk of reply.body) {
      hash.update(chunk as Buffer);
      received += (chunk as Buffer).length;
    }
    assert.equal(received, 1024 ** 3);
    assert.equal(`sha256:${hash.digest('hex')}`, huge, 'the 1 GiB pull succeeded');
    assert.equal(stored(huge), false, 'the 1 GiB layer was not cached');

    // Nothing was evicted for it; the hot images are served with zero upstream requests.
    await mirror.longshore.evictor.run();
    for (const digest of [...alpine, ...node]) assert.equal(stored(digest), true, `${digest} is still cached`);
    assert.ok(mirror.longshore.catalog.totals().bytes >= before.bytes);
    fake.reset();
    await pull('library/alpine', '3.19', alpine);
    await pull('library/node', '20', node);
    assert.equal(fake.count(), 0, 'no upstream request for the hot images');

    const metrics = await (await request(`${mirror.url}/metrics`)).body.text();
    assert.match(metrics, /longshore_cache_not_admitted_bytes_total\{upstream="docker.io",reason="too-large"[^}]*\} 1073741824/);
    assert.match(metrics, /longshore_cache_not_admitted_total\{upstream="docker.io",reason="first-request"[^}]*\} 5/);
    assert.doesNotMatch(metrics, /longshore_evictions_total\{reason="budget"[^}]*\} [1-9]/);
  });
});
