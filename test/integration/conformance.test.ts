// What the OCI conformance suites (distribution-spec v1.1.1 and main) found, one behaviour per test:
// sha512 wherever sha256 works, 404 for a manifest reference that is no tag, 416 for an out-of-order
// last chunk, non-distributable layers, OCI error bodies for every unknown path and 405 for a method
// a known endpoint does not serve. test/e2e/conformance.test.ts runs the suites themselves.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { FakeRegistry } from '../support/fake-registry.js';
import { callRegistry } from '../support/http.js';
import { startMirrorOverFake, stopMirrorOverFake, type TestMirror } from '../support/mirror.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const digestOf = (b: Buffer | string, algorithm: 'sha256' | 'sha512') => `${algorithm}:${createHash(algorithm).update(b).digest('hex')}`;

describe('conformance findings', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  const call = (method: string, path: string, body?: Buffer | string, headers?: Record<string, string>) => callRegistry(mirror.url, method, path, body, headers);

  before(async () => ({ fake, mirror } = await startMirrorOverFake({ local: { prefixes: ['team/'], allowBlobDelete: true } })));
  after(() => stopMirrorOverFake({ fake, mirror }));

  describe('sha512', () => {
    it('uploads monolithically, in chunks and streamed, serves, mounts and deletes sha512 blobs', async () => {
      const mono = randomBytes(10_000);
      const monoDigest = digestOf(mono, 'sha512');
      const posted = await call('POST', `/v2/team/s512/blobs/uploads/?digest=${monoDigest}`, mono);
      assert.equal(posted.status, 201);
      assert.equal(posted.headers['docker-content-digest'], monoDigest);
      assert.deepEqual((await call('GET', `/v2/team/s512/blobs/${monoDigest}`)).body, mono);
      assert.equal((await call('HEAD', `/v2/team/s512/blobs/${monoDigest}`)).headers['content-length'], String(mono.length));

      const chunked = randomBytes(30_000);
      const chunkedDigest = digestOf(chunked, 'sha512');
      const start = await call('POST', '/v2/team/s512/blobs/uploads/');
      const location = String(start.headers.location);
      assert.equal((await call('PATCH', location, chunked.subarray(0, 20_000), { 'content-range': '0-19999' })).status, 202);
      assert.equal((await call('PUT', `${location}?digest=${chunkedDigest}`, chunked.subarray(20_000), { 'content-range': '20000-29999' })).status, 201);
      assert.deepEqual((await call('GET', `/v2/team/s512/blobs/${chunkedDigest}`)).body, chunked);

      const streamed = randomBytes(5_000);
      const streamedDigest = digestOf(streamed, 'sha512');
      const s = String((await call('POST', '/v2/team/s512/blobs/uploads/')).headers.location);
      assert.equal((await call('PATCH', s, streamed)).status, 202);
      assert.equal((await call('PUT', `${s}?digest=${streamedDigest}`)).status, 201);

      const mounted = await call('POST', `/v2/team/other512/blobs/uploads/?mount=${monoDigest}&from=team/s512`);
      assert.equal(mounted.status, 201);
      assert.deepEqual((await call('GET', `/v2/team/other512/blobs/${monoDigest}`)).body, mono);

      assert.equal((await call('DELETE', `/v2/team/other512/blobs/${monoDigest}`)).status, 202);
      assert.equal((await call('GET', `/v2/team/other512/blobs/${monoDigest}`)).code, 'BLOB_UNKNOWN');
      assert.deepEqual((await call('GET', `/v2/team/s512/blobs/${monoDigest}`)).body, mono, 'another repository keeps its copy');
    });

    it('refuses a sha512 upload whose bytes have another digest', async () => {
      const reply = await call('POST', `/v2/team/s512/blobs/uploads/?digest=${digestOf('something else', 'sha512')}`, randomBytes(100));
      assert.equal(reply.status, 400);
      assert.equal(reply.code, 'DIGEST_INVALID');
    });

    it('pushes a manifest of sha512 blobs by its sha512 digest and by tag, and serves both', async () => {
      const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
      const layer = randomBytes(1_000);
      for (const b of [config, layer]) assert.equal((await call('POST', `/v2/team/img512/blobs/uploads/?digest=${digestOf(b, 'sha512')}`, b)).status, 201);
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config, 'sha512'), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(layer, 'sha512'), size: layer.length }],
      }));
      const byDigest = await call('PUT', `/v2/team/img512/manifests/${digestOf(manifest, 'sha512')}`, manifest, { 'content-type': OCI_MANIFEST });
      assert.equal(byDigest.status, 201);
      assert.equal(byDigest.headers['docker-content-digest'], digestOf(manifest, 'sha512'));
      const got = await call('GET', `/v2/team/img512/manifests/${digestOf(manifest, 'sha512')}`, undefined, { accept: OCI_MANIFEST });
      assert.deepEqual(got.body, manifest);
      // Pushed by tag, a manifest is named by the canonical algorithm, whatever its blobs use.
      const byTag = await call('PUT', '/v2/team/img512/manifests/v1', manifest, { 'content-type': OCI_MANIFEST });
      assert.equal(byTag.headers['docker-content-digest'], digestOf(manifest, 'sha256'));
      // A digest of the wrong bytes is refused with the algorithm it names.
      const wrong = await call('PUT', `/v2/team/img512/manifests/${digestOf('other', 'sha512')}`, manifest, { 'content-type': OCI_MANIFEST });
      assert.equal(wrong.code, 'DIGEST_INVALID');
      assert.equal((await call('DELETE', `/v2/team/img512/manifests/${digestOf(manifest, 'sha512')}`)).status, 202);
      assert.equal((await call('GET', `/v2/team/img512/manifests/${digestOf(manifest, 'sha512')}`)).code, 'MANIFEST_UNKNOWN');
    });
  });

  it('answers GET and HEAD of a manifest reference that is no tag with 404 MANIFEST_UNKNOWN (was 400)', async () => {
    const got = await call('GET', '/v2/team/app/manifests/.INVALID_MANIFEST_NAME');
    assert.equal(got.status, 404);
    assert.equal(got.code, 'MANIFEST_UNKNOWN');
    assert.equal((await call('HEAD', '/v2/team/app/manifests/.INVALID_MANIFEST_NAME')).status, 404);
    assert.equal((await call('GET', '/v2/library/alpine/manifests/.INVALID_MANIFEST_NAME')).status, 404, 'proxied names too');
    // A push names what it stores: an invalid tag there stays a 400.
    assert.equal((await call('PUT', '/v2/team/app/manifests/.INVALID', '{}', { 'content-type': OCI_MANIFEST })).code, 'TAG_INVALID');
  });

  it('answers an out-of-order last chunk sent with the PUT with 416, and the upload goes on (was 400 and cancelled)', async () => {
    const blob = randomBytes(3_000);
    const location = String((await call('POST', '/v2/team/ooo/blobs/uploads/')).headers.location);
    assert.equal((await call('PATCH', location, blob.subarray(0, 1_000), { 'content-range': '0-999' })).status, 202);
    const early = await call('PUT', `${location}?digest=${digestOf(blob, 'sha256')}`, blob.subarray(2_000), { 'content-range': '2000-2999' });
    assert.equal(early.status, 416);
    assert.equal(early.headers.range, '0-999');
    assert.equal((await call('PATCH', location, blob.subarray(1_000, 2_000), { 'content-range': '1000-1999' })).status, 202);
    assert.equal((await call('PUT', `${location}?digest=${digestOf(blob, 'sha256')}`, blob.subarray(2_000), { 'content-range': '2000-2999' })).status, 201);
  });

  describe('non-distributable layers', () => {
    const layer = (digest: string, urls?: string[]) => ({
      mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest, size: 123, ...(urls ? { urls } : {}),
    });
    async function pushConfig(name: string): Promise<{ digest: string; size: number }> {
      const config = Buffer.from(`{"os":"linux","n":"${name}"}`);
      assert.equal((await call('POST', `/v2/${name}/blobs/uploads/?digest=${digestOf(config, 'sha256')}`, config)).status, 201);
      return { digest: digestOf(config, 'sha256'), size: config.length };
    }
    const manifestWith = (config: { digest: string; size: number }, layers: object[]) => Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers,
    }));

    it('accepts a manifest whose non-distributable layers (with urls) were never pushed; without urls they must be', async () => {
      const config = await pushConfig('team/nd');
      const foreign = digestOf(randomBytes(256), 'sha256');
      const ok = await call('PUT', '/v2/team/nd/manifests/v1', manifestWith(config, [layer(foreign, [`https://store.example.com/blobs/sha256/${foreign.slice(7)}`])]), { 'content-type': OCI_MANIFEST });
      assert.equal(ok.status, 201);
      const noUrls = await call('PUT', '/v2/team/nd/manifests/v2', manifestWith(config, [layer(foreign)]), { 'content-type': OCI_MANIFEST });
      assert.equal(noUrls.code, 'MANIFEST_BLOB_UNKNOWN');
      const badUrl = await call('PUT', '/v2/team/nd/manifests/v3', manifestWith(config, [layer(foreign, ['file:///etc/passwd'])]), { 'content-type': OCI_MANIFEST });
      assert.equal(badUrl.code, 'MANIFEST_BLOB_UNKNOWN');
    });

    it('never makes another repository\'s blob reachable by naming it as a non-distributable layer', async () => {
      const secret = randomBytes(2_000);
      const secretDigest = digestOf(secret, 'sha256');
      assert.equal((await call('POST', `/v2/team/victim/blobs/uploads/?digest=${secretDigest}`, secret)).status, 201);
      const config = await pushConfig('team/thief');
      const pushed = await call('PUT', '/v2/team/thief/manifests/v1', manifestWith(config, [layer(secretDigest, ['https://example.com/x'])]), { 'content-type': OCI_MANIFEST });
      assert.equal(pushed.status, 201);
      assert.equal((await call('GET', `/v2/team/thief/blobs/${secretDigest}`)).code, 'BLOB_UNKNOWN');
      // A mount from the repository whose manifest names it starts an upload instead of linking the blob.
      const mount = await call('POST', `/v2/team/thief2/blobs/uploads/?mount=${secretDigest}&from=team/thief`);
      assert.equal(mount.status, 202);
      assert.equal((await call('GET', `/v2/team/thief2/blobs/${secretDigest}`)).code, 'BLOB_UNKNOWN');
    });
  });

  it('answers unknown paths with an OCI NOT_FOUND body, and other methods of known endpoints with 405 UNSUPPORTED', async () => {
    for (const path of ['/v2/team/app/unknown', '/v2/team/app/tags', '/v2/_catalog/x', '/nothing/here']) {
      const reply = await call('GET', path);
      assert.equal(reply.status, 404, path);
      assert.equal(reply.code, 'NOT_FOUND', path);
      assert.match(String(reply.headers['content-type']), /^application\/json/, path);
    }
    assert.match(JSON.parse((await call('GET', '/v2/team/app/unknown')).body.toString()).errors[0].message, /GET \/v2\/team\/app\/unknown$/);
    const subject = digestOf('x', 'sha256');
    for (const [method, path, allow] of [['POST', '/v2/team/app/tags/list', 'GET, HEAD'], ['PUT', '/v2/', 'GET, HEAD'], ['DELETE', '/v2/_catalog', 'GET, HEAD'], ['POST', `/v2/team/app/referrers/${subject}`, 'GET'], ['DELETE', `/v2/library/alpine/referrers/${subject}`, 'GET']] as const) {
      const reply = await call(method, path);
      assert.equal(reply.status, 405, `${method} ${path}`);
      assert.equal(reply.code, 'UNSUPPORTED', `${method} ${path}`);
      assert.equal(reply.headers.allow, allow, `${method} ${path}`);
    }
  });

  it('paginates the catalog and local tags like distribution: sorted, n and last, Link only when more follow, n=0 lists nothing', async () => {
    const config = Buffer.from('{"os":"linux","p":1}');
    assert.equal((await call('POST', `/v2/team/pages/blobs/uploads/?digest=${digestOf(config, 'sha256')}`, config)).status, 201);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config, 'sha256'), size: config.length }, layers: [] }));
    for (const tag of ['b', 'a', 'C', '10', '9']) assert.equal((await call('PUT', `/v2/team/pages/manifests/${tag}`, manifest, { 'content-type': OCI_MANIFEST })).status, 201);
    const all = JSON.parse((await call('GET', '/v2/team/pages/tags/list')).body.toString()) as { tags: string[] };
    assert.deepEqual(all.tags, ['10', '9', 'C', 'a', 'b'], 'byte order, as distribution sorts');
    const first = await call('GET', '/v2/team/pages/tags/list?n=2');
    assert.deepEqual(JSON.parse(first.body.toString()).tags, ['10', '9']);
    assert.equal(first.headers.link, '</v2/team/pages/tags/list?n=2&last=9>; rel="next"');
    const last = await call('GET', '/v2/team/pages/tags/list?n=2&last=C');
    assert.deepEqual(JSON.parse(last.body.toString()).tags, ['a', 'b']);
    assert.equal(last.headers.link, undefined);
    const none = await call('GET', '/v2/team/pages/tags/list?n=0');
    assert.deepEqual(JSON.parse(none.body.toString()).tags, []);
    assert.equal(none.headers.link, undefined);

    const catalog = await call('GET', '/v2/_catalog?n=1');
    const repositories = (JSON.parse(catalog.body.toString()) as { repositories: string[] }).repositories;
    assert.equal(repositories.length, 1);
    assert.equal(catalog.headers.link, `</v2/_catalog?n=1&last=${encodeURIComponent(repositories[0]!)}>; rel="next"`);
    const next = await call('GET', `/v2/_catalog?n=1000&last=${encodeURIComponent(repositories[0]!)}`);
    const rest = (JSON.parse(next.body.toString()) as { repositories: string[] }).repositories;
    assert.ok(rest.length > 0 && rest.every((r) => r > repositories[0]!));
    assert.deepEqual(rest, [...rest].sort());
    assert.equal(next.headers.link, undefined);
  });
});
