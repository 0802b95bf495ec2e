import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeRegistry } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, errorCode, get } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

describe('tag lists', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => {
    fake = await FakeRegistry.start();
    for (const tag of ['3.18', '3.19', '3.20', 'edge', 'latest']) publishImage(fake, 'library/alpine', tag);
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, breaker: { failures: 1000 } } } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  it('passes the upstream tag list through', async () => {
    const reply = await get(`${mirror.url}/v2/alpine/tags/list`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json(), { name: 'library/alpine', tags: ['3.18', '3.19', '3.20', 'edge', 'latest'] });
    assert.equal(fake.count({ host: 'registry', status: 200, path: '/v2/library/alpine/tags/list' }), 1);
  });

  it('paginates with n and last, with a Link header that points back at the mirror', async () => {
    const first = await get(`${mirror.url}/v2/alpine/tags/list?n=2`);
    assert.deepEqual(first.json<{ tags: string[] }>().tags, ['3.18', '3.19']);
    assert.equal(first.headers.link, '</v2/alpine/tags/list?n=2&last=3.19>; rel="next"');
    const second = await get(`${mirror.url}/v2/alpine/tags/list?n=2&last=3.19`);
    assert.deepEqual(second.json<{ tags: string[] }>().tags, ['3.20', 'edge']);
    const bad = await get(`${mirror.url}/v2/alpine/tags/list?n=-1`);
    assert.equal(bad.status, 400);
    assert.equal(errorCode(bad), 'PAGINATION_NUMBER_INVALID');
  });

  it('answers an unknown repository with NAME_UNKNOWN', async () => {
    const reply = await get(`${mirror.url}/v2/nobody/nothing/tags/list`);
    assert.equal(reply.status, 404);
    assert.equal(errorCode(reply), 'NAME_UNKNOWN');
  });

  it('lists the tags it has cached when the upstream fails', async () => {
    await get(`${mirror.url}/v2/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES });
    await get(`${mirror.url}/v2/alpine/manifests/edge`, { accept: ALL_MANIFEST_TYPES });
    fake.forceStatus = 503;
    try {
      const reply = await get(`${mirror.url}/v2/alpine/tags/list`);
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json(), { name: 'library/alpine', tags: ['3.19', 'edge'] });
      const page = await get(`${mirror.url}/v2/alpine/tags/list?n=1`);
      assert.deepEqual(page.json<{ tags: string[] }>().tags, ['3.19']);
      assert.equal(page.headers.link, '</v2/alpine/tags/list?n=1&last=3.19>; rel="next"');
    } finally {
      fake.forceStatus = undefined;
    }
  });
});
