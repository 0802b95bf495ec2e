// Security findings 6, 7 and 5 (token cache): an upstream is not trusted with where the mirror connects
// or how much it writes. A hostile upstream must not steer blob redirects to loopback, link-local (cloud
// metadata) or private addresses, nor collect the mirror's credentials with a realm on a host of its
// choosing, nor fill the disk with a body that never ends; and a stream of new repository names must
// not grow the token cache without bound.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Agent } from 'undici';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput, UpstreamConfig } from '../../src/config/schema.js';
import { isLongshoreError } from '../../src/errors.js';
import type { Digest } from '../../src/registry/reference.js';
import { UpstreamAuth } from '../../src/upstream/auth.js';
import { UpstreamClient, type UpstreamClientOptions } from '../../src/upstream/client.js';
import { classifyAddress, tokenHostsFor, type ResolvedAddress } from '../../src/upstream/destinations.js';
import { startCountingServer, type CountingServer } from '../support/counting-server.js';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get, raw } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { startMirror, startMirrorOverFake, stopMirrorOverFake, type TestMirror } from '../support/mirror.js';
import { filesOnDisk } from '../support/store.js';
import { waitFor } from '../support/wait.js';

const silent = pino({ level: 'silent' });
type UpstreamInput = NonNullable<ConfigInput['upstreams']>[string];
/** The fake upstream of the redirect tests listens here, and the injected classifier calls it public. */
const PUBLIC_UPSTREAM = '127.0.0.3';
const treatAsPublic = (address: string) => (address === PUBLIC_UPSTREAM ? 'public' : classifyAddress(address));

function upstreamConfig(upstream: UpstreamInput): UpstreamConfig {
  return parseConfig({ upstreams: { 'docker.io': upstream } }).upstreams['docker.io']!;
}

