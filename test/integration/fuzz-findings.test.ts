// Regression tests for what the fuzzer (fuzz.test.ts) found, each the shrunk counterexample it printed.
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, beforeEach, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { FakeRegistry } from '../support/fake-registry.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { sendRaw, type RawReply } from '../support/raw-socket.js';
import { waitFor } from '../support/wait.js';

/** Log lines since the test began. */
const fresh = (mirror: TestMirror) => mirror.logs().slice(logStart);
const unhandled = (mirror: TestMirror) => fresh(mirror).filter((l) => l.msg === 'unhandled error');
let logStart = 0;

function ociCode(reply: RawReply): string | undefined {
  return (JSON.parse(reply.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code;
}

describe('fuzz findings', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => {
    fake = await FakeRegistry.start();
    mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl } },
      local: { prefixes: ['team/'] },
      auth: {
        enabled: true,
        users: [{ username: 'alice', passwordHash: bcrypt.hashSync('pw', 4) }],
        rules: [{ users: ['alice'], repositories: ['team/*'], actions: ['pull', 'push'] }],
      },
    });
  });
  beforeEach(() => {
    logStart = mirror.logs().length;
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  // A path below a mount that starts with "//" reads as a protocol-relative URL to Express: req.path was
  // null, and parsing the registry target from it threw (500, "unhandled error"). Found by the token
  // fuzzer under load (seed -59771132): GET /v2//0_664-?n=1e3… with a bogus Bearer token.
  // ("//a?b#c@d": parseurl falls back to url.parse, which then finds no pathname.)
  for (const target of ['/v2//0_664-?n=1e3&last=d_6-#p7@^', `/v2//library/alpine/blobs/sha256:${'0'.repeat(64)}#a@b`, '/v2//x#@', '/api/v1//summary#a@b']) {
    it(`answers GET ${target.slice(0, 40)} without a 5xx, with and without auth`, async () => {
      const open = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
      try {
        for (const [where, headers] of [[mirror, [['authorization', 'Bearer eg.UUUrU2B-MQ.']]], [mirror, []], [open, []]] as Array<[TestMirror, Array<[string, string]>]>) {
          const reply = await sendRaw(where.url, { method: 'GET', target, headers });
          assert.ok(reply.status >= 400 && reply.status < 500, `${reply.status} ${reply.body.toString().slice(0, 200)}`);
          assert.deepEqual(where.logs().filter((l) => l.msg === 'unhandled error'), []);
        }
      } finally {
        await open.close();
      }
    });
  }

  // Express's body parser raised http-errors (415, 413, 400) that are no LongshoreError: each was
  // logged as "unhandled error" and answered 500, and containerd falls back to GET /token only on a 4xx.
  for (const [what, headers, body] of [
    ['an unsupported charset', [['content-type', 'application/x-www-form-urlencoded; charset=utf-16']], Buffer.from('grant_type=password')],
    ['an unsupported content encoding', [['content-type', 'application/x-www-form-urlencoded'], ['content-encoding', 'x-bogus']], Buffer.from('grant_type=password')],
    ['a gzip body that is not gzip', [['content-type', 'application/x-www-form-urlencoded'], ['content-encoding', 'gzip']], Buffer.from('grant_type=password')],
    ['a body over the 16 KiB limit', [['content-type', 'application/x-www-form-urlencoded']], Buffer.from(`grant_type=password&password=${'x'.repeat(17_000)}`)],
    ['a gzip body that inflates over the limit', [['content-type', 'application/x-www-form-urlencoded'], ['content-encoding', 'gzip']], gzipSync(`grant_type=password&password=${'x'.repeat(100_000)}`)],
  ] as Array<[string, Array<[string, string]>, Buffer]>) {
    it(`answers POST /token with ${what} 400 in the OCI format`, async () => {
      const reply = await sendRaw(mirror.url, { method: 'POST', target: '/token', headers: [...headers, ['content-length', String(body.length)]], body });
      assert.equal(reply.status, 400, reply.body.toString());
      assert.equal(ociCode(reply), 'UNSUPPORTED');
      assert.deepEqual(unhandled(mirror), []);
    });
  }

  // Express's own final handler answered paths and methods no route takes with an HTML page ("Cannot
  // PUT /token"): no error in the OCI format, and a page that names the method and path back.
  for (const [method, target] of [['PUT', '/token'], ['DELETE', '/token'], ['GET', '/no/such/endpoint'], ['POST', '/healthz']]) {
    it(`answers ${method} ${target} 404 in the OCI format`, async () => {
      const reply = await sendRaw(mirror.url, { method: method!, target: target!, headers: [['content-length', '0']] });
      assert.equal(reply.status, 404);
      assert.match(reply.headers['content-type'] ?? '', /^application\/json/);
      assert.equal(ociCode(reply), 'NOT_FOUND');
    });
  }

  // A client that announced more of a chunk than it sent and went away: the aborted body stream's
  // ECONNRESET reached the error handler as an "unhandled error" (a 500, logged at error level).
  it('takes a client that leaves in the middle of a chunk as the client leaving, and keeps the upload', async () => {
    const token = JSON.parse((await sendRaw(mirror.url, { method: 'GET', target: '/token?scope=repository:team/app:pull,push', headers: [['authorization', `Basic ${Buffer.from('alice:pw').toString('base64')}`]] })).body.toString()) as { token: string };
    const auth: [string, string] = ['authorization', `Bearer ${token.token}`];
    const started = await sendRaw(mirror.url, { method: 'POST', target: '/v2/team/app/blobs/uploads/', headers: [auth, ['content-length', '0']] });
    assert.equal(started.status, 202);
    const location = started.headers.location!;
    const cut = await sendRaw(mirror.url, { method: 'PATCH', target: location, headers: [auth, ['content-length', '1000']], body: Buffer.from('only this'), halfClose: true });
    // Node's parser answers the cut request itself (400, no request id) or just closes.
    assert.ok(cut.status === 0 || (cut.status === 400 && cut.headers['x-request-id'] === undefined), `${cut.status} ${cut.body.toString()}`);
    await waitFor(() => fresh(mirror).some((l) => l.msg === 'client went away' || l.msg === 'unhandled error'), { timeoutMs: 5_000 });
    assert.deepEqual(unhandled(mirror), []);
    const status = await sendRaw(mirror.url, { method: 'GET', target: location, headers: [auth] });
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, '0-0');
  });

  // Issue 14's read of the code: the manifest PUT caught every failure of reading the body as
  // "manifest too large", so a client leaving mid-body was logged as a 413 MANIFEST_INVALID.
  it('takes a client that leaves in the middle of a manifest PUT as the client leaving, not as a manifest too large', async () => {
    const token = JSON.parse((await sendRaw(mirror.url, { method: 'GET', target: '/token?scope=repository:team/app:pull,push', headers: [['authorization', `Basic ${Buffer.from('alice:pw').toString('base64')}`]] })).body.toString()) as { token: string };
    await sendRaw(mirror.url, { method: 'PUT', target: '/v2/team/app/manifests/cut', headers: [['authorization', `Bearer ${token.token}`], ['content-type', 'application/vnd.oci.image.manifest.v1+json'], ['content-length', '1000']], body: Buffer.from('{"schemaVersion":'), halfClose: true });
    // The error handler logs a client that left as 'client went away', an error of ours as 'request failed'.
    await waitFor(() => fresh(mirror).some((l) => l.msg === 'client went away' || l.msg === 'request failed' || l.msg === 'unhandled error'), { timeoutMs: 5_000 });
    assert.ok(fresh(mirror).some((l) => l.msg === 'client went away'));
    assert.deepEqual(fresh(mirror).filter((l) => l.msg === 'request failed').map((l) => l.code), []);
    assert.deepEqual(unhandled(mirror), []);
  });
});

describe('a monolithic upload with a malformed digest', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => {
    fake = await FakeRegistry.start();
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } }, local: { prefixes: ['team/'] } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  // Found by reading what the fuzzer exercised: the session (a file, a row, a slot of the client's
  // maxUploadsPerClient) was created before the digest was parsed, and stayed for uploadTimeout.
  it('is refused 400 DIGEST_INVALID without leaving an upload session behind', async () => {
    const { readdir } = await import('node:fs/promises');
    const { join } = await import('node:path');
    for (const digest of ['sha256:nothex', 'md5:abc', '']) {
      const body = Buffer.from('some bytes');
      const reply = await sendRaw(mirror.url, { method: 'POST', target: `/v2/team/app/blobs/uploads/?digest=${encodeURIComponent(digest)}`, headers: [['content-type', 'application/octet-stream'], ['content-length', String(body.length)]], body });
      assert.ok(reply.status === 400, `${digest}: ${reply.status}`);
    }
    assert.deepEqual(await readdir(join(mirror.dataDir, 'uploads')), []);
  });
});
