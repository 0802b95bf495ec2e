// Pass-through credentials (upstreams.<host>.passThroughCredentials): a client's own credentials for
// an upstream go to that upstream and nowhere else, and cached content of such an upstream is served to
// a client only after the upstream accepted that client's credentials for the repository.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, callRegistry, errorCode, get } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

const CAROL = { username: 'carol', password: 'carol-Secret-1' };
const DAVE = { username: 'dave', password: 'dave-Secret-2' };
const basic = (c: { username: string; password: string }) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
const tokenCredentials = (fake: FakeRegistry) => fake.requests.filter((r) => r.host === 'token').map((r) => r.headers.authorization ?? 'anonymous');

describe('pass-through credentials', () => {
  let hub: FakeRegistry;
  let other: FakeRegistry;
  let mirror: TestMirror;
  let secret: PublishedImage;
  let pub: PublishedImage;

  before(async () => {
    // carol may pull private/*, dave may not; anonymous clients get library/* only. The mirror's own
    // account ("mirror") may pull nothing private: only carol's credentials can fetch private/app. It
    // alone may pull team/*, which only the operator's jobs (warm) reach with it.
    hub = await FakeRegistry.start({
      users: { carol: CAROL.password, dave: DAVE.password, mirror: 'mirror-pw' },
      acl: { carol: ['private/', 'library/', 'open/'], dave: ['library/'], mirror: ['library/', 'team/'], '': ['library/', 'open/'] },
      isolate: true,
    });
    other = await FakeRegistry.start({ users: { mirror: 'other-pw' } });
    secret = publishImage(hub, 'private/app', '1');
    pub = publishImage(hub, 'library/alpine', '3.19');
    publishImage(other, 'owner/img', '1');
    mirror = await startMirror({
      upstreams: {
        'docker.io': { url: hub.registryUrl, username: 'mirror', password: 'mirror-pw', passThroughCredentials: true, tagTTL: '1h' },
        'ghcr.io': { url: other.registryUrl, username: 'mirror', password: 'other-pw' },
      },
    });
  });
  after(async () => {
    await mirror.close();
    await hub.close();
    await other.close();
  });
  beforeEach(() => {
    hub.reset();
    other.reset();
  });

  it('warms with the mirror\'s own account (no client lends credentials to a job), and serves it only to clients the upstream accepts', async () => {
    publishImage(hub, 'team/tool', '1');
    const { summary } = await mirror.longshore.jobs.warm({ refs: ['docker.io/team/tool:1'], platforms: ['linux/amd64'], concurrency: 2 }, () => undefined);
    assert.equal(summary.failed, 0);
    assert.equal(summary.images, 1);
    assert.ok(tokenCredentials(hub).length > 0 && tokenCredentials(hub).every((c) => c === basic({ username: 'mirror', password: 'mirror-pw' })), tokenCredentials(hub).join(', '));
    hub.reset();
    for (const client of [undefined, DAVE, CAROL]) {
      const reply = await get(`${mirror.url}/v2/team/tool/manifests/1`, { accept: ALL_MANIFEST_TYPES, ...(client ? { authorization: basic(client) } : {}) });
      assert.equal(reply.status, 401, `${client?.username ?? 'anonymous'}: what the job cached is not theirs`);
    }
    assert.ok(tokenCredentials(hub).every((c) => c !== basic({ username: 'mirror', password: 'mirror-pw' })), 'clients were checked with their own credentials');
  });

  it('asks the upstream again, per client, whether a new name is its repository: one client\'s "no" is not remembered for another', async () => {
    const asked = () => hub.count({ host: 'registry', method: 'GET', path: '/v2/open/tool/tags/list' });
    const first = await callRegistry(mirror.url, 'POST', '/v2/open/tool/blobs/uploads/');
    assert.equal(first.status, 202, 'the upstream has no open/tool yet');
    assert.equal((await callRegistry(mirror.url, 'DELETE', String(first.headers.location))).status, 204);
    publishImage(hub, 'open/tool', '1');
    const second = await callRegistry(mirror.url, 'POST', '/v2/open/tool/blobs/uploads/', undefined, { authorization: basic(CAROL) });
    assert.equal(second.status, 405, 'now the upstream has it: a push would shadow it');
    assert.equal(asked(), 2, 'the first client\'s answer was not reused');
  });

  it('asks an anonymous client for credentials (401, Basic challenge) where the upstream refuses anonymous access', async () => {
    const reply = await get(`${mirror.url}/v2/private/app/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 401);
    assert.equal(errorCode(reply), 'UNAUTHORIZED');
    assert.match(String(reply.headers['www-authenticate']), /^Basic realm="longshore"/);
    // the mirror's own account was not used on the client's behalf
    assert.ok(tokenCredentials(hub).every((c) => c === 'anonymous'), tokenCredentials(hub).join(', '));
  });

  it('asks for credentials at GET /v2/: docker, podman and skopeo send theirs only to a registry whose ping asked', async () => {
    const ping = await get(`${mirror.url}/v2/`);
    assert.equal(ping.status, 401);
    assert.equal(errorCode(ping), 'UNAUTHORIZED');
    assert.match(String(ping.headers['www-authenticate']), /^Basic realm="longshore"/);
    // skopeo and podman answer a Basic challenge with empty credentials when they hold none: anonymous
    assert.equal((await get(`${mirror.url}/v2/`, { authorization: `Basic ${Buffer.from(':').toString('base64')}` })).status, 401);
    assert.equal((await get(`${mirror.url}/v2/`, { authorization: basic(DAVE) })).status, 200);
    assert.equal(hub.requests.length, 0, 'the ping asks the upstream nothing');
  });

  it('treats empty Basic credentials as anonymous, not as a user upstream', async () => {
    const empty = `Basic ${Buffer.from(':').toString('base64')}`;
    const reply = await get(`${mirror.url}/v2/library/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES, authorization: empty });
    assert.equal(reply.status, 200);
    assert.ok(tokenCredentials(hub).every((c) => c === 'anonymous'), tokenCredentials(hub).join(', '));
  });

  it('pulls a private image with the client\'s credentials, which reach the upstream\'s token service', async () => {
    const index = await get(`${mirror.url}/v2/private/app/manifests/1`, { accept: ALL_MANIFEST_TYPES, authorization: basic(CAROL) });
    assert.equal(index.status, 200);
    assert.equal(index.headers['docker-content-digest'], secret.index);
    for (const digest of Object.values(secret.platforms)) {
      assert.equal((await get(`${mirror.url}/v2/private/app/manifests/${digest}`, { accept: ALL_MANIFEST_TYPES, authorization: basic(CAROL) })).status, 200);
    }
    for (const [digest, bytes] of secret.blobs) {
      const blob = await get(`${mirror.url}/v2/private/app/blobs/${digest}`, { authorization: basic(CAROL) });
      assert.equal(blob.status, 200);
      assert.deepEqual(blob.body, bytes);
    }
    const used = tokenCredentials(hub);
    assert.ok(used.length > 0 && used.every((c) => c === basic(CAROL)), used.join(', '));
  });

  it('does not serve the cached private content to a client the upstream refuses, by any name', async () => {
    const [layer] = [...secret.blobs.keys()];
    for (const path of [`/v2/private/app/blobs/${layer}`, `/v2/private/app/manifests/${secret.index}`, `/v2/private/app/manifests/1`]) {
      for (const authorization of [basic(DAVE), undefined]) {
        const reply = await get(`${mirror.url}${path}`, { accept: ALL_MANIFEST_TYPES, ...(authorization ? { authorization } : {}) });
        assert.equal(reply.status, 401, `${path} as ${authorization ? 'dave' : 'anonymous'}`);
        assert.ok(!reply.body.includes(secret.blobs.get(layer!)!.subarray(0, 64)));
      }
    }
    // dave's credentials went to the hub's token service, and only there
    assert.ok(tokenCredentials(hub).includes(basic(DAVE)));
    assert.equal(hub.count({ method: 'GET', path: /\/blobs\// }), 0, 'nothing downloaded on a refused client\'s behalf');
  });

  it('serves the accepted client from cache while the verdict is fresh: no upstream request at all', async () => {
    for (const [digest] of secret.blobs) assert.equal((await get(`${mirror.url}/v2/private/app/blobs/${digest}`, { authorization: basic(CAROL) })).status, 200);
    assert.equal((await get(`${mirror.url}/v2/private/app/manifests/1`, { accept: ALL_MANIFEST_TYPES, authorization: basic(CAROL) })).status, 200);
    assert.equal(hub.requests.length, 0);
  });

  it('serves anonymous clients what the upstream serves anonymous clients', async () => {
    const reply = await get(`${mirror.url}/v2/library/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['docker-content-digest'], pub.index);
    assert.ok(tokenCredentials(hub).every((c) => c === 'anonymous'));
  });

  it('never forwards a client\'s credentials to an upstream without pass-through', async () => {
    const reply = await get(`${mirror.url}/v2/ghcr.io/owner/img/manifests/1`, { accept: ALL_MANIFEST_TYPES, authorization: basic(CAROL) });
    assert.equal(reply.status, 200);
    const used = tokenCredentials(other);
    assert.ok(used.length > 0 && used.every((c) => c === `Basic ${Buffer.from('mirror:other-pw').toString('base64')}`), used.join(', '));
    assert.equal(tokenCredentials(hub).length, 0);
  });

  it('writes no client password into the log', () => {
    for (const secretText of [CAROL.password, DAVE.password, basic(CAROL).slice(6), basic(DAVE).slice(6)]) {
      assert.equal(mirror.rawLogs().includes(secretText), false);
    }
  });
});

describe('pass-through credentials and client authentication', () => {
  it('cannot be combined: clients would send the mirror\'s tokens, not their upstream credentials', () => {
    assert.throws(() => parseConfig({
      auth: { enabled: true },
      upstreams: { 'docker.io': { url: 'https://registry-1.docker.io', passThroughCredentials: true } },
    }), /passThroughCredentials cannot be combined with auth\.enabled/);
  });
});
