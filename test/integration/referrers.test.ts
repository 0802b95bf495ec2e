// Signatures, attestations and referrers through the mirror (OCI 1.1): the upstream's referrers API is
// proxied and cached like a tag (tagTTL, stale-if-error, offline), filtered here when the upstream did
// not, and an upstream without the API is read through the referrers tag schema (<alg>-<hex>), as
// cosign, notation and oras do themselves. Also: sha512 content pulled through from an upstream.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { digestOf, FakeRegistry } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, errorCode, get } from '../support/http.js';
import { indexDescriptor, publishArtifact, publishImage, type Descriptor, type PublishedImage } from '../support/images.js';
import { startMirror, startMirrorOverFake, stopMirrorOverFake, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const SIGNATURE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const SBOM = 'application/spdx+json';

interface Index { manifests: Array<{ digest: string; artifactType?: string; mediaType: string; size: number }> }

/** An artifact about `subject`, published to `repository`, labelled with its own type; its manifest's digest. */
function publishLabelled(fake: FakeRegistry, repository: string, subject: Descriptor, artifactType: string, tag?: string): string {
  return publishArtifact(fake, repository, subject, artifactType, { tag, annotations: { 'org.example.kind': artifactType } }).digest;
}

describe('referrers through the mirror, upstream with the referrers API', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let image: PublishedImage;
  let signature: string;
  let sbom: string;
  const referrersPath = () => `/v2/library/signed/referrers/${image.index}`;

  before(async () => {
    fake = await FakeRegistry.start({ isolate: true });
    fake.referrersApi = true;
    image = publishImage(fake, 'library/signed', '1.0', 'oci');
    signature = publishLabelled(fake, 'library/signed', indexDescriptor(fake, image), SIGNATURE);
    sbom = publishLabelled(fake, 'library/signed', indexDescriptor(fake, image), SBOM);
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h', retries: 0, breaker: { failures: 1000 } } } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  it('lists the upstream referrers (until now: 404 "no endpoint"), and fetches a referrer by digest', async () => {
    const reply = await get(`${mirror.url}/v2/signed/referrers/${image.index}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], OCI_INDEX);
    const index = reply.json<Index & { mediaType: string; schemaVersion: number }>();
    assert.equal(index.mediaType, OCI_INDEX);
    assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [signature, sbom].sort());
    assert.equal(index.manifests.find((m) => m.digest === signature)?.artifactType, SIGNATURE);
    const manifest = await get(`${mirror.url}/v2/signed/manifests/${signature}`, { accept: OCI_MANIFEST });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers['docker-content-digest'], signature);
  });

  it('answers again from cache within tagTTL: the upstream is asked once', async () => {
    fake.reset();
    for (let i = 0; i < 3; i++) assert.equal((await get(`${mirror.url}${referrersPath()}`)).status, 200);
    assert.equal(fake.count({ host: 'registry', path: referrersPath() }), 0);
  });

  it('filters by artifactType itself when the upstream does not, and says so', async () => {
    fake.reset();
    const reply = await get(`${mirror.url}${referrersPath()}?artifactType=${encodeURIComponent(SBOM)}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(reply.json<Index>().manifests.map((m) => m.digest), [sbom]);
    const none = await get(`${mirror.url}${referrersPath()}?artifactType=application%2Fnothing`);
    assert.deepEqual(none.json<Index>().manifests, []);
  });

  it('follows the upstream pages, and an upstream filter does not leave a partial list in the cache', async () => {
    const other = publishImage(fake, 'library/paged', '1.0', 'oci');
    const made = [SIGNATURE, SBOM, SIGNATURE].map((t) => publishLabelled(fake, 'library/paged', indexDescriptor(fake, other), t));
    fake.referrersPageSize = 1;
    fake.referrersFilter = true;
    try {
      const filtered = await get(`${mirror.url}/v2/paged/referrers/${other.index}?artifactType=${encodeURIComponent(SBOM)}`);
      assert.deepEqual(filtered.json<Index>().manifests.map((m) => m.digest), [made[1]]);
      const all = await get(`${mirror.url}/v2/paged/referrers/${other.index}`);
      assert.deepEqual(all.json<Index>().manifests.map((m) => m.digest).sort(), [...made].sort());
    } finally {
      fake.referrersPageSize = 1000;
      fake.referrersFilter = false;
    }
  });

  it('answers an empty list for a subject without referrers', async () => {
    const reply = await get(`${mirror.url}/v2/signed/referrers/${digestOf('nothing refers to this', 'sha256')}`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json<Index>().manifests, []);
  });

  it('serves the cached list when the upstream is down after tagTTL, and offline after a restart', async () => {
    const stale = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: 0, retries: 0, breaker: { failures: 1000 } } } });
    try {
      assert.equal((await get(`${stale.url}${referrersPath()}`)).status, 200);
      fake.forceStatus = 503;
      const reply = await get(`${stale.url}${referrersPath()}`);
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json<Index>().manifests.map((m) => m.digest).sort(), [signature, sbom].sort());
      assert.ok(stale.logs().some((l) => l.msg === 'serving stale referrers'));
      const uncached = await get(`${stale.url}/v2/signed/referrers/${image.platforms['linux/amd64']}`);
      assert.equal(errorCode(uncached), 'UNAVAILABLE', 'nothing cached: the failure is the answer');
    } finally {
      fake.forceStatus = undefined;
      await stale.close({ keepData: true });
    }
    const offline = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, offline: true } } }, stale.dataDir);
    try {
      fake.reset();
      const reply = await get(`${offline.url}${referrersPath()}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.json<Index>().manifests.length, 2);
      const unknown = await get(`${offline.url}/v2/signed/referrers/${image.platforms['linux/arm64']}`);
      assert.equal(unknown.status, 404);
      assert.equal(fake.count({ host: 'registry' }), 0);
    } finally {
      await offline.close();
    }
  });

  it('keeps a repository to its own referrers: a list fetched for one name serves nothing under another', async () => {
    const elsewhere = publishImage(fake, 'library/elsewhere', '1.0', 'oci');
    assert.equal((await get(`${mirror.url}/v2/elsewhere/manifests/1.0`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    // library/elsewhere does not hold the signature upstream (isolate): the mirror must not serve it there.
    const reply = await get(`${mirror.url}/v2/elsewhere/manifests/${signature}`, { accept: OCI_MANIFEST });
    assert.equal(reply.status, 404);
    assert.equal(errorCode(reply), 'MANIFEST_UNKNOWN');
    assert.ok(elsewhere.index);
  });
});

describe('referrers through the mirror, upstream without the referrers API (tag schema)', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => ({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h', retries: 0, breaker: { failures: 1000 } } } }))));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('reads the index tagged <alg>-<hex>, and cosign-style .sig tags pull through as ordinary tags', async () => {
    const image = publishImage(fake, 'library/app', '2.0', 'oci');
    const subject = indexDescriptor(fake, image);
    const signature = publishLabelled(fake, 'library/app', subject, SIGNATURE, `sha256-${image.index.slice(7)}.sig`);
    const attestation = publishLabelled(fake, 'library/app', subject, 'application/vnd.in-toto+json');
    const size = (d: string) => fake.manifests.get(d)!.body.length;
    fake.addManifest('library/app', OCI_INDEX, {
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: signature, size: size(signature), artifactType: SIGNATURE },
        { mediaType: OCI_MANIFEST, digest: attestation, size: size(attestation), artifactType: 'application/vnd.in-toto+json' },
      ],
    }, `sha256-${image.index.slice(7)}`);

    const reply = await get(`${mirror.url}/v2/app/referrers/${image.index}?artifactType=${encodeURIComponent(SIGNATURE)}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(reply.json<Index>().manifests.map((m) => m.digest), [signature]);
    assert.equal(fake.count({ host: 'registry', path: `/v2/library/app/referrers/${image.index}`, status: 404 }), 1, 'the API was tried first');
    const fetched = await get(`${mirror.url}/v2/app/manifests/${attestation}`, { accept: OCI_MANIFEST });
    assert.equal(fetched.status, 200);

    const sig = await get(`${mirror.url}/v2/app/manifests/sha256-${image.index.slice(7)}.sig`, { accept: OCI_MANIFEST });
    assert.equal(sig.status, 200);
    assert.equal(sig.headers['docker-content-digest'], signature);
  });

  it('remembers that the upstream has no referrers API: the next list reads the tag schema without asking it', async () => {
    const image = publishImage(fake, 'library/again', '1.0', 'oci');
    const reply = await get(`${mirror.url}/v2/again/referrers/${image.index}`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json<Index>().manifests, []);
    assert.equal(fake.count({ host: 'registry', path: `/v2/library/again/referrers/${image.index}` }), 0, 'the API was not asked again');
    assert.ok(fake.count({ host: 'registry', path: `/v2/library/again/manifests/sha256-${image.index.slice(7)}` }) >= 1, 'the tag schema was read');
  });

  it('with the upstream down after tagTTL, serves the cached list as stale instead of rebuilding it from a stale tag', async () => {
    const image = publishImage(fake, 'library/down', '1.0', 'oci');
    const subject = indexDescriptor(fake, image);
    const signature = publishLabelled(fake, 'library/down', subject, SIGNATURE);
    fake.addManifest('library/down', OCI_INDEX, {
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: signature, size: fake.manifests.get(signature)!.body.length, artifactType: SIGNATURE }],
    }, `sha256-${image.index.slice(7)}`);
    const stale = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: 0, retries: 0, breaker: { failures: 1000 } } } });
    try {
      const path = `/v2/down/referrers/${image.index}`;
      assert.deepEqual((await get(`${stale.url}${path}`)).json<Index>().manifests.map((m) => m.digest), [signature]);
      fake.forceStatus = 503;
      const reply = await get(`${stale.url}${path}`);
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json<Index>().manifests.map((m) => m.digest), [signature]);
      assert.ok(stale.logs().some((l) => l.msg === 'serving stale referrers'), 'the list was served stale');
      assert.ok(!stale.logs().some((l) => l.msg === 'serving stale tag'), 'not rebuilt from the stale referrers tag');
    } finally {
      fake.forceStatus = undefined;
      await stale.close();
    }
  });

  it('answers an empty list when there is no referrers tag, and cached tags list no referrers keys', async () => {
    const image = publishImage(fake, 'library/plain', '1.0', 'oci');
    const reply = await get(`${mirror.url}/v2/plain/referrers/${image.index}`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json<Index>().manifests, []);
    assert.equal((await get(`${mirror.url}/v2/plain/manifests/1.0`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    fake.forceStatus = 503;
    try {
      const tags = await get(`${mirror.url}/v2/plain/tags/list`);
      assert.deepEqual(tags.json<{ tags: string[] }>().tags, ['1.0']);
    } finally {
      fake.forceStatus = undefined;
    }
  });

  it('cuts a sha512 subject to the tag schema: sha512-<first 64 hex>', async () => {
    const subject = digestOf('a sha512 subject', 'sha512');
    await get(`${mirror.url}/v2/app/referrers/${subject}`);
    assert.equal(fake.count({ host: 'registry', method: 'HEAD', path: `/v2/library/app/manifests/sha512-${subject.slice(7, 71)}` }), 1);
  });
});

describe('referrers through the mirror, an upstream with the API that does not know the repository', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => {
    fake.referrersApi = true;
    return { upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h', retries: 0, breaker: { failures: 1000 } } } };
  })));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('takes a 404 NAME_UNKNOWN as that repository\'s answer, not as an upstream without the API', async () => {
    fake.referrersNameUnknown.add('library/gone');
    const subjects = [digestOf('first subject', 'sha256'), digestOf('second subject', 'sha256')];
    for (const subject of subjects) assert.equal((await get(`${mirror.url}/v2/gone/referrers/${subject}`)).status, 200);
    for (const subject of subjects) {
      assert.equal(fake.count({ host: 'registry', path: `/v2/library/gone/referrers/${subject}`, status: 404 }), 1, 'the API was asked for each');
    }
    // A repository the upstream knows is still listed through the API.
    const image = publishImage(fake, 'library/known', '1.0', 'oci');
    const signature = publishLabelled(fake, 'library/known', indexDescriptor(fake, image), SIGNATURE);
    const listed = await get(`${mirror.url}/v2/known/referrers/${image.index}`);
    assert.deepEqual(listed.json<Index>().manifests.map((m) => m.digest), [signature]);
    assert.equal(fake.count({ host: 'registry', path: `/v2/library/known/referrers/${image.index}`, status: 200 }), 1);
  });
});

