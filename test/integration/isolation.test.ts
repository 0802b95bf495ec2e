// A repository sees only what it holds (security issue, finding 1–3, 5, 8): content cached for one
// repository is never served, confirmed or mounted through another name unless that repository holds it —
// a manifest of it references the content, or its upstream confirms it for that repository. Public
// deduplication stays: a layer two public images share is stored and fetched once.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from 'undici';
import { MediaType } from '../../src/registry/media-types.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, errorCode, get } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, startMirrorOverFake, stopMirrorOverFake, type TestMirror } from '../support/mirror.js';

const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** An OCI image of one config and the given layers, published to `repository` under `tag`. */
function publishSingle(fake: FakeRegistry, repository: string, tag: string, layers: Buffer[]): { manifest: string; layers: string[]; config: string } {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: randomBytes(4).toString('hex') }));
  const configDigest = fake.addBlob(config);
  fake.grant(repository, configDigest);
  const layerDigests = layers.map((l) => {
    const digest = fake.addBlob(l);
    fake.grant(repository, digest);
    return digest;
  });
  const manifest = fake.addManifest(repository, MediaType.OciManifest, {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: layers.map((l, i) => ({ mediaType: LAYER, digest: layerDigests[i], size: l.length })),
  }, tag);
  return { manifest, layers: layerDigests, config: configDigest };
}

