// Issue 7: the distribution-spec push workflows on local repositories, with the statuses, headers and
// error codes the spec names (spec.md: "Pushing blobs", "Pushing manifests", "Content discovery",
// "Content management").
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeRegistry } from '../support/fake-registry.js';
import { callRegistry } from '../support/http.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

describe('push to local repositories', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  const call = (method: string, path: string, body?: Buffer | string, headers?: Record<string, string>) => callRegistry(mirror.url, method, path, body, headers);

  async function pushBlob(name: string, content: Buffer): Promise<string> {
    const digest = sha(content);
    const reply = await call('POST', `/v2/${name}/blobs/uploads/?digest=${digest}`, content, { 'content-type': 'application/octet-stream' });
    assert.equal(reply.status, 201);
    return digest;
  }

  async function pushImage(name: string, tag: string): Promise<{ manifest: string; body: Buffer; config: string; layer: string }> {
    const config = await pushBlob(name, Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })));
    const layerBytes = randomBytes(20_000);
    const layer = await pushBlob(name, layerBytes);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 0 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size: layerBytes.length }],
    }));
    const reply = await call('PUT', `/v2/${name}/manifests/${tag}`, manifest, { 'content-type': OCI_MANIFEST });
    assert.equal(reply.status, 201);
    return { manifest: sha(manifest), body: manifest, config, layer };
  }

  before(async () => {
    fake = await FakeRegistry.start();
    // negativeTTL 0: one test adds content upstream right after the mirror was told it is not there.
    mirror = await startMirror({ local: { prefixes: ['team/', 'local/'], uploadTimeout: '1h' }, maxManifestSize: '64KiB', upstreams: { 'docker.io': { url: fake.registryUrl, negativeTTL: 0 } } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  it('uploads a blob monolithically with POST ?digest= and serves it back', async () => {
    const content = randomBytes(100_000);
    const digest = sha(content);
    const reply = await call('POST', `/v2/team/app/blobs/uploads/?digest=${digest}`, content);
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.location, `/v2/team/app/blobs/${digest}`);
    assert.equal(reply.headers['docker-content-digest'], digest);
    const back = await call('GET', `/v2/team/app/blobs/${digest}`);
    assert.deepEqual(back.body, content);
    const head = await call('HEAD', `/v2/team/app/blobs/${digest}`);
    assert.equal(Number(head.headers['content-length']), content.length);
    // blobs are scoped to repositories: another local repository does not have it
    assert.equal((await call('GET', `/v2/team/other/blobs/${digest}`)).code, 'BLOB_UNKNOWN');
  });

  it('starts an upload without the trailing slash too (the pull route is tried first and must pass it on)', async () => {
    const start = await call('POST', '/v2/team/app/blobs/uploads');
    assert.equal(start.status, 202);
    assert.match(String(start.headers.location), /^\/v2\/team\/app\/blobs\/uploads\/[A-Za-z0-9-]+$/);
    const wrongMethod = await call('GET', '/v2/team/app/blobs/uploads');
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.code, 'UNSUPPORTED');
  });

  it('uploads in chunks: POST, PATCH with Content-Range, GET status, PUT ?digest=', async () => {
    const content = randomBytes(300_000);
    const start = await call('POST', '/v2/team/app/blobs/uploads/');
    assert.equal(start.status, 202);
    const location = String(start.headers.location);
    assert.match(location, /^\/v2\/team\/app\/blobs\/uploads\/[0-9a-f-]{36}$/);
    assert.equal(start.headers['docker-upload-uuid'], location.split('/').pop());
    const first = await call('PATCH', location, content.subarray(0, 100_000), { 'content-range': '0-99999', 'content-type': 'application/octet-stream' });
    assert.equal(first.status, 202);
    assert.equal(first.headers.range, '0-99999');
    assert.equal(first.headers.location, location);
    // out of order: the chunk does not start where the upload ends
    const skipped = await call('PATCH', location, content.subarray(150_000, 200_000), { 'content-range': '150000-199999' });
    assert.equal(skipped.status, 416);
    assert.equal(skipped.code, 'BLOB_UPLOAD_INVALID');
    assert.equal(skipped.headers.range, '0-99999');
    const second = await call('PATCH', location, content.subarray(100_000, 250_000), { 'content-range': '100000-249999' });
    assert.equal(second.headers.range, '0-249999');
    const status = await call('GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, '0-249999');
    const done = await call('PUT', `${location}?digest=${sha(content)}`, content.subarray(250_000));
    assert.equal(done.status, 201);
    assert.equal(done.headers.location, `/v2/team/app/blobs/${sha(content)}`);
    assert.deepEqual((await call('GET', `/v2/team/app/blobs/${sha(content)}`)).body, content);
    assert.equal((await call('GET', location)).code, 'BLOB_UPLOAD_UNKNOWN', 'a finished upload is gone');
    // Hashed while it was written (the refused out-of-order chunk wrote nothing): nothing is read back.
    assert.equal(mirror.logs().filter((l) => l.msg === 'reading an upload back to hash it').length, 0);
  });

  it('rejects a wrong digest, unknown uploads, and cancels with DELETE', async () => {
    const start = await call('POST', '/v2/team/app/blobs/uploads/');
    const location = String(start.headers.location);
    const bad = await call('PUT', `${location}?digest=${sha('other')}`, 'some bytes');
    assert.equal(bad.status, 400);
    assert.equal(bad.code, 'DIGEST_INVALID');
    assert.equal(await call('GET', `/v2/team/app/blobs/${sha('some bytes')}`).then((r) => r.status), 404, 'nothing stored');
    const unknown = await call('PATCH', '/v2/team/app/blobs/uploads/00000000-0000-0000-0000-000000000000', 'x');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.code, 'BLOB_UPLOAD_UNKNOWN');
    const other = await call('POST', '/v2/team/app/blobs/uploads/');
    assert.equal((await call('DELETE', String(other.headers.location))).status, 204);
    assert.equal((await call('GET', String(other.headers.location))).status, 404);
    // an upload belongs to its repository
    const mine = await call('POST', '/v2/team/app/blobs/uploads/');
    const id = String(mine.headers.location).split('/').pop();
    assert.equal((await call('GET', `/v2/team/other/blobs/uploads/${id}`)).code, 'BLOB_UPLOAD_UNKNOWN');
    assert.ok((await readdir(join(mirror.dataDir, 'uploads'))).includes(id!), 'the session\'s file');
  });

  it('mounts a blob from another repository, or starts an upload when it cannot', async () => {
    const digest = await pushBlob('team/source', randomBytes(10_000));
    const mounted = await call('POST', `/v2/team/target/blobs/uploads/?mount=${digest}&from=team/source`);
    assert.equal(mounted.status, 201);
    assert.equal(mounted.headers.location, `/v2/team/target/blobs/${digest}`);
    assert.equal((await call('HEAD', `/v2/team/target/blobs/${digest}`)).status, 200);
    const fallback = await call('POST', `/v2/team/target/blobs/uploads/?mount=${sha('absent')}&from=team/source`);
    assert.equal(fallback.status, 202);
    const notFrom = await call('POST', `/v2/team/target2/blobs/uploads/?mount=${digest}&from=team/nowhere`);
    assert.equal(notFrom.status, 202, 'only from a repository that holds the blob');
  });

  it('pushes a manifest by tag and by digest, validates it, and lets tags move', async () => {
    const first = await pushImage('team/app', '1.0');
    const got = await call('GET', '/v2/team/app/manifests/1.0');
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, first.body);
    assert.equal(got.headers['content-type'], OCI_MANIFEST);
    assert.equal(got.headers['docker-content-digest'], first.manifest);
    const byDigest = await call('PUT', `/v2/team/app/manifests/${first.manifest}`, first.body, { 'content-type': OCI_MANIFEST });
    assert.equal(byDigest.status, 201);
    assert.equal(byDigest.headers.location, `/v2/team/app/manifests/${first.manifest}`);
    const wrongDigest = await call('PUT', `/v2/team/app/manifests/${sha('x')}`, first.body, { 'content-type': OCI_MANIFEST });
    assert.equal(wrongDigest.code, 'DIGEST_INVALID');
    const second = await pushImage('team/app', '1.0');
    assert.equal((await call('GET', '/v2/team/app/manifests/1.0')).headers['docker-content-digest'], second.manifest, 'the tag moved');
    assert.equal((await call('GET', `/v2/team/app/manifests/${first.manifest}`)).status, 200, 'the old manifest stays by digest');
  });

  it('rejects manifests that reference missing blobs, are not JSON, or are too large', async () => {
    const missing = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha('nope'), size: 4 }, layers: [] }));
    const r1 = await call('PUT', '/v2/team/app/manifests/broken', missing, { 'content-type': OCI_MANIFEST });
    assert.equal(r1.status, 400);
    assert.equal(r1.code, 'MANIFEST_BLOB_UNKNOWN');
    const r2 = await call('PUT', '/v2/team/app/manifests/broken', '{ not json', { 'content-type': OCI_MANIFEST });
    assert.equal(r2.status, 400);
    assert.equal(r2.code, 'MANIFEST_INVALID');
    const r3 = await call('PUT', '/v2/team/app/manifests/broken', Buffer.alloc(70 * 1024, 32), { 'content-type': OCI_MANIFEST });
    assert.equal(r3.status, 413);
    assert.equal(r3.code, 'MANIFEST_INVALID');
    const r4 = await call('PUT', '/v2/team/app/manifests/broken', JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-unknown' }), { 'content-type': 'application/x-unknown' });
    assert.equal(r4.code, 'MANIFEST_INVALID');
    assert.equal((await call('GET', '/v2/team/app/manifests/broken')).status, 404, 'nothing was tagged');
  });

  it('pushes an index whose manifests exist, and refuses one whose do not', async () => {
    const amd64 = await pushImage('team/multi', 'amd64');
    const arm64 = await pushImage('team/multi', 'arm64');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [
      { mediaType: OCI_MANIFEST, digest: amd64.manifest, size: amd64.body.length, platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: OCI_MANIFEST, digest: arm64.manifest, size: arm64.body.length, platform: { architecture: 'arm64', os: 'linux' } },
    ] }));
    assert.equal((await call('PUT', '/v2/team/multi/manifests/latest', index, { 'content-type': OCI_INDEX })).status, 201);
    assert.equal((await call('GET', '/v2/team/multi/manifests/latest')).headers['content-type'], OCI_INDEX);
    const dangling = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha('ghost'), size: 1 }] }));
    assert.equal((await call('PUT', '/v2/team/multi/manifests/bad', dangling, { 'content-type': OCI_INDEX })).code, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('records artifacts with a subject and lists them as referrers, filtered by artifactType', async () => {
    const subject = await pushImage('team/signed', 'v1');
    const emptyConfig = await pushBlob('team/signed', Buffer.from('{}'));
    const artifact = (artifactType: string) => Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyConfig, size: 2 }, layers: [],
      subject: { mediaType: OCI_MANIFEST, digest: subject.manifest, size: subject.body.length },
      annotations: { 'org.example.kind': artifactType },
    }));
    const sig = artifact('application/vnd.example.signature');
    const sbom = artifact('application/vnd.example.sbom');
    const pushed = await call('PUT', `/v2/team/signed/manifests/${sha(sig)}`, sig, { 'content-type': OCI_MANIFEST });
    assert.equal(pushed.status, 201);
    assert.equal(pushed.headers['oci-subject'], subject.manifest);
    await call('PUT', `/v2/team/signed/manifests/${sha(sbom)}`, sbom, { 'content-type': OCI_MANIFEST });
    const all = await call('GET', `/v2/team/signed/referrers/${subject.manifest}`);
    assert.equal(all.status, 200);
    assert.equal(all.headers['content-type'], OCI_INDEX);
    const index = JSON.parse(all.body.toString()) as { manifests: Array<{ digest: string; artifactType: string; annotations: Record<string, string> }> };
    assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [sha(sig), sha(sbom)].sort());
    assert.equal(index.manifests.find((m) => m.digest === sha(sig))?.annotations['org.example.kind'], 'application/vnd.example.signature');
    const filtered = await call('GET', `/v2/team/signed/referrers/${subject.manifest}?artifactType=application/vnd.example.sbom`);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual((JSON.parse(filtered.body.toString()) as typeof index).manifests.map((m) => m.digest), [sha(sbom)]);
    const none = await call('GET', `/v2/team/signed/referrers/${sha('nothing')}`);
    assert.deepEqual(JSON.parse(none.body.toString()).manifests, []);
  });

  it('lists tags with pagination and local repositories in the catalog', async () => {
    for (const tag of ['a', 'b', 'c']) await pushImage('local/paged', tag);
    const page = await call('GET', '/v2/local/paged/tags/list?n=2');
    assert.deepEqual(JSON.parse(page.body.toString()), { name: 'local/paged', tags: ['a', 'b'] });
    assert.equal(page.headers.link, '</v2/local/paged/tags/list?n=2&last=b>; rel="next"');
    const rest = await call('GET', '/v2/local/paged/tags/list?n=2&last=b');
    assert.deepEqual(JSON.parse(rest.body.toString()).tags, ['c']);
    const catalog = JSON.parse((await call('GET', '/v2/_catalog')).body.toString()) as { repositories: string[] };
    assert.ok(catalog.repositories.includes('local/paged') && catalog.repositories.includes('team/app'));
    assert.equal(catalog.repositories.some((r) => !r.startsWith('team/') && !r.startsWith('local/')), false, 'only local repositories');
    const first = await call('GET', '/v2/_catalog?n=1');
    assert.match(String(first.headers.link), /^<\/v2\/_catalog\?n=1&last=.+>; rel="next"$/);
    assert.equal((await call('GET', '/v2/team/never/tags/list')).code, 'NAME_UNKNOWN');
  });

  it('deletes tags and manifests; blob deletion is off unless configured', async () => {
    const image = await pushImage('team/del', 'gone');
    assert.equal((await call('DELETE', '/v2/team/del/manifests/gone')).status, 202);
    assert.equal((await call('GET', '/v2/team/del/manifests/gone')).status, 404);
    assert.equal((await call('GET', `/v2/team/del/manifests/${image.manifest}`)).status, 200, 'deleting a tag keeps the manifest');
    await call('PUT', '/v2/team/del/manifests/again', image.body, { 'content-type': OCI_MANIFEST });
    assert.equal((await call('DELETE', `/v2/team/del/manifests/${image.manifest}`)).status, 202);
    assert.equal((await call('GET', `/v2/team/del/manifests/${image.manifest}`)).code, 'MANIFEST_UNKNOWN');
    assert.equal((await call('GET', '/v2/team/del/manifests/again')).status, 404, 'tags of a deleted manifest go with it');
    assert.equal((await call('DELETE', `/v2/team/del/manifests/${image.manifest}`)).status, 404);
    const blob = await call('DELETE', `/v2/team/del/blobs/${image.layer}`);
    assert.equal(blob.status, 405);
    assert.equal(blob.code, 'UNSUPPORTED');
  });

  it('keeps pushed content private to local repositories: proxied names ask their upstream instead', async () => {
    const image = await pushImage('team/private', 'v1');
    fake.reset();
    for (const method of ['GET', 'HEAD'] as const) {
      const blob = await call(method, `/v2/library/alpine/blobs/${image.layer}`);
      assert.equal(blob.status, 404, `${method} of a pushed blob under a proxied name`);
      const manifest = await call(method, `/v2/library/alpine/manifests/${image.manifest}`, undefined, { accept: OCI_MANIFEST });
      assert.equal(manifest.status, 404, `${method} of a pushed manifest under a proxied name`);
    }
    assert.ok(fake.count({ host: 'registry', path: `/v2/library/alpine/blobs/${image.layer}` }) >= 1, 'the upstream was asked');
    // once the upstream really has the same bytes, the proxied name gets them from there, and then from cache
    const layer = (await call('GET', `/v2/team/private/blobs/${image.layer}`)).body;
    fake.addBlob(layer);
    assert.deepEqual((await call('GET', `/v2/library/alpine/blobs/${image.layer}`)).body, layer);
    assert.deepEqual((await call('GET', `/v2/team/private/blobs/${image.layer}`)).body, layer, 'still served to its own repository');
  });

  it('refuses writes to proxied repositories with a clear UNSUPPORTED', async () => {
    fake.reset();
    const reply = await call('POST', '/v2/library/alpine/blobs/uploads/');
    assert.equal(reply.status, 405);
    assert.equal(reply.code, 'UNSUPPORTED');
    assert.match(JSON.parse(reply.body.toString()).errors[0].message, /read-only cache of docker\.io; push to a local repository \(team\/…, local\/…\)/);
    assert.equal((await call('PUT', '/v2/library/alpine/manifests/x', '{}')).status, 405);
    assert.equal(fake.requests.length, 0);
  });

  it('never evicts local content, and two clients pushing one layer at once end with one blob', async () => {
    const content = randomBytes(500_000);
    const digest = sha(content);
    const [a, b] = await Promise.all([
      call('POST', `/v2/team/race1/blobs/uploads/?digest=${digest}`, content),
      call('POST', `/v2/team/race2/blobs/uploads/?digest=${digest}`, content),
    ]);
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    const files = await readdir(join(mirror.dataDir, 'blobs', 'sha256', digest.slice(7, 9)));
    assert.equal(files.filter((f) => f === digest.slice(7)).length, 1);
    await mirror.longshore.evictor.run(0);
    assert.deepEqual((await call('GET', `/v2/team/race1/blobs/${digest}`)).body, content);
    assert.equal((await call('GET', '/v2/team/app/manifests/1.0')).status, 200);
  });

  it('collects local blobs that no manifest references, and keeps those an image uses', async () => {
    const gc = await startMirror({ local: { prefixes: ['team/'], uploadTimeout: 1 }, upstreams: { 'docker.io': { url: fake.registryUrl } } });
    const saved = mirror;
    mirror = gc;
    try {
      const orphan = await pushBlob('team/gc', randomBytes(5_000));
      const image = await pushImage('team/gc', 'kept');
      await new Promise((r) => setTimeout(r, 5));
      const { released } = await gc.longshore.localRegistry.collectGarbage();
      assert.equal(released, 1);
      assert.equal((await call('GET', `/v2/team/gc/blobs/${orphan}`)).status, 404);
      assert.equal(gc.longshore.catalog.content(orphan as `sha256:${string}`), undefined, 'nobody holds it: removed from the store');
      for (const digest of [image.config, image.layer]) assert.equal((await call('HEAD', `/v2/team/gc/blobs/${digest}`)).status, 200);
      assert.equal((await call('GET', '/v2/team/gc/manifests/kept')).status, 200);
    } finally {
      mirror = saved;
      await gc.close();
    }
  });

  it('cleans abandoned upload sessions after the timeout', async () => {
    const short = await startMirror({ local: { prefixes: ['team/'], uploadTimeout: 1 }, upstreams: { 'docker.io': { url: fake.registryUrl } } });
    try {
      const start = await request(`${short.url}/v2/team/x/blobs/uploads/`, { method: 'POST' });
      await start.body.dump();
      const location = String(start.headers.location);
      await request(`${short.url}${location}`, { method: 'PATCH', body: 'partial' }).then((r) => r.body.dump());
      await new Promise((r) => setTimeout(r, 5));
      await short.longshore.localRegistry.sweep(); // the periodic sweep may have been first: either way it is gone
      const status = await request(`${short.url}${location}`);
      assert.equal(status.statusCode, 404);
      await status.body.dump();
      assert.deepEqual(await readdir(join(short.dataDir, 'uploads')), []);
    } finally {
      await short.close();
    }
  });

  it('resumes upload sessions after a restart, dropping what an interrupted append left', async () => {
    const config = { local: { prefixes: ['team/'], uploadTimeout: '1h' }, upstreams: { 'docker.io': { url: fake.registryUrl } } };
    const first = await startMirror(config);
    const dataDir = first.dataDir;
    const content = randomBytes(200_000);
    const at = (m: TestMirror) => (method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) =>
      request(`${m.url}${path}`, { method: method as 'GET', headers, ...(body !== undefined ? { body } : {}) })
        .then(async (r) => ({ status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) }));
    let location: string;
    let gone: string;
    try {
      location = String((await at(first)('POST', '/v2/team/resumed/blobs/uploads/')).headers.location);
      const patched = await at(first)('PATCH', location, content.subarray(0, 120_000), { 'content-range': '0-119999' });
      assert.equal(patched.headers.range, '0-119999');
      gone = String((await at(first)('POST', '/v2/team/resumed/blobs/uploads/')).headers.location);
    } finally {
      await first.close({ keepData: true });
    }
    const uploads = join(dataDir, 'uploads');
    // What a restart can leave: bytes of an append that never completed, a session whose file is gone,
    // and a file that no session owns.
    // (longer than the rest of the upload, so that bytes left behind would end up in the blob)
    await appendFile(join(uploads, location.split('/').pop()!), randomBytes(100_000));
    await rm(join(uploads, gone.split('/').pop()!));
    await writeFile(join(uploads, 'stray'), 'x');

    const second = await startMirror(config, dataDir);
    try {
      const call2 = at(second);
      const status = await call2('GET', location);
      assert.equal(status.status, 204);
      assert.equal(status.headers.range, '0-119999', 'the interrupted append is not counted');
      assert.equal((await stat(join(uploads, location.split('/').pop()!))).size, 120_000, 'and its bytes are cut off');
      assert.equal((await call2('GET', gone)).status, 404, 'a session without its file is forgotten');
      assert.deepEqual((await readdir(uploads)).sort(), [location.split('/').pop()!], 'the stray file is removed');
      const rest = await call2('PATCH', location, content.subarray(120_000, 180_000), { 'content-range': '120000-179999' });
      assert.equal(rest.headers.range, '0-179999');
      const done = await call2('PUT', `${location}?digest=${sha(content)}`, content.subarray(180_000));
      assert.equal(done.status, 201);
      assert.deepEqual((await call2('GET', `/v2/team/resumed/blobs/${sha(content)}`)).body, content);
      assert.equal(second.logs().filter((l) => l.msg === 'resumed upload sessions of an earlier run')[0]?.uploads, 1);
      // A resumed session's earlier bytes were hashed by another process: this one reads the file back.
      assert.equal(second.logs().filter((l) => l.msg === 'reading an upload back to hash it').length, 1);
    } finally {
      await second.close();
    }
  });
});
