// Issue 4 item 6: the disk fills up while caching. The data directory is a small tmpfs the test mounts
// (root only; see describeWhenAvailable); the pull still completes from the upstream, verified, and nothing partial is kept.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { describeWhenAvailable } from '../support/e2e/tools.js';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { get } from '../support/http.js';
import { startMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

function patterned(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 13 + seed + (i >> 12)) & 0xff;
  return b;
}

/** What this machine lacks to mount a small tmpfs: root, and mount(8). */
function missingForTmpfs(): string[] {
  if (process.getuid?.() !== 0) return ['not root: mounting a tmpfs needs root'];
  try {
    execFileSync('mount', ['--version'], { stdio: 'ignore' });
    return [];
  } catch {
    return ['mount not found (Debian package mount)'];
  }
}

// Skipped on a machine without root or mount(8), failed instead under LONGSHORE_E2E=required.
describeWhenAvailable('disk full while caching', missingForTmpfs(), () => {
  let fake: FakeRegistry;
  let dir: string;

  before(async () => {
    fake = await FakeRegistry.start();
    dir = await mkdtemp(join(tmpdir(), 'longshore-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', dir]);
  });
  after(async () => {
    execFileSync('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
    await fake.close();
  });

  it('completes the pull from upstream when writing hits ENOSPC, keeping nothing partial', async () => {
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } }, join(dir, 'a'));
    try {
      const content = patterned(9 * 1024 * 1024, 1);
      const digest = fake.addBlob(content);
      const reply = await get(`${mirror.url}/v2/library/big/blobs/${digest}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.body.length, content.length);
      assert.equal(sha256(reply.body), digest);
      assert.ok(fake.requests.some((r) => r.host === 'cdn' && r.headers.range), 'the rest came from the upstream with a Range request');
      await waitFor(async () => (await readdir(join(mirror.dataDir, 'tmp'))).length === 0, { what: 'temp file removed', timeoutMs: 30_000 });
      assert.equal(mirror.longshore.catalog.content(digest as `sha256:${string}`), undefined, 'nothing cached');
      assert.ok(mirror.logs().some((l) => l.msg === 'disk full while caching; clients continue from upstream, nothing cached' && l.level === 'error'));
    } finally {
      await mirror.close();
    }
  });

  it('streams from upstream without caching while free space is under the floor, and triggers eviction', async () => {
    const mirror = await startMirror({ cache: { minFreeSpace: '16MiB' }, upstreams: { 'docker.io': { url: fake.registryUrl } } }, join(dir, 'b'));
    try {
      const content = patterned(2 * 1024 * 1024, 2);
      const digest = fake.addBlob(content);
      const reply = await get(`${mirror.url}/v2/library/small/blobs/${digest}`, { range: 'bytes=10-20' });
      assert.equal(reply.status, 200, 'a pass-through serves the whole blob, not a range');
      assert.equal(sha256(reply.body), digest);
      assert.equal(mirror.longshore.catalog.content(digest as `sha256:${string}`), undefined);
      assert.deepEqual(await readdir(join(mirror.dataDir, 'blobs', 'sha256')), []);
      const line = mirror.logs().find((l) => l.msg === 'request' && String(l.path).includes(digest));
      assert.equal(line?.cache, 'upstream');
      assert.ok(mirror.logs().some((l) => l.msg === 'disk short of space; streaming from upstream without caching'));
    } finally {
      await mirror.close();
    }
  });

  it('fails the transfer when a passed-through blob does not match its digest', async () => {
    const mirror = await startMirror({ cache: { minFreeSpace: '16MiB' }, upstreams: { 'docker.io': { url: fake.registryUrl } } }, join(dir, 'c'));
    try {
      const content = patterned(1024 * 1024, 3);
      const digest = fake.addBlob(content);
      fake.setBlobFault(digest, { kind: 'corrupt' });
      const { raw } = await import('../support/http.js');
      const reply = await raw(mirror.url, `/v2/library/bad/blobs/${digest}`);
      assert.ok(reply.error || reply.body.length < content.length, 'never a complete wrong body');
    } finally {
      await mirror.close();
    }
  });
});
