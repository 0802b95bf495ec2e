// Issue 16, tag policies: a cached tag matching an upstream's immutableTags is served without
// revalidation, forever; other tags still go stale after tagTTL.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

describe('immutableTags', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => {
    fake = await FakeRegistry.start();
    // tagTTL 0: every other tag is revalidated on every pull.
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: 0, immutableTags: ['*.*.*', '*-alpine3.19'] } } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  const manifestRequests = (tag: string) => fake.count({ host: 'registry', path: `/v2/library/app/manifests/${tag}` });

  it('serves a matching tag from cache without asking upstream, even after the tag moved there', async () => {
    const first = publishImage(fake, 'library/app', '1.2.3');
    publishImage(fake, 'library/app', '20-alpine3.19');
    for (const tag of ['1.2.3', '20-alpine3.19']) assert.equal((await get(`${mirror.url}/v2/library/app/manifests/${tag}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    const before = [manifestRequests('1.2.3'), manifestRequests('20-alpine3.19')];
    publishImage(fake, 'library/app', '1.2.3'); // moved upstream: an immutable tag is not expected to
    for (let i = 0; i < 3; i++) {
      const reply = await get(`${mirror.url}/v2/library/app/manifests/1.2.3`, { accept: ALL_MANIFEST_TYPES });
      assert.equal(sha256(reply.body), first.index);
      assert.equal((await get(`${mirror.url}/v2/library/app/manifests/20-alpine3.19`, { accept: ALL_MANIFEST_TYPES }, 'HEAD')).status, 200);
    }
    assert.deepEqual([manifestRequests('1.2.3'), manifestRequests('20-alpine3.19')], before);
  });

  it('revalidates a tag that matches no pattern on every pull (tagTTL 0)', async () => {
    publishImage(fake, 'library/app', 'latest');
    await get(`${mirror.url}/v2/library/app/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    const before = manifestRequests('latest');
    await get(`${mirror.url}/v2/library/app/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(manifestRequests('latest'), before + 1, 'one HEAD');
  });
});