async function rejectsWith(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isLongshoreError(err), `expected a LongshoreError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

async function consume(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('blob redirects from an upstream on a public address', () => {
  let fake: FakeRegistry;
  let digest: Digest;
  let content: Buffer;
  /** A loopback service the mirror can reach and the world cannot, on the CDN's port at another address. */
  let victim: CountingServer;
  let localhostVictim: CountingServer;
  const clients: UpstreamClient[] = [];
  const client = (upstream: Partial<UpstreamInput> = {}, options: UpstreamClientOptions = {}) => {
    const made = new UpstreamClient('docker.io', upstreamConfig({ url: fake.registryUrl, username: 'mirror', password: 'Mirror-Secret-1', ...upstream }), silent, undefined, { classifyAddress: treatAsPublic, ...options });
    clients.push(made);
    return made;
  };

  before(async () => {
    fake = await FakeRegistry.start({ host: PUBLIC_UPSTREAM, users: { mirror: 'Mirror-Secret-1' } });
    content = Buffer.from('a layer served by the CDN');
    digest = fake.addBlob(content) as Digest;
    victim = await startCountingServer('127.0.0.2', Number(new URL(fake.cdnUrl).port));
    localhostVictim = await startCountingServer('127.0.0.1');
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([fake.close(), victim.close(), localhostVictim.close()]);
  });

  it('follows a redirect to another public host, without the upstream\'s Authorization', async () => {
    fake.blobRedirect = undefined;
    fake.reset();
    const blob = await client().blob('GET', 'library/alpine', digest);
    assert.deepEqual(await consume(blob.body), content);
    const cdn = fake.requests.filter((r) => r.host === 'cdn');
    assert.equal(cdn.length, 1);
    assert.equal(cdn[0]!.headers.authorization, undefined);
    assert.ok(fake.requests.some((r) => r.host === 'registry' && r.headers.authorization?.startsWith('Bearer ')), 'the registry itself got the token');
  });

  for (const [what, target] of [
    ['a loopback IP', () => `http://127.0.0.2:${victim.port}/secret`],
    ['the cloud metadata service', () => 'http://169.254.169.254/latest/meta-data/iam/security-credentials/'],
    ['a private IP', () => 'http://10.1.2.3/internal'],
    ['an IPv4-mapped loopback IPv6 address', () => `http://[::ffff:127.0.0.2]:${victim.port}/secret`],
    ['the name localhost', () => `http://localhost:${localhostVictim.port}/secret`],
  ] as const) {
    it(`refuses a redirect to ${what} and connects to nothing there`, async () => {
      fake.blobRedirect = target;
      try {
        await rejectsWith(client().blob('GET', 'library/alpine', digest), 'LS_UPSTREAM_HOST_REFUSED', /redirected to .*(loopback|link-local|private)/);
      } finally {
        fake.blobRedirect = undefined;
      }
      assert.equal(victim.connections, 0, 'a connection reached the loopback victim');
      assert.equal(localhostVictim.connections, 0, 'a connection reached the victim behind localhost');
    });
  }

  it('closes a half-open circuit when its probe is a refused redirect: the upstream did answer', async () => {
    const probe = client({ retries: 0, breaker: { failures: 1, cooldown: 1 } });
    fake.forceStatus = 503;
    fake.forceCount = 1;
    await rejectsWith(probe.blob('GET', 'library/alpine', digest), 'LS_UPSTREAM_UNAVAILABLE');
    assert.equal(probe.breaker.state, 'open');
    await new Promise((r) => setTimeout(r, 10));
    fake.blobRedirect = () => `http://127.0.0.2:${victim.port}/secret`;
    try {
      await rejectsWith(probe.blob('GET', 'library/alpine', digest), 'LS_UPSTREAM_HOST_REFUSED');
    } finally {
      fake.blobRedirect = undefined;
    }
    assert.equal(probe.breaker.state, 'closed');
    assert.deepEqual(await consume((await probe.blob('GET', 'library/alpine', digest)).body), content);
  });

  it('refuses a redirect to a scheme other than http(s)', async () => {
    fake.blobRedirect = () => 'file:///etc/passwd';
    try {
      await rejectsWith(client().blob('GET', 'library/alpine', digest), 'LS_UPSTREAM_BAD_RESPONSE', /non-http/);
    } finally {
      fake.blobRedirect = undefined;
    }
  });

  it('with redirectHosts, follows only redirects to the names listed', async () => {
    const cdnPort = new URL(fake.cdnUrl).port;
    const resolveHost = async (hostname: string): Promise<ResolvedAddress[]> => {
      if (hostname.endsWith('.example')) return [{ address: PUBLIC_UPSTREAM, family: 4 }];
      throw Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    };
    const listed = client({ redirectHosts: ['*.cdn.example'] }, { resolveHost });
    fake.blobRedirect = (d) => `http://eu.cdn.example:${cdnPort}/blobs/${d}`;
    try {
      assert.deepEqual(await consume((await listed.blob('GET', 'library/alpine', digest)).body), content);
      // Public, but not listed: refused before any connection.
      fake.blobRedirect = (d) => `http://cdn.other.example:${cdnPort}/blobs/${d}`;
      fake.reset();
      await rejectsWith(listed.blob('GET', 'library/alpine', digest), 'LS_UPSTREAM_HOST_REFUSED', /redirectHosts/);
      assert.equal(fake.count({ host: 'cdn' }), 0);
    } finally {
      fake.blobRedirect = undefined;
    }
  });

  it('connects to the address it checked: a name that answers public, then loopback (DNS rebinding)', async () => {
    const cdnPort = new URL(fake.cdnUrl).port;
    const answers: string[] = [];
    const rebinding = (first: string, then: string) => async (hostname: string): Promise<ResolvedAddress[]> => {
      const address = answers.filter((a) => a.startsWith(hostname)).length === 0 ? first : then;
      answers.push(`${hostname} ${address}`);
      return [{ address, family: 4 }];
    };
    fake.blobRedirect = (d) => `http://rebind.example:${cdnPort}/blobs/${d}`;
    try {
      fake.reset();
      const publicFirst = client({}, { resolveHost: rebinding(PUBLIC_UPSTREAM, '127.0.0.2') });
      assert.deepEqual(await consume((await publicFirst.blob('GET', 'library/alpine', digest)).body), content);
      assert.deepEqual(answers, [`rebind.example ${PUBLIC_UPSTREAM}`], 'resolved more than once: the connection may use an unchecked answer');
      assert.equal(fake.count({ host: 'cdn' }), 1);

      answers.length = 0;
      const loopbackFirst = client({}, { resolveHost: rebinding('127.0.0.2', PUBLIC_UPSTREAM) });
      await rejectsWith(loopbackFirst.blob('GET', 'library/alpine', digest), 'LS_UPSTREAM_HOST_REFUSED', /loopback/);
      assert.equal(victim.connections, 0);
    } finally {
      fake.blobRedirect = undefined;
    }
  });

  it('lets an upstream on a loopback address redirect to another loopback port (its own class)', async () => {
    const loopbackFake = await FakeRegistry.start();
    const own = new UpstreamClient('docker.io', upstreamConfig({ url: loopbackFake.registryUrl }), silent);
    try {
      const bytes = Buffer.from('loopback CDN');
      const d = loopbackFake.addBlob(bytes) as Digest;
      assert.deepEqual(await consume((await own.blob('GET', 'library/alpine', d)).body), bytes);
      assert.equal(loopbackFake.count({ host: 'cdn' }), 1);
      // …but not to link-local: the metadata service is in no one's class but its own.
      loopbackFake.blobRedirect = () => 'http://169.254.169.254/latest/meta-data/';
      await rejectsWith(own.blob('GET', 'library/alpine', d), 'LS_UPSTREAM_HOST_REFUSED', /link-local/);
    } finally {
      await own.close();
      await loopbackFake.close();
    }
  });
});

