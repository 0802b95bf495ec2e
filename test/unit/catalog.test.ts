// The catalog answers tag and content lookups from memory; every write must show in the next read.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type Database from 'better-sqlite3';
import { Catalog } from '../../src/metadata/catalog.js';
import { openDatabase } from '../../src/metadata/database.js';
import type { Digest } from '../../src/registry/reference.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('Catalog lookups served from memory', () => {
  let dir: string;
  let db: Database.Database;
  let catalog: Catalog;
  let clock = 1_000;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-catalog-'));
    db = openDatabase(join(dir, 'meta.db'));
    catalog = new Catalog(db, () => clock);
  });
  after(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('shows a tag written after it was read (also an unknown tag read before)', () => {
    assert.deepEqual(catalog.tags('docker.io', 'library/a', 'v1'), []);
    catalog.putTag('docker.io', 'library/a', 'v1', '*', d('a'), INDEX);
    assert.deepEqual(catalog.tags('docker.io', 'library/a', 'v1').map((r) => [r.digest, r.checked_at]), [[d('a'), 1_000]]);
    clock = 2_000;
    catalog.putTag('docker.io', 'library/a', 'v1', '*', d('b'), INDEX);
    assert.deepEqual(catalog.tags('docker.io', 'library/a', 'v1').map((r) => [r.digest, r.checked_at]), [[d('b'), 2_000]]);
    clock = 3_000;
    catalog.touchTag('docker.io', 'library/a', 'v1', '*');
    assert.equal(catalog.tags('docker.io', 'library/a', 'v1')[0]?.checked_at, 3_000);
    // the same tag under another repository or upstream is another key
    assert.deepEqual(catalog.tags('ghcr.io', 'library/a', 'v1'), []);
    assert.deepEqual(catalog.tags('docker.io', 'library/a', 'v2'), []);
  });

  it('forgets deleted tags, one by one and by digest', () => {
    catalog.putTag('@local', 'team/app', 'one', '-', d('c'), MANIFEST);
    catalog.putTag('@local', 'team/app', 'two', '-', d('c'), MANIFEST);
    catalog.putTag('@local', 'team/app', 'three', '-', d('e'), MANIFEST);
    assert.equal(catalog.tags('@local', 'team/app', 'one').length, 1);
    assert.equal(catalog.deleteTag('@local', 'team/app', 'one'), true);
    assert.deepEqual(catalog.tags('@local', 'team/app', 'one'), []);
    assert.equal(catalog.tags('@local', 'team/app', 'two').length, 1);
    catalog.deleteTagsOf('@local', 'team/app', d('c'));
    assert.deepEqual(catalog.tags('@local', 'team/app', 'two'), []);
    assert.equal(catalog.tags('@local', 'team/app', 'three').length, 1);
  });

  it('shows content rows as they are recorded, updated and removed', () => {
    assert.equal(catalog.contentInfo(d('f')), undefined);
    catalog.recordContent({ digest: d('f'), size: 10, upstream: 'docker.io', repository: 'library/a' });
    assert.deepEqual(catalog.contentInfo(d('f')), { size: 10, media_type: null });
    // the same digest recorded again as a manifest: the media type appears
    catalog.recordContent({ digest: d('f'), size: 10, mediaType: MANIFEST, upstream: 'docker.io', repository: 'library/b' });
    assert.deepEqual(catalog.contentInfo(d('f')), { size: 10, media_type: MANIFEST });
    assert.equal(catalog.removeContent(d('f')), true);
    assert.equal(catalog.contentInfo(d('f')), undefined);
  });

  it('pins a repository\'s own manifests and what they reference, not every digest linked to its name', () => {
    catalog.recordContent({ digest: d('1'), size: 5, mediaType: INDEX, upstream: 'docker.io', repository: 'library/p', refs: { blobs: [], manifests: [d('2')] } });
    catalog.recordContent({ digest: d('2'), size: 5, mediaType: MANIFEST, upstream: 'docker.io', repository: 'library/p', refs: { blobs: [d('3')], manifests: [] } });
    catalog.recordContent({ digest: d('3'), size: 5, upstream: 'docker.io', repository: 'library/p' });
    // a blob of another image that was once linked to the pinned name
    catalog.recordContent({ digest: d('4'), size: 5, upstream: 'docker.io', repository: 'library/other' });
    catalog.linkRepository('docker.io', 'library/p', d('4'));
    assert.deepEqual([...catalog.pinned('docker.io', 'library/p', undefined)].sort(), [d('1'), d('2'), d('3')]);
  });

  it('knows which repository holds content through the manifests it holds', () => {
    assert.equal(catalog.referencedBy('docker.io', 'library/p', d('3')), true, 'named by a manifest of library/p');
    assert.equal(catalog.referencedBy('docker.io', 'library/p', d('2')), true, 'named by the index of library/p');
    assert.equal(catalog.referencedBy('docker.io', 'library/other', d('3')), false);
    assert.equal(catalog.referencedBy('ghcr.io', 'library/p', d('3')), false);
  });
});