async function pullAll(url: string, name: string, image: PublishedImage): Promise<void> {
  assert.equal((await get(`${url}/v2/${name}/manifests/${image.tag}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
  for (const platform of Object.values(image.platforms)) {
    assert.equal((await get(`${url}/v2/${name}/manifests/${platform}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
  }
  for (const digest of image.blobs.keys()) assert.equal((await get(`${url}/v2/${name}/blobs/${digest}`)).status, 200, digest);
}

describe('content isolation between repositories', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let secret: PublishedImage;

  before(async () => {
    fake = await FakeRegistry.start({ users: { mirror: 'pw' }, isolate: true });
    publishImage(fake, 'library/alpine', '3.19');
    secret = publishImage(fake, 'private/secret', '1');
    mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl, username: 'mirror', password: 'pw', tagTTL: '1h' } },
      local: { prefixes: ['team/'] },
    });
    await pullAll(mirror.url, 'private/secret', secret);
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });
  beforeEach(() => fake.reset());

  it('does not serve a cached private manifest by digest under a public name', async () => {
    for (const digest of [secret.index, ...Object.values(secret.platforms)]) {
      for (const method of ['GET', 'HEAD'] as const) {
        const reply = await get(`${mirror.url}/v2/library/alpine/manifests/${digest}`, { accept: ALL_MANIFEST_TYPES }, method);
        assert.equal(reply.status, 404, `${method} ${digest}`);
        assert.notDeepEqual(reply.body, fake.manifests.get(digest)!.body);
      }
    }
    // the upstream was asked, for library/alpine, and said no — once, with a HEAD, not again with a GET
    assert.equal(fake.count({ host: 'registry', method: 'HEAD', path: `/v2/library/alpine/manifests/${secret.index}`, status: 404 }), 1);
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: /^\/v2\/library\/alpine\/manifests\// }), 0);
  });

  it('does not serve or reveal a cached private blob under a public name', async () => {
    const privateBlobs = [...secret.blobs.keys()].filter((d) => !fake.members.get('library/alpine')!.has(d));
    assert.ok(privateBlobs.length >= 3, 'the layers are private; the image configs are the same bytes in both repositories');
    for (const digest of privateBlobs) {
      const got = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`);
      assert.equal(got.status, 404, digest);
      assert.equal(errorCode(got), 'BLOB_UNKNOWN');
      const head = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`, {}, 'HEAD');
      assert.equal(head.status, 404, digest);
    }
  });

  it('serves a blob both repositories hold after the upstream confirmed it, without downloading it again', async () => {
    const shared = [...secret.blobs.keys()].filter((d) => fake.members.get('library/alpine')!.has(d));
    assert.ok(shared.length > 0);
    for (const digest of shared) {
      assert.equal((await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`)).status, 200);
      assert.equal((await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`, {}, 'HEAD')).status, 200);
    }
    assert.equal(fake.count({ host: 'registry', method: 'HEAD', path: /\/blobs\// }), shared.length);
    assert.equal(fake.count({ method: 'GET', path: /\/blobs\// }), 0);
  });

  it('does not let a cross-repository mount take a blob its source does not hold', async () => {
    const [layer] = [...secret.blobs.keys()].filter((d) => !fake.members.get('library/alpine')!.has(d));
    const res = await request(`${mirror.url}/v2/team/bob/x/blobs/uploads/?mount=${layer}&from=library/alpine`, { method: 'POST' });
    await res.body.dump();
    assert.equal(res.statusCode, 202, 'answered as a new upload session, not 201 Created');
    assert.equal((await get(`${mirror.url}/v2/team/bob/x/blobs/${layer}`, {}, 'HEAD')).status, 404);
    // from the repository that holds it, the mount works
    const ok = await request(`${mirror.url}/v2/team/bob/y/blobs/uploads/?mount=${layer}&from=private/secret`, { method: 'POST' });
    await ok.body.dump();
    assert.equal(ok.statusCode, 201);
  });

  it('still serves the repository that holds the content, from cache', async () => {
    for (const digest of secret.blobs.keys()) assert.equal((await get(`${mirror.url}/v2/private/secret/blobs/${digest}`)).status, 200);
    assert.equal((await get(`${mirror.url}/v2/private/secret/manifests/${secret.index}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    assert.equal(fake.count({ host: 'registry' }), 0);
  });

  it('creates no repository rows for names the upstream does not serve', async () => {
    const before = mirror.longshore.catalog.repositories('docker.io').length;
    for (let i = 0; i < 5; i++) {
      const name = `nobody/random${i}`;
      assert.equal((await get(`${mirror.url}/v2/${name}/manifests/latest`, { accept: ALL_MANIFEST_TYPES })).status, 404);
      assert.equal((await get(`${mirror.url}/v2/${name}/blobs/${[...secret.blobs.keys()][0]}`)).status, 404);
    }
    assert.equal(mirror.longshore.catalog.repositories('docker.io').length, before);
  });
});

describe('public deduplication and upstream confirmation', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => ({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } } }), { isolate: true, cdn: false })));
  after(() => stopMirrorOverFake({ fake, mirror }));
  beforeEach(() => fake.reset());

  it('fetches a base layer two images share once, and serves it to the second image without asking', async () => {
    const base = randomBytes(32 * 1024);
    const a = publishSingle(fake, 'library/base-a', 'v1', [base, randomBytes(1024)]);
    const b = publishSingle(fake, 'library/base-b', 'v1', [base, randomBytes(1024)]);
    assert.equal(a.layers[0], b.layers[0]);
    for (const [name, image] of [['library/base-a', a], ['library/base-b', b]] as const) {
      assert.equal((await get(`${mirror.url}/v2/${name}/manifests/v1`, { accept: ALL_MANIFEST_TYPES })).status, 200);
      for (const digest of [image.config, ...image.layers]) assert.equal((await get(`${mirror.url}/v2/${name}/blobs/${digest}`)).status, 200);
    }
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: `/v2/library/base-a/blobs/${a.layers[0]}` }), 1);
    assert.equal(fake.count({ path: new RegExp(`/v2/library/base-b/blobs/${b.layers[0]}`) }), 0, 'b\'s manifest references the shared layer: no upstream request');
  });

  it('serves a cached blob to another repository once the upstream confirms it with a HEAD, then remembers', async () => {
    const layer = randomBytes(16 * 1024);
    const a = publishSingle(fake, 'library/conf-a', 'v1', [layer]);
    assert.equal((await get(`${mirror.url}/v2/library/conf-a/blobs/${a.layers[0]}`)).status, 200);
    fake.grant('library/conf-c', a.layers[0]!);
    fake.reset();
    const first = await get(`${mirror.url}/v2/library/conf-c/blobs/${a.layers[0]}`);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, layer);
    assert.equal(fake.count({ method: 'HEAD', path: `/v2/library/conf-c/blobs/${a.layers[0]}` }), 1);
    assert.equal(fake.count({ method: 'GET', path: new RegExp('/blobs/') }), 0, 'confirmed, not downloaded again');
    fake.reset();
    assert.equal((await get(`${mirror.url}/v2/library/conf-c/blobs/${a.layers[0]}`)).status, 200);
    assert.equal((await get(`${mirror.url}/v2/library/conf-c/blobs/${a.layers[0]}`, {}, 'HEAD')).status, 200);
    assert.equal(fake.count({ host: 'registry' }), 0);
  });

  it('asks the upstream once for a name it does not have, while the negative answer is fresh', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, () => get(`${mirror.url}/v2/library/missing/manifests/latest`, { accept: ALL_MANIFEST_TYPES })));
    for (const reply of replies) assert.equal(reply.status, 404);
    const after = await get(`${mirror.url}/v2/library/missing/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(after.status, 404);
    assert.equal(errorCode(after), 'MANIFEST_UNKNOWN');
    assert.equal(fake.count({ host: 'registry', path: '/v2/library/missing/manifests/latest' }), 1);
  });
});

describe('a hostile upstream cannot name local content', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => ({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } }, local: { prefixes: ['team/'] } }), { isolate: true })));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('does not serve a pushed manifest under a proxied tag whose HEAD names its digest', async () => {
    const config = Buffer.from('{"private":true}');
    const configDigest = await push(mirror.url, 'team/app', config);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [],
    }));
    const put = await request(`${mirror.url}/v2/team/app/manifests/1`, { method: 'PUT', headers: { 'content-type': MediaType.OciManifest }, body: manifest });
    await put.body.dump();
    assert.equal(put.statusCode, 201);
    const localDigest = put.headers['docker-content-digest'] as string;
    fake.headDigestOverride.set('library/evil:1', localDigest);

    const head = await get(`${mirror.url}/v2/library/evil/manifests/1`, { accept: ALL_MANIFEST_TYPES }, 'HEAD');
    assert.notEqual(Number(head.headers['content-length']), manifest.length);
    const got = await get(`${mirror.url}/v2/library/evil/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    assert.notDeepEqual(got.body, manifest);
    assert.notEqual(got.status, 200);
    const byDigest = await get(`${mirror.url}/v2/library/evil/manifests/${localDigest}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(byDigest.status, 404);
    assert.equal((await get(`${mirror.url}/v2/library/evil/blobs/${configDigest}`)).status, 404);
  });
});