describe('sha512 content pulled through from an upstream', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => ({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } } }), { cdn: false })));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('serves a sha512 image by tag and by digest, verifies and stores it under blobs/sha512, and serves it again from cache', async () => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = randomBytes(200_000);
    const configDigest = fake.addBlob(config, 'sha512');
    const layerDigest = fake.addBlob(layer, 'sha512');
    const manifest = {
      schemaVersion: 2, mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    };
    const manifestDigest = fake.addManifest('library/long', OCI_MANIFEST, manifest, 'v1', 'sha512');

    const byTag = await get(`${mirror.url}/v2/long/manifests/v1`, { accept: OCI_MANIFEST });
    assert.equal(byTag.status, 200);
    assert.equal(byTag.headers['docker-content-digest'], manifestDigest, 'named as the upstream names it');
    const byDigest = await get(`${mirror.url}/v2/long/manifests/${manifestDigest}`, { accept: OCI_MANIFEST });
    assert.equal(byDigest.status, 200);
    const blob = await get(`${mirror.url}/v2/long/blobs/${layerDigest}`);
    assert.equal(blob.status, 200);
    assert.deepEqual(blob.body, layer);
    const hex = layerDigest.slice('sha512:'.length);
    const stored = join(mirror.dataDir, 'blobs', 'sha512', hex.slice(0, 2), hex);
    // The commit follows the last byte sent to the client.
    await waitFor(() => stat(stored).then((s) => s.size === layer.length, () => false), { what: 'the sha512 layer to be stored', timeoutMs: 10_000 });

    fake.reset();
    assert.deepEqual((await get(`${mirror.url}/v2/long/blobs/${layerDigest}`)).body, layer);
    assert.equal((await get(`${mirror.url}/v2/long/manifests/${manifestDigest}`, { accept: OCI_MANIFEST })).status, 200);
    assert.equal(fake.count({ host: 'registry', method: 'GET' }), 0, 'served from cache');
  });

  it('refuses a sha512 blob whose bytes do not match, and caches nothing', async () => {
    const content = randomBytes(50_000);
    const digest = fake.addBlob(content, 'sha512');
    fake.grant('library/long', digest);
    fake.setBlobFault(digest, { kind: 'corrupt' });
    const reply = await get(`${mirror.url}/v2/long/blobs/${digest}`).catch((err: Error) => ({ status: 0, body: Buffer.alloc(0), error: err }));
    assert.notDeepEqual(reply.body, content);
    const hex = digest.slice('sha512:'.length);
    await assert.rejects(stat(join(mirror.dataDir, 'blobs', 'sha512', hex.slice(0, 2), hex)));
    assert.equal(createHash('sha512').update(content).digest('hex'), hex);
  });
});