describe('a mirror behind an upstream that redirects to the metadata service', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  before(async () => ({ fake, mirror } = await startMirrorOverFake()));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('answers an error, serves nothing from there, and keeps serving', async () => {
    const digest = fake.addBlob(Buffer.from('layer'));
    fake.blobRedirect = () => 'http://169.254.169.254/latest/meta-data/';
    const reply = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`);
    fake.blobRedirect = undefined;
    assert.equal(reply.status, 502);
    assert.match(reply.body.toString(), /169\.254\.169\.254/);
    assert.ok(mirror.logs().some((l) => l.msg === 'upstream redirect refused; nothing sent' && l.address === '169.254.169.254'));
    const again = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`);
    assert.equal(again.status, 200);
  });
});

describe('token realm on a host the upstream does not own', () => {
  const USER = { username: 'mirror', password: 'Realm-Secret-7' };
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let image: ReturnType<typeof publishImage>;

  before(async () => {
    // Registry on 127.0.0.1, its token service on 127.0.0.2: the hosts differ.
    fake = await FakeRegistry.start({ tokenHost: '127.0.0.2', users: { [USER.username]: USER.password } });
    image = publishImage(fake, 'library/alpine', '3.19');
    mirror = await startMirror({
      upstreams: {
        'docker.io': { url: fake.registryUrl, ...USER },
        'ghcr.io': { url: fake.registryUrl, ...USER, tokenHosts: ['127.0.0.2'] },
      },
    });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  it('sends no request, and no credentials, to a realm that is not allowed', async () => {
    fake.reset();
    const reply = await get(`${mirror.url}/v2/library/alpine/manifests/${image.tag}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 502);
    const body = reply.body.toString();
    assert.match(body, /127\.0\.0\.2/);
    assert.match(body, /tokenHosts/);
    assert.equal(fake.count({ host: 'token' }), 0, 'the foreign realm was contacted');
    assert.ok(!body.includes(USER.password));
  });

  it('fetches tokens from a realm host listed in tokenHosts', async () => {
    fake.reset();
    const reply = await get(`${mirror.url}/v2/ghcr.io/library/alpine/manifests/${image.tag}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 200);
    const tokens = fake.requests.filter((r) => r.host === 'token');
    assert.ok(tokens.length > 0);
    assert.ok(tokens.every((r) => r.headers.authorization?.startsWith('Basic ')));
  });

  it('allows auth.docker.io by default for Docker Hub only', async () => {
    const seen: string[] = [];
    const dispatcher = new Agent({ connect: { lookup: (hostname, _options, callback) => { seen.push(hostname); callback(new Error('offline test'), '', 4); } } });
    try {
      assert.deepEqual(tokenHostsFor(new URL('https://ghcr.io'), null), []);
      assert.deepEqual(tokenHostsFor(new URL('https://index.docker.io'), ['auth.example']), ['auth.example']);
      const upstreamUrl = new URL('https://registry-1.docker.io');
      const hub = new UpstreamAuth({ upstreamUrl, credentials: USER, tokenHosts: tokenHostsFor(upstreamUrl, null), dispatcher, headersTimeout: 1_000, log: silent });
      await assert.rejects(hub.onUnauthorized('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"', 'repository:library/alpine:pull', undefined), (err: Error) => !isLongshoreError(err, 'LS_UPSTREAM_HOST_REFUSED'));
      assert.deepEqual(seen, ['auth.docker.io']);
      await rejectsWith(hub.onUnauthorized('Bearer realm="https://auth.evil.example/token"', 'repository:library/alpine:pull', undefined), 'LS_UPSTREAM_HOST_REFUSED', /auth\.evil\.example/);
      assert.deepEqual(seen, ['auth.docker.io']);
    } finally {
      await dispatcher.close();
    }
  });
});

describe('blob size limits', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  const MAX = 1024 * 1024;

  before(async () => ({ fake, mirror } = await startMirrorOverFake({ maxBlobSize: MAX })));
  after(() => stopMirrorOverFake({ fake, mirror }));

  const tmpFiles = async () => readdir(join(mirror.dataDir, 'tmp'));

  it('cuts off an endless body without Content-Length at maxBlobSize, stores nothing, and does not resume it', async () => {
    const digest = fake.addBlob(Buffer.from('endless'));
    const upTo = 48 * MAX;
    const fault = { kind: 'endless' as const, sent: 0, upTo };
    fake.setBlobFault(digest, fault);
    fake.reset();
    const reply = await raw(mirror.url, `/v2/library/x/blobs/${digest}`);
    assert.ok(reply.error || reply.status >= 500, 'the client must see a failed transfer');
    assert.ok(reply.body.length <= MAX);
    await waitFor(async () => (await tmpFiles()).length === 0, { what: 'temp file removed', timeoutMs: 30_000 });
    assert.equal((await filesOnDisk(mirror.dataDir)).has(digest), false);
    await waitFor(() => mirror.logs().some((l) => l.msg === 'blob download failed; nothing cached'), { what: 'download failure logged', timeoutMs: 10_000 });
    // One GET: a body refused for its size is not resumed with Range requests.
    assert.equal(fake.count({ host: 'cdn', path: `/blobs/${digest}` }), 1);
    const sentAtFailure = fault.sent;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(fault.sent - sentAtFailure < 4 * 1024 * 1024, 'the upstream connection was not closed');
    assert.ok(sentAtFailure < upTo, 'the upstream body was not cut off');
    // The mirror keeps serving.
    const ok = Buffer.from('a normal layer');
    const okDigest = fake.addBlob(ok);
    const again = await get(`${mirror.url}/v2/library/x/blobs/${okDigest}`);
    assert.equal(again.status, 200);
    assert.equal(sha256(again.body), okDigest);
    // The client has the last byte just before the rename: wait for it, so that the next test's temp dir is empty.
    await waitFor(async () => (await filesOnDisk(mirror.dataDir)).has(okDigest), { what: 'blob stored', timeoutMs: 10_000 });
  });

  it('refuses a Content-Length over maxBlobSize before writing anything', async () => {
    const digest = fake.addBlob(Buffer.alloc(MAX + 1, 3));
    const reply = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(reply.status, 502);
    assert.match(reply.body.toString(), /maxBlobSize/);
    assert.deepEqual(await tmpFiles(), []);
    assert.equal((await filesOnDisk(mirror.dataDir)).has(digest), false);
  });

  it('still caches a blob without Content-Length under the limit', async () => {
    const content = Buffer.alloc(MAX - 10, 4);
    const digest = fake.addBlob(content);
    fake.setBlobFault(digest, { kind: 'unsized' });
    const reply = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(reply.status, 200);
    assert.equal(sha256(reply.body), digest);
    await waitFor(async () => (await filesOnDisk(mirror.dataDir)).get(digest) === content.length, { what: 'blob stored', timeoutMs: 10_000 });
  });
});

describe('the size a manifest declared (expectedSize)', () => {
  let fake: FakeRegistry;
  let client: UpstreamClient;
  before(async () => {
    fake = await FakeRegistry.start({ cdn: false });
    client = new UpstreamClient('docker.io', upstreamConfig({ url: fake.registryUrl }), silent);
  });
  after(async () => {
    await client.close();
    await fake.close();
  });

  it('cuts off a body without Content-Length as soon as it passes the declared size', async () => {
    const digest = fake.addBlob(Buffer.from('declared')) as Digest;
    fake.setBlobFault(digest, { kind: 'endless', upTo: 64 * 1024 * 1024 });
    const blob = await client.blob('GET', 'library/x', digest, undefined, 100_000);
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of blob.body) received += (chunk as Buffer).length;
    }, (err: unknown) => isLongshoreError(err, 'LS_CONTENT_MISMATCH'));
    assert.ok(received <= 100_000);
  });

  it('refuses a Content-Length over the declared size, and over it on a resume', async () => {
    const digest = fake.addBlob(Buffer.alloc(5_000, 1)) as Digest;
    await rejectsWith(client.blob('GET', 'library/x', digest, undefined, 4_000), 'LS_CONTENT_MISMATCH');
    await rejectsWith(client.blobFrom('library/x', digest, 1_000, undefined, 4_000), 'LS_CONTENT_MISMATCH');
    const exact = await client.blob('GET', 'library/x', digest, undefined, 5_000);
    assert.equal((await consume(exact.body)).length, 5_000);
  });
});

