// Issue 16, scheduled sync: a rule's tags are listed upstream and kept cached; an unchanged tag costs
// one HEAD, a changed one is picked up on the next run; a live pull during a sync shares its download;
// an upstream failure is reported in the rule's status, in /api/v1/sync and in the metrics.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SyncStatus } from '../../src/jobs/sync.js';
import { selectTags } from '../../src/jobs/sync.js';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { indexDescriptor, publishArtifact, publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

describe('scheduled sync', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  const images = new Map<string, PublishedImage>();

  before(async () => {
    fake = await FakeRegistry.start();
    for (const tag of ['18', '20', '21.1.0', '22', '23', 'latest', '22-alpine']) images.set(tag, publishImage(fake, 'library/node', tag, 'oci', 20_000));
    mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl } },
      sync: [{ upstream: 'docker.io', repository: 'library/node', semver: '>=20 <23', interval: '1h', platforms: ['linux/amd64'] }],
    });
    assert.ok(mirror.longshore.sync!.status()[0]!.nextRun, 'the first run is scheduled at start');
    // The runs below are asked for, so that each test knows what ran.
    mirror.longshore.sync!.pause();
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  const requests = (filter: { method: string; path: RegExp }) => fake.count({ host: 'registry', ...filter });

  it('keeps the tags the rule selects, the chosen platform only', async () => {
    const status = await mirror.longshore.sync!.run(0);
    assert.equal(status.lastError, null);
    assert.deepEqual(status.tags, ['22', '21.1.0', '20']);
    assert.equal(status.images, 3);
    const before = fake.requests.length;
    const node20 = images.get('20')!;
    const reply = await get(`${mirror.url}/v2/library/node/manifests/20`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(sha256(reply.body), node20.index);
    for (const digest of node20.blobs.keys()) {
      const manifest = JSON.parse(fake.manifests.get(node20.platforms['linux/amd64']!)!.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
      if (![manifest.config.digest, ...manifest.layers.map((l) => l.digest)].includes(digest)) continue;
      assert.equal((await get(`${mirror.url}/v2/library/node/blobs/${digest}`)).status, 200);
    }
    assert.equal(fake.requests.length, before, 'the synced image is pulled with no upstream request');
  });

  it('an unchanged tag costs one HEAD; a tag moved upstream is picked up on the next run', async () => {
    const gets = requests({ method: 'GET', path: /\/(manifests|blobs)\// });
    const heads = requests({ method: 'HEAD', path: /\/manifests\// });
    await mirror.longshore.sync!.run(0);
    assert.equal(requests({ method: 'GET', path: /\/(manifests|blobs)\// }), gets, 'no GET');
    assert.equal(requests({ method: 'HEAD', path: /\/manifests\// }), heads + 3, 'one HEAD per tag');

    const moved = publishImage(fake, 'library/node', '22', 'oci', 20_000);
    const status = await mirror.longshore.sync!.run(0);
    assert.equal(status.lastError, null);
    assert.ok(status.fetchedBytes > 20_000);
    const reply = await get(`${mirror.url}/v2/library/node/manifests/22`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(sha256(reply.body), moved.index);
  });

  it('a live pull of a layer the sync is downloading shares its one upstream download', async () => {
    const moved = publishImage(fake, 'library/node', '21.1.0', 'oci', 400_000);
    const manifest = JSON.parse(fake.manifests.get(moved.platforms['linux/amd64']!)!.body.toString()) as { layers: Array<{ digest: string }> };
    const layer = manifest.layers[1]!.digest;
    let release!: () => void;
    fake.setBlobFault(layer, { kind: 'hold', after: 64 * 1024, release: new Promise<void>((resolve) => (release = resolve)) });
    const run = mirror.longshore.sync!.run(0);
    const cdnGets = () => fake.count({ host: 'cdn', method: 'GET', path: new RegExp(layer.slice(7)) });
    for (let i = 0; i < 200 && cdnGets() === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(cdnGets(), 1, 'the sync started the download');
    const pull = get(`${mirror.url}/v2/library/node/blobs/${layer}`);
    await new Promise((r) => setTimeout(r, 100));
    release();
    const [status, reply] = await Promise.all([run, pull]);
    fake.setBlobFault(layer, undefined);
    assert.equal(status.lastError, null);
    assert.equal(sha256(reply.body), layer);
    assert.equal(cdnGets(), 1, 'one upstream download for the sync and the pull');
  });

  it('keeps going when the upstream fails, and reports it in /api/v1/sync and the metrics', async () => {
    fake.forceStatus = 503;
    try {
      const status = await mirror.longshore.sync!.run(0);
      assert.match(String(status.lastError), /.+/);
    } finally {
      fake.forceStatus = undefined;
    }
    const listed = (await get(`${mirror.url}/api/v1/sync`)).json<{ rules: SyncStatus[] }>().rules;
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.repository, 'library/node');
    assert.ok(listed[0]!.failures >= 1);
    const metrics = (await get(`${mirror.url}/metrics`)).body.toString();
    assert.match(metrics, /longshore_sync_failed_runs\{rule="0:docker.io\/library\/node"[^}]*\} [1-9]/);
    const again = await mirror.longshore.sync!.run(0);
    assert.equal(again.lastError, null, 'the next run succeeds once the upstream is back');
  });

  it('selects tags by glob, semver range and regex, highest first, at most maxTags', () => {
    const tags = ['1.0', '1.2', '1.10', '2.0', 'v1.5.1', 'latest', '1.2-alpine'];
    assert.deepEqual(selectTags(tags, { semver: '>=1.2 <2', maxTags: 10 }), ['1.10', 'v1.5.1', '1.2']);
    assert.deepEqual(selectTags(tags, { tags: ['1.*'], maxTags: 2 }), ['1.2-alpine', '1.2']);
    assert.deepEqual(selectTags(tags, { regex: '^1\\.\\d+$', maxTags: 10 }), ['1.2', '1.10', '1.0']);
  });
});

describe('a scheduled sync with withReferrers', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => {
    fake = await FakeRegistry.start();
    fake.referrersApi = true;
    mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } },
      sync: [{ upstream: 'docker.io', repository: 'library/signed', tags: ['1.0'], interval: '1h', platforms: ['linux/amd64'], withReferrers: true }],
    });
    mirror.longshore.sync!.pause();
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  it('keeps the referrers of each synced image cached: the list, the referrer and its blob are served with no upstream request', async () => {
    const image = publishImage(fake, 'library/signed', '1.0', 'oci', 10_000);
    const signature = publishArtifact(fake, 'library/signed', indexDescriptor(fake, image), 'application/vnd.dev.cosign.artifact.sig.v1+json');
    const status = await mirror.longshore.sync!.run(0);
    assert.equal(status.lastError, null);
    assert.equal(status.images, 1);
    const before = fake.requests.length;
    const listed = await get(`${mirror.url}/v2/library/signed/referrers/${image.index}`);
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest), [signature.digest]);
    assert.equal((await get(`${mirror.url}/v2/library/signed/manifests/${signature.digest}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    const layer = await get(`${mirror.url}/v2/library/signed/blobs/${signature.layer}`);
    assert.deepEqual(layer.body, signature.payload);
    assert.equal(fake.requests.length, before, 'all of it came from the cache');
  });

  it('a rule without it fetches no referrers', async () => {
    const plain = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } },
      sync: [{ upstream: 'docker.io', repository: 'library/signed', tags: ['1.0'], interval: '1h', platforms: ['linux/amd64'] }],
    });
    try {
      plain.longshore.sync!.pause();
      fake.reset();
      assert.equal((await plain.longshore.sync!.run(0)).lastError, null);
      assert.equal(fake.count({ host: 'registry', path: /\/referrers\// }), 0);
    } finally {
      await plain.close();
    }
  });
});
