// Security finding 9: abuse limits on pushes. Anyone allowed to push could open unlimited upload sessions
// (a file and a row each, kept for local.uploadTimeout) of unlimited size, and fill the disk. Now: open
// sessions per client and per repository are capped (429), an upload may not grow past
// local.maxUploadSize (413, nothing beyond it written), and pushed content plus open uploads may not pass
// local.maxSize (507). The tests are the attacker's moves.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import type { ConfigInput } from '../../src/config/schema.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { callRegistry, type RegistryReply } from '../support/http.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const call = callRegistry;

/**
 * A PATCH whose body is sent chunked (no Content-Length), `chunks` pieces of `size` bytes as fast as the
 * connection takes them. The server may answer and close before the body is through: write errors are
 * expected then.
 */
function streamChunked(base: string, path: string, chunks: number, size: number): Promise<{ status: number; range?: string; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...(res.headers.range ? { range: res.headers.range as string } : {}), body }));
    });
    req.on('error', (err) => {
      // EPIPE/ECONNRESET while still writing, after the answer arrived, is the server closing as it said.
      if (!req.writableEnded) return;
      reject(err);
    });
    let sent = 0;
    const pump = () => {
      while (sent < chunks) {
        sent++;
        if (!req.write(randomBytes(size))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

describe('push limits', () => {
  let fake: FakeRegistry;
  const mirrors: TestMirror[] = [];

  async function mirrorWith(local: NonNullable<ConfigInput['local']>, extra: Partial<ConfigInput> = {}, dataDir?: string): Promise<TestMirror> {
    const mirror = await startMirror({ ...extra, local: { prefixes: ['team/'], ...local }, upstreams: { 'docker.io': { url: fake.registryUrl } } }, dataDir);
    mirrors.push(mirror);
    return mirror;
  }

  before(async () => {
    fake = await FakeRegistry.start();
  });
  after(async () => {
    for (const mirror of mirrors) await mirror.close().catch(() => undefined);
    await fake.close();
  });

  describe('open upload sessions', () => {
    it('refuses the 17th concurrent session of one client with 429 TOOMANYREQUESTS; cancelling or finishing one frees a slot', async () => {
      const mirror = await mirrorWith({});
      const locations: string[] = [];
      for (let i = 0; i < 16; i++) {
        const start = await call(mirror.url, 'POST', `/v2/team/app${i % 3}/blobs/uploads/`);
        assert.equal(start.status, 202, `session ${i + 1}`);
        locations.push(String(start.headers.location));
      }
      const refused = await call(mirror.url, 'POST', '/v2/team/other/blobs/uploads/');
      assert.equal(refused.status, 429);
      assert.equal(refused.code, 'TOOMANYREQUESTS');
      assert.match(refused.message!, /local\.maxUploadsPerClient/);
      // a monolithic upload needs a session too
      assert.equal((await call(mirror.url, 'POST', `/v2/team/other/blobs/uploads/?digest=${sha('x')}`, 'x')).status, 429);

      assert.equal((await call(mirror.url, 'DELETE', locations.pop()!)).status, 204);
      const again = await call(mirror.url, 'POST', '/v2/team/other/blobs/uploads/');
      assert.equal(again.status, 202, 'a cancelled session frees its slot');
      assert.equal((await call(mirror.url, 'POST', '/v2/team/other/blobs/uploads/')).status, 429);

      const done = await call(mirror.url, 'PUT', `${locations.pop()!}?digest=${sha('finished')}`, 'finished');
      assert.equal(done.status, 201);
      assert.equal((await call(mirror.url, 'POST', '/v2/team/other/blobs/uploads/')).status, 202, 'a finished session frees its slot');
      assert.deepEqual(mirror.longshore.localRegistry.openUploads().sessions, 16);
    });

    it('caps sessions per repository, whoever opens them; other repositories are not affected', async () => {
      const mirror = await mirrorWith({ maxUploadsPerClient: 100, maxUploadsPerRepository: 3 });
      for (let i = 0; i < 3; i++) assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/')).status, 202);
      const refused = await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/');
      assert.equal(refused.status, 429);
      assert.equal(refused.code, 'TOOMANYREQUESTS');
      assert.match(refused.message!, /team\/app.*local\.maxUploadsPerRepository/);
      assert.equal((await call(mirror.url, 'POST', '/v2/team/lib/blobs/uploads/')).status, 202);
    });

    it('expired sessions free their slots', async () => {
      const mirror = await mirrorWith({ maxUploadsPerClient: 2 });
      for (let i = 0; i < 2; i++) assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/')).status, 202);
      assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/')).status, 429);
      // What the sweep timer does once uploadTimeout passed: here with the clock moved on.
      const registry = mirror.longshore.localRegistry as unknown as { now: () => number; sweep(): Promise<number> };
      const realNow = registry.now;
      registry.now = () => realNow() + 2 * 3_600_000;
      assert.equal(await registry.sweep(), 2);
      registry.now = realNow;
      assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/')).status, 202);
    });

    it('behind a trusted proxy, counts each forwarded client; a client cannot pick a fresh identity by header', async () => {
      const mirror = await mirrorWith({ maxUploadsPerClient: 2 }, { server: { trustedProxies: ['127.0.0.1'] } });
      const from = (client: string) => ({ 'x-forwarded-for': client });
      for (let i = 0; i < 2; i++) assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/', undefined, from('203.0.113.1'))).status, 202);
      assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/', undefined, from('6.6.6.6, 203.0.113.1'))).status, 429, 'what the client writes left of the proxy is ignored');
      assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/', undefined, from('203.0.113.2'))).status, 202, 'another client behind the proxy has its own slots');
      // Without the setting, the header is not read: all of these are one client, the peer.
      const plain = await mirrorWith({ maxUploadsPerClient: 2 });
      for (let i = 0; i < 2; i++) assert.equal((await call(plain.url, 'POST', '/v2/team/app/blobs/uploads/', undefined, from(`203.0.113.${i}`))).status, 202);
      assert.equal((await call(plain.url, 'POST', '/v2/team/app/blobs/uploads/', undefined, from('203.0.113.9'))).status, 429);
    });

    it('counts sessions resumed after a restart', async () => {
      const first = await mirrorWith({ maxUploadsPerClient: 2 });
      for (let i = 0; i < 2; i++) assert.equal((await call(first.url, 'POST', '/v2/team/app/blobs/uploads/')).status, 202);
      await first.close({ keepData: true });
      const second = await mirrorWith({ maxUploadsPerClient: 2 }, {}, first.dataDir);
      const refused = await call(second.url, 'POST', '/v2/team/app/blobs/uploads/');
      assert.equal(refused.status, 429, 'the two resumed sessions still hold their slots');
    });

    it('with client auth, the client is the user: one user at the cap does not block another from the same address', async () => {
      const users = ['alice', 'bob'].map((username) => ({ username, passwordHash: bcrypt.hashSync(`${username}-pw`, 4) }));
      const mirror = await mirrorWith({ maxUploadsPerClient: 2 }, {
        auth: { enabled: true, users, rules: [{ users: ['alice', 'bob'], repositories: ['team/*'], actions: ['pull', 'push'] }] },
      });
      const bearer = async (user: string) => {
        const reply = await call(mirror.url, 'GET', '/token?service=longshore&scope=repository:team/app:pull,push', undefined,
          { authorization: `Basic ${Buffer.from(`${user}:${user}-pw`).toString('base64')}` });
        assert.equal(reply.status, 200);
        return { authorization: `Bearer ${(JSON.parse(reply.body.toString()) as { token: string }).token}` };
      };
      const alice = await bearer('alice');
      const bob = await bearer('bob');
      for (let i = 0; i < 2; i++) assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/', undefined, alice)).status, 202);
      assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/', undefined, alice)).status, 429);
      assert.equal((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/', undefined, bob)).status, 202);
    });
  });

  describe('local.maxUploadSize', () => {
    const CAP = 100 * 1024;
    let mirror: TestMirror;
    before(async () => {
      mirror = await mirrorWith({ maxUploadSize: '100KiB' });
    });

    const uploadFile = (location: string) => join(mirror.dataDir, 'uploads', location.split('/').pop()!);

    it('refuses a PATCH whose Content-Length would pass the cap with 413, keeping the bytes already received', async () => {
      const location = String((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/')).headers.location);
      const first = randomBytes(60_000);
      assert.equal((await call(mirror.url, 'PATCH', location, first, { 'content-range': '0-59999' })).status, 202);
      const over = await call(mirror.url, 'PATCH', location, randomBytes(60_000), { 'content-range': '60000-119999' });
      assert.equal(over.status, 413);
      assert.equal(over.code, 'DENIED');
      assert.match(over.message!, /local\.maxUploadSize/);
      assert.equal(over.headers.range, '0-59999');
      assert.equal(over.headers.connection, 'close', 'the unread body is not drained');
      const status = await call(mirror.url, 'GET', location);
      assert.equal(status.status, 204);
      assert.equal(status.headers.range, '0-59999');
      assert.equal((await stat(uploadFile(location))).size, 60_000);
      // The upload goes on: up to the cap exactly is allowed.
      const rest = randomBytes(CAP - 60_000);
      const done = await call(mirror.url, 'PUT', `${location}?digest=${sha(Buffer.concat([first, rest]))}`, rest);
      assert.equal(done.status, 201);
    });

    it('cuts a streamed chunk without Content-Length at the cap: 413, nothing past the cap written, the old offset kept', async () => {
      const location = String((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/')).headers.location);
      assert.equal((await call(mirror.url, 'PATCH', location, randomBytes(30_000))).status, 202);
      const streamed = await streamChunked(mirror.url, location, 64, 16 * 1024); // 1 MiB, ten times the cap
      assert.equal(streamed.status, 413);
      assert.match(streamed.body, /DENIED/);
      assert.equal(streamed.range, '0-29999');
      assert.equal((await call(mirror.url, 'GET', location)).headers.range, '0-29999');
      assert.equal((await stat(uploadFile(location))).size, 30_000);
      assert.equal(mirror.longshore.localRegistry.openUploads().bytes, 30_000, 'the refused bytes are not counted either');
    });

    it('refuses an oversized monolithic POST ?digest= and does not keep its session', async () => {
      const before = mirror.longshore.localRegistry.openUploads().sessions;
      const big = randomBytes(CAP + 1);
      const refused = await call(mirror.url, 'POST', `/v2/team/app/blobs/uploads/?digest=${sha(big)}`, big);
      assert.equal(refused.status, 413);
      assert.equal(mirror.longshore.localRegistry.openUploads().sessions, before);
    });
  });

  describe('local.maxSize', () => {
    const QUOTA = 200 * 1024;

    async function pushBlob(mirror: TestMirror, name: string, content: Buffer): Promise<RegistryReply> {
      return call(mirror.url, 'POST', `/v2/${name}/blobs/uploads/?digest=${sha(content)}`, content);
    }

    it('fills the quota with pushes, refuses the next with 507 DENIED, and frees room when content is deleted', async () => {
      const mirror = await mirrorWith({ maxSize: '200KiB', allowBlobDelete: true });
      const a = randomBytes(100_000);
      const b = randomBytes(90_000);
      assert.equal((await pushBlob(mirror, 'team/app', a)).status, 201);
      assert.equal((await pushBlob(mirror, 'team/app', b)).status, 201);
      // the same content in another local repository counts once (pushing it again would need room for the
      // upload first: clients mount what the registry has)
      assert.equal((await call(mirror.url, 'POST', `/v2/team/copy/blobs/uploads/?mount=${sha(a)}&from=team/app`)).status, 201);
      assert.equal(mirror.longshore.localRegistry.usedBytes(), 190_000);

      const c = randomBytes(20_000);
      const refused = await pushBlob(mirror, 'team/app', c);
      assert.equal(refused.status, 507);
      assert.equal(refused.code, 'DENIED');
      assert.match(refused.message!, /local\.maxSize/);
      assert.equal((await call(mirror.url, 'GET', `/v2/team/app/blobs/${sha(c)}`)).status, 404);

      // open uploads count: a session may not take more than what is left
      const location = String((await call(mirror.url, 'POST', '/v2/team/app/blobs/uploads/')).headers.location);
      assert.equal((await call(mirror.url, 'PATCH', location, randomBytes(10_000))).status, 202);
      const streamed = await streamChunked(mirror.url, location, 8, 1024);
      assert.equal(streamed.status, 507);
      assert.equal(streamed.range, '0-9999');
      assert.equal((await call(mirror.url, 'DELETE', location)).status, 204);
      assert.equal(mirror.longshore.localRegistry.usedBytes(), 190_000);

      // a manifest is pushed content too
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(b), size: b.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(a), size: a.length }],
        annotations: { padding: 'x'.repeat(QUOTA - 190_000) },
      }));
      const put = await call(mirror.url, 'PUT', '/v2/team/app/manifests/v1', manifest, { 'content-type': OCI_MANIFEST });
      assert.equal(put.status, 507);
      assert.equal(put.code, 'DENIED');

      // Deleting frees room only when no local repository holds the content any more.
      assert.equal((await call(mirror.url, 'DELETE', `/v2/team/app/blobs/${sha(a)}`)).status, 202);
      assert.equal((await pushBlob(mirror, 'team/app', c)).status, 507, 'team/copy still holds a');
      assert.equal((await call(mirror.url, 'DELETE', `/v2/team/copy/blobs/${sha(a)}`)).status, 202);
      assert.equal(mirror.longshore.localRegistry.usedBytes(), 90_000);
      assert.equal((await pushBlob(mirror, 'team/app', c)).status, 201);
    });

    it('keeps the quota across a restart (usage is summed from the catalog at start)', async () => {
      const first = await mirrorWith({ maxSize: '200KiB' });
      assert.equal((await pushBlob(first, 'team/app', randomBytes(150_000))).status, 201);
      const location = String((await call(first.url, 'POST', '/v2/team/app/blobs/uploads/')).headers.location);
      assert.equal((await call(first.url, 'PATCH', location, randomBytes(40_000))).status, 202);
      await first.close({ keepData: true });
      const second = await mirrorWith({ maxSize: '200KiB' }, {}, first.dataDir);
      assert.equal(second.longshore.localRegistry.usedBytes(), 190_000);
      assert.equal((await pushBlob(second, 'team/app', randomBytes(20_000))).status, 507);
    });
  });
});
