// Start-up reconciliation of the store with the catalog, so that a kill -9 at any moment (mid-download,
// mid-eviction, between a rename and its row) heals itself:
//   - temp files are removed (ContentStore.init);
//   - rows whose file is gone, or whose file has another size, are removed (with the file);
//   - files without a row are hashed: adopted when the bytes match the digest in their name, else removed.
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Catalog } from '../metadata/catalog.js';
import { algorithmOf, DIGEST_ALGORITHMS, Digester, isEncoded, type Digest, type DigestAlgorithm } from '../digest.js';
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
    if (await fileMatches(store.paths.content(digest), digest)) {
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

/** Every content file with its size, by digest, of every algorithm; names that are not digests are ignored. */
export async function storedFiles(store: ContentStore): Promise<Map<Digest, number>> {
  const out = new Map<Digest, number>();
  for (const algorithm of DIGEST_ALGORITHMS) {
    const root = store.paths.algorithmDir(algorithm);
    let prefixes: string[];
    try {
      prefixes = await readdir(root);
    } catch {
      continue;
    }
    for (const prefix of prefixes) {
      if (!/^[a-f0-9]{2}$/.test(prefix)) continue;
      for (const name of await readdir(join(root, prefix))) {
        if (!isEncoded(algorithm, name) || !name.startsWith(prefix)) continue;
        const info = await stat(join(root, prefix, name));
        if (info.isFile()) out.set(`${algorithm}:${name}`, info.size);
      }
    }
  }
  return out;
}

/** The digest of a file's bytes, with `algorithm` (the one of the digest it should match). */
export async function hashFile(path: string, algorithm: DigestAlgorithm): Promise<Digest> {
  const digester = new Digester(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK })) digester.update(chunk as Buffer);
  return digester.digest();
}

/** Whether a file holds exactly the bytes of `digest`. */
export async function fileMatches(path: string, digest: Digest): Promise<boolean> {
  return (await hashFile(path, algorithmOf(digest))) === digest;
}
