// Blob bodies stay byte-exact while read buffers are reused between responses (storage/chunk-pool.ts):
// many clients at once, slow and fast, whole and ranged, some leaving early, during a download and from
// the store.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

const MiB = 1024 * 1024;

interface Fetched {
  status: number;
  body: Buffer;
  error?: Error;
}

/** A GET that reads slowly when `pauseEvery` is set, and leaves after `abortAfter` bytes when set. */
function fetchBlob(url: string, options: { range?: string; pauseEvery?: number; abortAfter?: number } = {}): Promise<Fetched> {
  return new Promise((resolve) => {
    const req = request(url, { headers: options.range ? { range: options.range } : {} }, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      let count = 0;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        if (options.abortAfter !== undefined && received >= options.abortAfter) {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
          return;
        }
        if (options.pauseEvery && ++count % options.pauseEvery === 0) {
          res.pause();
          setTimeout(() => res.resume(), 15);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', (error) => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), error }));
    });
    req.on('error', (error) => resolve({ status: 0, body: Buffer.alloc(0), error }));
    req.end();
  });
}

describe('blob streaming with reused read buffers', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  // Not a multiple of the 1 MiB chunk, so the last read is short.
  const content = randomBytes(9 * MiB + 12_345);
  let digest: string;
  let url: string;

  before(async () => {
    fake = await FakeRegistry.start({ auth: 'none' });
    digest = fake.addBlob(content);
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    url = `${mirror.url}/v2/library/big/blobs/${digest}`;
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });

  function checkWhole(reply: Fetched): void {
    assert.equal(reply.error, undefined);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.length, content.length);
    assert.equal(sha256(reply.body), digest);
  }

  function checkRange(reply: Fetched, start: number, end: number): void {
    assert.equal(reply.error, undefined);
    assert.equal(reply.status, 206);
    assert.ok(reply.body.equals(content.subarray(start, end + 1)), `bytes ${start}-${end} differ`);
  }

  it('sends every follower of a download the exact bytes', async () => {
    let release!: () => void;
    fake.setBlobFault(digest, { kind: 'hold', after: 3 * MiB + 7, release: new Promise<void>((r) => (release = r)) });
    const replies = [
      fetchBlob(url),
      fetchBlob(url, { pauseEvery: 3 }),
      fetchBlob(url, { range: `bytes=${MiB - 5}-${5 * MiB + 11}` }),
      fetchBlob(url, { abortAfter: 2 * MiB }),
      fetchBlob(url),
      fetchBlob(url, { pauseEvery: 1 }),
    ];
    await waitFor(() => mirror.longshore.registry.downloads().followers >= 5, { what: 'followers joined the download', timeoutMs: 30_000 });
    release();
    const [fast, slow, ranged, leaver, second, slowest] = await Promise.all(replies);
    checkWhole(fast!);
    checkWhole(slow!);
    checkRange(ranged!, MiB - 5, 5 * MiB + 11);
    assert.ok(leaver!.body.length >= 2 * MiB);
    assert.ok(leaver!.body.equals(content.subarray(0, leaver!.body.length)));
    checkWhole(second!);
    checkWhole(slowest!);
    fake.setBlobFault(digest, undefined);
    assert.equal(fake.count({ method: 'GET', path: `/v2/library/big/blobs/${digest}` }), 1);
  });

  it('sends the exact bytes to many concurrent readers of the stored blob, and reuses its buffers', async () => {
    await waitFor(() => mirror.longshore.registry.activeFills === 0, { what: 'the download committed', timeoutMs: 30_000 });
    fake.reset();
    const ranges: Array<[number, number]> = [[0, 0], [MiB - 1, MiB], [3 * MiB + 17, content.length - 1], [5, 2 * MiB + 5]];
    for (let round = 0; round < 3; round++) {
      const whole = [fetchBlob(url), fetchBlob(url, { pauseEvery: 2 }), fetchBlob(url), fetchBlob(url, { abortAfter: MiB })];
      const ranged = ranges.map(([start, end]) => fetchBlob(url, { range: `bytes=${start}-${end}` }));
      const [a, b, c, leaver] = await Promise.all(whole);
      checkWhole(a!);
      checkWhole(b!);
      checkWhole(c!);
      assert.ok(leaver!.body.equals(content.subarray(0, leaver!.body.length)));
      const rangedReplies = await Promise.all(ranged);
      rangedReplies.forEach((reply, i) => checkRange(reply, ranges[i]![0], ranges[i]![1]));
    }
    assert.equal(fake.requests.length, 0, 'warm reads never reach the upstream');
    // The buffers went back to the store's pool after their socket writes completed.
    assert.ok(mirror.longshore.store.chunks.idle > 0, 'no chunk was returned to the pool');
  });
});