describe('upstream token cache', () => {
  let fake: FakeRegistry;
  const dispatcher = new Agent();
  before(async () => {
    fake = await FakeRegistry.start();
  });
  after(async () => {
    await dispatcher.close();
    await fake.close();
  });

  it('keeps at most maxTokens scopes however many repositories are pulled', async () => {
    const upstreamUrl = new URL(fake.registryUrl);
    const auth = new UpstreamAuth({ upstreamUrl, credentials: undefined, tokenHosts: [], dispatcher, headersTimeout: 5_000, log: silent, maxTokens: 25 });
    const challenge = `Bearer realm="${fake.tokenUrl}/token",service="fake-registry"`;
    for (let i = 0; i < 120; i++) {
      const scope = `repository:probe/name-${i}:pull`;
      assert.match((await auth.onUnauthorized(challenge, scope, undefined)) ?? '', /^Bearer /);
      assert.ok(auth.cachedTokens <= 25, `${auth.cachedTokens} tokens cached`);
    }
    assert.equal(auth.cachedTokens, 25);
    // The most recent scope is still served from the cache, without a token request.
    const before = fake.count({ host: 'token' });
    assert.match((await auth.headerFor('repository:probe/name-119:pull')) ?? '', /^Bearer /);
    assert.equal(fake.count({ host: 'token' }), before);
  });
});
