// Issue 6: an upstream's credentials go to that upstream's registry and token service only — never to
// another upstream, a blob-redirect target, or a token realm reached over a weaker scheme — and appear
// in no log line and no error a client sees.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Agent } from 'undici';
import { UpstreamAuth } from '../../src/upstream/auth.js';
import { FakeRegistry, type RecordedRequest } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

const HUB = { username: 'hub-mirror', password: 'hub-Secret-0001' };
const GHCR = { username: 'ghcr-mirror', password: 'ghcr-Secret-0002' };
const WRONG = { username: 'quay-mirror', password: 'quay-Wrong-0003' };

const encoded = (c: { username: string; password: string }) => Buffer.from(`${c.username}:${c.password}`).toString('base64');

/** Every place a credential could hide in a request's headers. */
function carries(requests: readonly RecordedRequest[], c: { username: string; password: string }): RecordedRequest[] {
  return requests.filter((r) => JSON.stringify(r.headers).includes(encoded(c)) || JSON.stringify(r.headers).includes(c.password));
}

describe('upstream secrets stay with their upstream', () => {
  let hub: FakeRegistry;
  let ghcr: FakeRegistry;
  let quay: FakeRegistry;
  let mirror: TestMirror;
  let hubImage: PublishedImage;
  let ghcrImage: PublishedImage;

  before(async () => {
    hub = await FakeRegistry.start({ users: { [HUB.username]: HUB.password } });
    ghcr = await FakeRegistry.start({ users: { [GHCR.username]: GHCR.password } });
    quay = await FakeRegistry.start({ users: { 'quay-mirror': 'the-right-one' } });
    hubImage = publishImage(hub, 'library/alpine', '3.19');
    ghcrImage = publishImage(ghcr, 'owner/img', '1.0');
    publishImage(quay, 'org/tool', '1.0');
    mirror = await startMirror({
      logLevel: 'trace',
      upstreams: {
        'docker.io': { url: hub.registryUrl, ...HUB },
        'ghcr.io': { url: ghcr.registryUrl, ...GHCR },
        'quay.io': { url: quay.registryUrl, ...WRONG },
      },
    });
    for (const [path, image] of [['library/alpine', hubImage], ['ghcr.io/owner/img', ghcrImage]] as const) {
      assert.equal((await get(`${mirror.url}/v2/${path}/manifests/${image.tag}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
      for (const digest of image.blobs.keys()) assert.equal((await get(`${mirror.url}/v2/${path}/blobs/${digest}`)).status, 200);
    }
  });
  after(async () => {
    await mirror.close();
    await Promise.all([hub.close(), ghcr.close(), quay.close()]);
  });

  it('sent each upstream\'s credentials to its own token service only', () => {
    assert.ok(carries(hub.requests.filter((r) => r.host === 'token'), HUB).length > 0, 'docker.io\'s token service never saw its credentials');
    assert.ok(carries(ghcr.requests.filter((r) => r.host === 'token'), GHCR).length > 0, 'ghcr.io\'s token service never saw its credentials');
    assert.deepEqual(carries(ghcr.requests, HUB).map((r) => `${r.host} ${r.path}`), []);
    assert.deepEqual(carries(hub.requests, GHCR).map((r) => `${r.host} ${r.path}`), []);
    assert.deepEqual(carries(quay.requests, HUB).concat(carries(quay.requests, GHCR)).map((r) => `${r.host} ${r.path}`), []);
  });

  it('sent no Authorization at all to the blob-redirect targets', () => {
    const cdn = [...hub.requests, ...ghcr.requests].filter((r) => r.host === 'cdn');
    assert.ok(cdn.length > 0);
    assert.deepEqual(cdn.filter((r) => r.headers.authorization !== undefined).map((r) => r.path), []);
  });

  it('shows a refused password neither to the client nor in the log', async () => {
    const reply = await get(`${mirror.url}/v2/quay.io/org/tool/manifests/1.0`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 403);
    const body = reply.body.toString();
    for (const secret of [WRONG.password, encoded(WRONG)]) assert.ok(!body.includes(secret), 'secret in the error body');
  });

  it('logged no password, at trace level, in any form', () => {
    const log = mirror.rawLogs();
    assert.ok(log.length > 0);
    for (const c of [HUB, GHCR, WRONG]) {
      assert.ok(!log.includes(c.password), `${c.username}'s password is in the log`);
      assert.ok(!log.includes(encoded(c)), `${c.username}'s Basic credentials are in the log`);
    }
  });
});

describe('upstream token realm on a weaker scheme', () => {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: 'anonymous-token', expires_in: 60 }));
  });
  const agent = new Agent();

  before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
  after(async () => {
    await agent.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('does not send an https upstream\'s credentials to a plain-http realm', async () => {
    const { port } = server.address() as AddressInfo;
    // The realm's host is allowed (tokenHosts); only its scheme is weaker.
    const auth = new UpstreamAuth({ upstreamUrl: new URL('https://registry.example'), credentials: HUB, tokenHosts: ['127.0.0.1'], dispatcher: agent, headersTimeout: 5_000, log: pino({ level: 'silent' }) });
    const header = await auth.onUnauthorized(`Bearer realm="http://127.0.0.1:${port}/token",service="x"`, 'repository:library/alpine:pull', undefined);
    assert.equal(header, 'Bearer anonymous-token');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.authorization, undefined);
  });
});
