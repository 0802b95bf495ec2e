import assert from 'node:assert/strict';
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, errorCode, get, raw } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

describe('pull-through read path', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let image: PublishedImage;
  let oci: PublishedImage;

  before(async () => {
    fake = await FakeRegistry.start({ users: { mirror: 's3cret-pw' } });
    image = publishImage(fake, 'library/alpine', '3.19', 'docker');
    oci = publishImage(fake, 'team/ocitest', '1.0', 'oci');
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, username: 'mirror', password: 's3cret-pw', tagTTL: '1h' } } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });
  beforeEach(() => fake.reset());

  it('answers the API version check', async () => {
    const reply = await get(`${mirror.url}/v2/`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.deepEqual(reply.json(), {});
  });

  it('maps a single-name Docker Hub image to library/ and passes the index through byte for byte', async () => {
    const reply = await get(`${mirror.url}/v2/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], image.indexType);
    assert.equal(reply.headers['docker-content-digest'], image.index);
    assert.equal(reply.headers.etag, `"${image.index}"`);
    assert.equal(Number(reply.headers['content-length']), reply.body.length);
    assert.deepEqual(reply.body, fake.manifests.get(image.index)!.body);
    // resolved with a HEAD (free on Docker Hub), fetched once by the digest it named
    assert.equal(fake.count({ host: 'registry', method: 'HEAD', status: 200, path: '/v2/library/alpine/manifests/3.19' }), 1);
    assert.equal(fake.count({ host: 'registry', method: 'GET', status: 200, path: `/v2/library/alpine/manifests/${image.index}` }), 1);
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: '/v2/library/alpine/manifests/3.19' }), 0);
    // the client's Accept list went upstream as sent
    const upstreamGet = fake.requests.find((r) => r.host === 'registry' && r.method === 'GET' && r.path.includes('/manifests/'));
    assert.equal(upstreamGet?.headers.accept, ALL_MANIFEST_TYPES);
  });

  it('serves a cached tag without contacting the upstream while it is fresh', async () => {
    await get(`${mirror.url}/v2/library/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES });
    fake.reset();
    const again = await get(`${mirror.url}/v2/library/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(again.status, 200);
    assert.equal(again.headers['docker-content-digest'], image.index);
    assert.equal(fake.requests.length, 0);
  });

  it('answers a cached tag from cache only for clients that accept its media type', async () => {
    await get(`${mirror.url}/v2/library/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES });
    fake.reset();
    const narrow = await get(`${mirror.url}/v2/library/alpine/manifests/3.19`, { accept: 'application/vnd.docker.distribution.manifest.v2+json' });
    // the cached index is not what this client accepts: the upstream is asked, and (like distribution) refuses
    assert.equal(fake.count({ host: 'registry', path: '/v2/library/alpine/manifests/3.19' }) >= 1, true);
    assert.equal(narrow.status, 404);
    assert.equal(errorCode(narrow), 'MANIFEST_UNKNOWN');
  });

  it('serves per-platform manifests by digest after the index, then caches them', async () => {
    for (const digest of Object.values(image.platforms)) {
      const reply = await get(`${mirror.url}/v2/library/alpine/manifests/${digest}`, { accept: ALL_MANIFEST_TYPES });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-type'], image.manifestType);
      assert.equal(sha256(reply.body), digest);
    }
    fake.reset();
    const head = await get(`${mirror.url}/v2/library/alpine/manifests/${image.platforms['linux/amd64']}`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], image.platforms['linux/amd64']);
    assert.equal(Number(head.headers['content-length']), fake.manifests.get(image.platforms['linux/amd64']!)!.body.length);
    assert.equal(fake.requests.length, 0);
  });

  it('passes OCI media types through unchanged', async () => {
    const index = await get(`${mirror.url}/v2/team/ocitest/manifests/1.0`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(index.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
    assert.equal(sha256(index.body), oci.index);
    const manifest = await get(`${mirror.url}/v2/team/ocitest/manifests/${oci.platforms['linux/arm64']}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(manifest.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
  });

  it('streams a cold blob through, following the CDN redirect without Authorization, and stores it verified', async () => {
    const [digest, content] = [...image.blobs][0]!;
    const reply = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, content);
    assert.equal(reply.headers['docker-content-digest'], digest);
    assert.equal(reply.headers['content-type'], 'application/octet-stream');
    assert.equal(Number(reply.headers['content-length']), content.length);
    const cdnHits = fake.requests.filter((r) => r.host === 'cdn');
    assert.equal(cdnHits.length, 1);
    assert.equal(cdnHits[0]!.headers.authorization, undefined);
    const hex = digest.slice(7);
    const path = join(mirror.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
    // the client has every byte once the digest is verified; flush and rename into place follow
    await waitFor(() => access(path).then(() => true, () => false), { what: 'blob committed', timeoutMs: 30_000 });
    const onDisk = await readFile(path);
    assert.deepEqual(onDisk, content);
  });

  it('serves a warm blob from disk: no upstream request, ranges, conditional requests, HEAD', async () => {
    const [digest, content] = [...image.blobs][1]!;
    await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`);
    fake.reset();
    const whole = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`);
    assert.deepEqual(whole.body, content);
    const part = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`, { range: 'bytes=100-199' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 100-199/${content.length}`);
    assert.deepEqual(part.body, content.subarray(100, 200));
    const tail = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`, { range: 'bytes=-10' });
    assert.deepEqual(tail.body, content.subarray(content.length - 10));
    const beyond = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`, { range: `bytes=${content.length + 5}-` });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers['content-range'], `bytes */${content.length}`);
    const notModified = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`, { 'if-none-match': `"${digest}"` });
    assert.equal(notModified.status, 304);
    const head = await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), content.length);
    assert.equal(fake.requests.length, 0);
  });

  it('shares a blob across repositories by digest, once the upstream confirms the other repository holds it', async () => {
    const [digest, content] = [...image.blobs][2]!;
    await get(`${mirror.url}/v2/library/alpine/blobs/${digest}`);
    fake.reset();
    const reply = await get(`${mirror.url}/v2/other/repo/blobs/${digest}`);
    assert.deepEqual(reply.body, content);
    // a HEAD for other/repo (free on Docker Hub), never a second download
    assert.equal(fake.count({ host: 'registry', method: 'HEAD', path: `/v2/other/repo/blobs/${digest}` }), 1);
    assert.equal(fake.count({ method: 'GET', path: new RegExp(digest) }), 0);
    fake.reset();
    assert.deepEqual((await get(`${mirror.url}/v2/other/repo/blobs/${digest}`)).body, content);
    assert.equal(fake.requests.length, 0, 'the confirmation is remembered');
  });

  it('answers HEAD on an uncached blob from an upstream HEAD, without downloading it', async () => {
    const [digest, content] = [...oci.blobs][0]!;
    const head = await get(`${mirror.url}/v2/team/ocitest/blobs/${digest}`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), content.length);
    assert.equal(fake.count({ host: 'registry', method: 'HEAD' }), 1);
    assert.equal(fake.count({ method: 'GET', path: new RegExp(digest) }), 0);
  });

  it('fetches a token once per scope and reuses it', async () => {
    const tokenRequests = fake.requests.filter((r) => r.host === 'token');
    await get(`${mirror.url}/v2/team/ocitest/manifests/${oci.platforms['linux/amd64']}`, { accept: ALL_MANIFEST_TYPES });
    await get(`${mirror.url}/v2/team/ocitest/blobs/${[...oci.blobs][1]![0]}`);
    // this scope was used before this test: no new token is needed
    assert.equal(fake.count({ host: 'token' }), tokenRequests.length);
    const tokenReq = (await (async () => {
      fake.reset();
      publishImage(fake, 'fresh/scope', 'v1');
      await get(`${mirror.url}/v2/fresh/scope/manifests/v1`, { accept: ALL_MANIFEST_TYPES });
      return fake.requests.filter((r) => r.host === 'token');
    })());
    assert.equal(tokenReq.length, 1);
    // the mirror's configured credentials went to the token service, and only there
    assert.match(String(tokenReq[0]!.headers.authorization), /^Basic /);
    assert.equal(fake.requests.filter((r) => r.host === 'registry').every((r) => !String(r.headers.authorization ?? '').startsWith('Basic')), true);
  });

  it('fetches a new token when the upstream rejects an expired one', async () => {
    const pub = publishImage(fake, 'expiry/test', 'v1');
    await get(`${mirror.url}/v2/expiry/test/manifests/v1`, { accept: ALL_MANIFEST_TYPES });
    fake.expireTokens();
    fake.reset();
    const reply = await get(`${mirror.url}/v2/expiry/test/manifests/${pub.platforms['linux/amd64']}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 200);
    assert.equal(fake.count({ host: 'token' }), 1);
  });

  it('never logs the upstream password', () => {
    assert.equal(mirror.rawLogs().includes('s3cret-pw'), false);
    assert.equal(mirror.rawLogs().includes(Buffer.from('mirror:s3cret-pw').toString('base64')), false);
  });

  it('writes one structured log line per request', async () => {
    const before = mirror.logs().filter((l) => l.msg === 'request').length;
    const reply = await get(`${mirror.url}/v2/library/alpine/manifests/3.19`, { accept: ALL_MANIFEST_TYPES, 'x-request-id': 'req-123' });
    assert.equal(reply.headers['x-request-id'], 'req-123');
    await new Promise((r) => setImmediate(r));
    const lines = mirror.logs().filter((l) => l.msg === 'request');
    assert.equal(lines.length, before + 1);
    const line = lines.at(-1)!;
    assert.equal(line.requestId, 'req-123');
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 200);
    assert.equal(line.cache, 'hit');
    assert.equal(typeof line.ms, 'number');
    assert.equal(typeof line.bytes, 'number');
  });
});

describe('bad input and upstream failures', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let image: PublishedImage;

  before(async () => {
    fake = await FakeRegistry.start();
    image = publishImage(fake, 'library/busybox', 'latest');
    // forced failures here must not open the circuit breaker (resilience.test.ts tests it)
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: 0, breaker: { failures: 1000 } } } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });
  beforeEach(() => {
    fake.reset();
    fake.forceStatus = undefined;
  });

  it('rejects invalid names, references and digests before touching the upstream', async () => {
    const cases: Array<[string, number, string]> = [
      ['/v2/library/../../etc/manifests/latest', 400, 'NAME_INVALID'],
      ['/v2/Upper/Case/manifests/latest', 400, 'NAME_INVALID'],
      ['/v2/library/%2e%2e/manifests/latest', 400, 'NAME_INVALID'],
      // A GET of a reference that is no tag names no manifest: 404, as distribution and the OCI conformance suites have it.
      ['/v2/library/alpine/manifests/bad%20tag', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/library/alpine/blobs/sha256:1234', 400, 'DIGEST_INVALID'],
      ['/v2/library/alpine/blobs/../../../etc/passwd', 404, 'NOT_FOUND'],
      // sha512 is a supported algorithm now (src/registry/digest.ts); an unregistered one is refused unasked.
      [`/v2/library/alpine/blobs/blake3:${'a'.repeat(64)}`, 400, 'UNSUPPORTED'],
      [`/v2/library/alpine/blobs/sha512:${'a'.repeat(64)}`, 400, 'DIGEST_INVALID'],
      ['/v2/library/alpine/blobs/latest', 400, 'DIGEST_INVALID'],
    ];
    for (const [path, status, code] of cases) {
      const reply = await raw(mirror.url, path);
      assert.equal(reply.status, status, path);
      const body = JSON.parse(reply.body.toString()) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]?.code, code, path);
      assert.ok(body.errors[0]?.message, path);
    }
    assert.equal(fake.requests.length, 0);
  });

  it('refuses hosts the config does not name, with no outbound request', async () => {
    for (const path of ['/v2/library/alpine/manifests/latest?ns=evil.example', '/v2/evil.example/x/manifests/latest', '/v2/127.0.0.1:1/x/blobs/sha256:' + 'a'.repeat(64)]) {
      const reply = await raw(mirror.url, path);
      assert.equal(reply.status, 404, path);
      assert.equal(JSON.parse(reply.body.toString()).errors[0].code, 'NAME_UNKNOWN', path);
    }
    assert.equal(fake.requests.length, 0);
  });

  it('accepts containerd\'s ns=docker.io and a docker.io path prefix', async () => {
    const viaNs = await get(`${mirror.url}/v2/library/busybox/manifests/latest?ns=docker.io`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(viaNs.status, 200);
    const viaPrefix = await get(`${mirror.url}/v2/docker.io/busybox/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(viaPrefix.status, 200);
    assert.equal(viaPrefix.headers['docker-content-digest'], image.index);
  });

  it('answers unknown manifests and blobs with MANIFEST_UNKNOWN and BLOB_UNKNOWN', async () => {
    const manifest = await get(`${mirror.url}/v2/library/busybox/manifests/nope`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(manifest.status, 404);
    assert.equal(errorCode(manifest), 'MANIFEST_UNKNOWN');
    const blob = await get(`${mirror.url}/v2/library/busybox/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(blob.status, 404);
    assert.equal(errorCode(blob), 'BLOB_UNKNOWN');
  });

  it('rejects writes on proxied repositories with UNSUPPORTED', async () => {
    const res = await fetch(`${mirror.url}/v2/library/busybox/manifests/latest`, { method: 'PUT', body: '{}' });
    assert.equal(res.status, 405);
    assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNSUPPORTED');
  });

  it('passes 429 through as TOOMANYREQUESTS with Retry-After', async () => {
    fake.forceStatus = 429;
    const reply = await get(`${mirror.url}/v2/library/busybox/manifests/uncached-tag`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(reply.status, 429);
    assert.equal(errorCode(reply), 'TOOMANYREQUESTS');
    assert.equal(reply.headers['retry-after'], '30');
  });

  it('answers 502 when the upstream fails, and serves a cached tag stale instead', async () => {
    const warm = await get(`${mirror.url}/v2/library/busybox/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(warm.status, 200);
    fake.forceStatus = 503;
    const stale = await get(`${mirror.url}/v2/library/busybox/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(stale.status, 200);
    assert.equal(stale.headers['docker-content-digest'], image.index);
    assert.ok(mirror.logs().some((l) => l.msg === 'serving stale tag'));
    const cold = await get(`${mirror.url}/v2/library/busybox/manifests/never-seen`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(cold.status, 502);
    assert.equal(errorCode(cold), 'UNAVAILABLE');
    assert.match(cold.json<{ errors: Array<{ message: string }> }>().errors[0]!.message, /upstream docker\.io answered 503/);
  });

  it('revalidates an expired tag with HEAD and refetches only when the digest changed', async () => {
    await get(`${mirror.url}/v2/library/busybox/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    fake.reset();
    const same = await get(`${mirror.url}/v2/library/busybox/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(same.status, 200);
    assert.equal(fake.count({ host: 'registry', method: 'HEAD' }), 1);
    assert.equal(fake.count({ host: 'registry', method: 'GET' }), 0);
    const moved = publishImage(fake, 'library/busybox', 'latest');
    fake.reset();
    const changed = await get(`${mirror.url}/v2/library/busybox/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(changed.headers['docker-content-digest'], moved.index);
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: /^\/v2\/library\/busybox\/manifests\// }), 1);
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: `/v2/library/busybox/manifests/${moved.index}` }), 1);
  });

  it('keeps one upstream connection across tag revalidations (HEADs)', async () => {
    await get(`${mirror.url}/v2/library/busybox/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
    const before = fake.connections;
    for (let i = 0; i < 10; i++) {
      const reply = await get(`${mirror.url}/v2/library/busybox/manifests/latest`, { accept: ALL_MANIFEST_TYPES });
      assert.equal(reply.status, 200);
    }
    assert.equal(fake.count({ host: 'registry', method: 'HEAD' }) >= 10, true, 'each request revalidated with a HEAD (tagTTL 0)');
    assert.ok(fake.connections - before <= 1, `10 revalidations opened ${fake.connections - before} connections`);
  });

  it('answers 502 and caches nothing when the upstream is down', async () => {
    const down = await FakeRegistry.start();
    const url = down.registryUrl;
    await down.close();
    const lonely = await startMirror({ upstreams: { 'docker.io': { url } } });
    try {
      const reply = await get(`${lonely.url}/v2/library/x/blobs/sha256:${'1'.repeat(64)}`);
      assert.equal(reply.status, 502);
      assert.equal(errorCode(reply), 'UNAVAILABLE');
      assert.match(reply.json<{ errors: Array<{ message: string }> }>().errors[0]!.message, /unreachable/);
    } finally {
      await lonely.close();
    }
  });
});

describe('stream-through integrity', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => {
    fake = await FakeRegistry.start();
    // no resumes here: these tests are about failures that cannot be repaired (see resilience.test.ts)
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, resumeAttempts: 0 } } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  async function storedFiles(): Promise<string[]> {
    const root = join(mirror.dataDir, 'blobs', 'sha256');
    const dirs = await readdir(root);
    const files = await Promise.all(dirs.map(async (d) => (await readdir(join(root, d))).map((f) => `${d}/${f}`)));
    return files.flat();
  }

  it('aborts the response and caches nothing when the upstream sends bytes that do not match the digest', async () => {
    const content = Buffer.alloc(3 * 1024 * 1024, 7);
    const digest = fake.addBlob(content);
    fake.setBlobFault(digest, { kind: 'corrupt' });
    const reply = await raw(mirror.url, `/v2/library/x/blobs/${digest}`);
    assert.ok(reply.error || reply.body.length < content.length, 'the client must see a failed transfer');
    assert.notDeepEqual(reply.body, content);
    await waitFor(async () => (await readdir(join(mirror.dataDir, 'tmp'))).length === 0, { what: 'temp file removed', timeoutMs: 30_000 });
    assert.equal((await storedFiles()).some((f) => digest.endsWith(f.slice(3))), false);
    // the next request starts afresh and succeeds once the upstream is healthy
    fake.setBlobFault(digest, undefined);
    const again = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    assert.equal(again.status, 200);
    assert.equal(sha256(again.body), digest);
  });

  it('aborts the response and caches nothing when the upstream stream breaks and cannot be resumed', async () => {
    const content = Buffer.alloc(2 * 1024 * 1024, 9);
    content.write('distinct');
    const digest = fake.addBlob(content);
    fake.setBlobFault(digest, { kind: 'truncate', after: 1024 * 1024 });
    const reply = await raw(mirror.url, `/v2/library/x/blobs/${digest}`);
    assert.ok(reply.error || reply.body.length < content.length);
    await waitFor(async () => (await readdir(join(mirror.dataDir, 'tmp'))).length === 0, { what: 'temp file removed', timeoutMs: 30_000 });
    assert.equal((await storedFiles()).some((f) => digest.endsWith(f.slice(3))), false);
  });

  it('lets many concurrent cold requests share one upstream download', async () => {
    const content = Buffer.alloc(4 * 1024 * 1024, 5);
    content.write('coalesce');
    const digest = fake.addBlob(content);
    let release!: () => void;
    fake.setBlobFault(digest, { kind: 'hold', after: 1024 * 1024, release: new Promise((r) => (release = r)) });
    fake.reset();
    const replies = Array.from({ length: 10 }, () => get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    await waitFor(() => fake.count({ host: 'cdn' }) >= 1);
    await new Promise((r) => setTimeout(r, 50));
    release();
    const done = await Promise.all(replies);
    for (const reply of done) {
      assert.equal(reply.status, 200);
      assert.equal(sha256(reply.body), digest);
    }
    assert.equal(fake.count({ host: 'cdn' }), 1);
    assert.equal(fake.count({ host: 'registry', method: 'GET', status: 307, path: new RegExp(digest) }), 1);
  });
});

describe('tags resolved by HEAD, as dockerd and containerd do', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let image: PublishedImage;

  before(async () => {
    fake = await FakeRegistry.start();
    image = publishImage(fake, 'library/redis', '7');
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  it('passes a cold HEAD through, then answers the tag from cache once the index is stored', async () => {
    const head = await get(`${mirror.url}/v2/library/redis/manifests/7`, { accept: ALL_MANIFEST_TYPES }, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], image.index);
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: /manifests/ }), 0, 'a HEAD downloads nothing');
    const index = await get(`${mirror.url}/v2/library/redis/manifests/${image.index}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(index.status, 200);
    fake.reset();
    const warm = await get(`${mirror.url}/v2/library/redis/manifests/7`, { accept: ALL_MANIFEST_TYPES }, 'HEAD');
    assert.equal(warm.headers['docker-content-digest'], image.index);
    assert.equal(fake.requests.length, 0);
    // and with the upstream failing after the TTL, the tag is still served (stale)
    const stale = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: 0 } } }, mirror.dataDir);
    try {
      fake.forceStatus = 503;
      const reply = await get(`${stale.url}/v2/library/redis/manifests/7`, { accept: ALL_MANIFEST_TYPES }, 'HEAD');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['docker-content-digest'], image.index);
    } finally {
      fake.forceStatus = undefined;
      await stale.close({ keepData: true });
    }
  });
});
