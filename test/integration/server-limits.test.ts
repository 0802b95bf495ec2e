// Security finding 9, the connection side: Node's defaults let a slowloris client hold a socket for 60 s
// per request line, cut a slow but progressing push after 300 s (408), never closed a request body that
// stopped arriving, and took any number of connections. Config `server` (http/server-limits.ts) is
// applied to every listener; the tests use small values to stay short.
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { applyServerLimits } from '../../src/http/server-limits.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

interface Probe {
  socket: Socket;
  /** Everything the server sent. */
  received(): string;
  /** Resolves with the ms from connect to close. */
  closed: Promise<number>;
}

/** A raw connection that sends `payload` (if any) and then nothing. */
function openRaw(url: string, payload?: string): Promise<Probe> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let data = '';
    let opened = 0;
    const socket = connect(Number(port), hostname);
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - opened)));
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('error', () => undefined); // a reset is one of the ways a refused connection ends
    socket.once('connect', () => {
      opened = Date.now();
      if (payload !== undefined) socket.write(payload);
      resolve({ socket, received: () => data, closed });
    });
    socket.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('server limits', () => {
  let fake: FakeRegistry;
  const mirrors: TestMirror[] = [];

  async function mirrorWith(server: NonNullable<ConfigInput['server']>): Promise<TestMirror> {
    const mirror = await startMirror({ server, local: { prefixes: ['team/'] }, upstreams: { 'docker.io': { url: fake.registryUrl } } });
    mirrors.push(mirror);
    return mirror;
  }

  async function startUpload(mirror: TestMirror): Promise<string> {
    const res = await request(`${mirror.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
    await res.body.dump();
    assert.equal(res.statusCode, 202);
    return String(res.headers.location);
  }

  async function uploadRange(mirror: TestMirror, location: string): Promise<string | undefined> {
    const res = await request(`${mirror.url}${location}`);
    await res.body.dump();
    return res.headers.range as string | undefined;
  }

  /** A PATCH with a chunked body: `chunks` pieces of `size` bytes, one every `everyMs`; resolves with the probe. */
  async function trickle(mirror: TestMirror, location: string, chunks: number, size: number, everyMs: number): Promise<Probe> {
    const probe = await openRaw(mirror.url, `PATCH ${location} HTTP/1.1\r\nHost: mirror\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`);
    for (let i = 0; i < chunks && !probe.socket.destroyed; i++) {
      await sleep(everyMs);
      probe.socket.write(`${size.toString(16)}\r\n${'x'.repeat(size)}\r\n`);
    }
    if (!probe.socket.destroyed) probe.socket.write('0\r\n\r\n');
    return probe;
  }

  before(async () => {
    fake = await FakeRegistry.start();
  });
  after(async () => {
    for (const mirror of mirrors) await mirror.close();
    await fake.close();
  });

  describe('timeouts', () => {
    let mirror: TestMirror;
    before(async () => {
      mirror = await mirrorWith({ headersTimeout: 300, idleTimeout: 500 });
    });

    it('closes a slowloris connection that sends half a request line and stalls, after headersTimeout', async () => {
      const probe = await openRaw(mirror.url, 'GET /v2/ HT');
      const ms = await probe.closed;
      assert.ok(ms >= 250 && ms < 1_500, `closed after ${ms} ms`);
      assert.match(probe.received(), /^HTTP\/1\.1 408 /);
    });

    it('closes a connection that sends nothing at all, after headersTimeout', async () => {
      const probe = await openRaw(mirror.url);
      const ms = await probe.closed;
      assert.ok(ms >= 250 && ms < 1_500, `closed after ${ms} ms`);
    });

    it('lets a slow but progressing upload finish: a body trickled for 2 s, 100 ms between bytes, with idleTimeout 500 ms', async () => {
      assert.equal(mirror.server.requestTimeout, 0, 'no cap on a whole request by default');
      const location = await startUpload(mirror);
      const probe = await trickle(mirror, location, 20, 100, 100);
      await probe.closed;
      assert.match(probe.received(), /^HTTP\/1\.1 202 /);
      assert.match(probe.received(), /\r\nrange: 0-1999\r\n/i);
      assert.equal(await uploadRange(mirror, location), '0-1999');
    });

    it('closes a request whose body stalls for longer than idleTimeout; the upload keeps what it had', async () => {
      const location = await startUpload(mirror);
      const bytesBefore = mirror.longshore.localRegistry.openUploads().bytes;
      const probe = await openRaw(mirror.url, `PATCH ${location} HTTP/1.1\r\nHost: mirror\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(100)}`);
      const ms = await probe.closed;
      assert.ok(ms >= 450 && ms < 2_500, `closed after ${ms} ms`);
      assert.equal(probe.received(), '', 'cut, not answered');
      const file = join(mirror.dataDir, 'uploads', location.split('/').pop()!);
      await waitFor(async () => (await stat(file)).size === 0 && mirror.longshore.localRegistry.openUploads().bytes === bytesBefore, { what: 'the partial chunk dropped', timeoutMs: 5_000 });
      assert.equal(await uploadRange(mirror, location), '0-0');
    });
  });

  it('applies idleTimeout only while a body arrives: a client waiting silently for a slow answer is not cut', async () => {
    // What completing a large push does: the body is in, then the mirror hashes it for longer than idleTimeout.
    const server = createServer((req, res) => {
      req.resume();
      req.once('end', () => setTimeout(() => res.end('done'), 800));
    });
    applyServerLimits(server, parseConfig({ server: { idleTimeout: 300 } }).server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const probe = await openRaw(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc');
      await probe.closed;
      assert.match(probe.received(), /^HTTP\/1\.1 200 [^]*done$/);
    } finally {
      server.close();
    }
  });

  it('cuts a trickled upload with 408 when server.requestTimeout is set (what Node\'s 300 s default did to slow pushes)', async () => {
    const mirror = await mirrorWith({ headersTimeout: 300, requestTimeout: 1_000, idleTimeout: 500 });
    const location = await startUpload(mirror);
    const probe = await trickle(mirror, location, 20, 100, 100);
    await probe.closed;
    assert.match(probe.received(), /^HTTP\/1\.1 408 /);
  });

  it('refuses connections beyond server.maxConnections while the others are held open', async () => {
    const mirror = await mirrorWith({ maxConnections: 2 });
    const held = [await openRaw(mirror.url), await openRaw(mirror.url)];
    await waitFor(async () => (await new Promise<number>((r) => mirror.server.getConnections((_e, n) => r(n)))) === 2, { what: 'two connections', timeoutMs: 5_000 });
    const third = await openRaw(mirror.url, 'GET /v2/ HTTP/1.1\r\nHost: mirror\r\n\r\n');
    const ms = await third.closed;
    assert.ok(ms < 1_000, `closed after ${ms} ms`);
    assert.equal(third.received(), '', 'refused without an answer');
    assert.ok(held.every((p) => !p.socket.destroyed), 'the held connections stay open');

    held[0]!.socket.destroy();
    await waitFor(async () => (await new Promise<number>((r) => mirror.server.getConnections((_e, n) => r(n)))) < 2, { what: 'a slot free', timeoutMs: 5_000 });
    const next = await openRaw(mirror.url, 'GET /v2/ HTTP/1.1\r\nHost: mirror\r\nConnection: close\r\n\r\n');
    await next.closed;
    assert.match(next.received(), /^HTTP\/1\.1 200 /);
    held[1]!.socket.destroy();
  });
});
