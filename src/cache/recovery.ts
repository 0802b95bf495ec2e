// Start-up reconciliation of the store with the catalog, so that a kill -9 at any moment (mid-download,
// mid-eviction, between a rename and its row) heals itself:
//   - temp files are removed (ContentStore.init);
//   - rows whose file is gone, or whose file has another size, are removed (with the file);
//   - files without a row are hashed: adopted when the bytes match the digest in their name, else removed.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Catalog } from '../metadata/catalog.js';
import type { Digest } from '../registry/reference.js';
import { READ_CHUNK, type ContentStore } from '../storage/content-store.js';

export interface ReconcileResult {
  rowsRemoved: number;
  filesAdopted: number;
  filesRemoved: number;
}

export async function reconcile(store: ContentStore, catalog: Catalog, log: Logger): Promise<ReconcileResult> {
  const result: ReconcileResult = { rowsRemoved: 0, filesAdopted: 0, filesRemoved: 0 };
  const files = await storedFiles(store);
  for (const row of catalog.allContent()) {
    const size = files.get(row.digest);
    files.delete(row.digest);
    if (size === row.size) continue;
    if (size !== undefined) await store.delete(row.digest);
    catalog.removeContent(row.digest);
    result.rowsRemoved++;
  }
  for (const [digest, size] of files) {
    if (await hashFile(store.paths.content(digest)) === digest) {
      catalog.adopt(digest, size);
      result.filesAdopted++;
    } else {
      await store.delete(digest);
      result.filesRemoved++;
    }
  }
  if (result.rowsRemoved + result.filesAdopted + result.filesRemoved > 0) log.warn(result, 'reconciled the store with the catalog');
  return result;
}

/** Every content file with its size, by digest; names that are not digests are ignored. */
export async function storedFiles(store: ContentStore): Promise<Map<Digest, number>> {
  const out = new Map<Digest, number>();
  let prefixes: string[];
  try {
    prefixes = await readdir(store.paths.blobs);
  } catch {
    return out;
  }
  for (const prefix of prefixes) {
    if (!/^[a-f0-9]{2}$/.test(prefix)) continue;
    for (const name of await readdir(join(store.paths.blobs, prefix))) {
      if (!/^[a-f0-9]{64}$/.test(name) || !name.startsWith(prefix)) continue;
      const info = await stat(join(store.paths.blobs, prefix, name));
      if (info.isFile()) out.set(`sha256:${name}`, info.size);
    }
  }
  return out;
}

export async function hashFile(path: string): Promise<Digest> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
