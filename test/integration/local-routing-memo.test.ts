// A manifest GET of a cached (upstream) repository asks whether its name is a local repository. That was
// a SQLite query on every request, 7 % of the server's CPU under scenario 5's load (bench/NOTES.md §3).
// The answer "not local" is remembered until this process links content to a local repository; these
// tests check that the query stops repeating, and that a push still turns a name local at once.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { LOCAL } from '../../src/registry/routing.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

const MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('whether a name is a local repository, on the manifest hot path', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let localQueries: string[];

  before(async () => {
    fake = await FakeRegistry.start();
    const layer = fake.addBlob(randomBytes(1000));
    fake.addManifest('team/app', MANIFEST, { schemaVersion: 2, mediaType: MANIFEST, layers: [{ digest: layer, size: 1000 }] }, 'v1');
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, negativeTTL: 0 } } });
    const catalog = mirror.longshore.catalog;
    const holds = catalog.holdsRepository.bind(catalog);
    localQueries = [];
    catalog.holdsRepository = (upstream: string, repository: string) => {
      if (upstream === LOCAL) localQueries.push(repository);
      return holds(upstream, repository);
    };
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  async function get(path: string): Promise<{ status: number; digest: unknown }> {
    const res = await request(`${mirror.url}${path}`, { headers: { accept: `${MANIFEST}, ${OCI_MANIFEST}` } });
    await res.body.arrayBuffer();
    return { status: res.statusCode, digest: res.headers['docker-content-digest'] };
  }

  it('asks the database once, not on every warm GET', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await get('/v2/team/app/manifests/v1')).status, 200);
    assert.deepEqual(localQueries.filter((name) => name === 'team/app'), ['team/app']);
  });

  it('routes a name to the local repository as soon as a push creates it', async () => {
    // Remembered as not local first: the GET goes upstream, which does not know the name.
    assert.equal((await get('/v2/team/pushed/manifests/v1')).status, 404);
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const put = await request(`${mirror.url}/v2/team/pushed/blobs/uploads/?digest=${sha(config)}`, { method: 'POST', body: config, headers: { 'content-type': 'application/octet-stream' } });
    await put.body.arrayBuffer();
    assert.equal(put.statusCode, 201);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [] }));
    const pushed = await request(`${mirror.url}/v2/team/pushed/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'content-type': OCI_MANIFEST } });
    await pushed.body.arrayBuffer();
    assert.equal(pushed.statusCode, 201);
    assert.deepEqual(await get('/v2/team/pushed/manifests/v1'), { status: 200, digest: sha(manifest) });
  });
});
