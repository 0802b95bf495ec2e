// What is in a data directory's content store, read straight from disk.
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { MaintenanceIndex } from '../../src/metadata/interfaces.js';

/** Every file under blobs/sha256/, as digest → size. */
export async function filesOnDisk(dataDir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const root = join(dataDir, 'blobs', 'sha256');
  for (const prefix of await readdir(root).catch((): string[] => [])) {
    for (const name of await readdir(join(root, prefix))) out.set(`sha256:${name}`, (await stat(join(root, prefix, name))).size);
  }
  return out;
}

/**
 * Asserts that the catalog and the files under blobs/sha256/ agree: every row has its file, of the
 * row's size, every file has its row, and the catalog's totals count exactly those files.
 */
export async function expectCatalogMatchesDisk(catalog: Pick<MaintenanceIndex, 'allContent' | 'totals'>, dataDir: string): Promise<void> {
  const files = await filesOnDisk(dataDir);
  const rows = catalog.allContent();
  assert.equal(rows.length, files.size, 'every row has its file and every file its row');
  for (const row of rows) assert.equal(files.get(row.digest), row.size, row.digest);
  assert.equal(catalog.totals().bytes, [...files.values()].reduce((a, b) => a + b, 0));
  assert.equal(catalog.totals().objects, files.size);
}
