// Issue 5: graceful shutdown of the real process. Longshore runs as a child process (src/main.ts, as in
// production) against the in-process fake upstream, whose blob is held mid-transfer while SIGTERM lands.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Agent, request } from 'undici';
import { createLongshore } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { isLongshoreError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { Longshore } from '../support/e2e/longshore.js';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { waitFor } from '../support/wait.js';

const SECRET = 'tok-from-a-file';

/** Resolves with the error code of a fresh TCP connection attempt, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('graceful shutdown', () => {
  let fake: FakeRegistry;
  let secrets: string;
  const agent = new Agent();

  before(async () => {
    // The token service accepts only the password that Longshore reads from its passwordFile.
    fake = await FakeRegistry.start({ users: { mirror: SECRET } });
    secrets = await mkdtemp(join(tmpdir(), 'longshore-secrets-'));
    await writeFile(join(secrets, 'hub-password'), `${SECRET}\n`);
  });
  after(async () => {
    await agent.close();
    await fake.close();
    await rm(secrets, { recursive: true, force: true });
  });

  async function startServer(extra: Record<string, unknown> = {}): Promise<Longshore> {
    return Longshore.start({
      upstreamUrl: fake.registryUrl,
      username: 'unused',
      password: 'unused',
      config: {
        upstreams: {
          // A held upstream body must not end by the idle timeout while a test waits for the exit.
          'docker.io': { url: fake.registryUrl, username: 'mirror', passwordFile: join(secrets, 'hub-password'), timeouts: { idle: '10m' } },
        },
        ...extra,
      },
    });
  }

  function holdBlob(size: number): { digest: string; content: Buffer; release(): void } {
    const content = randomBytes(size);
    const digest = fake.addBlob(content);
    let release!: () => void;
    fake.setBlobFault(digest, { kind: 'hold', after: 64 * 1024, release: new Promise((resolve) => (release = resolve)) });
    return { digest, content, release: () => release() };
  }

  it('on SIGTERM refuses new connections, finishes the download in progress, closes SQLite and exits 0', async () => {
    const server = await startServer();
    try {
      const blob = holdBlob(1024 * 1024);
      const cdnBefore = fake.count({ host: 'cdn' });
      // Headers and the first bytes are through: the response is in flight when the signal lands.
      const response = await request(`${server.url}/v2/library/held/blobs/${blob.digest}`, { dispatcher: agent });
      assert.equal(response.statusCode, 200);
      assert.equal(fake.count({ host: 'cdn' }), cdnBefore + 1);

      const mark = await server.settledMark();
      process.kill(server.process.pid, 'SIGTERM');
      await waitFor(() => server.recordsSince(mark, 'shutting down').length === 1, { what: 'the shutdown log line', timeoutMs: 30_000 });
      assert.equal(await tryConnect(server.port), 'ECONNREFUSED');
      assert.equal(server.process.running, true, 'still running while the download is held');

      blob.release();
      const body = Buffer.from(await response.body.arrayBuffer());
      assert.equal(body.length, blob.content.length);
      assert.equal(sha256(body), blob.digest);

      assert.deepEqual(await server.process.exited, { code: 0, signal: null });
      assert.equal(server.recordsSince(mark, 'stopped').length, 1);
      // The client's kept-alive connection was closed once idle, not cut when the grace ran out.
      assert.equal(server.recordsSince(mark, 'shutdown grace ran out; open connections were cut').length, 0);
      const hex = blob.digest.slice('sha256:'.length);
      assert.ok(existsSync(join(server.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)), 'the blob is in the store');
      assert.equal(existsSync(join(server.dataDir, 'longshore.db-wal')), false, 'SQLite was closed cleanly');
      const db = new Database(join(server.dataDir, 'longshore.db'), { readonly: true });
      try {
        const row = db.prepare('SELECT size FROM content WHERE digest = ?').get(blob.digest) as { size: number } | undefined;
        assert.equal(row?.size, blob.content.length, 'the blob is recorded in the catalog');
      } finally {
        db.close();
      }
      assert.ok(!server.process.recentOutput().includes(SECRET), 'the password from the file is never logged');
    } finally {
      await server.stop();
    }
  });

  // Behind a load balancer: between SIGTERM and the closing of the listener, the balancer's health check
  // must see /readyz fail while requests still succeed, so it moves traffic away before any connection is
  // refused. The 5 s delay only has to outlast three loopback requests.
  it('with a drainDelay, answers /readyz 503 at once and keeps serving, then refuses connections and exits 0', { timeout: 120_000 }, async () => {
    const server = await startServer({ drainDelay: '5s' });
    try {
      const ready = await request(`${server.url}/readyz`, { dispatcher: agent });
      assert.equal(ready.statusCode, 200);
      await ready.body.dump();
      const mark = await server.settledMark();
      process.kill(server.process.pid, 'SIGTERM');
      await waitFor(() => server.recordsSince(mark, 'shutting down').length === 1, { what: 'the shutdown log line', timeoutMs: 30_000 });

      const draining = await request(`${server.url}/readyz`, { dispatcher: agent, reset: true });
      assert.equal(draining.statusCode, 503);
      assert.equal(((await draining.body.json()) as { status: string }).status, 'draining');
      assert.equal(await tryConnect(server.port), 'connected', 'the listener stays open during the drain delay');
      const live = await request(`${server.url}/healthz`, { dispatcher: agent });
      assert.equal(live.statusCode, 200, 'liveness is not readiness: the process is alive while it drains');
      assert.equal(live.headers.connection, 'close', 'kept-alive clients are asked to go');
      await live.body.dump();
      assert.equal(server.recordsSince(mark, 'drain delay over; refusing new connections').length, 0);

      await waitFor(() => server.recordsSince(mark, 'drain delay over; refusing new connections').length === 1, { what: 'the end of the drain delay', timeoutMs: 30_000 });
      assert.equal(await tryConnect(server.port), 'ECONNREFUSED');
      assert.deepEqual(await server.process.exited, { code: 0, signal: null });
    } finally {
      await server.stop();
    }
  });

  // The timeout only catches a hang: the upstream stays held for good, so an exit that waited for it
  // would come after the 10-minute idle timeout.
  it('gives up after shutdownGrace: cuts the transfer, caches nothing, still closes SQLite and exits 0', { timeout: 120_000 }, async () => {
    const server = await startServer({ shutdownGrace: '500ms' });
    const blob = holdBlob(256 * 1024);
    try {
      const response = await request(`${server.url}/v2/library/stuck/blobs/${blob.digest}`, { dispatcher: agent });
      assert.equal(response.statusCode, 200);
      const body = response.body.arrayBuffer().then(() => 'complete', (err: Error) => err.message);
      process.kill(server.process.pid, 'SIGTERM');
      assert.deepEqual(await server.process.exited, { code: 0, signal: null });
      assert.notEqual(await body, 'complete', 'the client sees a broken transfer, not a short body');
      const hex = blob.digest.slice('sha256:'.length);
      assert.equal(existsSync(join(server.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)), false);
      assert.equal(existsSync(join(server.dataDir, 'longshore.db-wal')), false);
      assert.equal(server.records.filter((r) => r.msg === 'shutdown grace ran out; open connections were cut').length, 1);
    } finally {
      blob.release();
      await server.stop();
    }
  });
  it('owns its data directory while it runs: the lock names its admin URL, a second server is refused, the lock goes at exit', { timeout: 120_000 }, async () => {
    const server = await startServer();
    const lockPath = join(server.dataDir, 'longshore.lock');
    try {
      const readLock = () => (existsSync(lockPath) ? JSON.parse(readFileSync(lockPath, 'utf8')) as { pid: number; adminUrl?: string } : undefined);
      await waitFor(() => readLock()?.adminUrl !== undefined, { what: 'the admin URL in the lock file', timeoutMs: 30_000 });
      const owner = readLock()!;
      assert.equal(owner.pid, server.process.pid);
      assert.equal(owner.adminUrl, server.url);
      const config = parseConfig({ listen: '127.0.0.1:0', dataDir: server.dataDir, upstreams: { 'docker.io': { url: fake.registryUrl } } });
      await assert.rejects(createLongshore(config, createLogger('silent')), (err: unknown) =>
        isLongshoreError(err, 'LS_DATA_DIR_LOCKED') && err.message.includes(`pid ${server.process.pid}`) && err.message.includes(server.url));
      assert.ok(existsSync(lockPath), 'the refused server left the lock alone');
    } finally {
      process.kill(server.process.pid, 'SIGTERM');
      await waitFor(() => !server.process.running, { what: 'the server to exit', timeoutMs: 60_000 });
    }
    assert.equal(existsSync(lockPath), false);
  });
});
