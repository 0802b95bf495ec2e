// Issue 17: eviction over a large catalogue keeps serving. 40,000 synthetic rows (an index, a platform
// manifest and a dozen blobs per image, each with a sparse file) written straight into the database,
// then an eviction of a tenth of the bytes while warm manifest GETs run. Asserted loosely: the figures
// belong to `npm run bench -- --only=scale`, not to a timed test.
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdirSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { openDatabase } from '../../src/metadata/database.js';
import type { Digest } from '../../src/registry/reference.js';
import { StorePaths } from '../../src/storage/paths.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const IMAGES = 3_000;

describe('eviction under a large catalogue', () => {
  let dir: string;
  let mirror: TestMirror;
  let bytes = 0;
  let objects = 0;
  const indexes: Digest[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-eviction-scale-'));
    const paths = new StorePaths(join(dir, 'data'));
    mkdirSync(paths.tmp, { recursive: true });
    const db = openDatabase(paths.database);
    let n = 0;
    const digest = (): Digest => `sha256:${(++n * 2654435761 % 4294967296).toString(16).padStart(8, '0')}${n.toString(16).padStart(56, '0')}`;
    const content = db.prepare('INSERT INTO content (digest, size, media_type, created_at, last_access, hits, priority, frequency) VALUES (?, ?, ?, 0, 0, 0, ?, ?)');
    const link = db.prepare("INSERT INTO repository_content (upstream, repository, digest) VALUES ('docker.io', ?, ?)");
    const ref = db.prepare('INSERT INTO manifest_refs (manifest, child, kind, size) VALUES (?, ?, ?, ?)');
    const put = (d: Digest, size: number, mediaType: string | null, repository: string, frequency: number) => {
      content.run(d, size, mediaType, frequency, frequency);
      link.run(repository, d);
      mkdirSync(paths.contentDir(d), { recursive: true });
      const fd = openSync(paths.content(d), 'w');
      ftruncateSync(fd, size);
      closeSync(fd);
      bytes += size;
      objects++;
    };
    db.transaction(() => {
      for (let i = 0; i < IMAGES; i++) {
        const repository = `scale/image${i}`;
        const frequency = 1 + (i % 50);
        const index = digest();
        const manifest = digest();
        for (let b = 0; b < 11; b++) {
          const blob = digest();
          put(blob, 1_000_000 + b * 10_000, null, repository, frequency);
          ref.run(manifest, blob, 'blob', 1_000_000 + b * 10_000);
        }
        put(manifest, 800, MANIFEST, repository, frequency);
        put(index, 400, INDEX, repository, frequency);
        ref.run(index, manifest, 'manifest', null);
        indexes.push(index);
      }
    })();
    db.close();
    mirror = await startMirror({ upstreams: { 'docker.io': { url: 'http://127.0.0.1:9' } } }, join(dir, 'data'));
    await mirror.longshore.reconciled;
  });
  after(async () => {
    await mirror?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps serving warm manifests while a tenth of the cache is evicted, without long event-loop pauses', async () => {
    assert.equal(mirror.longshore.catalog.totals().objects, objects);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const eviction = mirror.longshore.evictor.run(Math.floor(bytes * 0.9));
    let done = false;
    void eviction.finally(() => (done = true));
    const statuses = new Map<number, number>();
    let gets = 0;
    // Warm manifests of popular images (frequency 50), asked for until the eviction ends.
    const hot = indexes.filter((_, i) => i % 50 === 49).slice(0, 20);
    await Promise.all(Array.from({ length: 8 }, async (_, worker) => {
      for (let i = worker; !done || i < 40; i += 8) {
        const index = hot[i % hot.length]!;
        const repository = `scale/image${indexes.indexOf(index)}`;
        const reply = await request(`${mirror.url}/v2/${repository}/manifests/${index}`, { headers: { accept: INDEX } });
        await reply.body.dump();
        statuses.set(reply.statusCode, (statuses.get(reply.statusCode) ?? 0) + 1);
        gets++;
      }
    }));
    const result = await eviction;
    delay.disable();
    assert.deepEqual([...statuses.keys()], [200], `every GET answered 200 (${gets})`);
    assert.ok(result.bytes >= bytes * 0.1 && result.evicted >= objects * 0.08, `evicted a tenth: ${JSON.stringify(result)}`);
    assert.ok(mirror.longshore.catalog.totals().bytes <= bytes * 0.9);
    for (const index of hot) assert.ok(mirror.longshore.catalog.content(index), 'the manifests asked for were kept');
    assert.ok(delay.max / 1e6 < 1_000, `longest event-loop pause ${(delay.max / 1e6).toFixed(0)} ms`);
  });
});
