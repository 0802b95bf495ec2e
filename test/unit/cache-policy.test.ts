// Issue 20: the eviction order of the policies on hand-built cases, through the real Catalog and Evictor
// (a stub store: evicting deletes no file), and admission's verdicts.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type Database from 'better-sqlite3';
import { pino } from 'pino';
import { Evictor } from '../../src/cache/evictor.js';
import { Admission, type PolicyName } from '../../src/cache/policy.js';
import type { Config } from '../../src/config/schema.js';
import { Catalog } from '../../src/metadata/catalog.js';
import { openDatabase } from '../../src/metadata/database.js';
import { DiskSpace } from '../../src/signals.js';
import type { Digest } from '../../src/registry/reference.js';
import { LOCAL, UpstreamRouter } from '../../src/registry/routing.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('eviction order', () => {
  let dir: string;
  let db: Database.Database;
  let catalog: Catalog;
  let evictor: Evictor;
  let clock: number;
  let inUse: Digest[];
  const deleted: Digest[] = [];

  function setup(policy: PolicyName, recentMs = 0, pins: string[] = []): void {
    db = openDatabase(join(dir, `${policy}-${Math.random()}.db`));
    catalog = new Catalog(db, () => clock, { policy, recentMs });
    const settings: Config['cache'] = { maxSize: null, highWatermark: 0.9, lowWatermark: 0.8, minFreeSpace: 0, pins, checkInterval: 60_000, admissionShare: 1, doorkeeperShare: 1, protectRecent: recentMs };
    const deleteFile = async (digest: Digest) => (deleted.push(digest), true);
    evictor = new Evictor({ deleteFile, inUse: () => inUse, forget: () => undefined }, catalog, settings, new UpstreamRouter(['docker.io'], 'docker.io'), () => [], new DiskSpace(dir, settings.minFreeSpace), pino({ level: 'silent' }));
  }
  const blob = (digest: Digest, size: number, repository = 'library/x', upstream = 'docker.io') => {
    clock += 10;
    catalog.recordContent({ digest, size, upstream, repository });
  };
  const image = (index: Digest, manifest: Digest, blobs: Array<[Digest, number]>, repository = 'library/img') => {
    clock += 10;
    catalog.recordContent({ digest: index, size: 100, mediaType: INDEX, upstream: 'docker.io', repository, refs: { blobs: [], manifests: [manifest] } });
    catalog.recordContent({ digest: manifest, size: 100, mediaType: MANIFEST, upstream: 'docker.io', repository, refs: { blobs: blobs.map(([b]) => b), manifests: [] } });
    for (const [digest, size] of blobs) blob(digest, size, repository);
  };
  const hit = (digest: Digest, times = 1) => {
    for (let i = 0; i < times; i++) {
      clock += 10;
      catalog.recordHit(digest);
    }
  };
  /** Evicts one object at a time (the target is just below the cache), returning the order. */
  async function order(count: number): Promise<Digest[]> {
    const out: Digest[] = [];
    for (let i = 0; i < count; i++) {
      deleted.length = 0;
      await evictor.run(catalog.totals().bytes - 1);
      out.push(...deleted);
    }
    return out;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-policy-'));
    clock = 1_700_000_000_000;
    inUse = [];
    deleted.length = 0;
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('image-lfuda: frequency beats recency, and recency breaks ties', async () => {
    setup('image-lfuda');
    blob(d('a'), 100);
    blob(d('b'), 100);
    blob(d('c'), 100);
    hit(d('a'), 5); // the oldest, but wanted most
    clock += 1000;
    assert.deepEqual(await order(3), [d('b'), d('c'), d('a')]);
  });

  it('image-lfuda: a re-pull that asks only for the index keeps the layers above a loose blob', async () => {
    setup('image-lfuda');
    image(d('1'), d('2'), [[d('3'), 1000], [d('4'), 5000]]);
    blob(d('5'), 100);
    hit(d('5')); // the loose blob is asked for once more
    hit(d('1'), 3); // clients that have the layers re-pull the tag three times
    const victims = await order(1);
    assert.deepEqual(victims, [d('5')]);
    for (const digest of [d('1'), d('2'), d('3'), d('4')]) assert.ok(catalog.content(digest), `${digest} belongs to a wanted image`);
    // the platform manifest, the lowest, was met first and lifted to its index's rank instead
    assert.ok(catalog.content(d('2'))!.priority >= catalog.content(d('1'))!.priority);
  });

  it('image-lfuda: aging lets content wanted now outrank content that was popular long ago', async () => {
    setup('image-lfuda');
    blob(d('a'), 100);
    hit(d('a'), 3); // popular once: priority L + 4
    for (let round = 0; round < 6; round++) {
      const fresh = d(String.fromCharCode(98 + round)); // b, c, …
      blob(fresh, 100);
      hit(fresh); // wanted now: L + 2
      await evictor.run(catalog.totals().bytes - 1);
    }
    // L rose with each victim, so a's old frequency was overtaken and a left on the way
    assert.equal(catalog.content(d('a')), undefined);
    assert.ok(catalog.age > 4);
  });

  it('image-lfuda: a newly stored layer of a wanted image is as wanted as the image', async () => {
    setup('image-lfuda');
    image(d('1'), d('2'), [[d('3'), 1000]]);
    hit(d('1'), 10);
    await catalog.flushSlices();
    blob(d('9'), 100); // a loose newcomer
    // a new layer of the image (or one evicted and stored again) inherits the manifest's frequency
    catalog.recordContent({ digest: d('2'), size: 100, mediaType: MANIFEST, upstream: 'docker.io', repository: 'library/img', refs: { blobs: [d('3'), d('4')], manifests: [] } });
    clock += 10;
    catalog.recordContent({ digest: d('4'), size: 1000, upstream: 'docker.io', repository: 'library/img' });
    assert.deepEqual(await order(1), [d('9')]);
  });

  it('gdsf prefers to evict large objects; lru evicts the oldest whatever its size or frequency', async () => {
    setup('gdsf');
    blob(d('a'), 10_000_000);
    blob(d('b'), 1_000);
    hit(d('b'));
    assert.deepEqual(await order(1), [d('a')]);
    db.close();
    setup('lru');
    blob(d('a'), 1_000);
    hit(d('a'), 5);
    blob(d('b'), 10_000_000);
    assert.deepEqual(await order(1), [d('a')]);
  });

  it('image-lru (the policy before): layers are as recent as the newest manifest naming them', async () => {
    setup('image-lru');
    image(d('1'), d('2'), [[d('3'), 1000]]);
    blob(d('5'), 100);
    hit(d('1')); // newer than the loose blob
    assert.deepEqual(await order(1), [d('5')]);
  });

  it('never chooses content asked for within protectRecent, flushed or not', async () => {
    setup('image-lfuda', 5_000);
    blob(d('a'), 100);
    blob(d('b'), 100);
    hit(d('b'), 3);
    clock += 10_000; // both older than the window
    hit(d('a')); // a is asked for now; the hit is not flushed
    const result = await evictor.run(catalog.totals().bytes - 1);
    assert.equal(result.evicted, 1);
    assert.ok(catalog.content(d('a')), 'the content asked for a moment ago is not the victim');
    assert.equal(catalog.content(d('b')), undefined);
    // nothing else to take: the recent one stays even when the target asks for everything
    assert.equal((await evictor.run(0)).evicted, 0);
    clock += 5_000;
    assert.equal((await evictor.run(0)).evicted, 1);
  });

  it('pinned and local content is out of the eviction index; content in use is skipped', async () => {
    setup('image-lfuda', 0, ['library/pinned:1']);
    image(d('1'), d('2'), [[d('3'), 1000]], 'library/pinned');
    catalog.putTag('docker.io', 'library/pinned', '1', '*', d('1'), INDEX);
    blob(d('4'), 100, 'team/app', LOCAL);
    blob(d('5'), 100);
    blob(d('6'), 100);
    inUse = [d('5')];
    const result = await evictor.run(0);
    assert.deepEqual(deleted, [d('6')]);
    assert.equal(result.evicted, 1);
    // not even candidates: the index holds only the unpinned, non-local rows
    assert.deepEqual(catalog.evictionCandidates(10).map((c) => c.digest), [d('5')]);
    // a local repository that lets go of the content puts it back in the index
    catalog.unlink(LOCAL, 'team/app', d('4'));
    assert.deepEqual(new Set(catalog.evictionCandidates(10).map((c) => c.digest)), new Set([d('4'), d('5')]));
  });

  it('chooses a batch through the index: no scan, no sort', () => {
    setup('image-lfuda');
    const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT digest, size, priority FROM content
      WHERE keep = 0 AND (priority > ? OR (priority = ? AND digest > ?)) ORDER BY priority, digest LIMIT ?`).all(0, 0, '', 10) as Array<{ detail: string }>;
    const details = plan.map((p) => p.detail).join('; ');
    assert.match(details, /content_eviction/);
    assert.doesNotMatch(details, /TEMP B-TREE/);
  });
});

describe('admission', () => {
  it('refuses blobs over admissionShare, lets blobs over doorkeeperShare in on their second request', () => {
    const admission = new Admission({ maxSize: 1000, admissionShare: 0.5, doorkeeperShare: 0.1 });
    assert.equal(admission.decide('big', 600), 'too-large');
    assert.equal(admission.decide('big', 600), 'too-large');
    assert.equal(admission.decide('mid', 200), 'first-request');
    assert.equal(admission.decide('mid', 200), 'cache');
    assert.equal(admission.decide('small', 100), 'cache');
    assert.equal(admission.decide('unknown', undefined), 'cache');
    const unbounded = new Admission({ maxSize: null, admissionShare: 0.5, doorkeeperShare: 0.1 });
    assert.equal(unbounded.decide('huge', 10 ** 12), 'cache');
  });
});