async function push(url: string, repository: string, body: Buffer): Promise<string> {
  const { createHash } = await import('node:crypto');
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const res = await request(`${url}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body });
  await res.body.dump();
  assert.equal(res.statusCode, 201);
  return digest;
}

describe('downloads in progress are joined only through the same upstream', () => {
  let slow: FakeRegistry;
  let other: FakeRegistry;
  let mirror: TestMirror;

  before(async () => {
    slow = await FakeRegistry.start({ auth: 'none', cdn: false });
    other = await FakeRegistry.start({ auth: 'none', cdn: false });
    mirror = await startMirror({ upstreams: { 'docker.io': { url: slow.registryUrl }, 'ghcr.io': { url: other.registryUrl } } });
  });
  after(async () => {
    await mirror.close();
    await slow.close();
    await other.close();
  });

  it('does not let a trickling upstream hold another upstream\'s clients of the same digest', { timeout: 10_000 }, async () => {
    const layer = randomBytes(256 * 1024);
    const digest = slow.addBlob(layer);
    other.addBlob(layer);
    let release!: () => void;
    slow.setBlobFault(digest, { kind: 'hold', after: 1024, release: new Promise<void>((r) => (release = r)) });
    const held = get(`${mirror.url}/v2/library/app/blobs/${digest}`);
    // the slow upstream has sent its first bytes: the download is registered
    for (let i = 0; i < 100 && slow.count({ method: 'GET', path: `/v2/library/app/blobs/${digest}` }) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const fast = await get(`${mirror.url}/v2/ghcr.io/owner/app/blobs/${digest}`);
    assert.equal(fast.status, 200);
    assert.deepEqual(fast.body, layer);
    assert.equal(other.count({ method: 'GET', path: `/v2/owner/app/blobs/${digest}` }), 1);
    release();
    const slowReply = await held;
    assert.equal(slowReply.status, 200);
    assert.deepEqual(slowReply.body, layer);
  });
});

describe('a blob download is cut off at the size its manifest declares', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake({}, { auth: 'none', cdn: false })));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('stops reading an upstream body without Content-Length once it passes the declared size', { timeout: 20_000 }, async () => {
    const image = publishSingle(fake, 'library/declared', 'v1', [randomBytes(10_000)]);
    const fault = { kind: 'endless' as const, sent: 0, upTo: 256 * 1024 * 1024 };
    fake.setBlobFault(image.layers[0]!, fault);
    assert.equal((await get(`${mirror.url}/v2/library/declared/manifests/v1`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    const reply = await get(`${mirror.url}/v2/library/declared/blobs/${image.layers[0]}`).catch((err: Error) => err);
    assert.ok(reply instanceof Error || reply.status >= 500 || reply.body.length <= 10_000, 'no more than the declared bytes reach the client');
    assert.ok(fault.sent < 16 * 1024 * 1024, `the upstream was cut off early (sent ${fault.sent} bytes)`);
    assert.equal(mirror.longshore.catalog.content(image.layers[0] as `sha256:${string}`), undefined, 'nothing stored');
  });
});

describe('random names do not spend the upstream pull quota', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake()));
  after(() => stopMirrorOverFake({ fake, mirror }));

  // Docker Hub counts manifest GETs against the pull rate limit; HEADs are free. Before, every request
  // for a name that does not exist cost one GET (150 random names: 150 pulls of the mirror's quota).
  it('asks about a name with a HEAD and never GETs a manifest the upstream does not have', async () => {
    for (let i = 0; i < 30; i++) {
      const reply = await get(`${mirror.url}/v2/nobody/random-${i}/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
      assert.equal(reply.status, 404);
    }
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: /\/manifests\// }), 0);
    assert.equal(fake.count({ host: 'registry', method: 'HEAD', status: 404, path: /\/manifests\// }), 30);
  });
});
